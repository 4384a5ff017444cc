"""Tests of `jaxsoft.probe`: scikit-learn as the independent reference.

All problems are small (a few hundred rows, 5 features, 6 classes, 3
strengths) and share shapes, so that the compiled functions are reused.
"""

from __future__ import annotations

import argparse
import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import objective64
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

import jaxsoft as js
from jaxsoft import probe
from jaxsoft.cli import probe as command
from jaxsoft.exact import inputs, solver
from jaxsoft.probe.sweep import _fold_ids

D, Q = 5, 6
L2 = [1e-3, 1e-2, 3.0]  # 3.0 underfits: the choice is clear


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes with uneven feature scales and non-zero offsets."""
    world = np.random.default_rng(0)
    means = world.normal(size=(Q, D)) * 1.2
    scales = 10.0 ** world.uniform(-0.5, 0.5, D)
    offsets = world.normal(0.0, 2.0, D)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, Q, n).astype(np.int32)
    x = (means[y] + rng.normal(size=(n, D))) * scales + offsets
    return x.astype(np.float32), y


TRAIN, VAL, TEST = make_split(300, 1), make_split(200, 2), make_split(100, 3)


def sklearn_head(x, y, l2: float) -> tuple[np.ndarray, np.ndarray]:
    model = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=10_000)
    model.fit(np.asarray(x, np.float64), y)
    return model.coef_.T, model.intercept_


def accuracy(W, b, x, y) -> float:
    return float(np.mean(np.argmax(np.asarray(x) @ W + b, axis=1) == y))


def choose(acc: np.ndarray, l2: list[float]) -> int:
    tied = np.flatnonzero(acc == acc.max())
    return int(tied[np.argmax(np.asarray(l2)[tied])])


@pytest.fixture(scope="module")
def result() -> probe.SweepResult:
    return probe.sweep(*TRAIN, L2, x_val=VAL[0], y_val=VAL[1], chunk_rows=128)


@pytest.fixture(scope="module")
def reference() -> list[tuple[np.ndarray, np.ndarray]]:
    return [sklearn_head(*TRAIN, l2) for l2 in L2]


def test_heads_reach_sklearn_objective(result, reference):
    assert result.heads.W.shape == (3, D, Q) and result.heads.b.shape == (3, Q)
    assert result.converged.all() and (result.iterations > 0).all()
    for h, l2 in enumerate(L2):
        ours = objective64(result.heads.W[h], result.heads.b[h], *TRAIN, l2)
        theirs = objective64(*reference[h], *TRAIN, l2)
        assert ours == pytest.approx(theirs, rel=1e-4), (l2, ours, theirs)
        assert result.objective[h] == pytest.approx(ours, rel=1e-5)


def test_choice_matches_sklearn(result, reference):
    sk_val = np.array([accuracy(W, b, *VAL) for W, b in reference])
    np.testing.assert_allclose(result.val_accuracy, sk_val, atol=1 / len(VAL[1]))
    assert result.best == choose(sk_val, L2) == choose(result.val_accuracy, L2)
    np.testing.assert_array_equal(result.params.W, result.heads.W[result.best])
    assert result.selection == "validation" and result.fold_accuracy is None


def _top5_64(W, b, x, y) -> float:
    """Float64 fraction of rows whose label is among the 5 largest logits."""
    o = np.asarray(x, np.float64) @ np.asarray(W, np.float64) + np.asarray(b)
    return float(np.mean((np.argsort(-o, axis=1)[:, :5] == y[:, None]).any(1)))


def test_train_and_val_scores_match_numpy(result):
    W, b = np.asarray(result.heads.W), np.asarray(result.heads.b)
    heads = range(len(L2))
    np.testing.assert_allclose(
        result.train_accuracy, [accuracy(W[h], b[h], *TRAIN) for h in heads], atol=1e-6
    )
    np.testing.assert_allclose(
        result.train_top5, [_top5_64(W[h], b[h], *TRAIN) for h in heads], atol=1e-6
    )
    np.testing.assert_allclose(
        result.val_top5, [_top5_64(W[h], b[h], *VAL) for h in heads], atol=1e-6
    )
    assert result.train_top5.min() < 1  # the underfit head makes top-5 informative


def test_ties_go_to_the_larger_l2():
    from jaxsoft.probe.sweep import choose as probe_choose

    assert probe_choose(np.array([0.5, 0.7, 0.7, 0.1]), np.array([1, 2, 3, 4])) == 2
    assert probe_choose(np.array([0.7, 0.7]), np.array([5.0, 1.0])) == 0


def test_streamed_equals_in_memory(result):
    streamed = probe.sweep(
        *TRAIN, L2, x_val=VAL[0], y_val=VAL[1], chunk_rows=128, max_device_bytes=0
    )
    np.testing.assert_array_equal(streamed.iterations, result.iterations)
    np.testing.assert_allclose(streamed.heads.W, result.heads.W, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(streamed.objective, result.objective, rtol=1e-7)
    assert streamed.best == result.best


def test_bf16_and_memmap_features(tmp_path, result):
    x_bf16 = TRAIN[0].astype(jnp.bfloat16)
    x_rounded = x_bf16.astype(np.float32)
    np.save(tmp_path / "x.npy", x_rounded)
    np.save(tmp_path / "y.npy", TRAIN[1])
    x_map, y_map = probe.load_features((tmp_path / "x.npy", tmp_path / "y.npy"))
    assert isinstance(x_map, np.memmap)
    kw = dict(x_val=VAL[0], y_val=VAL[1], chunk_rows=128)
    from_bf16 = probe.sweep(x_bf16, TRAIN[1], L2, **kw)
    from_map = probe.sweep(x_map, y_map, L2, max_device_bytes=0, **kw)
    # Two float32 solves of the same rows by different programs (centred in
    # the pass, or streamed pre-centred): the same optimum to float32's
    # objective, and weights as close as float32 stopping leaves them (5e-6
    # relative, measured, with the moments from the device or from NumPy).
    np.testing.assert_allclose(from_bf16.objective, from_map.objective, rtol=1e-6)
    np.testing.assert_allclose(
        from_bf16.heads.W, from_map.heads.W, rtol=2e-5, atol=1e-7
    )
    np.testing.assert_allclose(from_map.objective, result.objective, rtol=1e-2)


def test_npz_loading(tmp_path):
    np.savez(tmp_path / "train.npz", x=TRAIN[0], y=TRAIN[1])
    x, y = probe.load_features(tmp_path / "train.npz")
    np.testing.assert_array_equal(x, TRAIN[0])
    np.testing.assert_array_equal(y, TRAIN[1])


def test_memmap_is_validated_in_blocks(tmp_path, monkeypatch):
    x = TRAIN[0].copy()
    x[250, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", TRAIN[1])
    monkeypatch.setattr(inputs, "_BLOCK_BYTES", 100 * D * 4)
    x_map, y_map = probe.load_features((tmp_path / "x.npy", tmp_path / "y.npy"))
    with pytest.raises(probe.ProbeInputError, match=r"x_train\[200:300\].*index 50"):
        probe.sweep(x_map, y_map, L2)


def test_cross_validation_matches_sklearn(result):
    res = probe.sweep(*TRAIN, L2, folds=3, chunk_rows=128)
    assert res.selection == "3-fold cross-validation"
    assert res.fold_accuracy.shape == (3, 3)
    # The heads are fitted on the whole training split, as with a val split.
    np.testing.assert_allclose(res.objective, result.objective, rtol=1e-5)
    fold = _fold_ids(TRAIN[1], 3, 0)
    expected = np.zeros((3, 3))
    for f in range(3):
        keep = fold != f
        for h, l2 in enumerate(L2):
            W, b = sklearn_head(TRAIN[0][keep], TRAIN[1][keep], l2)
            expected[f, h] = accuracy(W, b, TRAIN[0][~keep], TRAIN[1][~keep])
    np.testing.assert_allclose(res.fold_accuracy, expected, atol=1.5 / 100)
    sizes = np.bincount(fold)
    np.testing.assert_allclose(res.val_accuracy, sizes @ res.fold_accuracy / 300)
    assert res.best == choose(sizes @ expected, L2)


def test_refit_on_train_and_val(result):
    res = probe.sweep(*TRAIN, L2, x_val=VAL[0], y_val=VAL[1], refit=True)
    both_x = np.concatenate([TRAIN[0], VAL[0]])
    both_y = np.concatenate([TRAIN[1], VAL[1]])
    l2 = L2[res.best]
    ours = objective64(res.params.W, res.params.b, both_x, both_y, l2)
    theirs = objective64(*sklearn_head(both_x, both_y, l2), both_x, both_y, l2)
    assert ours <= theirs * (1 + 1e-4)
    assert res.refit_objective == pytest.approx(ours, rel=1e-5)
    np.testing.assert_allclose(res.heads.W, result.heads.W, rtol=1e-2, atol=1e-3)
    assert not np.allclose(res.params.W, res.heads.W[res.best])


def test_polish_reaches_the_tighter_gradient_in_float64():
    """`solve(polish=)`: the raw gradient, recomputed in NumPy float64 at the
    result, is within the tighter gtol; ``converged`` is the first rule's."""
    from jax.sharding import Mesh

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 150)
    x = rng.normal(size=(150, 5)) + 2.0 * np.eye(3, 5)[y]
    w = rng.uniform(0.5, 2.0, 150)
    l2 = np.array([1e-4, 1e-2])
    kw = dict(sample_weight=w, rtol=0.0, gtol=1e-3, max_iter=500, polish=(1e-10, 200))
    with jax.enable_x64(True):
        sol = probe.solve(x, y, l2, **kw)
        one_device = Mesh(np.array(jax.devices()[:1]), ("data",))
        one = probe.solve(x, y, l2, mesh=one_device, **kw)
    assert sol.params.W.dtype == np.float64 and bool(sol.converged.all())
    for i, strength in enumerate(l2):
        W, b = sol.params.W[0, i], sol.params.b[0, i]
        z = x @ W + b
        p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
        r = w[:, None] * (p - np.eye(3)[y]) / w.sum()
        grad = np.concatenate([(x.T @ r + strength * W).ravel(), r.sum(0)])
        assert np.abs(grad).max() <= 2e-10, np.abs(grad).max()
    assert sol.iterations.max() <= 500
    np.testing.assert_allclose(sol.objective, one.objective, rtol=1e-12)


