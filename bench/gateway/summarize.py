#!/usr/bin/env python3
"""Helpers for bench/gateway/run.sh: read oha JSON, query the ledger, print the summary.

    summarize.py brief FILE.json                  one-line digest of an oha result
    summarize.py answered FILE.json               responses received (any HTTP status)
    summarize.py ledger-window DB RUN.json N      rows started inside a run's time window
    summarize.py ledger-total DB N                all rows, compared with N answered
    summarize.py table DIR                        the summary table (also DIR/summary.json)

Standard library only.
"""

import json
import os
import sqlite3
import sys
import time


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def status_counts(result):
    return {str(k): int(v) for k, v in (result.get("statusCodeDistribution") or {}).items()}


def answered(result):
    """Requests that got an HTTP response, whatever its status."""
    return sum(status_counts(result).values())


def ok_count(result):
    return sum(v for k, v in status_counts(result).items() if k.startswith("2"))


def errors(result):
    return {str(k): int(v) for k, v in (result.get("errorDistribution") or {}).items()}


def pct(result, key):
    """A latency percentile from oha's JSON in milliseconds (oha reports seconds)."""
    value = (result.get("latencyPercentiles") or {}).get(key)
    return None if value is None else value * 1000.0


def digest(result, duration_s=None):
    summary = result.get("summary") or {}
    n = answered(result)
    rps = summary.get("requestsPerSec")
    if duration_s:
        rps = n / duration_s
    return {
        "answered": n,
        "ok": ok_count(result),
        "status": status_counts(result),
        "errors": errors(result),
        "rps": rps,
        "p50_ms": pct(result, "p50"),
        "p90_ms": pct(result, "p90"),
        "p99_ms": pct(result, "p99"),
        "p999_ms": pct(result, "p99.9"),
        "mean_ms": None if summary.get("average") is None else summary["average"] * 1000.0,
        "max_ms": None if summary.get("slowest") is None else summary["slowest"] * 1000.0,
    }


def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def connect(db):
    # Read-only through the URI so that a missing file is an error, not a new empty database.
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # nearest rank
    return sorted_values[min(rank, len(sorted_values)) - 1]


def window_stats(db, start_ms, end_ms):
    conn = connect(db)
    try:
        where = "started_at_unix_ms BETWEEN ? AND ?"
        rows = conn.execute(f"SELECT COUNT(*) FROM requests WHERE {where}", (start_ms, end_ms)).fetchone()[0]
        outcomes = dict(
            conn.execute(
                f"SELECT outcome || ':' || http_status, COUNT(*) FROM requests WHERE {where} GROUP BY 1 ORDER BY 1",
                (start_ms, end_ms),
            ).fetchall()
        )
        overhead = sorted(
            r[0]
            for r in conn.execute(
                f"SELECT overhead_us FROM requests WHERE {where} AND outcome = 'success'", (start_ms, end_ms)
            )
        )
        cost = conn.execute(f"SELECT COALESCE(SUM(cost_nusd), 0) FROM requests WHERE {where}", (start_ms, end_ms)).fetchone()[0]
    finally:
        conn.close()
    return {
        "rows": rows,
        "by_outcome": outcomes,
        "overhead_us_p50": percentile(overhead, 50),
        "overhead_us_p99": percentile(overhead, 99),
        "cost_usd": cost / 1e9,
    }


def count_rows(db):
    conn = connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        conn.close()


def cmd_ledger_window(db, run_path, expected):
    run = load(run_path)
    expected = int(expected)
    # The writer drains a queue in the background: wait (bounded) until the rows are in.
    deadline = time.monotonic() + 20
    waited = 0.0
    began = time.monotonic()
    while True:
        stats = window_stats(db, run["start_ms"], run["end_ms"])
        if stats["rows"] >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    waited = time.monotonic() - began
    stats.update({"expected": expected, "match": stats["rows"] == expected, "waited_s": round(waited, 2)})
    print(json.dumps(stats, sort_keys=True))


def cmd_ledger_total(db, expected):
    expected = int(expected)
    rows = count_rows(db)
    print(json.dumps({"rows": rows, "expected": expected, "match": rows == expected}, sort_keys=True))


