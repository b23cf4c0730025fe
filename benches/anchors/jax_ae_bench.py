#!/usr/bin/env python3
"""Anchor: JAX/XLA training throughput on the workloads of ../shared/bench/workloads.md.

The same four models `hourglass bench` trains, built only from jax / jax.numpy:

  mnist_ae : 784-512-256-32 / 32-256-512-784, ReLU hidden, linear code, sigmoid out
             (Bernoulli cross-entropy on the logits), batch 256
  vae      : 784-400 ReLU -> mu (20), log sigma^2 (20); 20-400 ReLU -784 sigmoid out;
             cross-entropy on the logits + closed-form KL, one eps per sample, batch 128
  cae      : 784-1024 sigmoid / 1024-784 sigmoid, MSE + 0.1 * ||dh/dx||_F^2 with the closed
             form of a sigmoid layer, sum_j (h_j (1 - h_j))^2 sum_i W_ji^2, batch 256
  conv_ae  : `1x28x28,conv32k3s2,conv64k3s2,32`: conv 3x3 s2 p1 1->32, ReLU, conv 3x3 s2 p1 32->64,
             ReLU, flatten, dense 3136-32; dense 32-3136, ReLU, transposed conv 3x3 s2 p1
             output_padding 1 64->32, ReLU, transposed conv 32->1 (28x28 again), BCE on the
             logits, batch 256 (lax.conv_general_dilated, NCHW / OIHW as PyTorch; a transposed
             conv is the input-dilated conv with the flipped kernel and padding (k-1-p, k-1-p+op))
  large_ae : 4096-8192-4096-1024 / 1024-4096-8192-4096, ReLU hidden, linear code and output,
             MSE, batch 4096

Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8, written out here: optax is not needed), one
optimizer step per batch, loss summed over features and averaged over the batch. The data is
synthetic, uniform in [0, 1), and resident in memory before timing (eight batches, or two where
eight would exceed 64 MiB, as in src/bench.rs). The train step is jitted; compilation and five
warm-up steps are not timed; every timed chunk of steps ends by waiting for the loss. FLOPs per
sample are counted as 6 x weights (biases excluded), as on the Rust side; for conv_ae as
6 x multiply-accumulates (2,119,936 forward).

Prints one JSON object per workload. Flags mirror `hourglass bench`:

  python3 benches/anchors/jax_ae_bench.py --workload mnist_ae,cae --seconds 10
  python3 benches/anchors/jax_ae_bench.py --workload mnist_ae --batch 1024 --seconds 10
  python3 benches/anchors/jax_ae_bench.py --workload all --sgemm   # also XLA's 2048^3 f32 dot
"""

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
CAE_LAMBDA = 0.1

# name -> (encoder dims, decoder dims, default batch)
WORKLOADS = {
    "mnist_ae": ([784, 512, 256, 32], [32, 256, 512, 784], 256),
    "vae": ([784, 400, 20], [20, 400, 784], 128),
    "cae": ([784, 1024], [1024, 784], 256),
    "large_ae": ([4096, 8192, 4096, 1024], [1024, 4096, 8192, 4096], 4096),
    "conv_ae": ([784], [784], 256),
}
CONV_AE_MACS = 2_119_936


def conv_init(key, shape, fan_in):
    """PyTorch's Conv2d / ConvTranspose2d default: uniform +-1/sqrt(fan_in)."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(kw, shape, jnp.float32, -bound, bound)
    b = jax.random.uniform(kb, (shape[0] if len(shape) == 4 else shape[1],), jnp.float32,
                           -bound, bound)
    return {"k": w, "b": b}


def conv_ae_init(key):
    k = jax.random.split(key, 6)
    c1 = conv_init(k[0], (32, 1, 3, 3), 9)  # OIHW
    c2 = conv_init(k[1], (64, 32, 3, 3), 32 * 9)
    # Transposed convs stored as PyTorch does, (in, out, kh, kw); the bias has `out` entries.
    t1 = conv_init(k[4], (64, 32, 3, 3), 32 * 9)
    t1["b"] = t1["b"][:32]
    t2 = conv_init(k[5], (32, 1, 3, 3), 9)
    t2["b"] = t2["b"][:1]
    return {"c1": c1, "c2": c2, "fe": linear_init(k[2], 3136, 32),
            "fd": linear_init(k[3], 32, 3136), "t1": t1, "t2": t2}


DN = ("NCHW", "OIHW", "NCHW")


def conv2d(x, p):
    y = jax.lax.conv_general_dilated(x, p["k"], (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)
    return y + p["b"][None, :, None, None]


def conv_transpose2d(x, p, k=3, pad=1, output_padding=1):
    """PyTorch's ConvTranspose2d(stride 2, padding 1, output_padding 1)."""
    w = jnp.flip(p["k"], (2, 3)).transpose(1, 0, 2, 3)  # (in, out, kh, kw) -> OIHW, flipped
    lo, hi = k - 1 - pad, k - 1 - pad + output_padding
    y = jax.lax.conv_general_dilated(x, w, (1, 1), ((lo, hi), (lo, hi)), lhs_dilation=(2, 2),
                                     dimension_numbers=DN)
    return y + p["b"][None, :, None, None]


