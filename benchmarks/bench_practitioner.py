"""scikit-learn against jaxsoft as a practitioner meets them: fresh processes.

    python benchmarks/bench_practitioner.py [--cases iris,digits,...]
        [--mnist-dir ../shared/data/mnist]

Every case is fitted by each library in a new Python process, twice: the
first fit (for jaxsoft, compilation included, with an empty compile cache),
then the same fit again in the same process (compiled). jaxsoft then runs a
second new process with the cache its first process filled (a user's next
session). Each line gives the times, held-out accuracy, scikit-learn's
time over jaxsoft's (above 1: jaxsoft is faster), iterations, jaxsoft's
objective relative to scikit-learn's (float64, on the training rows; below
0: jaxsoft's is lower; for the cross-validated cases, the C each library
chose), and the geometric means.

The MNIST case also prints one data pass of the engine (value and gradient,
float64) beside one read of X on the device, the preconditioner's moments
from NumPy on the host beside the moments pass on the device, one pass over
binary_200k's rows in one chunk and in 65,536-row chunks, and the solve
program's size (HLO instructions), compile time and time a pass, with
jaxsoft's compiler options and others.

Cases: iris, wine, breast_cancer, digits (``LogisticRegression(max_iter=
1000)``, features standardised except digits / 16); digits_cv
(``LogisticRegressionCV(Cs=10, cv=5, max_iter=1000)``); grid_search
(``GridSearchCV`` over 5 Cs, cv=5, breast_cancer); synthetic_100k (100,000 x
50, 10 classes); binary_200k (200,000 x 100, 2 classes); mnist (60,000 x 784
float64, the default C=1.0, ``max_iter=300``; needs the MNIST files); text
(hashed TF-IDF: 50,000 documents x 2^17 hashed features, 20 classes, a
scipy.sparse CSR matrix, ``LogisticRegression(max_iter=1000)``) and text_cv
(``LogisticRegressionCV(Cs=[0.1, 1, 10, 100], cv=3, max_iter=1000)`` on it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

CASES = (
    "iris",
    "wine",
    "breast_cancer",
    "digits",
    "digits_cv",
    "grid_search",
    "synthetic_100k",
    "binary_200k",
    "mnist",
    "text",
    "text_cv",
)
EXTRA_CASES = ("mnist_like",)  # 60,000 x 784 synthetic, where MNIST is absent
MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def hashed_text(n: int, classes: int = 20, features: int = 1 << 17, seed: int = 0):
    """Synthetic documents as a hashed TF-IDF CSR matrix (n, features), labels.

    Words follow Zipf's law over a 50,000-word vocabulary, 4% of each
    document's words come from its class's 300 topic words, documents have
    about 125 words; word ids are hashed to columns (murmurhash3, as
    ``HashingVectorizer`` does), then ``TfidfTransformer``.
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.utils import murmurhash3_32

    rng = np.random.default_rng(seed)
    vocab = 50_000
    y = rng.integers(0, classes, n)
    doc = np.repeat(np.arange(n), rng.poisson(120, n) + 5)
    zipf = 1.0 / np.arange(1, vocab + 1) ** 1.05
    words = rng.choice(vocab, doc.size, p=zipf / zipf.sum())
    topics = rng.integers(100, 20_000, (classes, 300))
    on_topic = rng.random(doc.size) < 0.04
    picks = rng.integers(0, 300, on_topic.sum())
    words[on_topic] = topics[y[doc[on_topic]], picks]
    ids = np.arange(vocab, dtype=np.int32)
    column = murmurhash3_32(ids, seed=0, positive=True) % features
    shape = (n, features)
    counts = sp.csr_array((np.ones(doc.size), (doc, column[words])), shape=shape)
    counts.sum_duplicates()
    return TfidfTransformer().fit_transform(counts).tocsr(), y


