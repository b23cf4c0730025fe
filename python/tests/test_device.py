"""The GPU executor (lavapipe in CI) against the CPU, and memory over repeated calls."""

import numpy as np

import hourglass as hg


def test_gpu_training_equals_cpu_training(x):
    settings = dict(encoder=[12, 6, 3], steps=8, batch_size=16, seed=2)
    cpu = hg.train(x[:64], device="cpu", **settings)
    gpu = hg.train(x[:64], device="gpu", **settings)
    assert gpu.device.startswith("GPU")
    for k, v in cpu.state_dict().items():
        np.testing.assert_allclose(gpu.state_dict()[k], v, rtol=0, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(gpu.encode(x), cpu.encode(x), rtol=0, atol=1e-5)


def rss_bytes():
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_does_not_grow_over_100_encode_calls(x):
    model = hg.train(x, encoder=[12, 6, 3], steps=1, device="cpu")
    rows = np.random.default_rng(1).random((20_000, 12), dtype=np.float32)  # ~1 MB a call
    for _ in range(10):
        model.encode(rows)
    before = rss_bytes()
    for _ in range(100):
        codes = model.encode(rows)
    grown = rss_bytes() - before
    assert codes.shape == (20_000, 3)
    # A leak of the input copy or of the result would be ~100 MB.
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB"
