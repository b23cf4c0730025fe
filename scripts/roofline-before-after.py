#!/usr/bin/env python3
"""Usage: scripts/roofline-before-after.py BEFORE_BINARY AFTER_BINARY

Before/after roofline estimates side by side: runs the main checkout's binary and this
branch's, same flags, alternating, and prints one row per (workload, precision, batch):
the step estimate under the old model (no occupancy) and under the occupancy model, for the
main plan and this branch's plan. The old binary's occupancy numbers are recomputed from its
per-dispatch JSON: seconds' = launch + (seconds - launch) / min(1, workgroups / SMs)."""
import json, subprocess, sys
LAUNCH, SMS = 5e-6, 132
BEFORE, AFTER = sys.argv[1], sys.argv[2]
runs = [(w, p, None) for w in ["mnist_ae", "vae", "cae", "large_ae", "conv_ae"] for p in ["f32", "mixed"]]
runs += [("mnist_ae", "f32", b) for b in [1, 16, 64]] + [("mnist_ae", "mixed", b) for b in [1, 16, 64]]
def est(binary, w, p, b):
    cmd = [binary, "bench", "--workload", w, "--device", "cpu", "--precision", p, "--target", "h200",
           "--profile", "--json", "--seconds", "0.05", "--max-steps", "1"]
    if b: cmd += ["--batch", str(b)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        j = json.loads(line)
        if "per_dispatch" in j:
            return j
    raise SystemExit(f"no estimate from {cmd}")
def totals(j):
    ds = j["per_dispatch"]
    occ = lambda d: min(1.0, d["workgroups"] / SMS)
    if "occupancy" in ds[0]:
        new = sum(d["seconds"] for d in ds)
        old = sum(LAUNCH + (d["seconds"] - LAUNCH) * d["occupancy"] for d in ds)
    else:
        old = sum(d["seconds"] for d in ds)
        new = sum(LAUNCH + (d["seconds"] - LAUNCH) / occ(d) for d in ds)
    under = sum(1 for d in ds if d["underfilled"])
    return old * 1e3, new * 1e3, len(ds), under
print("| workload | batch | precision | dispatches main → branch | underfilled main → branch | no-occupancy model: main → branch (ms) | occupancy model: main → branch (ms) | change |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for w, p, b in runs:
    jb, ja = est(BEFORE, w, p, b), est(AFTER, w, p, b)
    ob, nb, db, ub = totals(jb)
    oa, na, da, ua = totals(ja)
    print(f"| {w} | {jb['batch']} | {p} | {db} → {da} | {ub} → {ua} | {ob:.4g} → {oa:.4g} | {nb:.4g} → {na:.4g} | {100*(na/nb-1):+.0f}% |", flush=True)
