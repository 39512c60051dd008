"""Shared pytest fixtures: the costfloor binary and a helper that starts its servers.

Each server subcommand takes ``--listen 127.0.0.1:0`` and prints
``listening on http://HOST:PORT`` as its first line on stdout once it is bound.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import tempfile
import threading
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