def test_progress_is_reported():
    seen = []
    res = probe.sweep(*TRAIN, L2, x_val=VAL[0], y_val=VAL[1], progress=seen.append)
    assert len(seen) > 1 and all(p.total == 3 for p in seen)
    # After each call of the device loop, at most PASSES_PER_CALL passes apart.
    counts = np.diff([0] + [p.passes for p in seen])
    assert counts.min() >= 1 and counts.max() <= solver.PASSES_PER_CALL
    # A head runs in every pass until it stops: after p passes, the heads
    # still running are those that took more than p passes.
    running = [int(np.sum(res.passes > p.passes)) for p in seen]
    assert [p.running for p in seen] == running
    assert seen[-1].running == 0 and seen[-1].passes == res.passes.max()
    np.testing.assert_array_equal(seen[-1].iterations, res.iterations)


def test_score_matches_sklearn_metrics(result):
    top1, top5 = probe.score(result.heads, *TEST)
    for h in range(3):
        W, b = np.asarray(result.heads.W[h]), np.asarray(result.heads.b[h])
        assert top1[h] == pytest.approx(accuracy(W, b, *TEST))
        ranks = np.argsort(-(TEST[0] @ W + b), axis=1)[:, :5]
        assert top5[h] == pytest.approx(np.mean((ranks == TEST[1][:, None]).any(1)))


