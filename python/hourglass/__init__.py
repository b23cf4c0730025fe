"""Hourglass: autoencoders trained on any GPU (wgpu: Vulkan, Metal, DX12) or the CPU.

numpy in, numpy out, the engine of the ``hourglass`` command line underneath::

    import numpy as np, hourglass as hg
    model = hg.train(X, encoder=[784, 256, 32], variant="denoising", epochs=5, seed=1)
    codes = model.encode(X)          # float32 [N, 32]
    recon = model.reconstruct(X)     # float32 [N, 784]
    model.save("m.safetensors"); model = hg.load("m.safetensors")

Errors: bad settings or data raise ValueError (with the CLI's message), files OSError, the
device RuntimeError; an unknown keyword TypeError.
"""

import sys as _sys

from . import _hourglass
from ._hourglass import Model, __version__, devices, load, train_defaults

__all__ = ["Model", "train", "load", "devices", "train_defaults", "__version__"]


class _Progress:
    """A one-line progress display on stderr: step, epoch and the last loss read."""

    def __init__(self, stream):
        self.stream = stream
        self.shown = False

    def __call__(self, step, total, epoch, loss):
        width = 30
        done = int(width * step / max(total, 1))
        self.stream.write(
            f"\r[{'#' * done}{'.' * (width - done)}] step {step}/{total}  epoch {epoch}  loss {loss:.5f}"
        )
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def train(x, *, val=None, callback=None, progress=None, **options):
    """Trains an autoencoder on the rows of ``x`` and returns the :class:`Model`.

    ``x`` is a 2-D array [N, D] of float32, float64, uint8 (scaled to [0, 1], as the CLI reads
    u8 files) or integers. ``val`` is validation data of the same width (or give
    ``val_split=F``); its loss then picks the best epoch and drives ``early_stop``.

    Every other keyword is a flag of ``hourglass train`` with ``-`` spelled ``_`` and the same
    default (``train_defaults()`` lists them): ``encoder`` (a list or ``"784,256,32"``;
    conv models as ``"1x28x28,conv32k3s2,conv64k3s2,32"`` or ``["1x28x28", "conv32k3s2",
    32]``; default ``[D, 256, 32]``), ``decoder``, ``activation``, ``code_activation``,
    ``output_activation``, ``loss``, ``tied``, ``variant`` (plain, sparse, denoising,
    contractive, vae, psd), ``sparsity``, ``sparsity_target``, ``noise``, ``contractive``,
    ``jacobian_projections``, ``beta``, ``vae_samples``, ``prediction`` and
    ``inference_steps`` (psd), ``optimizer``, ``lr``, ``momentum``,
    ``weight_decay``, ``schedule``, ``warmup``, ``clip_grad_norm``, ``batch_size``,
    ``accumulate`` (micro-batches per optimizer step), ``drop_last``, ``on_nonfinite``,
    ``precision``, ``reduce_precision`` (f32 or f16: the format of the gradient's sum
    between mpirun ranks; one process trains alike with either), ``reduce_buckets`` (KiB or
    "off": the CLI's ``--reduce-buckets``, likewise for ranks only), ``steps``, ``epochs``
    (default 5),
    ``early_stop``, ``no_shuffle``, ``seed``, ``device`` (auto, gpu, cpu), ``init`` (a
    checkpoint to start from), ``log_every``, ``normalize``, ``allow_nonfinite``. The same
    settings and seed give the same model as the CLI, bit for bit.

    ``callback(report)`` hears each epoch's report (a dict with the keys of a
    ``metrics.jsonl`` line) and stops the run by returning ``False``. The progress line shows
    when ``progress=True``, or when ``progress`` is None and stderr is a terminal.

    The GIL is released while training. Ctrl-C raises KeyboardInterrupt at the next loss read,
    with the model as of the last finished step in the exception's ``model`` attribute.
    """
    if progress is None:
        progress = bool(getattr(_sys.stderr, "isatty", lambda: False)())
    bar = _Progress(_sys.stderr) if progress else None
    try:
        return _hourglass.train(x, val=val, callback=callback, progress=bar, **options)
    finally:
        if bar is not None:
            bar.close()
