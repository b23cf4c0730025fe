#!/usr/bin/env python3
"""Hourglass's CPU executor against JAX/XLA and PyTorch eager, alternating, several rounds.

A shared 2-core machine drifts by 10-30% within minutes, so one run of each side apart says
little. This script alternates `hourglass bench --device cpu --json`, jax_ae_bench.py and
torch_cpu_bench.py (PyTorch eager, torch.set_num_threads = the core count) for --rounds rounds
(the order reverses every round), prints each round's samples/s and ratios and `uptime`'s load
before the round, and the median ratio per workload and peer, the figure to quote:

  python3 benches/anchors/side_by_side.py --workload mnist_ae,cae --seconds 5 --rounds 4
  python3 benches/anchors/side_by_side.py --workload conv_ae --peers jax,torch --rounds 4
  python3 benches/anchors/side_by_side.py --workload mnist_ae --batch 1024 --rounds 3

It needs a release build (`cargo build --release`) and `jax` / `torch` for the peers asked for
(see README.md here). PyTorch runs only the workloads torch_cpu_bench.py has (mnist_ae, cae,
conv_ae).
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


TORCH_WORKLOADS = {"mnist_ae", "cae", "conv_ae"}


def peer(script, workloads, batch, seconds):
    if script == PEERS["torch"]:
        workloads = ",".join(w for w in workloads.split(",") if w.strip() in TORCH_WORKLOADS)
        if not workloads:
            return {}
    cmd = [sys.executable, os.path.join(HERE, script), "--workload", workloads,
           "--seconds", str(seconds)]
    if batch:
        cmd += ["--batch", str(batch)]
    return {d["workload"]: d for d in json_lines(cmd)}


PEERS = {"jax": "jax_ae_bench.py", "torch": "torch_cpu_bench.py"}


def load():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="mnist_ae,cae")
    ap.add_argument("--peers", default="jax", help="comma-separated: jax, torch")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "hourglass"))
    args = ap.parse_args()
    peers = [p.strip() for p in args.peers.split(",")]
    for p in peers:
        if p not in PEERS:
            ap.error("unknown peer '%s' (expected jax or torch)" % p)

    ratios = {}
    for r in range(args.rounds):
        sides = [("hourglass", lambda: hourglass(args.binary, args.workload, args.batch,
                                                  args.seconds))]
        sides += [(p, lambda p=p: peer(PEERS[p], args.workload, args.batch, args.seconds))
                  for p in peers]
        if r % 2:
            sides.reverse()
        load0 = load()
        got = {name: run() for name, run in sides}
        for w, h in got["hourglass"].items():
            line = (f"round {r + 1} (load {load0:.2f}, order {'/'.join(n for n, _ in sides)}) "
                    f"{w} batch {h['batch']}: hourglass {h['samples_per_s']:,.0f} samples/s")
            if h.get("fraction_of_sgemm") is not None:
                line += f" ({100 * h['fraction_of_sgemm']:.0f}% of sgemm ceiling)"
            for p in peers:
                j = got[p].get(w)
                if j is None:
                    continue
                ratio = h["samples_per_s"] / j["samples_per_s"]
                ratios.setdefault((w, p), []).append(ratio)
                line += f", {p} {j['samples_per_s']:,.0f}: {ratio:.2f}x"
            print(line, flush=True)
    for (w, p), rs in ratios.items():
        print(f"{w}: median hourglass/{p} {statistics.median(rs):.2f}x "
              f"(rounds: {', '.join(f'{x:.2f}' for x in rs)})")


if __name__ == "__main__":
    main()