BAD_SWEEPS = {
    "empty l2": (dict(l2=[]), "at least one strength"),
    "negative l2": (dict(l2=[1e-3, -1.0]), "> 0"),
    "nan l2": (dict(l2=[float("nan")]), "> 0"),
    "val label out of range": (
        dict(y_val=np.full(200, Q, np.int32)),
        r"label 6 outside \[0, 6\)",
    ),
    "val width": (dict(x_val=VAL[0][:, :3]), "3 features but x_train has 5"),
    "val without labels": (dict(y_val=None), "both x_val and y_val"),
    "nan feature": (dict(x_train=np.full((300, D), np.nan, np.float32)), "NaN"),
    "negative label": (dict(y_train=-TRAIN[1] - 1), "outside"),
    "float labels": (dict(y_train=TRAIN[1].astype(float)), "integer"),
    "one fold": (dict(x_val=None, y_val=None, folds=1), "folds"),
}


@pytest.mark.parametrize("case", list(BAD_SWEEPS))
def test_bad_inputs_raise_one_line(case):
    change, message = BAD_SWEEPS[case]
    kw = dict(x_train=TRAIN[0], y_train=TRAIN[1], l2=L2, x_val=VAL[0], y_val=VAL[1])
    kw.update(change)
    with pytest.raises(probe.ProbeInputError, match=message) as info:
        probe.sweep(kw.pop("x_train"), kw.pop("y_train"), **kw)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_bad_files_raise_one_line(tmp_path):
    np.savez(tmp_path / "no_y.npz", x=TRAIN[0])
    np.save(tmp_path / "x.npy", TRAIN[0])
    (tmp_path / "junk.npz").write_text("not a zip")
    cases = {
        str(tmp_path / "missing.npz"): "no such file",
        str(tmp_path / "no_y.npz"): "no array named 'y'",
        str(tmp_path / "junk.npz"): r"is not an \.npz or \.npy archive",
        str(tmp_path / "x.npy"): r"pair \(x.npy, y.npy\)",
    }
    for source, message in cases.items():
        with pytest.raises(probe.ProbeInputError, match=message) as info:
            probe.load_features(source)
        assert "\n" not in str(info.value) and "pickle" not in str(info.value)