def load_case(case: str, mnist_dir: Path):
    """(x_train, y_train, x_test, y_test), float64."""
    from sklearn import datasets

    if case in ("text", "text_cv"):
        x, y = hashed_text(62_500)
        return x[:50_000], y[:50_000], x[50_000:], y[50_000:]
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if case == "mnist":

        def images(name):
            return _idx(mnist_dir / name).reshape(-1, 784).astype(np.float64) / 255

        return (
            images("train-images-idx3-ubyte.gz"),
            _idx(mnist_dir / "train-labels-idx1-ubyte.gz").astype(np.int64),
            images("t10k-images-idx3-ubyte.gz"),
            _idx(mnist_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64),
        )
    if case in ("synthetic_100k", "binary_200k", "mnist_like"):
        n, d, q = {
            "synthetic_100k": (100_000, 50, 10),
            "binary_200k": (200_000, 100, 2),
            "mnist_like": (60_000, 784, 10),
        }[case]
        x, y = datasets.make_classification(
            n_samples=n + n // 4, n_features=d, n_informative=d // 2,
            n_classes=q, n_clusters_per_class=1, random_state=0,
        )  # fmt: skip
    else:
        loader = {
            "iris": datasets.load_iris,
            "wine": datasets.load_wine,
            "breast_cancer": datasets.load_breast_cancer,
            "grid_search": datasets.load_breast_cancer,
            "digits": datasets.load_digits,
            "digits_cv": datasets.load_digits,
        }[case]
        x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    if case.startswith("digits"):
        return x_train / 16, y_train, x_test / 16, y_test
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), y_train, scaler.transform(x_test), y_test


def make_estimator(case: str, library: str):
    if library == "jaxsoft":
        from jaxsoft.linear_model import LogisticRegression, LogisticRegressionCV
    else:
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    if case == "digits_cv":
        return LogisticRegressionCV(Cs=10, cv=5, max_iter=1000)
    if case == "text_cv":
        return LogisticRegressionCV(Cs=[0.1, 1.0, 10.0, 100.0], cv=3, max_iter=1000)
    if case == "grid_search":
        from sklearn.model_selection import GridSearchCV

        grid = {"C": np.logspace(-2, 2, 5)}
        return GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=5)
    if case in ("mnist", "mnist_like"):
        return LogisticRegression(max_iter=300)
    return LogisticRegression(max_iter=1000)


