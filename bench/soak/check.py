"""The soak's checks and figures, from bench/soak/run.sh's output directory.

    check.py OUT BUDGET_USD [sqlite|postgres] [POSTGRES_URL]

With SQLite each replica has its own file and budget; with PostgreSQL both write one
database and share one budget, whose month row (`key_spend`) must agree with the rows.
"""
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

out, budget_usd = Path(sys.argv[1]), float(sys.argv[2])
store = sys.argv[3] if len(sys.argv) > 3 else "sqlite"
pg_url = sys.argv[4] if len(sys.argv) > 4 else ""
failed = []


def metric_sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def query(r: int, sql: str) -> list[tuple]:
    """Rows of `sql` over replica r's rows (`{rows}` is its row set)."""
    if store == "postgres":
        text = sql.replace("{rows}", f"(SELECT * FROM requests WHERE replica = 'replica-{r}') AS x")
        done = subprocess.run(["psql", pg_url, "-At", "-F", "\t", "-c", text],
                              check=True, capture_output=True, text=True, timeout=120)
        return [tuple(line.split("\t")) for line in done.stdout.splitlines() if line]
    db = sqlite3.connect(f"file:{out}/replica-{r}.db?mode=ro", uri=True)
    return [tuple(str(v) for v in row) for row in db.execute(sql.replace("{rows}", "requests"))]


total_spent = 0.0
for r in (0, 1):
    metrics = (out / f"metrics-{r}.txt").read_text()
    answered = int(metric_sum(metrics, "costfloor_requests_total"))
    lost = int(metric_sum(metrics, "costfloor_ledger_rows_lost_total"))
    spooled = int(metric_sum(metrics, "costfloor_ledger_rows_spooled_total"))
    replayed = int(metric_sum(metrics, "costfloor_ledger_rows_replayed_total"))
    rows = int(query(r, "SELECT COUNT(*) FROM {rows}")[0][0])
    by_status = {int(s): int(n) for s, n in query(r, "SELECT http_status, COUNT(*) FROM {rows} GROUP BY http_status ORDER BY 1")}
    spent = int(query(r, "SELECT COALESCE(SUM(counterfactual_cost_nusd), 0) FROM {rows} WHERE client_key = 'soak'")[0][0]) / 1e9
    total_spent += spent
    fallbacks = int(query(r, "SELECT COUNT(*) FROM {rows} WHERE fallback_chain LIKE '%>%'")[0][0])
    distinct = int(query(r, "SELECT COUNT(DISTINCT request_id) FROM {rows}")[0][0])
    log = (out / f"replica-{r}.log").read_text()
    panics = log.count("panicked")
    bench = json.loads((out / f"bench-{r}.json").read_text())["levels"][0]
    print(f"replica-{r}: answered {answered} (metrics), ledger rows {rows} ({distinct} distinct ids), lost {lost}, "
          f"panics {panics}, statuses {by_status}, fallbacks {fallbacks}")
    if store == "postgres":
        during = out / f"metrics-outage-{r}.txt"
        if during.exists():
            t = during.read_text()
            print(f"  during the outage: store_up {metric_sum(t, 'costfloor_ledger_store_up'):.0f}, "
                  f"backlog {metric_sum(t, 'costfloor_ledger_backlog_rows'):.0f} rows, "
                  f"spill file {metric_sum(t, 'costfloor_ledger_spool_rows'):.0f} rows")
        print(f"  rows spooled {spooled}, replayed {replayed}")
    print(f"  client: {bench['completed']} completed, {bench['failed']} failed over {bench['duration_s']:.0f} s")
    print(f"  key spend (counterfactual) through this replica ${spent:.6f}")
    if rows != answered or distinct != rows:
        failed.append(f"replica-{r}: {rows} rows ({distinct} distinct) for {answered} answered")
    if lost or panics:
        failed.append(f"replica-{r}: {lost} rows lost, {panics} panics")
    if store == "sqlite":
        print(f"  of ${budget_usd} budget, overshoot ${max(0.0, spent - budget_usd):.6f}")
        if spent > budget_usd:
            failed.append(f"replica-{r}: spent ${spent} over the ${budget_usd} budget")

if store == "postgres":
    print(f"key spend (counterfactual), both replicas: ${total_spent:.6f} of ${budget_usd} shared budget, "
          f"overshoot ${max(0.0, total_spent - budget_usd):.6f}")
    if total_spent > budget_usd + 1e-12:
        failed.append(f"spent ${total_spent} over the ${budget_usd} budget")
    month = subprocess.run(["psql", pg_url, "-At", "-F", "\t", "-c",
                            "SELECT spent_nusd, reserved_nusd FROM key_spend WHERE key_name = 'soak'"],
                           check=True, capture_output=True, text=True).stdout.split()
    print(f"key_spend row: spent {int(month[0]) / 1e9:.6f}, reserved {int(month[1]) / 1e9:.6f}")
    if abs(int(month[0]) / 1e9 - total_spent) > 1e-9 or int(month[1]) != 0:
        failed.append(f"key_spend {month} disagrees with the rows' ${total_spent}")
    outage = (out / "outage").read_text().strip()
    if outage:
        print("database:", outage.replace("\n", ", "), "(s into the load)")

samples = [tuple(int(x) for x in line.split()) for line in (out / "rss").read_text().splitlines() if line.strip()]
if samples:
    picks = [samples[min(1, len(samples) - 1)], samples[len(samples) // 2], samples[-1]]
    for label, (t, a, b) in zip(("start", "middle", "end"), picks):
        print(f"RSS at {label} ({t} s): replica-0 {a / 1024:.1f} MiB, replica-1 {b / 1024:.1f} MiB")
print("checks:", "all passed" if not failed else "; ".join(failed))
sys.exit(1 if failed else 0)
