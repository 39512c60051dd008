"""The soak's checks and figures, from bench/soak/run.sh's output directory."""
import json
import re
import sqlite3
import sys
from pathlib import Path

out, budget_usd = Path(sys.argv[1]), float(sys.argv[2])
failed = []


def metric_sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


for r in (0, 1):
    metrics = (out / f"metrics-{r}.txt").read_text()
    answered = int(metric_sum(metrics, "costfloor_requests_total"))
    lost = int(metric_sum(metrics, "costfloor_ledger_rows_lost_total"))
    db = sqlite3.connect(f"file:{out}/replica-{r}.db?mode=ro", uri=True)
    rows = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    by_status = dict(db.execute("SELECT http_status, COUNT(*) FROM requests GROUP BY http_status").fetchall())
    spent = db.execute(
        "SELECT COALESCE(SUM(counterfactual_cost_nusd), 0) FROM requests WHERE client_key = 'soak'"
    ).fetchone()[0] / 1e9
    fallbacks = db.execute("SELECT COUNT(*) FROM requests WHERE fallback_chain LIKE '%>%'").fetchone()[0]
    replicas = [x[0] for x in db.execute("SELECT DISTINCT replica FROM requests")]
    log = (out / f"replica-{r}.log").read_text()
    panics = log.count("panicked")
    bench = json.loads((out / f"bench-{r}.json").read_text())["levels"][0]
    print(f"replica-{r}: answered {answered} (metrics), ledger rows {rows}, lost {lost}, panics {panics}, "
          f"statuses {by_status}, fallbacks {fallbacks}, replica names {replicas}")
    print(f"  client: {bench['completed']} completed, {bench['failed']} failed over {bench['duration_s']:.0f} s")
    print(f"  key spend (counterfactual) ${spent:.6f} of ${budget_usd} budget, overshoot ${max(0.0, spent - budget_usd):.6f}")
    if rows != answered:
        failed.append(f"replica-{r}: {rows} rows for {answered} answered")
    if lost or panics:
        failed.append(f"replica-{r}: {lost} rows lost, {panics} panics")
    if spent > budget_usd:
        failed.append(f"replica-{r}: spent ${spent} over the ${budget_usd} budget")
    if replicas != [f"replica-{r}"]:
        failed.append(f"replica-{r}: rows name {replicas}")

samples = [tuple(int(x) for x in line.split()) for line in (out / "rss").read_text().splitlines() if line.strip()]
if samples:
    picks = [samples[min(1, len(samples) - 1)], samples[len(samples) // 2], samples[-1]]
    for label, (t, a, b) in zip(("start", "middle", "end"), picks):
        print(f"RSS at {label} ({t} s): replica-0 {a / 1024:.1f} MiB, replica-1 {b / 1024:.1f} MiB")
print("checks:", "all passed" if not failed else "; ".join(failed))
sys.exit(1 if failed else 0)
