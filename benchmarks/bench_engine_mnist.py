"""The exact engine on MNIST against scikit-learn, one head, l2 = 1e-4.

    python benchmarks/bench_engine_mnist.py [--mnist-dir ../shared/data/mnist]

Fits scikit-learn's ``LogisticRegression(C=1/(l2 n))`` (lbfgs, float64), then
runs `jaxsoft.train.solve_lbfgs` (the engine's one-head case, float32) for a
growing number of iterations until its objective, evaluated in float64, is
within 1e-4 (relative) of scikit-learn's; prints each time and the ratio.
Every timed jaxsoft call includes placement, the moments pass and the
eigendecomposition; the first one also compiles.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def objective64(W, b, x, y, l2: float) -> float:
    """Mean cross-entropy + (l2/2)||W||^2 in float64 NumPy."""
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    o = x.astype(np.float64) @ W + b
    o -= o.max(1, keepdims=True)
    lse = np.log(np.exp(o).sum(1))
    return float(np.mean(lse - o[np.arange(len(y)), y]) + l2 / 2 * np.sum(W * W))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    parser.add_argument("--mnist-dir", type=Path, default=default)
    parser.add_argument("--l2", type=float, default=1e-4)
    args = parser.parse_args()
    x = _idx(args.mnist_dir / "train-images-idx3-ubyte.gz").reshape(60000, -1)
    x = x.astype(np.float32) / 255
    y = _idx(args.mnist_dir / "train-labels-idx1-ubyte.gz").astype(np.int32)

    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    sk = LogisticRegression(C=1 / (args.l2 * len(y)), max_iter=1000).fit(x, y)
    sk_seconds = time.perf_counter() - start
    target = objective64(sk.coef_.T, sk.intercept_, x, y, args.l2)
    print(
        f"scikit-learn: {sk_seconds:.2f} s, {int(sk.n_iter_[0])} iterations, "
        f"objective {target:.6f}"
    )

    import jax

    import jaxsoft as js
    from jaxsoft import train

    zeros = js.init_params(jax.random.key(0), x.shape[1], 10, scale=0.0)
    for iterations in (10, 20, 30, 40, 50, 60, 80, 100):
        start = time.perf_counter()
        params, info = train.solve_lbfgs(
            zeros, x, y, l2=args.l2, tol=0.0, max_iter=iterations
        )
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        value = objective64(params.W, params.b, x, y, args.l2)
        reached = value <= target * (1 + 1e-4)
        print(
            f"solve_lbfgs max_iter={iterations}: {seconds:.2f} s, "
            f"{info.evaluations} passes, objective {value:.6f}, reached {reached}"
        )
        if reached:
            print(f"ratio scikit-learn / solve_lbfgs: {sk_seconds / seconds:.1f}x")
            return
    print("solve_lbfgs did not reach scikit-learn's objective")


if __name__ == "__main__":
    main()
