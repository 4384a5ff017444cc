"""`jaxsoft.probe.sweep` against a loop of scikit-learn fits, on embedding-like data.

Synthetic embeddings: Gaussian class means in a correlated latent space,
mixed into features with uneven scales (a 30x range) and non-zero offsets;
100 classes, 256 features, 20,000 training and 5,000 validation rows, 8
strengths from 1e-6 to 1e-1. It prints, from one run:

- wall time of `probe.sweep` (best of ``--repeats`` runs after the first,
  which also compiles; the compile time is the first run minus the best),
  and of the scikit-learn loop ``LogisticRegression(C=1 / (l2 n),
  tol=1e-6, max_iter=1000)`` over the same strengths (float64), each fit
  timed once;
- per head: both objectives (each evaluated the same way, in float64),
  their relative difference (the bar: jaxsoft at most scikit-learn's
  x (1 + 1e-4)), iterations, and validation accuracy;
- the chosen head of each (highest validation accuracy, ties: larger l2);
- a scale line: seconds per data pass for an ImageNet-shaped probe
  (2048 features, 1000 classes, 8 heads) measured on what fits here, times
  the passes of this sweep, extrapolated to 1.28M rows on paper.

Run:  python benchmarks/bench_probe.py [--small] [--repeats 3] [--no-sklearn]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from jaxsoft import probe, sharding
from jaxsoft.exact import passes, placement

L2 = tuple(float(v) for v in np.geomspace(1e-6, 1e-1, 8))


def make_embeddings(
    n: int, d: int, q: int, *, seed: int = 0, sep: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like features (n, d) float32 and labels (n,) int32."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(q, d)) * sep
    y = rng.integers(0, q, n)
    z = means[y] + rng.normal(size=(n, d))
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spectrum = np.geomspace(1.0, 0.1, d)  # correlated features
    mix = (rotation * spectrum) @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    scales = 10.0 ** rng.uniform(-0.75, 0.75, d)
    offsets = rng.normal(0.0, 1.5, d) * scales
    x = (z @ mix) * scales + offsets
    return x.astype(np.float32), y.astype(np.int32)


def objective64(W, b, x, y, l2: float) -> float:
    """Mean cross-entropy + (l2/2)||W||^2 in float64 (both solvers alike)."""
    o = x @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
    ce = logsumexp(o, axis=1) - o[np.arange(len(y)), y]
    return float(ce.mean() + 0.5 * l2 * np.sum(np.square(W, dtype=np.float64)))


def accuracy(W, b, x, y) -> float:
    return float(np.mean(np.argmax(x @ W + b, axis=1) == y))


def time_sweep(x, y, xv, yv, repeats: int):
    times, res = [], None
    for _ in range(repeats + 1):
        start = time.perf_counter()
        res = probe.sweep(x, y, L2, x_val=xv, y_val=yv)
        jax.block_until_ready(res.heads)
        times.append(time.perf_counter() - start)
    return res, times


def sklearn_threads(x64, y) -> int | None:
    """The faster BLAS/OpenMP thread setting for scikit-learn here: 1 or the
    default (on a loaded 2-core machine, spin-waiting threads can make the
    default several times slower). Times 20 iterations of each."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    seconds = {}
    for threads in (1, None):
        with threadpool_limits(threads):
            start = time.perf_counter()
            LogisticRegression(C=1.0 / len(y), max_iter=20, tol=0.0).fit(x64, y)
            seconds[threads] = time.perf_counter() - start
    return min(seconds, key=seconds.get)


def sklearn_loop(x64, y, xv, yv, threads: int | None):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    rows, start = [], time.perf_counter()
    for l2 in L2:
        t0 = time.perf_counter()
        model = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-6, max_iter=1000)
        with threadpool_limits(threads):
            model.fit(x64, y)
        W, b = model.coef_.T, model.intercept_
        rows.append(
            dict(
                W=W,
                b=b,
                seconds=time.perf_counter() - t0,
                iterations=int(model.n_iter_[0]),
                val=accuracy(W, b, xv, yv),
            )
        )
    return rows, time.perf_counter() - start


