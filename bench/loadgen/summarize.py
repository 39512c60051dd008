"""Summarises a bench/loadgen/run.sh results directory as the tables of RESULTS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def resources(d: Path, name: str):
    t = load(d / f"{name}.time")
    return (t["user_s"] + t["sys_s"], t["max_rss_kib"] / 1024) if t else (float("nan"), float("nan"))


def bench_row(d: Path, name: str):
    m = load(d / f"{name}.json")
    if not m:
        return None
    level = m["levels"][0]
    cpu, rss = resources(d, name)
    sent = level["completed"] + level["failed"]
    return {"rps": level["requests_per_s"], "sent": sent, "failed": level["failed"],
            "p50": level["e2e_ms"]["p50"], "p99": level["e2e_ms"]["p99"],
            "cpu_us": cpu / max(sent, 1) * 1e6, "cpu_s": cpu, "rss": rss, "level": level}


def oha_row(d: Path, name: str):
    o = load(d / f"{name}.json")
    if not o:
        return None
    cpu, rss = resources(d, name)
    codes = o.get("statusCodeDistribution") or {}
    sent = sum(codes.values())
    errors = sum((o.get("errorDistribution") or {}).values())
    lat = o["latencyPercentiles"]
    return {"rps": o["summary"]["requestsPerSec"], "sent": sent, "failed": sent - codes.get("200", 0) + errors,
            "p50": (lat["p50"] or 0) * 1000, "p99": (lat["p99"] or 0) * 1000,
            "cpu_us": cpu / max(sent, 1) * 1e6, "cpu_s": cpu, "rss": rss}


def main() -> None:
    d = Path(sys.argv[1])
    print(f"results: {d}\n")
    rates = sorted({int(p.name.split("-")[1]) for p in d.glob("rate-*-bench.json")})
    if rates:
        print("| offered | client | achieved req/s | requests | failed | e2e p50 | e2e p99 | CPU µs/request | max RSS |")
        print("|---|---|---|---|---|---|---|---|---|")
        for rate in rates:
            b, o = bench_row(d, f"rate-{rate}-bench"), oha_row(d, f"rate-{rate}-oha")
            for label, r in (("costfloor bench", b), ("oha", o)):
                if r:
                    print(f"| {rate}/s | {label} | {r['rps']:.0f} | {r['sent']} | {r['failed']} | {r['p50']:.2f} ms "
                          f"| {r['p99']:.2f} ms | {r['cpu_us']:.0f} | {r['rss']:.0f} MiB |")
            if b and o:
                print(f"| {rate}/s | bench ÷ oha | {b['rps'] / o['rps']:.3f} | | | {b['p50'] / o['p50']:.2f} "
                      f"| {b['p99'] / o['p99']:.2f} | {b['cpu_us'] / o['cpu_us']:.2f} | {b['rss'] / o['rss']:.2f} |")
        print()
    b, o = bench_row(d, "max-bench"), oha_row(d, "max-oha")
    if b or o:
        print("| closed loop | client | req/s | requests | failed | e2e p50 | e2e p99 | CPU µs/request | max RSS |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, r in (("costfloor bench", b), ("oha", o)):
            if r:
                print(f"| max | {label} | {r['rps']:.0f} | {r['sent']} | {r['failed']} | {r['p50']:.2f} ms "
                      f"| {r['p99']:.2f} ms | {r['cpu_us']:.0f} | {r['rss']:.0f} MiB |")
        if b and o:
            print(f"| max | bench ÷ oha | {b['rps'] / o['rps']:.3f} | | | | | {b['cpu_us'] / o['cpu_us']:.2f} | |")
        print()
    b, o = bench_row(d, "streams-bench"), oha_row(d, "streams-oha")
    if b or o:
        print("| streams | client | most in flight at the sim | requests | failed | e2e p50 | e2e p99 "
              "| ITL p50 / p99 | TPOT p50 / p99 | TTFT p50 / p99 | CPU s | max RSS |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for label, r, name in (("costfloor bench", b, "streams-bench"), ("oha", o, "streams-oha")):
            if not r:
                continue
            inflight = (d / f"{name}.inflight").read_text().strip() if (d / f"{name}.inflight").exists() else "?"
            extra = "| – | – | – "
            if "level" in r:
                lv = r["level"]
                extra = (f"| {lv['itl_ms']['p50']:.1f} / {lv['itl_ms']['p99']:.1f} ms "
                         f"| {lv['tpot_ms']['p50']:.1f} / {lv['tpot_ms']['p99']:.1f} ms "
                         f"| {lv['ttft_ms']['p50']:.0f} / {lv['ttft_ms']['p99']:.0f} ms ")
            print(f"| {r.get('level', {}).get('load', '')} | {label} | {inflight} | {r['sent']} | {r['failed']} "
                  f"| {r['p50']:.0f} ms | {r['p99']:.0f} ms {extra}| {r['cpu_s']:.1f} | {r['rss']:.0f} MiB |")


if __name__ == "__main__":
    main()
