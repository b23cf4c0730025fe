"""A Python run equals a CLI run with the same settings and seed, bit for bit, and the
keywords' defaults are the CLI's."""

import json
import subprocess
import sys

import numpy as np
import pytest

import hourglass as hg

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None


def cli_train(cli, tmp_path, data, *flags):
    path = tmp_path / "x.npy"
    np.save(path, data)
    out = tmp_path / "run"
    subprocess.run(
        [cli, "train", "--data", str(path), "--out", str(out), *flags],
        check=True, capture_output=True,
    )
    return out


@pytest.mark.parametrize(
    "dtype, flags, keywords",
    [
        (np.float32, [], {}),
        (np.uint8, ["--variant", "denoising", "--noise", "mask:0.3", "--lr", "3e-3"],
         dict(variant="denoising", noise="mask:0.3", lr=3e-3)),
        (np.float32, ["--variant", "vae", "--optimizer", "sgd", "--schedule", "cosine", "--drop-last", "false"],
         dict(variant="vae", optimizer="sgd", schedule="cosine", drop_last=False)),
        # A conv model: the rows as 1x3x4 images, its encoder given as a list of tokens.
        (np.float32, ["--encoder", "1x3x4,conv2k3s2,3"],
         dict(encoder=["1x3x4", "conv2k3s2", 3])),
        (np.float32, ["--encoder", "12,5", "--variant", "psd", "--sparsity", "0.1", "--inference-steps", "4"],
         dict(encoder=[12, 5], variant="psd", sparsity=0.1, inference_steps=4)),
        # Gradient accumulation: 3 micro-batches of 32 rows per optimizer step.
        (np.float32, ["--variant", "denoising", "--accumulate", "3"],
         dict(variant="denoising", accumulate=3)),
        # The f16 sum between ranks: one process has none, the keyword maps as the flag does.
        (np.float32, ["--reduce-precision", "f16"], dict(reduce_precision="f16")),
        (np.float32, ["--reduce-buckets", "off"], dict(reduce_buckets="off")),
    ],
)
def test_python_equals_the_cli_for_the_same_seed(cli, tmp_path, x, dtype, flags, keywords):
    data = (x * 255).astype(np.uint8) if dtype == np.uint8 else x
    if "--encoder" not in flags:
        flags = ["--encoder", "12,6,3", *flags]
        keywords = dict(encoder="12,6,3", **keywords)
    common = ["--epochs", "3", "--batch-size", "32", "--seed", "7", "--device", "cpu"]
    out = cli_train(cli, tmp_path, data, *common, *flags)
    model = hg.train(data, epochs=3, batch_size=32, seed=7, device="cpu", **keywords)
    theirs = hg.load(out / "model.safetensors", device="cpu").state_dict()
    ours = model.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["train_loss"] for l in lines] == [h["train_loss"] for h in model.history]
    saved = tmp_path / "py.safetensors"
    model.save(saved)
    np.testing.assert_array_equal(hg.load(saved).encode(data), hg.load(out / "model.safetensors").encode(data))


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_the_defaults_are_the_clis(cli, tmp_path, x):
    out = cli_train(cli, tmp_path, x, "--steps", "1", "--device", "cpu")
    resolved = tomllib.loads((out / "config.toml").read_text())
    defaults = hg.train_defaults()
    # What the CLI resolves from the data, and the keys of its own run folder.
    resolved_here = {"encoder", "decoder", "steps", "device", "normalize", "data"}
    compared = 0
    for key, value in resolved.items():
        name = key.replace("-", "_")
        if name in resolved_here:
            continue
        assert name in defaults, f"the CLI's {key} has no keyword"
        assert defaults[name] == value, f"{name}: {defaults[name]!r} here, {value!r} in the CLI"
        compared += 1
    assert compared >= 20
    # What config.toml leaves out is unset: None (or a false switch) here too.
    written = {k.replace("-", "_") for k in resolved}
    for name, value in defaults.items():
        if name not in written and name not in resolved_here:
            assert value in (None, False), f"{name} defaults to {value!r} here, unset in the CLI"
    assert resolved["encoder"] == [12, 256, 32] and defaults["encoder"] == []