def seconds_per_pass(n: int, d: int, q: int, heads: int, repeats: int = 2) -> float:
    """One data pass (value and gradient of every head) over n random rows."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, q, n).astype(np.int32)
    chunk = placement.chunk_rows(heads, q, None)
    rows = passes.Rows(
        [passes.Part(x, y)],
        mesh=sharding.resolve_mesh(),
        chunk_rows=chunk,
        dtype=np.float32,
        shift=np.zeros(d),
    )
    Wt = jnp.asarray(rng.normal(size=(heads, d, q)) * 0.01, jnp.float32)
    c, group = jnp.zeros((heads, q)), jnp.zeros(heads, jnp.int32)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run compiles
        start = time.perf_counter()
        jax.block_until_ready(passes.grad_pass(rows, Wt, c, group))
        best = min(best, time.perf_counter() - start)
    return best


def report_heads(res, sk, x64, y) -> None:
    print(
        f"{'l2':>8} {'jaxsoft objective':>18} {'sklearn objective':>18} "
        f"{'rel diff':>9} {'iters':>5} {'sk iters':>8} {'val acc':>7} {'sk val':>6}"
    )
    for h, l2 in enumerate(L2):
        ours = objective64(res.heads.W[h], res.heads.b[h], x64, y, l2)
        theirs = objective64(sk[h]["W"], sk[h]["b"], x64, y, l2) if sk else np.nan
        rel = (ours - theirs) / theirs
        print(
            f"{l2:8.1e} {ours:18.8f} {theirs:18.8f} {rel:9.1e} "
            f"{res.iterations[h]:5d} {sk[h]['iterations'] if sk else 0:8d} "
            f"{res.val_accuracy[h]:7.4f} {sk[h]['val'] if sk else np.nan:6.4f}"
        )
    if sk:
        rel = [
            objective64(res.heads.W[h], res.heads.b[h], x64, y, l2)
            / objective64(sk[h]["W"], sk[h]["b"], x64, y, l2)
            - 1
            for h, l2 in enumerate(L2)
        ]
        print(f"heads above scikit-learn x (1 + 1e-4): {sum(r > 1e-4 for r in rel)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*failed to converge")
    n, d, q = (4_000, 64, 20) if args.small else (20_000, 256, 100)
    x, y = make_embeddings(n + n // 4, d, q)
    x, y, xv, yv = x[:n], y[:n], x[n:], y[n:]
    print(f"device: {jax.devices()[0].device_kind}; n={n} d={d} q={q} H={len(L2)}")
    res, times = time_sweep(x, y, xv, yv, args.repeats)
    best = min(times[1:])
    print(
        f"probe.sweep: {best:.2f} s (best of {args.repeats}; all runs "
        f"{', '.join(f'{t:.2f}' for t in times[1:])}); compile about "
        f"{times[0] - best:.1f} s; passes {res.passes.tolist()}"
    )
    x64 = x.astype(np.float64)
    sk, sk_time, threads = [], np.nan, None
    if not args.no_sklearn:
        threads = sklearn_threads(x64, y)
        sk, sk_time = sklearn_loop(x64, y, xv, yv, threads)
    if sk:
        per_head = ", ".join(f"{r['seconds']:.1f}" for r in sk)
        print(
            f"scikit-learn loop ({threads or 'default'} thread(s)): {sk_time:.1f} s "
            f"({per_head} s per head); "
            f"speed-up {sk_time / best:.1f}x"
        )
    report_heads(res, sk, x64, y)
    l2 = np.asarray(L2)
    print(f"chosen: jaxsoft l2={l2[res.best]:.1e}", end="")
    if sk:
        sk_val = np.array([r["val"] for r in sk])
        tied = np.flatnonzero(sk_val == sk_val.max())
        print(f", scikit-learn l2={l2[tied[np.argmax(l2[tied])]]:.1e}", end="")
    print()
    scale_line(res, sk, n * d * q, small=args.small)


def scale_line(res, sk, size: int, *, small: bool) -> None:
    """ImageNet-shaped (1.28M x 2048, 1000 classes, 8 heads) on paper."""
    rows, imagenet = (1024 if small else 4096), 1_281_167 * 2048 * 1000
    t_pass = seconds_per_pass(rows, 2048, 1000, 8)
    head_passes = int(res.passes.sum())
    per_head = t_pass / 8 * 1_281_167 / rows
    print(
        f"scale (ImageNet-shaped, 1.28M x 2048, 1000 classes): one pass of 8 heads "
        f"over {rows} rows {t_pass:.2f} s here -> {per_head:.1f} s per head-pass "
        f"at 1.28M rows; x {head_passes} head-passes (this sweep's) = "
        f"{per_head * head_passes / 3600:.1f} h on this device"
    )
    if sk:
        iterations = sum(r["iterations"] for r in sk)
        per_iter = sum(r["seconds"] for r in sk) / iterations * imagenet / size
        print(
            f"scikit-learn on paper: {per_iter:.0f} s per iteration at that size "
            f"(this run's seconds per iteration x {imagenet / size:.0f}) x "
            f"{iterations} iterations = {per_iter * iterations / 3600:.0f} h"
        )


if __name__ == "__main__":
    main()