def read_meta(directory):
    meta = {}
    path = os.path.join(directory, "meta.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "=" in line:
                    key, _, value = line.rstrip("\n").partition("=")
                    meta[key] = value
    return meta


def cmd_table(directory):
    runs = []
    for mode in ("fixed", "max"):
        for target in ("direct", "gateway"):
            name = f"{mode}-{target}"
            result_path = os.path.join(directory, f"{name}.json")
            run_path = os.path.join(directory, f"{name}.run.json")
            if not (os.path.exists(result_path) and os.path.exists(run_path)):
                continue
            run = load(run_path)
            entry = {"name": name, "mode": mode, "target": target, "connections": run["connections"], "rate": run["rate"]}
            entry.update(digest(load(result_path), run["duration_s"]))
            ledger_path = os.path.join(directory, f"{name}.ledger.json")
            if os.path.exists(ledger_path):
                entry["ledger"] = load(ledger_path)
            runs.append(entry)

    meta = read_meta(directory)
    out = []
    out.append(f"machine: {meta.get('cpu', '?')}, {meta.get('nproc', '?')} CPUs, {meta.get('mem_total', '?')}")
    out.append(f"tools:   nginx {meta.get('nginx', '?')}, {meta.get('oha', '?')}, {meta.get('costfloor', 'costfloor: not run')}")
    out.append(f"run:     {meta.get('settings', '?')}")
    out.append("")
    header = ["scenario", "target", "conns", "answered", "2xx", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "ledger rows", "gw overhead p50/p99 us"]
    table = [header]
    for r in runs:
        scenario = f"fixed {r['rate']}/s" if r["mode"] == "fixed" else "max rate"
        ledger = r.get("ledger")
        rows = "-" if ledger is None else f"{ledger['rows']}{'' if ledger['match'] else ' (!)'}"
        overhead = "-" if ledger is None else f"{fmt(ledger['overhead_us_p50'])}/{fmt(ledger['overhead_us_p99'])}"
        table.append([
            scenario, r["target"], str(r["connections"]), str(r["answered"]), str(r["ok"]), fmt(r["rps"], 0),
            fmt(r["p50_ms"], 3), fmt(r["p99_ms"], 3), fmt(r["p999_ms"], 3), rows, overhead,
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        out.append("  ".join(cell.rjust(widths[j]) if j > 1 else cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")

    by_name = {r["name"]: r for r in runs}
    derived = {}
    d, g = by_name.get("fixed-direct"), by_name.get("fixed-gateway")
    if d and g and None not in (d["p50_ms"], g["p50_ms"], d["p99_ms"], g["p99_ms"]):
        derived["fixed_overhead_p50_ms"] = g["p50_ms"] - d["p50_ms"]
        derived["fixed_overhead_p99_ms"] = g["p99_ms"] - d["p99_ms"]
        out.append(
            f"overhead at {g['rate']} req/s: p50 {derived['fixed_overhead_p50_ms']:+.3f} ms, "
            f"p99 {derived['fixed_overhead_p99_ms']:+.3f} ms (gateway - direct)"
        )
    for r in runs:
        if r["mode"] == "fixed" and r["rps"] is not None and r["rps"] < 0.95 * r["rate"]:
            out.append(f"warning: {r['name']} reached only {r['rps']:.0f} req/s of the {r['rate']} asked: the rate was not sustained")
    d, g = by_name.get("max-direct"), by_name.get("max-gateway")
    if d and g and d["rps"]:
        derived["max_gateway_over_direct"] = g["rps"] / d["rps"]
        out.append(
            f"max rate with {g['connections']} connections: direct {d['rps']:.0f} req/s, gateway {g['rps']:.0f} req/s "
            f"({100 * g['rps'] / d['rps']:.0f}% of direct)"
        )
    for r in runs:
        non_ok = r["answered"] - r["ok"]
        if non_ok or r["errors"]:
            out.append(f"note: {r['name']}: {non_ok} non-2xx responses {r['status']}, client-side errors {r['errors']}")
        ledger = r.get("ledger")
        if ledger is not None:
            verdict = "==" if ledger["match"] else "!="
            out.append(
                f"ledger {r['name']}: {ledger['rows']} rows {verdict} {ledger['expected']} answered "
                f"(outcomes {ledger['by_outcome']}, cost ${ledger['cost_usd']:.4f})"
            )
    total_path = os.path.join(directory, "ledger-total.json")
    if os.path.exists(total_path):
        total = load(total_path)
        derived["ledger_total"] = total
        verdict = "==" if total["match"] else "!="
        out.append(
            f"ledger after shutdown: {total['rows']} rows {verdict} {total['expected']} answered by the gateway "
            "(smoke + warm-ups + runs)"
        )
    print("\n".join(out))
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "runs": runs, "derived": derived}, f, indent=2, sort_keys=True)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "brief" and len(args) == 1:
        d = digest(load(args[0]))
        print(
            f"{d['answered']} answered ({d['ok']} 2xx), {fmt(d['rps'], 0)} req/s, "
            f"p50 {fmt(d['p50_ms'], 3)} ms, p99 {fmt(d['p99_ms'], 3)} ms"
            + (f", errors {d['errors']}" if d["errors"] else "")
        )
    elif cmd == "answered" and len(args) == 1:
        print(answered(load(args[0])))
    elif cmd == "ledger-window" and len(args) == 3:
        cmd_ledger_window(*args)
    elif cmd == "ledger-total" and len(args) == 2:
        cmd_ledger_total(*args)
    elif cmd == "table" and len(args) == 1:
        cmd_table(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
