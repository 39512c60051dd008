"""Two gateway replicas on one PostgreSQL ledger, as the official SDKs see them.

A key made through one replica's ``POST /admin/keys`` works on the other without a
reload; a budget set through the other refuses the next request with the SDK's own
``RateLimitError``, naming the budget and when it resets; a revocation ends the key on
both. The database is the throwaway cluster ``scripts/test.sh`` starts
(``COSTFLOOR_TEST_POSTGRES``); a fresh database is made for this module with ``psql``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import anthropic
import openai
import pytest

TIMEOUT_S = 30
ADMIN = "admin-secret-for-the-test"


@pytest.fixture(scope="module")
def database() -> str:
    base = os.environ.get("COSTFLOOR_TEST_POSTGRES")
    if not base:
        pytest.fail("COSTFLOOR_TEST_POSTGRES is not set: run the suite with `bash scripts/test.sh`")
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed (Debian's postgresql-client, installed with postgresql)")
    name = f"cf_py_{uuid.uuid4().hex[:12]}"
    subprocess.run([psql, base, "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True, timeout=60)
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def replicas(module_launcher, database):
    sim = module_launcher.sim(output_tokens=6)
    backends = [
        {"name": "local", "type": "openai_compatible", "base_url": f"{sim.url}/v1",
         "model": "sim-llama", "deployment": "llama-3.3-70b-4xa100"},
        {"name": "claude", "type": "anthropic", "base_url": sim.url,
         "model": "claude-haiku-4-5", "price": "claude-haiku-4.5"},
    ]
    routes = [{"name": "chat", "models": ["chat"], "targets": ["claude"]}]
    made = []
    for name in ("replica-a", "replica-b"):
        made.append(module_launcher.gateway(
            backends=backends, routes=routes, name=name,
            env={"COSTFLOOR_TEST_ADMIN": ADMIN, "COSTFLOOR_TEST_LEDGER": database},
            server={"ledger_env": "COSTFLOOR_TEST_LEDGER", "admin_key_env": "COSTFLOOR_TEST_ADMIN",
                    "replica": name,
                    "ledger_spill": str(module_launcher.workdir / f"{name}-spill.jsonl")},
        ))
    return made


def admin(gateway, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{gateway.url}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def eventually(what: str, check) -> None:
    """The replicas read the keys every second; allow five."""
    deadline = time.monotonic() + 5
    while True:
        try:
            if check():
                return
        except (openai.APIStatusError, anthropic.APIStatusError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.1)


def test_keys_made_on_one_replica_serve_both_sdks_on_the_other(replicas) -> None:
    a, b = replicas
    status, made = admin(a, "POST", "/admin/keys", {"name": "team-py", "routes": ["chat"]})
    assert status == 201, made
    key = made["key"]
    oai = openai.OpenAI(base_url=f"{b.url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)
    ant = anthropic.Anthropic(base_url=b.url, api_key=key, max_retries=0, timeout=TIMEOUT_S)

    def chat_ok() -> bool:
        answer = oai.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=8)
        return bool(answer.choices[0].message.content)

    eventually("replica b takes the key made on a", chat_ok)
    answer = ant.messages.create(model="chat", max_tokens=8,
                                 messages=[{"role": "user", "content": "hello"}])
    assert answer.content[0].text

    # A budget of nothing, set through b: a refuses with the SDK's RateLimitError.
    status, changed = admin(b, "PATCH", "/admin/keys/team-py", {"monthly_budget_usd": 0})
    assert status == 200, changed
    ant_a = anthropic.Anthropic(base_url=a.url, api_key=key, max_retries=0, timeout=TIMEOUT_S)
    deadline = time.monotonic() + 5
    while True:
        try:
            ant_a.messages.create(model="chat", max_tokens=8,
                                  messages=[{"role": "user", "content": "hello"}])
        except anthropic.RateLimitError as e:
            message = str(e)
            assert "budget" in message and "resets at" in message, message
            assert e.response.headers.get("retry-after"), "a retry-after where one applies"
            break
        assert time.monotonic() < deadline, "replica a applies the budget set through b"
        time.sleep(0.1)

    # Revoked through a: b refuses with the SDK's AuthenticationError.
    status, _ = admin(a, "DELETE", "/admin/keys/team-py")
    assert status == 200
    deadline = time.monotonic() + 5
    while True:
        try:
            oai.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=8)
        except openai.AuthenticationError:
            break
        except openai.RateLimitError:
            pass  # still known to b, and over its budget of nothing
        assert time.monotonic() < deadline, "replica b drops the key revoked on a"
        time.sleep(0.1)
    oai.close()
    ant.close()
    ant_a.close()
