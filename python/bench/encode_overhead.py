"""The overhead of a Python `encode` call over the library's, for a 10,000 x 784 float32 input
on the CPU: the same checkpoint and the same matrix, timed here through `hourglass` and by the
Rust example `encode_timing` (the library's `Autoencoder::encode`), medians of REPEATS calls.

    python python/bench/encode_overhead.py [REPEATS]     # from the repository root
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import hourglass as hg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    x = np.random.default_rng(0).random((10_000, 784), dtype=np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        model = hg.train(x[:512], encoder=[784, 256, 32], steps=1, device="cpu", seed=1)
        path = os.path.join(scratch, "m.safetensors")
        model.save(path)
        npy = os.path.join(scratch, "x.npy")
        np.save(npy, x)
        model = hg.load(path, device="cpu")
        model.encode(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model.encode(x)
            times.append(time.perf_counter() - t)
        python = sorted(times)[len(times) // 2]
        rust = float(subprocess.run(
            ["cargo", "run", "--release", "--quiet", "--example", "encode_timing", "--",
             path, npy, str(repeats)],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    print(f"encode 10000x784 -> 32 on the CPU, median of {repeats}: library {rust * 1e3:.2f} ms, "
          f"Python {python * 1e3:.2f} ms, overhead {(python - rust) * 1e3:+.2f} ms "
          f"({python / rust:.3f}x)")


if __name__ == "__main__":
    main()