def linear_init(key, fan_in, fan_out):
    """PyTorch nn.Linear's default: W and b uniform in +-1/sqrt(fan_in). W is (in, out)."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(fan_in)
    w = jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound)
    b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
    return {"w": w, "b": b}


def mlp_init(key, dims):
    keys = jax.random.split(key, len(dims) - 1)
    return [linear_init(k, i, o) for k, i, o in zip(keys, dims[:-1], dims[1:])]


def mlp_apply(layers, x, hidden, last=None):
    """`hidden` after every layer but the last; `last` (if any) after the last."""
    for i, l in enumerate(layers):
        x = x @ l["w"] + l["b"]
        if i < len(layers) - 1:
            x = hidden(x)
        elif last is not None:
            x = last(x)
    return x


def bce_with_logits(z, x):
    """Elementwise softplus(z) - x z, stable for any z."""
    return jnp.maximum(z, 0.0) - x * z + jnp.log1p(jnp.exp(-jnp.abs(z)))


def init_params(name, key):
    enc, dec, _ = WORKLOADS[name]
    ke, kd = jax.random.split(key)
    if name == "conv_ae":
        return conv_ae_init(key)
    if name == "vae":
        k1, kmu, klv = jax.random.split(ke, 3)
        return {
            "fc1": linear_init(k1, 784, 400),
            "mu": linear_init(kmu, 400, 20),
            "logvar": linear_init(klv, 400, 20),
            "dec": mlp_init(kd, dec),
        }
    return {"enc": mlp_init(ke, enc), "dec": mlp_init(kd, dec)}


def make_loss(name):
    relu = jax.nn.relu
    sigmoid = jax.nn.sigmoid

    if name == "mnist_ae":

        def loss(p, x, key):
            code = mlp_apply(p["enc"], x, relu)
            logits = mlp_apply(p["dec"], code, relu)
            return jnp.sum(bce_with_logits(logits, x)) / x.shape[0]

    elif name == "vae":

        def loss(p, x, key):
            h = relu(x @ p["fc1"]["w"] + p["fc1"]["b"])
            mu = h @ p["mu"]["w"] + p["mu"]["b"]
            lv = h @ p["logvar"]["w"] + p["logvar"]["b"]
            eps = jax.random.normal(key, mu.shape, jnp.float32)  # one eps per sample
            z = mu + eps * jnp.exp(0.5 * lv)
            logits = mlp_apply(p["dec"], z, relu)
            rec = jnp.sum(bce_with_logits(logits, x))
            kl = -0.5 * jnp.sum(1.0 + lv - mu * mu - jnp.exp(lv))
            return (rec + kl) / x.shape[0]

    elif name == "cae":

        def loss(p, x, key):
            we, be = p["enc"][0]["w"], p["enc"][0]["b"]
            h = sigmoid(x @ we + be)
            r = mlp_apply(p["dec"], h, relu, last=sigmoid)
            # ||dh/dx||_F^2 per sample = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2 (W here is in x out).
            jac = jnp.sum(jnp.square(h * (1.0 - h)) @ jnp.sum(we * we, axis=0))
            return (jnp.sum(jnp.square(r - x)) + CAE_LAMBDA * jac) / x.shape[0]

    elif name == "large_ae":

        def loss(p, x, key):
            code = mlp_apply(p["enc"], x, relu)
            out = mlp_apply(p["dec"], code, relu)
            return jnp.sum(jnp.square(out - x)) / x.shape[0]

    elif name == "conv_ae":

        def loss(p, x, key):
            b = x.shape[0]
            h = relu(conv2d(x.reshape(b, 1, 28, 28), p["c1"]))
            h = relu(conv2d(h, p["c2"]))
            code = h.reshape(b, 3136) @ p["fe"]["w"] + p["fe"]["b"]
            h = relu(code @ p["fd"]["w"] + p["fd"]["b"]).reshape(b, 64, 7, 7)
            h = relu(conv_transpose2d(h, p["t1"]))
            logits = conv_transpose2d(h, p["t2"]).reshape(b, 784)
            return jnp.sum(bce_with_logits(logits, x)) / b

    else:
        raise ValueError(name)
    return loss


def weights(params):
    """Weights (not biases): FLOPs per sample are 6 x this."""
    return sum(
        leaf.size
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if getattr(path[-1], "key", None) == "w"
    )


def make_step(name):
    loss_fn = make_loss(name)
    grad_fn = jax.value_and_grad(loss_fn)

    def step(params, m, v, t, x, key):
        loss, g = grad_fn(params, x, key)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: B1 * m + (1.0 - B1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: B2 * v + (1.0 - B2) * g * g, v, g)
        c1 = 1.0 - B1 ** t.astype(jnp.float32)
        c2 = 1.0 - B2 ** t.astype(jnp.float32)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS), params, m, v
        )
        return params, m, v, t, loss

    return jax.jit(step, donate_argnums=(0, 1, 2, 3))


def synthetic(key, batch, dim):
    n = 2 if batch * dim * 4 * 8 > 64 << 20 else 8
    keys = jax.random.split(key, n)
    xs = [jax.random.uniform(k, (batch, dim), jnp.float32) for k in keys]
    jax.block_until_ready(xs)
    return xs


def bench(name, batch, seconds, max_steps, min_steps=2):
    enc, _, _ = WORKLOADS[name]
    dim = enc[0]
    key = jax.random.PRNGKey(0)
    kp, kd, kn = jax.random.split(key, 3)
    t_start = time.perf_counter()
    params = init_params(name, kp)
    w = weights(params)
    flops = 6 * CONV_AE_MACS if name == "conv_ae" else 6 * w
    zeros = lambda p: jax.tree_util.tree_map(jnp.zeros_like, p)
    m, v, t = zeros(params), zeros(params), jnp.zeros((), jnp.int32)
    xs = synthetic(kd, batch, dim)
    step = make_step(name)

    # Compile and warm up (not timed).
    i = 0
    first_loss = None
    for _ in range(5):
        params, m, v, t, loss = step(params, m, v, t, xs[i % len(xs)], jax.random.fold_in(kn, i))
        i += 1
        if first_loss is None:
            first_loss = float(loss)
    loss.block_until_ready()
    warmup_s = time.perf_counter() - t_start

    steps, elapsed, chunk = 0, 0.0, 1
    while (elapsed < seconds or steps < min_steps) and steps < max_steps:
        n = min(chunk, max_steps - steps)
        t0 = time.perf_counter()
        for _ in range(n):
            params, m, v, t, loss = step(
                params, m, v, t, xs[i % len(xs)], jax.random.fold_in(kn, i)
            )
            i += 1
        loss.block_until_ready()
        elapsed += time.perf_counter() - t0
        steps += n
        if chunk < 64:
            chunk *= 2
    sps = steps * batch / elapsed
    r = dict(
        workload=name,
        device="cpu" if jax.default_backend() == "cpu" else jax.default_backend(),
        framework="jax %s (XLA, %s)" % (jax.__version__, jax.default_backend()),
        batch=batch,
        steps=steps,
        samples_per_s=round(sps, 1),
        ms_per_step=round(1e3 * elapsed / steps, 4),
        gflops=round(flops * sps / 1e9, 2),
        tflops=round(flops * sps / 1e12, 5),
        weights=w,
        warmup_s=round(warmup_s, 3),
        first_loss=round(first_loss, 4),
        final_loss=round(float(loss), 4),
    )
    print(json.dumps(r), flush=True)
    return r


def sgemm(seconds):
    """XLA's own f32 2048^3 dot, best of a few (for comparison with Hourglass's gemm ceiling)."""
    n = 2048
    ka, kb = jax.random.split(jax.random.PRNGKey(1))
    a = jax.random.uniform(ka, (n, n), jnp.float32, -1, 1)
    b = jax.random.uniform(kb, (n, n), jnp.float32, -1, 1)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best, reps, t_start = float("inf"), 0, time.perf_counter()
    while reps < 3 or (reps < 10 and time.perf_counter() - t_start < seconds):
        t0 = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    g = 2 * n**3 / best / 1e9
    print(json.dumps(dict(workload="sgemm2048", framework="jax %s" % jax.__version__,
                          gflops=round(g, 1), reps=reps)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="all",
                    help="mnist_ae, vae, cae, large_ae, conv_ae or all (comma-separated lists work too)")
    ap.add_argument("--batch", type=int, default=None,
                    help="examples per step for every workload, instead of each one's own")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="seconds of timed training per workload")
    ap.add_argument("--max-steps", type=int, default=1_000_000,
                    help="stop after this many timed steps even if time is left")
    ap.add_argument("--sgemm", action="store_true",
                    help="also time XLA's f32 2048^3 matrix product")
    a = ap.parse_args()
    names = list(WORKLOADS) if a.workload == "all" else [w.strip() for w in a.workload.split(",")]
    for n in names:
        if n not in WORKLOADS:
            ap.error("unknown workload '%s' (expected mnist_ae, vae, cae, large_ae, conv_ae or all)" % n)
    if a.batch is not None and a.batch < 1:
        ap.error("--batch must be at least 1 (got %d)" % a.batch)
    if not a.seconds >= 0:
        ap.error("--seconds must be at least 0")
    if a.max_steps < 1:
        ap.error("--max-steps must be at least 1")
    if a.sgemm:
        sgemm(min(a.seconds / 2, 1.0))
    for n in names:
        bench(n, a.batch or WORKLOADS[n][2], a.seconds, a.max_steps)


if __name__ == "__main__":
    main()
