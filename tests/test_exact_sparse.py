"""Sparse rows in jaxsoft.exact: every scipy.sparse format gives the dense
fit, with weights, L1 heads, float32, folds and 8 devices; scikit-learn's
optimum on hashed text; a large hashed matrix fits without going dense."""

from __future__ import annotations

import argparse
import json
import textwrap
import warnings

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import objective64
from conftest import REPO_ROOT, run_python
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from jaxsoft import model, probe
from jaxsoft.cli import probe as command
from jaxsoft.exact import SolveInputError, solve


def _sparse_problem(n=600, d=200, q=4, seed=0):
    """Rows with a few non-zeros each, one of them marking the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, q, n)
    noise = sp.random(n, d, density=0.03, format="csr", random_state=seed)
    signal = sp.csr_matrix((np.full(n, 0.7), (np.arange(n), y)), shape=(n, d))
    return (noise + signal).tocsr(), y, rng.uniform(0.5, 2.0, n)


FORMATS = ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array", "coo_array"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_dense_fit(fmt):
    X, y, w = _sparse_problem()
    kwargs = dict(sample_weight=w, rtol=0.0, gtol=1e-10, max_iter=1000)
    l2, l1 = [1e-3, 1e-2, 0.0], [0.0, 1e-3, 3e-3]
    with jax.enable_x64(True):
        dense = solve(X.toarray(), y, l2, l1=l1, **kwargs)
        sparse = solve(getattr(sp, fmt)(X), y, l2, l1=l1, **kwargs)
    assert bool(sparse.converged.all())
    np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-12)
    np.testing.assert_allclose(sparse.params.W, dense.params.W, atol=1e-7)
    np.testing.assert_allclose(sparse.params.b, dense.params.b, atol=1e-7)
    np.testing.assert_array_equal(sparse.params.W == 0, dense.params.W == 0)


def test_empty_columns_are_dropped_and_weigh_zero():
    """Columns that store no entry are left out of the solve: their weights
    are exactly 0 (the optimum), even from a start that is not, and the
    other weights are those of the fit without them."""
    X, y, w = _sparse_problem()
    d, q = X.shape[1] + 3, 4
    wide = sp.hstack([X[:, :50], sp.csr_matrix((len(y), 2)), X[:, 50:]]).tocsr()
    wide = sp.hstack([wide, sp.csr_matrix((len(y), 1))]).tocsr()
    used = np.ones(d, bool)
    used[[50, 51, d - 1]] = False
    kwargs = dict(sample_weight=w, rtol=0.0, gtol=1e-10, max_iter=1000)
    start = model.Params(np.full((d, q), 0.3), np.zeros(q))
    l2, l1 = [1e-3, 0.0], [0.0, 1e-3]
    with jax.enable_x64(True):
        narrow = solve(X, y, l2, l1=l1, **kwargs)
        full = solve(wide, y, l2, l1=l1, **kwargs)
        started = solve(wide, y, l2, l1=l1, start=start, **kwargs)
    for sol in (full, started):
        assert sol.params.W.shape == (1, 2, d, q)
        assert bool(sol.converged.all())
        np.testing.assert_array_equal(sol.params.W[:, :, ~used], 0.0)
        np.testing.assert_allclose(sol.objective, narrow.objective, rtol=1e-12)
        np.testing.assert_allclose(sol.params.W[:, :, used], narrow.params.W, atol=1e-6)


def test_batched_strengths_go_on_from_the_stronger_ones(monkeypatch):
    """Heads solved a strength a batch start from the final states of the
    stronger penalty's batch (`solver.carry`: no pass to evaluate the start)
    and reach the optimum of every head solved together."""
    from jaxsoft.exact import engine

    X, y, w = _sparse_problem(seed=2)
    sets = np.stack([np.arange(len(y)) % 3 != k for k in range(3)])
    kwargs = dict(sample_weight=w, row_sets=sets, rtol=0.0, gtol=1e-10)
    l2 = [1e-4, 1e-2, 1e-3]
    with jax.enable_x64(True):
        together = solve(X, y, l2, **kwargs)
        carried: list[int] = []
        carry = engine.carry

        def counted(rows, basis, state, *args):
            carried.append(state.theta.shape[0])
            return carry(rows, basis, state, *args)

        monkeypatch.setattr(engine, "heads_per_batch", lambda *args: 3)
        monkeypatch.setattr(engine, "carry", counted)
        batched = solve(X, y, l2, **kwargs)
    assert carried == [3, 3]
    assert bool(batched.converged.all())
    np.testing.assert_allclose(batched.objective, together.objective, rtol=1e-12)
    np.testing.assert_allclose(batched.params.W, together.params.W, atol=1e-6)
    np.testing.assert_allclose(batched.params.b, together.params.b, atol=1e-6)


def test_float32_and_folds_match_dense():
    X, y, w = _sparse_problem(seed=1)
    X = X.astype(np.float32)
    sets = np.stack([np.arange(len(y)) % 3 != k for k in range(3)])
    kwargs = dict(sample_weight=w, row_sets=sets, rtol=0.0, gtol=1e-5)
    dense = solve(X.toarray(), y, [1e-3, 1e-1], **kwargs)
    sparse = solve(X, y, [1e-3, 1e-1], **kwargs)
    assert sparse.params.W.dtype == np.float32
    np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-5)


def test_hashed_text_reaches_scikit_learns_optimum():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(400)])
    y = rng.integers(0, 3, 300)
    docs = [
        " ".join(rng.choice(words[: 100 + 100 * c], 20)) + f" topic{c}" * 2 for c in y
    ]
    counts = HashingVectorizer(n_features=2**12, alternate_sign=False).transform(docs)
    X = TfidfTransformer().fit_transform(counts)
    n, C = len(y), 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkLogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
    with jax.enable_x64(True):
        sol = solve(X, y, [1.0 / (C * n)], rtol=0.0, gtol=1e-10, max_iter=2000)

    W, b = sol.params.W[0, 0], sol.params.b[0, 0]
    ours = objective64(W, b, X, y, 1.0 / (C * n))
    theirs = objective64(sk.coef_.T, sk.intercept_, X, y, 1.0 / (C * n))
    assert abs(ours - theirs) <= 1e-9 * theirs
    np.testing.assert_allclose(X @ W + b - (X @ W + b).mean(1, keepdims=True),
                               sk.decision_function(X), atol=1e-5)  # fmt: skip


def test_bad_sparse_input_is_refused():
    X, y, _ = _sparse_problem()
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(SolveInputError, match="NaN or infinite"):
        solve(bad, y, [1e-3])
    with pytest.raises(SolveInputError, match="different lengths"):
        solve(X, y[:-1], [1e-3])


_EIGHT_DEVICES = textwrap.dedent(
    """
    import jax, numpy as np
    from test_exact_sparse import _sparse_problem
    from jaxsoft.exact import solve
    assert jax.device_count() == 8
    X, y, w = _sparse_problem(n=1001)
    one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    kw = dict(sample_weight=w, rtol=0.0, gtol=1e-10, max_iter=1000)
    with jax.enable_x64(True):
        a = solve(X, y, [1e-3, 0.0], l1=[0.0, 1e-3], mesh=one, **kw)
        b = solve(X, y, [1e-3, 0.0], l1=[0.0, 1e-3], **kw)
    np.testing.assert_allclose(b.objective, a.objective, rtol=1e-12)
    np.testing.assert_allclose(b.params.W, a.params.W, atol=1e-6)
    print("ok")
    """
)


def test_eight_devices_equal_one():
    result = run_python(
        "-c",
        _EIGHT_DEVICES,
        env={
            "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
            "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'tests'}",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


_LARGE = textwrap.dedent(
    """
    import resource, jax, numpy as np, scipy.sparse as sp
    from jaxsoft.exact import solve
    n, d, q = 60_000, 2**18, 20
    rng = np.random.default_rng(0)
    per_row = 60
    cols = rng.integers(0, d, n * per_row).astype(np.int32)
    y = rng.integers(0, q, n)
    cols[::per_row] = y  # one column marks the class
    indptr = np.arange(0, n * per_row + 1, per_row)
    X = sp.csr_array((rng.random(n * per_row), cols, indptr), shape=(n, d))
    with jax.enable_x64(True):
        sol = solve(X, y, [1.0 / n], rtol=0.0, gtol=1e-6, max_iter=4)
    assert sol.params.W.shape == (1, 1, d, q) and sol.iterations.max() == 4
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("peak", peak)
    """
)


@pytest.mark.slow
def test_a_large_hashed_matrix_fits_without_going_dense():
    """60,000 x 2^18 with 20 classes: 126 GB dense in float64; the whole
    process (JAX, the data, 5 million parameters and their L-BFGS memory)
    stays under 3 GiB."""
    result = run_python("-c", _LARGE, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split("peak")[-1])
    assert peak < 3 * 2**30, f"peak memory {peak / 2**30:.2f} GiB"


def test_probe_sweep_on_sparse_features_equals_dense():
    X, y, _ = _sparse_problem(n=900, seed=2)
    train, val = slice(0, 600), slice(600, 900)
    for split in ("validation", "folds"):
        if split == "validation":
            kw = dict(refit=True)
            sparse = probe.sweep(
                X[train], y[train], [1e-3, 1e-2], x_val=X[val], y_val=y[val], **kw
            )
            dense = probe.sweep(
                X[train].toarray(), y[train], [1e-3, 1e-2],
                x_val=X[val].toarray(), y_val=y[val], **kw,
            )  # fmt: skip
            assert sparse.refit_objective == pytest.approx(
                dense.refit_objective, rel=1e-5
            )
        else:
            sparse = probe.sweep(X[train], y[train], [1e-3, 1e-2])
            dense = probe.sweep(X[train].toarray(), y[train], [1e-3, 1e-2])
            np.testing.assert_allclose(sparse.fold_accuracy, dense.fold_accuracy)
        np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-5)
        np.testing.assert_allclose(sparse.val_accuracy, dense.val_accuracy)
        assert sparse.best == dense.best


def test_probe_command_reads_sparse_feature_files(tmp_path):
    X, y, _ = _sparse_problem(n=900, seed=3)
    files = {}
    for name, rows in {"train": slice(0, 600), "val": slice(600, 900)}.items():
        sp.save_npz(tmp_path / f"x_{name}.npz", sp.csr_matrix(X[rows]))
        np.save(tmp_path / f"y_{name}.npy", y[rows])
        files[name] = [str(tmp_path / f"x_{name}.npz"), str(tmp_path / f"y_{name}.npy")]
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["probe", "--train", *files["train"], "--val", *files["val"], "--quiet",
         "--l2", "1e-3", "1e-2", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert command.run(args) == 0
    heads = json.loads((tmp_path / "out" / "heads.json").read_text())["heads"]
    dense = probe.sweep(
        X[:600].toarray(), y[:600], [1e-3, 1e-2], x_val=X[600:].toarray(), y_val=y[600:]
    )
    np.testing.assert_allclose([h["val_accuracy"] for h in heads], dense.val_accuracy)


def test_a_damaged_sparse_file_is_named(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    np.save(tmp_path / "y.npy", np.zeros(3, np.int32))
    with pytest.raises(probe.ProbeInputError, match="sparse matrix"):
        probe.load_features((tmp_path / "x.npz", tmp_path / "y.npy"))
