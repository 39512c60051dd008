"""Prints bench/streams/run.sh's table from its results directory."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
idle = int((out / "idle_kib").read_text())
upstream = (out / "upstream").read_text().strip() if (out / "upstream").exists() else "1.1"
print(f"upstream HTTP/{upstream}; gateway idle RSS: {idle / 1024:.1f} MiB")
print("streams  in flight  upstream conns  peak fds  peak RSS MiB  KiB/stream  ITL p99 direct  ITL p99 gateway  added  TTFT p99 gw  failed")
for line in (out / "samples").read_text().split("\n"):
    if not line.strip():
        continue
    n, peak, flight, fds, conns = (int(x) for x in line.split())
    direct = json.loads((out / f"direct-{n}.json").read_text())["levels"][0]
    gateway = json.loads((out / f"gateway-{n}.json").read_text())["levels"][0]
    per = (peak - idle) / max(flight, 1)
    d, g = direct["itl_ms"]["p99"], gateway["itl_ms"]["p99"]
    print(f"{n:7}  {flight:9}  {conns:14}  {fds:8}  {peak / 1024:12.1f}  {per:10.1f}  {d:11.2f} ms  {g:12.2f} ms  {g - d:+6.2f}  "
          f"{gateway['ttft_ms']['p99']:8.0f} ms  {gateway['failed']:6}")
