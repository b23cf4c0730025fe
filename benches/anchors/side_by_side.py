#!/usr/bin/env python3
"""Hourglass's CPU executor against JAX/XLA, alternating, several rounds, one command.

A shared 2-core machine drifts by 10-30% within minutes, so one run of each side apart says
little. This script alternates `hourglass bench --device cpu --json` and jax_ae_bench.py for
--rounds rounds (the order flips every round) and prints each round's samples/s and ratio, and
the median ratio per workload, the figure to quote:

  python3 benches/anchors/side_by_side.py --workload mnist_ae,cae --seconds 5 --rounds 4
  python3 benches/anchors/side_by_side.py --workload mnist_ae --batch 1024 --rounds 3

It needs a release build (`cargo build --release`) and `jax` (see README.md here).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def hourglass(binary, workloads, batch, seconds):
    cmd = [binary, "bench", "--workload", workloads, "--device", "cpu", "--json",
           "--seconds", str(seconds)]
    if batch:
        cmd += ["--batch", str(batch)]
    return {d["workload"]: d for d in json_lines(cmd)}


def jax(workloads, batch, seconds):
    cmd = [sys.executable, os.path.join(HERE, "jax_ae_bench.py"), "--workload", workloads,
           "--seconds", str(seconds)]
    if batch:
        cmd += ["--batch", str(batch)]
    return {d["workload"]: d for d in json_lines(cmd)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="mnist_ae,cae")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "hourglass"))
    args = ap.parse_args()

    ratios = {}
    for r in range(args.rounds):
        sides = [("hourglass", lambda: hourglass(args.binary, args.workload, args.batch,
                                                  args.seconds)),
                 ("jax", lambda: jax(args.workload, args.batch, args.seconds))]
        if r % 2:
            sides.reverse()
        got = {name: run() for name, run in sides}
        for w, h in got["hourglass"].items():
            j = got["jax"][w]
            ratio = h["samples_per_s"] / j["samples_per_s"]
            ratios.setdefault(w, []).append(ratio)
            extra = ""
            if h.get("fraction_of_sgemm") is not None:
                extra = f", {100 * h['fraction_of_sgemm']:.0f}% of sgemm ceiling"
            print(f"round {r + 1} {w} batch {h['batch']}: hourglass {h['samples_per_s']:,.0f} "
                  f"samples/s{extra}, jax {j['samples_per_s']:,.0f}: {ratio:.2f}x", flush=True)
    for w, rs in ratios.items():
        print(f"{w}: median hourglass/jax {statistics.median(rs):.2f}x "
              f"(rounds: {', '.join(f'{x:.2f}' for x in rs)})")


if __name__ == "__main__":
    main()
