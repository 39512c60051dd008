#!/usr/bin/env python3
"""Fills a ledger that `costfloor serve` created (so its schema is the current one) with
N deterministic rows spread evenly over D days, for the `report` benchmark.

Usage: gen_ledger.py LEDGER ROWS START_UNIX_MS DAYS

The mix (by a multiplicative hash of the row number, r in 0..999):
  r < 650   self-hosted `llama` on route `auto` (a third asked for `fast`), counterfactual
            at Haiku 4.5 prices ($1 in, $5 out per MTok = 1,000 and 5,000 nUSD/token)
  r < 900   the API `claude` straight (`direct:claude`), cost = counterfactual
  r < 960   spilled over: `llama:full>claude:200`
  r < 985   fell back: `dead:connect>claude:200` on route `flaky`
  r < 995   upstream error (529, overloaded)
  else      client error (404) that never reached a backend
Every 50th row is estimated; odd rows are streamed and have a TTFT.
This is a benchmark fixture, not product code: it writes the table directly.
"""
import sqlite3
import sys
import time

path, rows, start_ms, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
span_ms = days * 86_400_000
con = sqlite3.connect(path)
con.execute("PRAGMA journal_mode = WAL")
con.execute("PRAGMA synchronous = OFF")
con.execute("PRAGMA cache_size = -400000")
began = time.time()
con.execute(
    f"""
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}),
h AS (
  SELECT i,
         (i * 2654435761) % 1000 AS r,
         200 + (i * 7919) % 3000 AS input,
         50 + (i * 104729) % 500 AS output,
         {start_ms} + i * {span_ms} / {rows} AS started
  FROM n
)
INSERT INTO requests (
  request_id, started_at_unix_ms, finished_at_unix_ms, client_key, route, backend, model,
  requested_model, task, stream, input_tokens, cache_read_tokens, cache_write_tokens,
  cache_write_1h_tokens, output_tokens, ttft_us, total_us, overhead_us, http_status,
  outcome, error_kind, fallback_chain, cost_nusd, counterfactual_cost_nusd, estimated,
  self_hosted)
SELECT
  'bench-' || i,
  started,
  started + (50000 + (i * 48271) % 4000000) / 1000,
  'team-' || (i % 4),
  CASE WHEN r < 650 OR (r >= 900 AND r < 960) THEN 'auto'
       WHEN r < 900 OR (r >= 985 AND r < 995) THEN 'direct:claude'
       WHEN r < 985 THEN 'flaky' ELSE '' END,
  CASE WHEN r < 650 THEN 'llama' WHEN r < 995 THEN 'claude' ELSE '' END,
  CASE WHEN r < 650 THEN 'llama-sim' WHEN r < 995 THEN 'claude-haiku-4-5' ELSE 'nope' END,
  CASE WHEN r < 650 AND i % 3 = 0 THEN 'fast'
       WHEN r < 650 OR (r >= 900 AND r < 960) THEN 'auto'
       WHEN r < 900 OR (r >= 985 AND r < 995) THEN 'claude-haiku-4-5'
       WHEN r < 985 THEN 'flaky' ELSE 'nope' END,
  NULL,
  i % 2,
  CASE WHEN r < 995 THEN input ELSE 3 END,
  0, 0, 0,
  CASE WHEN r < 985 THEN output ELSE 0 END,
  CASE WHEN i % 2 = 1 AND r < 985 THEN 20000 + (i * 16807) % 500000 END,
  50000 + (i * 48271) % 4000000,
  200 + i % 300,
  CASE WHEN r < 985 THEN 200 WHEN r < 995 THEN 529 ELSE 404 END,
  CASE WHEN r < 985 THEN 'success' WHEN r < 995 THEN 'upstream_error' ELSE 'client_error' END,
  CASE WHEN r < 985 THEN NULL WHEN r < 995 THEN 'overloaded' ELSE 'not_found_error' END,
  CASE WHEN r < 650 THEN 'llama:200' WHEN r < 900 THEN 'claude:200'
       WHEN r < 960 THEN 'llama:full>claude:200' WHEN r < 985 THEN 'dead:connect>claude:200'
       WHEN r < 995 THEN 'claude:529' ELSE '' END,
  CASE WHEN r >= 650 AND r < 985 THEN input * 1000 + output * 5000 ELSE 0 END,
  CASE WHEN r < 985 THEN input * 1000 + output * 5000 ELSE 0 END,
  CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
  CASE WHEN r < 650 THEN 1 ELSE 0 END
FROM h
"""
)
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
count = con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
con.close()
print(f"{count} rows in {path} ({time.time() - began:.0f} s)", file=sys.stderr)
