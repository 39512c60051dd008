"""Client keys made by ``costfloor keys create``, as the official SDKs use them.

The key is printed once and only its SHA-256 is written to the config; the gateway
finds a presented key by its digest. A key limited to some routes reaches only those:
another route's model answers 404 in the client's own shape, as an unknown model does.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import anthropic
import openai
import pytest

TIMEOUT_S = 30


def make_key(costfloor_bin: Path, config: Path, name: str, routes: list[str]) -> tuple[str, dict]:
    args = [str(costfloor_bin), "keys", "create", "--config", str(config), "--name", name]
    for route in routes:
        args += ["--route", route]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    key = done.stdout.strip()
    entry = next(k for k in tomllib.loads(config.read_text())["client_key"] if k["name"] == name)
    assert key not in config.read_text(), "the key itself must not be stored"
    return key, entry


@pytest.fixture(scope="module")
def keyed(module_launcher, costfloor_bin, tmp_path_factory):
    sim = module_launcher.sim(output_tokens=6)
    # A config with the two routes, for `costfloor keys create` to add keys to.
    draft = tmp_path_factory.mktemp("keys") / "gateway.toml"
    draft.write_text(
        '[server]\nledger = "unused.db"\n\n'
        f'[[backend]]\nname = "local"\ntype = "openai_compatible"\nbase_url = "{sim.url}/v1"\n'
        'model = "sim-llama"\ndeployment = "llama-3.3-70b-4xa100"\n\n'
        f'[[backend]]\nname = "claude"\ntype = "anthropic"\nbase_url = "{sim.url}"\n'
        'model = "claude-haiku-4-5"\nprice = "claude-haiku-4.5"\n\n'
        '[[route]]\nname = "local"\nmodels = ["local"]\ntargets = ["local"]\n\n'
        '[[route]]\nname = "api"\nmodels = ["api"]\ntargets = ["claude"]\n'
    )
    team_key, team = make_key(costfloor_bin, draft, "team-a", ["local"])
    ops_key, ops = make_key(costfloor_bin, draft, "ops", [])
    gateway = module_launcher.gateway(
        client_keys=[team, ops],
        backends=tomllib.loads(draft.read_text())["backend"],
        routes=tomllib.loads(draft.read_text())["route"],
    )
    return gateway, team_key, ops_key


def test_a_created_key_works_with_both_sdks_and_is_recorded(keyed) -> None:
    gateway, team_key, ops_key = keyed
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=team_key, max_retries=0, timeout=TIMEOUT_S) as oai:
        raw = oai.chat.completions.with_raw_response.create(
            model="local", messages=[{"role": "user", "content": "hello"}], max_tokens=8
        )
        assert raw.parse().choices[0].message.content
        assert gateway.row(raw.headers["x-costfloor-request-id"])["client_key"] == "team-a"
    with anthropic.Anthropic(base_url=gateway.url, api_key=ops_key, max_retries=0, timeout=TIMEOUT_S) as ant:
        raw = ant.messages.with_raw_response.create(
            model="api", max_tokens=8, messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.parse().content[0].text
        assert gateway.row(raw.headers["x-costfloor-request-id"])["client_key"] == "ops"


def test_a_key_limited_to_a_route_reaches_no_other(keyed) -> None:
    gateway, team_key, _ = keyed
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=team_key, max_retries=0, timeout=TIMEOUT_S) as oai:
        with pytest.raises(openai.NotFoundError) as caught:
            oai.chat.completions.create(model="api", messages=[{"role": "user", "content": "hi"}], max_tokens=8)
        assert "has no route" in str(caught.value)
        # Nor the backend by its own name.
        with pytest.raises(openai.NotFoundError):
            oai.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=8)
    with anthropic.Anthropic(base_url=gateway.url, api_key=team_key, max_retries=0, timeout=TIMEOUT_S) as ant:
        with pytest.raises(anthropic.NotFoundError):
            ant.messages.create(model="api", max_tokens=8, messages=[{"role": "user", "content": "hi"}])


def test_a_wrong_or_digest_key_is_refused(keyed) -> None:
    gateway, team_key, _ = keyed
    entry = next(k for k in tomllib.loads(gateway.config.read_text())["client_key"] if k["name"] == "team-a")
    # Neither a changed key nor the stored digest itself opens the gateway.
    for wrong in (team_key[:-1] + ("A" if team_key[-1] != "A" else "B"), entry["sha256"]):
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=wrong, max_retries=0, timeout=TIMEOUT_S) as oai:
            with pytest.raises(openai.AuthenticationError):
                oai.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}], max_tokens=8)


BUDGET_USD = 0.0002


@pytest.fixture(scope="module")
def limited(module_launcher, costfloor_bin, tmp_path_factory):
    sim = module_launcher.sim(output_tokens=6)
    gateway = module_launcher.gateway(
        client_keys=[
            # 2 requests a minute.
            {"name": "slow", "secret_env": "SLOW_KEY", "rpm": 2},
            # $0.0002 a month on Claude Haiku 4.5 ($1 in, $5 out per MTok).
            {"name": "capped", "secret_env": "CAPPED_KEY", "monthly_budget_usd": BUDGET_USD},
        ],
        backends=[
            {"name": "claude", "type": "anthropic", "base_url": sim.url, "model": "claude-haiku-4-5",
             "price": "claude-haiku-4.5"},
        ],
        routes=[{"name": "api", "models": ["api"], "targets": ["claude"]}],
        env={"SLOW_KEY": "sk-slow-key-1", "CAPPED_KEY": "sk-capped-key-1"},
    )
    return gateway


def test_past_its_rate_a_key_gets_a_429_in_each_sdks_shape(limited) -> None:
    with openai.OpenAI(base_url=f"{limited.url}/v1", api_key="sk-slow-key-1", max_retries=0, timeout=TIMEOUT_S) as oai:
        for _ in range(2):
            oai.chat.completions.create(model="api", messages=[{"role": "user", "content": "hi"}], max_tokens=8)
        with pytest.raises(openai.RateLimitError) as caught:
            oai.chat.completions.create(model="api", messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    error = caught.value
    assert "2 requests per minute" in str(error)
    # The bucket refills one request every 30 s: retry-after says how long, in seconds.
    assert 1 <= int(error.response.headers["retry-after"]) <= 30
    assert error.body["type"] == "rate_limit_error" or error.code in (None, "rate_limit_exceeded") or error.body
    request_id = error.response.headers["x-costfloor-request-id"]
    row = limited.row(request_id)
    assert (row["http_status"], row["client_key"], row["outcome"]) == (429, "slow", "client_error")
    with anthropic.Anthropic(base_url=limited.url, api_key="sk-slow-key-1", max_retries=0, timeout=TIMEOUT_S) as ant:
        with pytest.raises(anthropic.RateLimitError) as caught:
            ant.messages.create(model="api", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "retry-after" in caught.value.response.headers


def test_a_budget_is_never_passed(limited) -> None:
    spent_rows = []
    refused = None
    with openai.OpenAI(base_url=f"{limited.url}/v1", api_key="sk-capped-key-1", max_retries=0, timeout=TIMEOUT_S) as oai:
        for _ in range(20):
            try:
                raw = oai.chat.completions.with_raw_response.create(
                    model="api", messages=[{"role": "user", "content": "hello there"}], max_tokens=8
                )
                spent_rows.append(limited.row(raw.headers["x-costfloor-request-id"]))
            except openai.RateLimitError as error:
                refused = error
                break
    assert spent_rows, "the first request fits the budget"
    assert refused is not None, "the budget must stop the key within 20 requests"
    message = str(refused)
    assert "budget" in message and "resets at" in message, message
    # Seconds to the first instant of next month (UTC).
    assert int(refused.response.headers["retry-after"]) > 0
    spent = sum(r["cost_nusd"] for r in spent_rows) / 1e9
    print(f"budget ${BUDGET_USD}, spent ${spent:.6f} over {len(spent_rows)} requests, overshoot ${max(0.0, spent - BUDGET_USD):.6f}")
    assert spent <= BUDGET_USD, (spent, BUDGET_USD)
