"""The Python API: shapes and dtypes, save/load, the VAE, callbacks, errors, state_dict."""

import signal
import threading

import numpy as np
import pytest

import hourglass as hg

SMALL = dict(encoder=[12, 6, 3], epochs=2, batch_size=32, seed=1, device="cpu")


@pytest.fixture(scope="module")
def model(x):
    return hg.train(x, **SMALL)


def test_every_method_returns_the_documented_shapes_and_dtypes(model, x):
    codes = model.encode(x)
    assert codes.shape == (300, 3) and codes.dtype == np.float32
    bits = model.encode(x, binary=True)
    assert bits.shape == (300, 1) and bits.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(bits, axis=1)[:, :3], (codes > 0).astype(np.uint8))
    recon = model.reconstruct(x)
    assert recon.shape == (300, 12) and recon.dtype == np.float32
    decoded = model.decode(codes)
    assert decoded.shape == (300, 12) and decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, recon)
    scores = model.evaluate(x)
    assert set(scores) == {"loss", "reconstruction"} and scores["loss"] > 0
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == {
        "encoder.0.weight": (6, 12), "encoder.0.bias": (6,),
        "encoder.2.weight": (3, 6), "encoder.2.bias": (3,),
        "decoder.0.weight": (6, 3), "decoder.0.bias": (6,),
        "decoder.2.weight": (12, 6), "decoder.2.bias": (12,),
    }
    assert all(v.dtype == np.float32 for v in state.values())
    assert [h["epoch"] for h in model.history] == [1, 2]
    # The last, partial batch is kept (drop_last=False, as the CLI and PyTorch default).
    assert model.history[-1]["step"] == 2 * -(-300 // 32)
    assert model.encoder == [12, 6, 3] and model.decoder == [3, 6, 12]
    assert model.variant == "plain" and model.spec_dict["encoder"] == [12, 6, 3]


def test_inputs_of_every_dtype_and_layout_give_the_same_codes(model, x):
    codes = model.encode(x)
    np.testing.assert_array_equal(model.encode(x.astype(np.float64)), codes)
    np.testing.assert_array_equal(model.encode(np.asfortranarray(x)), codes)
    np.testing.assert_array_equal(model.encode(x.tolist()), model.encode(np.asarray(x.tolist(), np.float32)))
    u8 = (x * 255).astype(np.uint8)
    np.testing.assert_array_equal(model.encode(u8), model.encode(u8.astype(np.float32) / 255))


def test_the_state_dict_is_the_forward_pass_pytorch_would_load(model, x):
    s = model.state_dict()
    relu = lambda z: np.maximum(z, 0)
    h = relu(x @ s["encoder.0.weight"].T + s["encoder.0.bias"])
    code = h @ s["encoder.2.weight"].T + s["encoder.2.bias"]
    np.testing.assert_allclose(code, model.encode(x), rtol=1e-5, atol=1e-5)
    h = relu(code @ s["decoder.0.weight"].T + s["decoder.0.bias"])
    out = 1 / (1 + np.exp(-(h @ s["decoder.2.weight"].T + s["decoder.2.bias"])))
    np.testing.assert_allclose(out, model.reconstruct(x), rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip(model, x, tmp_path):
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = hg.load(str(path), device="cpu")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
    assert loaded.history == []


def test_normalization_is_applied_to_inputs_undone_on_outputs_and_saved(x, tmp_path):
    wide = x * 50 - 7
    m = hg.train(wide, normalize="standard", loss="mse", output_activation="identity", **SMALL)
    assert m.normalize == "standard"
    recon = m.reconstruct(wide)
    assert abs(recon.mean() - wide.mean()) < 5, "outputs are in the data's own scale"
    m.save(tmp_path / "m.safetensors")
    assert (tmp_path / "normalization.json").is_file()
    again = hg.load(tmp_path / "m.safetensors", device="cpu")
    assert again.normalize == "standard"
    np.testing.assert_array_equal(again.reconstruct(wide), recon)


def test_a_vae_samples_from_its_prior(x):
    vae = hg.train(x, variant="vae", **SMALL)
    samples = vae.sample(16, seed=3)
    assert samples.shape == (16, 12) and samples.dtype == np.float32
    assert ((samples > 0) & (samples < 1)).all(), "a sigmoid output"
    np.testing.assert_array_equal(vae.sample(16, seed=3), samples)
    np.testing.assert_array_equal(vae.sample(4, seed=3), samples[:4])
    assert not np.array_equal(vae.sample(16, seed=4), samples)
    assert {"loss", "reconstruction", "kl"} <= set(vae.evaluate(x))


def test_sample_refuses_a_model_that_is_not_a_vae(model):
    with pytest.raises(ValueError, match="VAE's prior.*plain autoencoder"):
        model.sample(4)


def test_a_callback_returning_false_stops_the_run(x):
    seen = []

    def callback(report):
        seen.append(report)
        return report["epoch"] < 2

    m = hg.train(x, callback=callback, **{**SMALL, "epochs": 10})
    assert [r["epoch"] for r in seen] == [1, 2]
    assert m.history == seen
    assert set(seen[0]) >= {"epoch", "step", "train_loss", "train_reconstruction", "lr", "samples_per_sec"}
    # None (a callback without a return) carries on.
    assert len(hg.train(x, callback=lambda r: None, **SMALL).history) == 2


def test_a_callback_that_raises_stops_the_run_with_its_exception(x):
    def callback(report):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        hg.train(x, callback=callback, **SMALL)


def test_validation_and_early_stop_as_the_cli(x):
    m = hg.train(x[:200], val=x[200:], early_stop=1, **{**SMALL, "lr": 0.5, "epochs": 30})
    assert "val_loss" in m.history[0]
    assert len(m.history) < 30
    split = hg.train(x, val_split=0.25, **SMALL)
    assert split.history[0]["step"] == -(-225 // 32)


def test_ctrl_c_raises_keyboard_interrupt_with_the_model_so_far(x):
    timer = threading.Timer(0.5, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            hg.train(x, log_every=1, **{**SMALL, "epochs": 1_000_000})
    finally:
        timer.cancel()
    partial = caught.value.model
    assert partial.encode(x).shape == (300, 3)


def test_progress_is_shown_when_asked(x, capsys):
    hg.train(x, progress=True, **SMALL)
    assert "step 20/20" in capsys.readouterr().err
    hg.train(x, progress=False, **SMALL)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(encoder=[13, 6, 3]), ValueError, "12 features per example but the model's input size is 13"),
        (dict(encoder=[12, 0, 3]), ValueError, "layer sizes must be positive"),
        (dict(variant="nope"), ValueError, "unknown variant 'nope'"),
        (dict(variant="denoising", noise="mask"), ValueError, "mask:ν, gaussian:σ"),
        (dict(device="tpu"), ValueError, "unknown device 'tpu'"),
        (dict(batch_sise=3), TypeError, "unexpected keyword argument 'batch_sise' \\(did you mean batch_size\\?\\)"),
        (dict(out="run"), TypeError, "--out is a flag of the hourglass CLI only"),
        (dict(lr="fast"), TypeError, "keyword lr='fast'"),
        (dict(steps=3, epochs=2), ValueError, "steps or epochs, not both"),
        (dict(reduce_buckets="1MB"), ValueError, "reduce_buckets: '1MB' is neither a bucket size in KiB nor off"),
        (dict(init="/nonexistent/m.safetensors"), FileNotFoundError, "No such file"),
    ],
)
def test_bad_settings_raise_the_documented_errors(x, options, error, message):
    with pytest.raises(error, match=message):
        hg.train(x, **{**SMALL, **options})


def test_bad_data_raises_value_error(model, x):
    nan = x.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="1 of 300 rows hold NaN or infinite values \\(the first is row 5\\)"):
        hg.train(nan, **SMALL)
    assert len(hg.train(nan, allow_nonfinite=True, **SMALL).history) == 2
    with pytest.raises(ValueError, match="the data has 5 columns but the model expects 12"):
        model.encode(x[:, :5])
    with pytest.raises(ValueError, match="2-D array"):
        model.encode(x[0])
    with pytest.raises(ValueError, match="has no rows"):
        model.encode(x[:0])
    with pytest.raises(ValueError, match="dtype"):
        model.encode(np.array([["a"]]))
    with pytest.raises(ValueError, match="rows hold NaN"):
        model.encode(nan)


def test_bad_files_raise_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        hg.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(OSError, match="junk.safetensors"):
        hg.load(junk)


def test_devices_lists_adapters_as_dicts():
    for d in hg.devices():
        assert {"index", "name", "backend", "device_type"} <= set(d)
