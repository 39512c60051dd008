"""`costfloor report --html` in a real browser: headless Chromium (Debian's package,
driven by Playwright) loads the page the report wrote from a ledger the gateway filled,
and every chart must render, with no console error and no network request.

The page is meant to be mailed or attached, so it must be whole on its own: inline CSS
and SVG, no script, nothing fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import openai  # noqa: E402
import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - scripts/setup-python.sh installs it
    pytest.fail("playwright is not installed (scripts/setup-python.sh installs it)", pytrace=False)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine needs: no sandbox as root, and no background connections,
# which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Daily cost, latency per backend, utilisation over time, calls per hour, and the
# plan's cost against volume.
CHARTS = 5


def test_report_page_renders_every_chart_offline(launcher, costfloor_bin: Path, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Chromium is missing (scripts/setup-browser.sh installs it)"
    sim = launcher.sim(output_tokens=12)
    gateway = launcher.gateway(
        backends=[
            {
                "name": "llama",
                "type": "openai_compatible",
                "base_url": f"{sim.url}/v1",
                "model": "llama-sim",
                "deployment": "llama-3.3-70b-4xa100",
                "metrics_url": f"{sim.url}/metrics",
            },
            {
                "name": "claude",
                "type": "anthropic",
                "base_url": sim.url,
                "model": "claude-haiku-4-5",
                "price": "claude-haiku-4.5",
            },
        ],
        routes=[
            {"name": "simple", "models": ["auto"], "tasks": ["classify"], "targets": ["llama", "claude"],
             "reference_api": "claude-haiku-4.5"},
            {"name": "complex", "models": ["auto"], "targets": ["claude"]},
        ],
        server={"sample_interval_seconds": 1},
        name="gateway-report",
    )
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-none", max_retries=0) as oai:
        for i in range(24):
            task = "classify" if i % 3 else "summarise"
            oai.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": f"request {i}: is this spam or not"}],
                max_tokens=12,
                extra_headers={"x-costfloor-task": task},
            )
    time.sleep(2.5)  # two metrics samples after the traffic

    page_path = tmp_path / "report.html"
    done = subprocess.run(
        [str(costfloor_bin), "report", "--config", str(gateway.config), "--html", str(page_path), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["requests"] == 24
    assert figures["review"]["options"], figures.get("review_missing")
    assert [u["backend"] for u in figures["utilisation"]] == ["llama"]

    html = page_path.read_text()
    assert "<script" not in html.lower()

    console_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            boxes = page.evaluate(
                """() => [...document.querySelectorAll('.chart > svg')].map(svg => {
                    const r = svg.getBoundingClientRect();
                    return {width: r.width, height: r.height, shapes: svg.querySelectorAll('path, polyline, rect, circle').length};
                })"""
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            keep = os.environ.get("COSTFLOOR_SCREENSHOT_DIR")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "report.png")
        finally:
            browser.close()

    assert len(boxes) == CHARTS, boxes
    for box in boxes:
        assert box["width"] > 100 and box["height"] > 100, boxes
        assert box["shapes"] > 5, boxes
    assert console_errors == [], console_errors
    # The only request is the page itself.
    assert requests == [page_path.as_uri()], requests
    assert shot.stat().st_size > 10_000
