"""The estimators on an accelerator: scikit-learn's optimum, then the figures.

    PYTHONPATH=. python benchmarks/accelerator_check.py

For a machine with a GPU or TPU (no tensorflow-datasets or network needed):
prints the devices, then checks on them that `LogisticRegression` reaches
scikit-learn's objective in float32 and float64 and that
`LogisticRegressionCV` chooses scikit-learn's C; that L1 and elastic-net
fits (OWL-QN) reach the objective and the zeros of scikit-learn's saga; that
sparse X (hashed text, JAX's sparse kernels on the device) gives the dense
fit; then runs `bench_practitioner.py` on the cases that need no data files
(MNIST is replaced by a synthetic table of its shape).
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np


def objective(est, x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's multinomial objective (mean loss + ||W||^2 / (2 C n))."""
    W = np.asarray(est.coef_, np.float64)
    z = x @ W.T + np.asarray(est.intercept_, np.float64)
    penalty = np.sum(W * W) / 2
    z -= z.max(1, keepdims=True)
    codes = np.searchsorted(est.classes_, y)
    loss = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), codes]
    return float(loss.mean() + penalty / (est.C * len(y)))


def main() -> None:
    print("devices:", jax.devices(), flush=True)
    from sklearn import datasets
    from sklearn import linear_model as sk
    from sklearn.preprocessing import StandardScaler

    from jaxsoft import linear_model as js

    x, y = datasets.load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    reference = sk.LogisticRegression(max_iter=5000, tol=1e-8).fit(x, y)
    f_ref = objective(reference, x, y)
    for dtype in (np.float32, np.float64):
        start = time.perf_counter()
        ours = js.LogisticRegression(max_iter=1000).fit(x.astype(dtype), y)
        seconds = time.perf_counter() - start
        gap = (objective(ours, x, y) - f_ref) / f_ref
        print(
            f"digits {np.dtype(dtype).name}: objective gap to scikit-learn "
            f"{gap:+.1e}, first fit {seconds:.2f} s, coef_ {ours.coef_.dtype}",
            flush=True,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv_sk = sk.LogisticRegressionCV(Cs=6, cv=3, max_iter=2000).fit(x, y)
        cv_js = js.LogisticRegressionCV(Cs=6, cv=3, max_iter=2000).fit(x, y)
    print(f"LogisticRegressionCV C_: scikit-learn {cv_sk.C_[0]:.4g}, "
          f"jaxsoft {cv_js.C_[0]:.4g}", flush=True)  # fmt: skip
    l1_and_sparse(sk, js)
    bench = Path(__file__).with_name("bench_practitioner.py")
    cases = "iris,digits,digits_cv,grid_search,synthetic_100k,binary_200k,mnist_like"
    cases += ",text"
    subprocess.run([sys.executable, str(bench), "--cases", cases], check=False)


def _elastic_objective(est, x, y, C, ratio) -> float:
    W = np.asarray(est.coef_, np.float64)
    z = x @ W.T + est.intercept_
    z -= z.max(1, keepdims=True)
    codes = np.searchsorted(est.classes_, y)
    loss = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), codes]
    penalty = (1 - ratio) / 2 * np.sum(W * W) + ratio * np.abs(W).sum()
    return float(loss.mean() + penalty / (C * len(y)))


def l1_and_sparse(sk, js) -> None:
    """L1 / elastic net against saga; sparse X against dense, on the device."""
    import scipy.sparse as sp
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    x, y = datasets.load_wine(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    for ratio in (1.0, 0.5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = sk.LogisticRegression(
                C=0.5, l1_ratio=ratio, solver="saga", tol=1e-10, max_iter=20000
            ).fit(x, y)
        ours = js.LogisticRegression(
            C=0.5, l1_ratio=ratio, solver="saga", tol=1e-10, max_iter=2000
        ).fit(x, y)
        f_ref = _elastic_objective(ref, x, y, 0.5, ratio)
        gap = (_elastic_objective(ours, x, y, 0.5, ratio) - f_ref) / f_ref
        wrong = int(np.sum((ours.coef_ == 0) != (ref.coef_ == 0)))
        print(f"wine l1_ratio={ratio}: objective gap to saga {gap:+.1e}, zeros "
              f"{int(np.sum(ours.coef_ == 0))} (saga {int(np.sum(ref.coef_ == 0))}, "
              f"{wrong} differ)", flush=True)  # fmt: skip
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_practitioner import hashed_text

    text, labels = hashed_text(3000, features=1 << 12)
    sparse = js.LogisticRegression(C=5.0, tol=1e-10, max_iter=2000).fit(text, labels)
    dense = js.LogisticRegression(C=5.0, tol=1e-10, max_iter=2000)
    dense.fit(text.toarray(), labels)
    difference = np.abs(sparse.coef_ - dense.coef_).max()
    print(f"hashed text 3000 x 4096: sparse vs dense coef_ {difference:.1e} "
          f"(sparse X is {type(text).__name__})", flush=True)  # fmt: skip
    assert sp.issparse(text)


if __name__ == "__main__":
    main()
