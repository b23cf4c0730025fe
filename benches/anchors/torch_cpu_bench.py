#!/usr/bin/env python3
"""Anchor: PyTorch eager training throughput on the CPU, the workloads `hourglass bench` trains.

The models of ../shared/bench/workloads.md (torch.nn modules, PyTorch's default init):

  mnist_ae : 784-512-256-32 / 32-256-512-784, ReLU hidden, linear code, BCE on the logits, batch 256
  cae      : 784-1024 sigmoid / 1024-784 sigmoid, MSE + 0.1 * ||dh/dx||_F^2 (closed form), batch 256
  conv_ae  : `1x28x28,conv32k3s2,conv64k3s2,32`: Conv2d(1,32,3,s2,p1) -> ReLU -> Conv2d(32,64,3,s2,p1)
             -> ReLU -> Flatten -> Linear(3136,32); Linear(32,3136) -> ReLU -> Unflatten(64,7,7) ->
             ConvTranspose2d(64,32,3,s2,p1,output_padding=1) -> ReLU ->
             ConvTranspose2d(32,1,3,s2,p1,output_padding=1); BCE on the logits, batch 256

torch.optim.Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8), one step per batch, losses summed over
features and averaged over the batch, synthetic uniform [0, 1) data resident in memory (eight
batches), five warm-up steps not timed. FLOPs per sample: 6 x weights for the dense models, 6 x
multiply-accumulates for conv_ae (2,119,936 forward), as on the Rust side.

torch.set_num_threads defaults to the machine's core count (os.cpu_count(); 2 on the dev machine),
the number of threads Hourglass's CPU executor uses; --threads overrides it. Prints one JSON
object per workload, like jax_ae_bench.py:

  python3 benches/anchors/torch_cpu_bench.py --workload conv_ae --seconds 5
"""

import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CAE_LAMBDA = 0.1
CONV_AE_MACS = 2_119_936


def mlp(dims):
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MnistAE(nn.Module):
    def __init__(s):
        super().__init__()
        s.encoder, s.decoder = mlp([784, 512, 256, 32]), mlp([32, 256, 512, 784])

    def forward(s, x):
        z = s.decoder(s.encoder(x))
        return F.binary_cross_entropy_with_logits(z, x, reduction="sum") / x.shape[0]


class CAE(nn.Module):
    def __init__(s):
        super().__init__()
        s.enc, s.dec = nn.Linear(784, 1024), nn.Linear(1024, 784)

    def forward(s, x):
        h = torch.sigmoid(s.enc(x))
        r = torch.sigmoid(s.dec(h))
        jac = (torch.square(h * (1 - h)) @ torch.sum(s.enc.weight ** 2, dim=1)).sum()
        return (torch.sum(torch.square(r - x)) + CAE_LAMBDA * jac) / x.shape[0]


class ConvAE(nn.Module):
    """The `--encoder 1x28x28,conv32k3s2,conv64k3s2,32` model (names as in docs/pytorch-conv.md)."""

    def __init__(s):
        super().__init__()
        s.encoder = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(3136, 32))
        s.decoder = nn.Sequential(
            nn.Linear(32, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1), nn.Flatten())

    def forward(s, x):
        z = s.decoder(s.encoder(x))
        return F.binary_cross_entropy_with_logits(z, x, reduction="sum") / x.shape[0]


# name -> (module, input features, default batch, FLOPs per sample or None for 6 x weights)
WORKLOADS = {
    "mnist_ae": (MnistAE, 784, 256, None),
    "cae": (CAE, 784, 256, None),
    "conv_ae": (ConvAE, 784, 256, 6 * CONV_AE_MACS),
}


def bench(name, batch, seconds, max_steps, min_steps=2):
    make, dim, _, flops = WORKLOADS[name]
    torch.manual_seed(0)
    t_start = time.perf_counter()
    model = make()
    if flops is None:
        flops = 6 * sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    xs = [torch.rand(batch, dim) for _ in range(8)]

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss = model(x)
        loss.backward()
        opt.step()
        return loss

    i, first_loss = 0, None
    for _ in range(5):
        loss = step(xs[i % 8])
        i += 1
        if first_loss is None:
            first_loss = loss.item()
    warmup_s = time.perf_counter() - t_start
    steps, elapsed = 0, 0.0
    while (elapsed < seconds or steps < min_steps) and steps < max_steps:
        t0 = time.perf_counter()
        loss = step(xs[i % 8])
        loss.item()  # eager CPU ops are synchronous; this only reads the value
        elapsed += time.perf_counter() - t0
        i += 1
        steps += 1
    sps = steps * batch / elapsed
    r = dict(
        workload=name, device="cpu",
        framework="pytorch %s eager (%d threads)" % (torch.__version__, torch.get_num_threads()),
        batch=batch, steps=steps, samples_per_s=round(sps, 1),
        ms_per_step=round(1e3 * elapsed / steps, 4), gflops=round(flops * sps / 1e9, 2),
        warmup_s=round(warmup_s, 3), first_loss=round(first_loss, 4),
        final_loss=round(loss.item(), 4))
    print(json.dumps(r), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="conv_ae",
                    help="mnist_ae, cae, conv_ae or all (comma-separated lists work too)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads [default: the core count]")
    a = ap.parse_args()
    names = list(WORKLOADS) if a.workload == "all" else [w.strip() for w in a.workload.split(",")]
    for n in names:
        if n not in WORKLOADS:
            ap.error("unknown workload '%s' (expected %s or all)" % (n, ", ".join(WORKLOADS)))
    torch.set_num_threads(a.threads)
    for n in names:
        bench(n, a.batch or WORKLOADS[n][2], a.seconds, a.max_steps)


if __name__ == "__main__":
    main()
