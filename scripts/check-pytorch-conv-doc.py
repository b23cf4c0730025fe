#!/usr/bin/env python3
"""Runs the script of docs/pytorch-conv.md and compares its reconstruction with `hourglass
reconstruct`'s. With torch importable the script runs verbatim on real torch (float32 tensors,
torch.no_grad); without it, with a numpy stand-in for the few torch.nn modules it uses (PyTorch's
definitions of Conv2d, ConvTranspose2d, Linear, the activations, Flatten, Unflatten, and a strict
load_state_dict) and four numpy-for-tensor edits. Needs numpy and safetensors; --stand-in forces
the stand-in even where torch is installed.

  python3 scripts/check-pytorch-conv-doc.py [--stand-in] MODEL.safetensors DATA.npy RECON.npy
"""
import re
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NN_SOURCE = r"""
import numpy as np

class Module:
    def __init__(self):
        self._params = {}
    def __setattr__(self, k, v):
        object.__setattr__(self, k, v)
    def named(self, prefix=""):
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, Module):
                out.update(v.named(prefix + k + "."))
        for k in ("weight", "bias"):
            if k in self.__dict__ and not isinstance(self.__dict__[k], Module):
                out[prefix + k] = self.__dict__[k]
        return out
    def load_state_dict(self, sd):
        mine = self.named()
        assert sorted(mine) == sorted(sd), (sorted(mine), sorted(sd))
        for k, v in mine.items():
            assert v.shape == sd[k].shape, (k, v.shape, sd[k].shape)
            v[...] = sd[k]
    def __call__(self, x):
        return self.forward(x)

class Sequential(Module):
    def __init__(self, *mods):
        super().__init__()
        for i, m in enumerate(mods):
            setattr(self, str(i), m)
        self.mods = mods
    def forward(self, x):
        for m in self.mods:
            x = m(x)
        return x

class Identity(Module):
    def forward(self, x): return x
class ReLU(Module):
    def forward(self, x): return np.maximum(x, 0)
class Sigmoid(Module):
    def forward(self, x): return 1 / (1 + np.exp(-x))
class Tanh(Module):
    def forward(self, x): return np.tanh(x)
class LeakyReLU(Module):
    def __init__(self, s): super().__init__(); self.s = s
    def forward(self, x): return np.where(x > 0, x, self.s * x)
class Flatten(Module):
    def forward(self, x): return x.reshape(x.shape[0], -1)
class Unflatten(Module):
    def __init__(self, d, shape): super().__init__(); self.shape = shape
    def forward(self, x): return x.reshape((x.shape[0],) + tuple(self.shape))
class Linear(Module):
    def __init__(self, i, o):
        super().__init__(); self.weight = np.zeros((o, i)); self.bias = np.zeros(o)
    def forward(self, x): return x @ self.weight.T + self.bias

class Conv2d(Module):
    def __init__(self, c, o, k, stride=1, padding=0):
        super().__init__(); self.weight = np.zeros((o, c, k, k)); self.bias = np.zeros(o)
        self.s, self.p, self.k = stride, padding, k
    def forward(self, x):
        n, c, h, w = x.shape; k, s, p = self.k, self.s, self.p
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        y = np.zeros((n, self.weight.shape[0], oh, ow))
        for a in range(k):
            for e in range(k):
                patch = xp[:, :, a:a + s * (oh - 1) + 1:s, e:e + s * (ow - 1) + 1:s]
                y += np.einsum("nchw,oc->nohw", patch, self.weight[:, :, a, e])
        return y + self.bias[None, :, None, None]

class ConvTranspose2d(Module):
    def __init__(self, i, o, k, stride=1, padding=0, output_padding=(0, 0)):
        super().__init__(); self.weight = np.zeros((i, o, k, k)); self.bias = np.zeros(o)
        self.s, self.p, self.k, self.op = stride, padding, k, output_padding
    def forward(self, x):
        n, c, h, w = x.shape; k, s, p = self.k, self.s, self.p
        oh, ow = (h - 1) * s - 2 * p + k + self.op[0], (w - 1) * s - 2 * p + k + self.op[1]
        full = np.zeros((n, self.weight.shape[1], (h - 1) * s + k + self.op[0], (w - 1) * s + k + self.op[1]))
        for a in range(k):
            for e in range(k):
                full[:, :, a:a + s * (h - 1) + 1:s, e:e + s * (w - 1) + 1:s] += np.einsum("nihw,io->nohw", x, self.weight[:, :, a, e])
        return full[:, :, p:p + oh, p:p + ow] + self.bias[None, :, None, None]
"""


def real_torch(code, model_path, data):
    import torch

    sys.argv = [sys.argv[0], model_path]
    scope = {"__name__": "doc"}
    exec(code, scope)  # verbatim
    with torch.no_grad():
        got = scope["reconstruct"](torch.from_numpy(data.astype(np.float32)))
    return got.double().numpy(), f"torch {torch.__version__}"


def stand_in(code, model_path, data):
    nn = types.ModuleType("torch.nn")
    exec(NN_SOURCE, nn.__dict__)
    torch = types.ModuleType("torch")
    torch.nn = nn
    sys.modules["torch"], sys.modules["torch.nn"] = torch, nn
    # The only edits: numpy instead of torch tensors.
    for a, b in [
        ('safe_open(path, "pt")', 'safe_open(path, "np")'),
        ("from safetensors.torch import load_file", "from safetensors.numpy import load_file"),
        ("x.view(-1,", "x.reshape(-1,"),
        (".flatten(1)", ".reshape(len(x), -1)"),
    ]:
        assert a in code, a
        code = code.replace(a, b)
    sys.argv = [sys.argv[0], model_path]
    scope = {"__name__": "doc"}
    exec(code, scope)
    return scope["reconstruct"](data.astype(np.float64)), "numpy stand-in"


def main():
    args = sys.argv[1:]
    force_stand_in = "--stand-in" in args
    model_path, data_path, recon_path = [a for a in args if a != "--stand-in"][:3]
    doc = (HERE.parent / "docs" / "pytorch-conv.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    data = np.load(data_path)
    want = np.load(recon_path).astype(np.float64)
    try:
        import torch  # noqa: F401

        have_torch = not force_stand_in
    except ImportError:
        have_torch = False
    got, how = (real_torch if have_torch else stand_in)(code, model_path, data)
    err = np.abs(got - want).max()
    print(f"{model_path} ({how}): max |doc script − hourglass reconstruct| = {err:.2e}")
    sys.exit(0 if err < 1e-5 else 1)


if __name__ == "__main__":
    main()