def _args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["probe", "--out", str(tmp_path / "out"), *extra])


@pytest.fixture
def files(tmp_path):
    for name, (x, y) in {"train": TRAIN, "val": VAL, "test": TEST}.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    return tmp_path


def test_command_end_to_end(files, capsys, reference):
    l2 = [str(v) for v in L2]
    args = _args(files, "--train", str(files / "train.npz"), "--val",
                 str(files / "val.npz"), "--test", str(files / "test.npz"),
                 "--l2", *l2, "--quiet")  # fmt: skip
    assert command.run(args) == 0
    out = files / "out"
    with open(out / "heads.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["l2"]) for r in rows] == L2
    assert {"test_accuracy", "test_top5", "val_top5", "converged"} <= set(rows[0])
    summary = json.loads((out / "heads.json").read_text())
    head = np.load(out / "head.npz")
    assert head["W"].shape == (D, Q) and head["b"].shape == (Q,)
    assert float(head["l2"]) == L2[summary["best"]]
    W, b = head["W"], head["b"]
    # Every score of the chosen head's row, recomputed from the saved head.
    best = rows[summary["best"]]
    assert [r["chosen"] for r in rows] == [
        str(h == summary["best"]) for h in range(len(L2))
    ]
    assert float(best["objective"]) == pytest.approx(
        objective64(W, b, *TRAIN, L2[summary["best"]]), rel=1e-5
    )
    for split, (x, y) in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        assert float(best[f"{split}_accuracy"]) == pytest.approx(
            accuracy(W, b, x, y), abs=1e-6
        )
        assert float(best[f"{split}_top5"]) == pytest.approx(
            _top5_64(W, b, x, y), abs=1e-6
        )
    # Every row's scores vs scikit-learn's heads, up to one example's flip
    # (the underfit head's top-5 differs between the splits).
    for row, (W, b) in zip(rows, reference, strict=True):
        for split, (x, y) in (("train", TRAIN), ("val", VAL), ("test", TEST)):
            tolerance = 1 / len(y) + 1e-9
            assert float(row[f"{split}_accuracy"]) == pytest.approx(
                accuracy(W, b, x, y), abs=tolerance
            )
            assert float(row[f"{split}_top5"]) == pytest.approx(
                _top5_64(W, b, x, y), abs=tolerance
            )
    assert (out / "val_accuracy.png").stat().st_size > 0
    assert "chosen l2" in capsys.readouterr().out


def test_command_npy_pair_and_cv(files):
    np.save(files / "x.npy", TRAIN[0])
    np.save(files / "y.npy", TRAIN[1])
    args = _args(files, "--train", str(files / "x.npy"), str(files / "y.npy"),
                 "--l2", *map(str, L2), "--folds", "3", "--quiet")  # fmt: skip
    assert command.run(args) == 0
    summary = json.loads((files / "out" / "heads.json").read_text())
    assert summary["selection"] == "3-fold cross-validation"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--train", "missing.npz"], "no such file"),
        (["--train", "no_y.npz"], "no array named 'y'"),
        (["--train", "train.npz", "--test", "narrow.npz"], "features but x_train"),
        (["--train", "train.npz", "--test", "bad_y.npz"], "outside"),
        (["--train", "train.npz", "--l2"], "at least one strength"),
        (["--train", "train.npz", "--l2", "-1"], "> 0"),
        (["--train", "a.npz", "b.npz", "c.npz"], "two .npy files"),
    ],
)
def test_command_bad_inputs(files, flags, message):
    np.savez(files / "no_y.npz", x=TRAIN[0])
    np.savez(files / "narrow.npz", x=TEST[0][:, :2], y=TEST[1])
    np.savez(files / "bad_y.npz", x=TEST[0], y=TEST[1] + Q)
    flags = [str(files / f) if f.endswith(".npz") else f for f in flags]
    with pytest.raises(probe.ProbeInputError, match=message) as info:
        command.run(_args(files, *flags, "--quiet"))
    assert "\n" not in str(info.value)


# ------------------------------------------------ sample weights and float64


def _weighted_problem():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 240)
    scales = rng.uniform(0.2, 5.0, 6)
    x = (rng.normal(size=(240, 6)) + np.eye(4, 6)[y] * 1.5) * scales + 3.0
    return x, y, rng.integers(0, 4, 240).astype(np.float64)


