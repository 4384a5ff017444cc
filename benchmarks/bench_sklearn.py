"""jaxsoft.linear_model against scikit-learn, side by side, compilation included.

    python benchmarks/bench_sklearn.py [--mnist-dir ../shared/data/mnist] [--skip-mnist]

1. ``LogisticRegression(C=1/(1e-4 n))`` on MNIST (60,000 x 784, float32 for
   jaxsoft, float64 for scikit-learn, which converts to it anyway): the time
   of each ``fit`` and each objective, evaluated in NumPy float64.
2. ``LogisticRegressionCV(Cs=8, cv=5)`` on embedding-like features (10,000 x
   128 Gaussian mixture, 50 classes, float32): the time of each ``fit``, the
   C each chooses and the largest difference of their mean fold scores.

The first jaxsoft call of each kind compiles; it is the one timed (a user's
first fit). The CV fit is also timed a second time in the same process
(compiled), and in a second new process with `jaxsoft.enable_compilation_cache`
on (a user's next session). Prints one line per figure and the ratios.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def sk_objective(est, X: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's multinomial objective of a fitted estimator, float64."""
    C, n = est.C, len(y)
    W = np.asarray(est.coef_, np.float64)
    z = X.astype(np.float64) @ W.T + np.asarray(est.intercept_, np.float64)
    z -= z.max(axis=1, keepdims=True)
    codes = np.searchsorted(est.classes_, y)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(n), codes]) + np.sum(W * W) / (2 * C * n))


def _timed(fit):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = fit()
    return est, time.perf_counter() - start


def bench_mnist(mnist_dir: Path) -> None:
    from sklearn import linear_model as sk

    from jaxsoft import linear_model as js

    x = _idx(mnist_dir / "train-images-idx3-ubyte.gz").reshape(60000, -1)
    x = x.astype(np.float32) / 255
    y = _idx(mnist_dir / "train-labels-idx1-ubyte.gz").astype(np.int32)
    C = 1 / (1e-4 * len(y))
    ref, t_sk = _timed(lambda: sk.LogisticRegression(C=C, max_iter=1000).fit(x, y))
    ours, t_js = _timed(lambda: js.LogisticRegression(C=C, max_iter=1000).fit(x, y))
    f_sk, f_js = sk_objective(ref, x, y), sk_objective(ours, x, y)
    print(f"MNIST LogisticRegression  scikit-learn {t_sk:7.2f} s  objective {f_sk:.6f}")
    print(f"MNIST LogisticRegression  jaxsoft      {t_js:7.2f} s  objective {f_js:.6f}")
    print(
        f"MNIST LogisticRegression  ratio {t_sk / t_js:.1f}x (goal >= 10x); "
        f"objective gap {(f_js - f_sk) / f_sk:+.1e} (<= 0: jaxsoft's is as low)"
    )


def embeddings(n: int = 10_000, d: int = 128, q: int = 50, seed: int = 0):
    """A Gaussian mixture that looks like frozen-network embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(q, d)) / np.sqrt(d) * 3
    y = rng.integers(0, q, n)
    x = centres[y] + rng.normal(size=(n, d)) / np.sqrt(d) * 2
    return x.astype(np.float32), y


_CACHED_CV = """
import sys, time, warnings
sys.path.insert(0, {here!r})
import jaxsoft
from jaxsoft import linear_model as js
from bench_sklearn import embeddings
jaxsoft.enable_compilation_cache({cache!r})
x, y = embeddings()
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    js.LogisticRegressionCV(Cs=8, cv=5, max_iter=100).fit(x, y)
print(time.perf_counter() - start)
"""


def cached_cv_seconds() -> float:
    """The CV fit in a second new process, with `jaxsoft.enable_compilation_cache`
    on (the first process fills the cache; the second loads its programs)."""
    with tempfile.TemporaryDirectory() as cache:
        script = _CACHED_CV.format(here=str(Path(__file__).parent), cache=cache)
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", script],
                check=True,
                capture_output=True,
                text=True,
            )
    return float(out.stdout.split()[-1])


def bench_cv() -> None:
    from sklearn import linear_model as sk

    from jaxsoft import linear_model as js

    x, y = embeddings()
    kw = dict(Cs=8, cv=5, max_iter=100)
    sk_kw = dict(scoring=None, l1_ratios=None, use_legacy_attributes=True)
    ref, t_sk = _timed(lambda: sk.LogisticRegressionCV(**kw, **sk_kw).fit(x, y))
    ours, t_js = _timed(lambda: js.LogisticRegressionCV(**kw).fit(x, y))
    # The same fit again: its programs are compiled by now.
    _, t_warm = _timed(lambda: js.LogisticRegressionCV(**kw).fit(x, y))
    key = ref.classes_[0]
    gap = np.abs(ref.scores_[key].mean(0) - ours.scores_[key].mean(0)).max()
    print(f"CV 10000x128, 50 classes  scikit-learn {t_sk:7.2f} s  C_ {ref.C_[0]:.4g}")
    print(f"CV 10000x128, 50 classes  jaxsoft      {t_js:7.2f} s  C_ {ours.C_[0]:.4g}")
    print(
        f"CV 10000x128, 50 classes  jaxsoft again {t_warm:6.2f} s  (compiled: "
        f"{t_sk / t_warm:.1f}x scikit-learn's time)"
    )
    from bench_probe import seconds_per_pass

    heads = 8 * 6  # 5 folds and the refit on every row, 8 Cs each
    t_pass = seconds_per_pass(len(y), x.shape[1], 50, heads)
    print(
        f"CV 10000x128, 50 classes  one data pass of all {heads} heads "
        f"{t_pass:5.3f} s: the 20x goal ({t_sk / 20:.2f} s) leaves time for "
        f"{t_sk / 20 / t_pass:.1f} such passes; its L-BFGS takes up to "
        f"{int(ours.n_iter_.max())} iterations (a pass each, and more to backtrack)"
    )
    t_cached = cached_cv_seconds()
    print(
        f"CV 10000x128, 50 classes  jaxsoft, new process, compilation cache on "
        f"{t_cached:5.2f} s  ({t_sk / t_cached:.1f}x scikit-learn's time)"
    )
    print(
        f"CV 10000x128, 50 classes  ratio {t_sk / t_js:.1f}x (goal >= 20x); "
        f"same C: {ref.C_[0] == ours.C_[0]}; largest mean-score difference {gap:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    parser.add_argument("--mnist-dir", type=Path, default=default)
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()}")
    if not args.skip_mnist:
        bench_mnist(args.mnist_dir)
    bench_cv()


if __name__ == "__main__":
    main()
