"""The sparse kernels the engine could use for a pass, side by side.

    python benchmarks/bench_sparse.py [--rows 50000] [--features 131072]

One data pass of the exact engine over sparse rows needs two products for
every head at once: the logits ``X @ W`` (n, d) x (d, k) and the gradient
``X^T G`` (d, n) x (n, k), k = heads x classes. This times each candidate on
the hashed TF-IDF matrix of `bench_practitioner.py`'s text case (20 classes,
k = 20 and k = 160), in float64 and float32, compiled, as the median of 5:

- scipy: scipy.sparse's CSR products (what scikit-learn's lbfgs uses);
- csr kernel: JAX's CSR kernel (``jax.experimental.sparse.BCSR @ dense``,
  XLA's ``cpu_csr_sparse_dense`` custom call on a CPU), with a second CSR
  of ``X^T`` for the gradient (what `jaxsoft.exact.sparse_rows` uses);
- segment_sum: a gather of W's rows (or G's) times the values, then
  ``jax.ops.segment_sum`` over the rows (sorted) or the columns (a scatter);
- ell: rows padded to their longest (ELLPACK): a gather and a sum for the
  logits, a scatter-add for the gradient.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse


def _time(fun, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fun(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fun(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _candidates(X, dtype):
    """{name: (logits(W), gradient(G))} for the CSR matrix X."""
    n, d = X.shape
    X = X.astype(dtype)
    coo = X.tocoo()
    rows, cols = jnp.asarray(coo.row), jnp.asarray(coo.col)
    values = jnp.asarray(coo.data)
    csr = jsparse.BCSR.from_scipy_sparse(X)
    csr_t = jsparse.BCSR.from_scipy_sparse(X.T.tocsr())
    width = int(np.diff(X.indptr).max())
    index = np.zeros((n, width), np.int32)
    value = np.zeros((n, width), dtype)
    for i in range(n):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        index[i, : hi - lo], value[i, : hi - lo] = X.indices[lo:hi], X.data[lo:hi]
    index, value = jnp.asarray(index), jnp.asarray(value)
    return {
        "scipy": (lambda W: X @ np.asarray(W), lambda G: X.T @ np.asarray(G)),
        "csr kernel": (jax.jit(lambda W: csr @ W), jax.jit(lambda G: csr_t @ G)),
        "segment_sum": (
            jax.jit(
                lambda W: jax.ops.segment_sum(
                    values[:, None] * W[cols], rows, n, indices_are_sorted=True
                )
            ),
            jax.jit(lambda G: jax.ops.segment_sum(values[:, None] * G[rows], cols, d)),
        ),
        "ell": (
            jax.jit(lambda W: jnp.einsum("nk,nkq->nq", value, W[index])),
            jax.jit(
                lambda G: (
                    jnp.zeros((d, G.shape[1]), G.dtype)
                    .at[index.ravel()]
                    .add((value[..., None] * G[:, None, :]).reshape(-1, G.shape[1]))
                )
            ),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=1 << 17)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_practitioner import hashed_text

    jax.config.update("jax_enable_x64", True)
    X, _ = hashed_text(args.rows, features=args.features)
    used = int(np.count_nonzero(np.diff(X.tocsc().indptr)))  # columns with an entry
    print(
        f"hashed TF-IDF: {X.shape[0]} x {X.shape[1]}, {X.nnz} non-zeros, "
        f"{used} columns used (the engine leaves the others out)"
    )
    print(f"{'kernel':<12} {'dtype':<8} {'k':>4} {'X @ W':>9} {'X^T G':>9}")
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        for name, (logits, gradient) in _candidates(X, dtype).items():
            for k in (20, 160):
                W = jnp.asarray(rng.normal(size=(X.shape[1], k)), dtype)
                G = jnp.asarray(rng.normal(size=(X.shape[0], k)), dtype)
                a, b = _time(logits, W), _time(gradient, G)
                label = np.dtype(dtype).name
                print(f"{name:<12} {label:<8} {k:>4} {a:>8.3f}s {b:>8.3f}s", flush=True)


if __name__ == "__main__":
    main()