def objective(est, x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's lbfgs objective of a fitted estimator, in float64:
    the mean log-loss + ||W||^2 / (2 C n)."""
    W = np.asarray(est.coef_, np.float64)
    z = x @ W.T + np.asarray(est.intercept_, np.float64)
    if W.shape[0] == 1:  # the binary model: one logit
        z = np.column_stack([np.zeros(len(z)), z[:, 0]])
    z -= z.max(axis=1, keepdims=True)
    codes = np.searchsorted(est.classes_, y)
    loss = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), codes]
    return float(loss.mean() + np.sum(W * W) / (2 * est.C * len(y)))


def worker(case: str, library: str, mnist_dir: Path) -> dict:
    """Two fits of the case in this process: their times and accuracy."""
    x, y, x_test, y_test = load_case(case, mnist_dir)
    times = []
    for _ in range(2):
        est = make_estimator(case, library)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(x, y)
        times.append(time.perf_counter() - start)
    fitted = getattr(est, "best_estimator_", est)
    n_iter = int(np.max(fitted.n_iter_))
    single = not hasattr(est, "best_estimator_") and not hasattr(est, "Cs_")
    if hasattr(est, "best_params_"):
        chosen = float(est.best_params_["C"])
    else:
        chosen = float(np.ravel(est.C_)[0]) if hasattr(est, "C_") else float("nan")
    return {
        "C": chosen,
        "first": times[0],
        "again": times[1],
        "accuracy": float(est.score(x_test, y_test)),
        "n_iter": n_iter,
        "objective": objective(est, x, y) if single else float("nan"),
    }


def _gap_or_choice(sk: dict, js: dict) -> str:
    """The objective gap of a single fit, or the C each library chose."""
    if math.isnan(sk["objective"]):
        return f"C {sk['C']:g} / {js['C']:g}"
    return f"{(js['objective'] - sk['objective']) / sk['objective']:+.1e}"


def _run_worker(case: str, library: str, mnist_dir: Path, cache: str | None) -> dict:
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAXSOFT_CACHE_DIR"] = cache or ""
    command = [sys.executable, __file__, "--worker", case, library]
    command += ["--mnist-dir", str(mnist_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{case} {library} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def engine_figures(case: str, mnist_dir: Path) -> None:
    """MNIST (or mnist_like): one pass of the engine in float64 and in float32
    against one read of X; the solve program's size and its compile time with
    jaxsoft's options and with XLA's."""
    import functools

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from sklearn.datasets import load_breast_cancer, load_digits

    from jaxsoft import compiling, sharding
    from jaxsoft.exact import engine, passes, placement, solver

    x, y, _, _ = load_case(case, mnist_dir)
    mesh = sharding.resolve_mesh()
    grad = jax.jit(functools.partial(passes.grad_sums, centred=True))
    read = jax.jit(lambda s: jnp.sum(s.x))

    def best(f):
        jax.block_until_ready(f())
        times = []
        for _ in range(5):
            start = time.perf_counter()
            jax.block_until_ready(f())
            times.append(time.perf_counter() - start)
        return min(times)

    for dtype in (np.float64, np.float32):
        rows = placement.make_rows(
            [passes.Part(x, y.astype(np.int32))], mesh=mesh,
            budget=placement.device_budget(None),
            rows_per_chunk=placement.chunk_rows(1, 10, None),
            dtype=dtype, shift=x[:4096].mean(0),
        )  # fmt: skip
        W, c = jnp.zeros((1, 784, 10), dtype), jnp.zeros((1, 10), dtype)
        group = jnp.zeros(1, jnp.int32)
        t_read = best(lambda rows=rows: read(rows.stacked))
        t_pass = best(
            lambda rows=rows, W=W, c=c, g=group: grad(rows.stacked, W, c, g, rows.shift)
        )
        print(
            f"{case} {np.dtype(dtype).name} on {jax.devices()[0].device_kind}: one "
            f"pass {t_pass * 1e3:.1f} ms, one read of X {t_read * 1e3:.1f} ms "
            f"({t_pass / t_read:.1f} reads)"
        )
        if dtype == np.float64:  # the preconditioner's moments, both ways
            parts = [passes.Part(x, y.astype(np.int32))]
            shift = np.asarray(rows.host_shift, np.float64)
            t_host = best(
                lambda p=parts, s=shift: passes.host_moments(p, s, diagonal=False)
            )
            t_mesh = best(lambda r=rows: passes.moments_pass(r, diagonal=False))
            stride = passes.moments_stride(len(y), x.shape[1])
            print(
                f"{case} float64 moments: NumPy on the host {t_host:.2f} s (the "
                f"covariance from every {stride} rows), the pass on the device "
                f"{t_mesh:.2f} s (every row)"
            )
    # binary_200k's rows in one chunk (as placed) and in chunks of 65,536
    # rows (the old bound): each chunk a pass slices out is a copy
    xb2, yb2, _, _ = load_case("binary_200k", mnist_dir)
    W2, c2 = jnp.zeros((1, xb2.shape[1], 2)), jnp.zeros((1, 2))
    group2 = jnp.zeros(1, jnp.int32)
    timings = []
    for per_chunk in (placement.chunk_rows(1, 2, None), 1 << 16):
        rows = placement.make_rows(
            [passes.Part(xb2, yb2.astype(np.int32))], mesh=mesh,
            budget=placement.device_budget(None), rows_per_chunk=per_chunk,
            dtype=np.float64, shift=xb2[:4096].mean(0),
        )  # fmt: skip
        t = best(lambda r=rows: grad(r.stacked, W2, c2, group2, r.shift))
        size = f"{len(rows)} chunk(s) of {rows.chunk_rows} rows"
        timings.append(f"{size} {t * 1e3:.1f} ms")
    print(f"binary_200k float64, one pass: {', '.join(timings)}")
    xd, yd = load_digits(return_X_y=True)
    xb, yb = load_breast_cancer(return_X_y=True)
    xb = (xb - xb.mean(0)) / xb.std(0)
    for name, (xs, ys) in {"iris-like": (xd[:150, :4], yd[:150] % 3),
                           "breast_cancer": (xb, yb),
                           "digits": (xd / 16, yd)}.items():  # fmt: skip
        captured = {}
        original = compiling.call

        def spy(fun, mesh, *args, _orig=original, _cap=captured, **kw):
            if fun is solver._run_in_memory:
                _cap.update(fun=fun, mesh=mesh, args=args, kw=kw)
            return _orig(fun, mesh, *args, **kw)

        compiling.call = spy
        try:
            engine.solve(xs, ys, [1e-3], rtol=0, gtol=1e-4)
        finally:
            compiling.call = original
        fn = functools.partial(captured["fun"], **captured["kw"]["static"])
        start = time.perf_counter()
        lowered = jax.jit(fn).lower(*captured["args"])
        traced = time.perf_counter() - start
        options = compiling.compiler_options(
            captured["mesh"], quick=captured["kw"]["quick"]
        )
        seconds, per_pass = {}, {}
        # from the solve's start, with limits that never stop it
        start_state = (*captured["args"][:5], (0.0, 0.0, 10**6))
        for label, chosen in (("jaxsoft's options", options),
                              ("loop emitters", compiling.CPU_OPTIONS),
                              ("XLA's defaults", {})):  # fmt: skip
            start = time.perf_counter()
            program = lowered.compile(compiler_options=chosen or None)
            seconds[label] = time.perf_counter() - start
            if label == "jaxsoft's options":
                size = sum(" = " in line for line in program.as_text().splitlines())

            def passes_of(k, program=program, start=start_state):
                return program(*start, np.int32(k), np.bool_(False))

            per_pass[label] = (
                best(lambda: passes_of(11)) - best(lambda: passes_of(1))
            ) / 10
        others = ", ".join(
            f"{k} {v:.2f} s ({per_pass[k] * 1e6:.0f} us a pass)"
            for k, v in seconds.items()
        )
        print(
            f"solve program ({name}): {size} HLO instructions, traced and "
            f"lowered in {traced:.2f} s, compiled with {others}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--mnist-dir", type=Path, default=MNIST_DIR)
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "LIBRARY"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.mnist_dir)))
        return
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - {*CASES, *EXTRA_CASES})
    if unknown:
        parser.error(
            f"unknown case(s) {', '.join(unknown)}; the cases are "
            f"{', '.join((*CASES, *EXTRA_CASES))}"
        )
    if "mnist" in cases and not (args.mnist_dir / "t10k-images-idx3-ubyte.gz").exists():
        print(f"MNIST files not found in {args.mnist_dir}: skipping the mnist case")
        cases.remove("mnist")
    import jax

    device = jax.devices()[0].device_kind
    print(f"jax {jax.__version__} on {device}, {os.cpu_count()} cores")
    header = (
        f"{'case':15} {'sklearn':>8} {'again':>7} {'jaxsoft':>8} {'again':>7} "
        f"{'cached':>7} {'first x':>8} {'again x':>8} {'cached x':>8} "
        f"{'acc sk':>7} {'acc js':>7} {'it sk':>5} {'it js':>5} {'objective gap':>13}"
    )
    print(header)
    ratios: dict[str, list[float]] = {"first": [], "again": [], "cached": []}
    for case in cases:
        sk = _run_worker(case, "sklearn", args.mnist_dir, None)
        with tempfile.TemporaryDirectory() as cache:
            js = _run_worker(case, "jaxsoft", args.mnist_dir, cache)
            cached = _run_worker(case, "jaxsoft", args.mnist_dir, cache)
        row = {
            "first": sk["first"] / js["first"],
            "again": sk["again"] / js["again"],
            "cached": sk["first"] / cached["first"],
        }
        for key, value in row.items():
            ratios[key].append(value)
        print(
            f"{case:15} {sk['first']:8.3f} {sk['again']:7.3f} {js['first']:8.3f} "
            f"{js['again']:7.3f} {cached['first']:7.3f} {row['first']:7.2f}x "
            f"{row['again']:7.2f}x {row['cached']:7.2f}x {sk['accuracy']:7.4f} "
            f"{js['accuracy']:7.4f} {sk['n_iter']:5d} {js['n_iter']:5d} "
            f"{_gap_or_choice(sk, js):>13}",
            flush=True,
        )
    geo = {k: math.exp(np.mean(np.log(v))) for k, v in ratios.items() if v}
    print(
        "geometric mean (scikit-learn's time / jaxsoft's): "
        + ", ".join(f"{k} {v:.2f}x" for k, v in geo.items())
    )
    for case in ("mnist", "mnist_like"):
        if case in cases:
            engine_figures(case, args.mnist_dir)


if __name__ == "__main__":
    main()
