#!/usr/bin/env python3
"""The README's conv-vs-MLP quality recipe in PyTorch on the CPU: Fashion-MNIST (60,000 train /
10,000 test, pixels / 255), batch 256 (the last batch of an epoch partial, reshuffled every epoch),
5 epochs, Adam lr 1e-3 (or --lr), PyTorch's default init (or `--init hourglass`: every
nn.Linear as Hourglass starts a dense layer, He-uniform before a ReLU, Glorot-uniform otherwise,
zero bias; convolutions keep PyTorch's default, as in Hourglass), BCE on the logits summed over pixels,
averaged over images. Prints the test BCE per image after every epoch, one JSON line per model:

  python3 benches/anchors/torch_fashion_quality.py --model conv_ae,mnist_ae --seed 0
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_cpu_bench import ConvAE, MnistAE


def idx_images(path):
    with gzip.open(path) as f:
        d = f.read()
    n, r, c = (int.from_bytes(d[i:i + 4], "big") for i in (4, 8, 12))
    return torch.from_numpy(np.frombuffer(d, np.uint8, offset=16).reshape(n, r * c)
                            .astype(np.float32) / 255.0)


def hourglass_init(model):
    """Hourglass's dense-layer init (src/model/params.rs `ParamLayout::init`) on every nn.Linear."""
    mods = [m for m in model.modules() if not isinstance(m, nn.Sequential)][1:]
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], (nn.ReLU, nn.LeakyReLU))
            fan_in, fan_out = m.in_features, m.out_features
            bound = (6.0 / fan_in) ** 0.5 if relu else (6.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                m.weight.uniform_(-bound, bound)
                m.bias.zero_()


def test_bce(model, x):
    with torch.no_grad():
        tot = 0.0
        for i in range(0, len(x), 1000):
            tot += float(model(x[i:i + 1000])) * len(x[i:i + 1000])
    return tot / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="conv_ae,mnist_ae")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--init", choices=("torch", "hourglass"), default="torch")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr = idx_images(os.path.join(a.data_dir, "train-images-idx3-ubyte.gz"))
    te = idx_images(os.path.join(a.data_dir, "t10k-images-idx3-ubyte.gz"))
    for name in a.model.split(","):
        torch.manual_seed(a.seed)
        model = {"conv_ae": ConvAE, "mnist_ae": MnistAE}[name]()
        if a.init == "hourglass":
            hourglass_init(model)
        params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        per_epoch, t0 = [], time.perf_counter()
        for _ in range(a.epochs):
            perm = torch.randperm(len(tr))
            for i in range(0, len(tr), 256):
                opt.zero_grad(set_to_none=True)
                loss = model(tr[perm[i:i + 256]])
                loss.backward()
                opt.step()
            per_epoch.append(round(test_bce(model, te), 3))
        print(json.dumps(dict(model=name, params=params, seed=a.seed, lr=a.lr, init=a.init,
                              test_bce_per_epoch=per_epoch, seconds=round(time.perf_counter() - t0, 1),
                              torch=torch.__version__)), flush=True)


if __name__ == "__main__":
    main()
