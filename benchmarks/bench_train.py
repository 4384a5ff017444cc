"""Seconds per training epoch of `jaxsoft.train.fit` against two baselines.

On MNIST-shaped synthetic data (60,000 x 784 float32, 10 classes) it prints:

- ``fit``: seconds per epoch of `fit` (one compiled `lax.scan` per epoch;
  the median over epochs after the first, which compiles).
- ``read``: seconds of one compiled pass that only reads the same data (a
  sum over x and y): the memory-bandwidth floor of any epoch.
- their ratio (target: within 3x).
- ``full-batch gradient``: one compiled `jax.value_and_grad` of `jaxsoft.loss`
  over all 60,000 examples: the arithmetic of an epoch (a forward and a
  backward pass) with no per-step overhead. Where it is already far above the
  read, the device is compute-bound and no training loop can reach 3x.
- ``python loop``: the same epoch written the tutorial way, a Python loop
  over a jitted step fed host (NumPy) minibatches.

Run:  python benchmarks/bench_train.py [--batch-size 32 128] [--epochs 5]
(``JAX_PLATFORMS=cpu|cuda|tpu`` picks the device.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsoft as js
from jaxsoft import train

N, D, Q = 60_000, 784, 10


def synthetic_mnist(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, Q, N).astype(np.int32)
    return x, y


def time_fit(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int) -> float:
    result = train.fit(
        js.init_params(jax.random.key(0), D, Q),
        x,
        y,
        key=jax.random.key(1),
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=batch_size,
        epochs=epochs + 1,
    )
    return statistics.median(r.seconds for r in result.history[1:])


def time_read(x: np.ndarray, y: np.ndarray, repeats: int) -> float:
    x_dev, y_dev = jax.device_put((x, y))

    @jax.jit
    def read(x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.sum(x) + jnp.sum(y)

    read(x_dev, y_dev).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read(x_dev, y_dev).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_full_batch_gradient(x: np.ndarray, y: np.ndarray, repeats: int) -> float:
    x_dev, y_dev = jax.device_put((x, y))
    params = js.init_params(jax.random.key(0), D, Q)
    value_and_grad = jax.jit(jax.value_and_grad(js.loss))
    jax.block_until_ready(value_and_grad(params, x_dev, y_dev))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(value_and_grad(params, x_dev, y_dev))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_python_loop(
    x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int
) -> float:
    """The tutorial way: host shuffling, host batches, a jitted step per batch."""
    optimizer = optax.adam(1e-3)
    params = js.init_params(jax.random.key(0), D, Q)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x_batch, y_batch):
        loss, grads = jax.value_and_grad(js.loss)(params, x_batch, y_batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(0)
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        permutation = rng.permutation(N)
        for i in range(N // batch_size):
            index = permutation[i * batch_size : (i + 1) * batch_size]
            params, opt_state, loss = step(params, opt_state, x[index], y[index])
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs")
    args = parser.parse_args()

    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {device.platform} ({device.device_kind})")
    print(f"data: {N} x {D} float32 ({N * D * 4 / 1e6:.0f} MB), {Q} classes\n")
    x, y = synthetic_mnist()
    read = time_read(x, y, repeats=20)
    full_gradient = time_full_batch_gradient(x, y, repeats=10)
    print(f"plain read of x and y:              {read:.4f} s")
    print(
        f"one full-batch gradient (no steps): {full_gradient:.4f} s "
        f"= {full_gradient / read:.1f}x the read\n"
    )
    header = (
        f"{'batch':>6} {'fit s/epoch':>12} {'read s':>8} {'fit/read':>9} "
        f"{'python loop s/epoch':>20} {'loop/fit':>9}"
    )
    print(header)
    print("-" * len(header))
    for batch_size in args.batch_size:
        fit_seconds = time_fit(x, y, batch_size, args.epochs)
        loop_seconds = time_python_loop(x, y, batch_size, min(args.epochs, 2))
        print(
            f"{batch_size:>6} {fit_seconds:>12.4f} {read:>8.4f} "
            f"{fit_seconds / read:>9.1f} {loop_seconds:>20.4f} "
            f"{loop_seconds / fit_seconds:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