def test_weighted_engine_in_float64_reaches_scikit_learns_optimum():
    """Under x64, float64 input: solve, solve_lbfgs and sweep give float64
    results at scikit-learn's weighted optimum (C = 1 / (l2 sum w))."""
    from jaxsoft import train

    x, y, w = _weighted_problem()
    l2 = 1e-2
    sk = LogisticRegression(C=1 / (l2 * w.sum()), tol=1e-12, max_iter=10_000)
    sk.fit(x, y, sample_weight=w)
    target = objective64(sk.coef_.T, sk.intercept_, x, y, l2, w=w)
    with jax.enable_x64(True):
        sol = probe.solve(x, y, [l2], sample_weight=w, rtol=0.0, gtol=1e-10)
        zeros = js.Params(jnp.zeros((6, 4), jnp.float64), jnp.zeros(4, jnp.float64))
        exact, info = train.solve_lbfgs(zeros, x, y, l2=l2, tol=1e-9, sample_weight=w)
        res = probe.sweep(x, y, [l2], x_val=x, y_val=y, sample_weight=w, rtol=1e-14)
        loss = js.loss(exact, x, y, l2, sample_weight=w)
    assert sol.params.W.dtype == exact.W.dtype == res.params.W.dtype == np.float64
    assert loss.dtype == jnp.float64 and info.converged
    for W, b in (
        (sol.params.W[0, 0], sol.params.b[0, 0]),
        (exact.W, exact.b),
        (res.params.W, res.params.b),
    ):
        value = objective64(W, b, x, y, l2, w=w)
        assert value == pytest.approx(target, rel=1e-9)
    assert float(loss) == pytest.approx(target, rel=1e-9)


def test_integer_weights_equal_repeated_rows_and_zero_weights_dropped_rows():
    x, y, w = _weighted_problem()
    repeated = np.repeat(np.arange(len(y)), w.astype(int))
    with jax.enable_x64(True):
        weighted = probe.solve(x, y, [1e-2], sample_weight=w, rtol=0, gtol=1e-11)
        rows = probe.solve(x[repeated], y[repeated], [1e-2], rtol=0, gtol=1e-11)
        scaled = probe.solve(x, y, [1e-2], sample_weight=7 * w, rtol=0, gtol=1e-11)
    np.testing.assert_allclose(weighted.params.W, rows.params.W, atol=1e-7)
    np.testing.assert_allclose(weighted.params.b, rows.params.b, atol=1e-7)
    np.testing.assert_allclose(weighted.params.W, scaled.params.W, atol=1e-7)


def test_weights_change_the_optimum_and_bad_weights_are_refused():
    """A solver that ignored the weights would land on the unweighted optimum."""
    x, y, w = _weighted_problem()
    weighted = probe.solve(x.astype(np.float32), y, [1e-2], sample_weight=w)
    plain = probe.solve(x.astype(np.float32), y, [1e-2])
    W, b = weighted.params.W[0, 0], weighted.params.b[0, 0]
    Wp, bp = plain.params.W[0, 0], plain.params.b[0, 0]
    at_weighted = objective64(W, b, x, y, 1e-2, w=w)
    assert at_weighted < objective64(Wp, bp, x, y, 1e-2, w=w) - 1e-3
    for bad, match in (
        (-w, "negative"),
        (np.full(len(y), np.nan), "NaN"),
        (w[:-1], "shape"),
        (np.zeros(len(y)), "0 for every"),
    ):
        with pytest.raises(probe.ProbeInputError, match=match):
            probe.solve(x, y, [1e-2], sample_weight=bad)


def test_sweeps_validation_seam_takes_named_typed_arguments():
    """`sweep`'s inputs are checked by one call with named, typed arguments
    (no positional list to get out of order)."""
    import inspect

    from jaxsoft.probe.sweep import _validated

    parameters = inspect.signature(_validated).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)), np.arange(12) % 3
    setup = _validated(
        x=x,
        y=y,
        x_val=x[:4],
        y_val=y[:4],
        num_classes=None,
        max_device_bytes=1 << 20,
        sample_weight=None,
        val_weight=np.ones(4),
        mesh=None,
    )
    assert (setup.q, setup.max_device_bytes, setup.y.dtype) == (3, 1 << 20, np.int32)
    assert setup.w is None and setup.w_val.tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="give both x_val and y_val"):
        _validated(
            x=x,
            y=y,
            x_val=x[:4],
            y_val=None,
            num_classes=3,
            max_device_bytes=None,
            sample_weight=None,
            val_weight=None,
            mesh=None,
        )
