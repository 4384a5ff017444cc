"""Sample weights in `fit` and `evaluate`, against independent references.

The references are scikit-learn's weighted ``LogisticRegression`` (the
weighted optimum), repeated and dropped rows (what integer and zero weights
mean), and NumPy float64 (the weighted metrics).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_python
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

import jaxsoft as js
from jaxsoft.train import evaluate, fit

L2 = 1e-2


def _data(n: int = 240, d: int = 4, q: int = 3, seed: int = 0):
    """Overlapping Gaussian classes, and weights that move the optimum: rows
    with a large first feature weigh up to 20 times the others."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, q, size=n)
    means = rng.normal(scale=1.0, size=(q, d))
    x = means[y] + rng.normal(size=(n, d))
    w = np.where(x[:, 0] > 0.5, 20.0, 1.0) * rng.uniform(0.5, 1.5, size=n)
    return x, y.astype(np.int32), w


def _sklearn_proba(x, y, l2, w=None) -> np.ndarray:
    """scikit-learn's optimum of sum w CE / sum w + (l2/2)||W||^2, as the
    predicted probabilities on x (unique, unlike the intercepts)."""
    total = len(y) if w is None else float(np.sum(w))
    model = LogisticRegression(C=1.0 / (l2 * total), tol=1e-12, max_iter=10_000)
    model.fit(x, y, sample_weight=w)
    return model.predict_proba(x)


def _proba(params: js.Params, x: np.ndarray) -> np.ndarray:
    logits = x @ np.asarray(params.W, np.float64) + np.asarray(params.b, np.float64)
    return softmax(logits, axis=1)


def _full_batch_fit(x, y, w, *, epochs: int, learning_rate: float, **kwargs):
    dtype = jnp.float64 if x.dtype == np.float64 else jnp.float32
    params = js.init_params(jax.random.key(0), x.shape[1], 3, scale=0.0, dtype=dtype)
    return fit(
        params,
        x,
        y,
        key=jax.random.key(1),
        optimizer="adam",
        learning_rate=learning_rate,
        schedule="constant",
        l2=L2,
        batch_size=len(y),
        epochs=epochs,
        sample_weight=w,
        **kwargs,
    )


def test_weighted_full_batch_fit_reaches_scikit_learns_weighted_optimum():
    x, y, w = _data()
    weighted = _sklearn_proba(x, y, L2, w)
    unweighted = _sklearn_proba(x, y, L2)
    # The weights matter: ignoring them would land this far from the optimum.
    assert np.max(np.abs(weighted - unweighted)) > 0.05
    result = _full_batch_fit(
        x.astype(np.float32), y, w, epochs=3000, learning_rate=0.02
    )
    got = _proba(result.params, x)
    assert np.max(np.abs(got - weighted)) < 2e-3
    assert np.max(np.abs(got - unweighted)) > 0.04


def test_weighted_minibatch_fit_goes_to_the_weighted_optimum():
    """Minibatches (global normalisation): Adam with a decaying rate ends near
    the weighted optimum, far nearer it than the unweighted one."""
    x, y, w = _data()
    weighted = _sklearn_proba(x, y, L2, w)
    unweighted = _sklearn_proba(x, y, L2)
    params = js.init_params(jax.random.key(0), x.shape[1], 3, scale=0.0)
    result = fit(
        params,
        x.astype(np.float32),
        y,
        key=jax.random.key(2),
        optimizer="adam",
        learning_rate=0.02,
        schedule="cosine",
        l2=L2,
        batch_size=24,
        epochs=300,
        sample_weight=w,
    )
    got = _proba(result.params, x)
    error = np.max(np.abs(got - weighted))
    assert error < 1e-2
    assert np.max(np.abs(got - unweighted)) > 4 * error


def test_integer_weights_equal_repeated_rows_in_a_full_batch_fit():
    x, y, _ = _data(n=60)
    counts = np.random.default_rng(3).integers(1, 4, size=len(y))
    with jax.enable_x64(True):
        weighted = _full_batch_fit(x, y, counts, epochs=30, learning_rate=0.05)
        repeated = _full_batch_fit(
            np.repeat(x, counts, axis=0),
            np.repeat(y, counts),
            None,
            epochs=30,
            learning_rate=0.05,
        )
        assert weighted.params.W.dtype == jnp.float64
        np.testing.assert_allclose(weighted.params.W, repeated.params.W, rtol=1e-9)
        np.testing.assert_allclose(weighted.params.b, repeated.params.b, atol=1e-12)
        np.testing.assert_allclose(
            [r.train_loss for r in weighted.history],
            [r.train_loss for r in repeated.history],
            rtol=1e-10,
        )


def test_zero_weights_equal_dropped_rows_in_fit():
    x, y, _ = _data(n=60)
    keep = np.arange(len(y)) % 3 != 0
    with jax.enable_x64(True):
        weighted = _full_batch_fit(
            x, y, keep.astype(np.float64), epochs=20, learning_rate=0.05
        )
        dropped = _full_batch_fit(x[keep], y[keep], None, epochs=20, learning_rate=0.05)
        np.testing.assert_allclose(weighted.params.W, dropped.params.W, rtol=1e-9)


def _numpy_evaluation(params: js.Params, x, y, w) -> dict:
    """The weighted metrics in NumPy float64, from their definitions."""
    logits = x @ np.asarray(params.W, np.float64) + np.asarray(params.b, np.float64)
    q = logits.shape[1]
    ce = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    predicted = logits.argmax(axis=1)
    correct = predicted == y
    higher = (logits > logits[np.arange(len(y)), y][:, None]).sum(axis=1)
    confusion = np.zeros((q, q))
    np.add.at(confusion, (y, predicted), w)
    probs = softmax(logits, axis=1)
    confidence = probs.max(axis=1)
    bins = np.clip((confidence * 15).astype(int), 0, 14)
    gaps = np.bincount(bins, w * (correct - confidence), minlength=15)
    total = w.sum()
    return {
        "loss": np.sum(w * ce) / total,
        "accuracy": np.sum(w * correct) / total,
        "top_k_accuracy": np.sum(w * (higher < 5)) / total,
        "calibration_error": np.sum(np.abs(gaps)) / total,
        "confusion": confusion,
        "per_class_accuracy": np.diag(confusion) / confusion.sum(axis=1),
    }


@pytest.mark.parametrize("chunk_size", [7, 16384])
def test_weighted_evaluate_matches_numpy_float64(chunk_size):
    rng = np.random.default_rng(4)
    n, d, q = 101, 5, 7
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, q, size=n).astype(np.int32)
    w = rng.uniform(0, 3, size=n) * (rng.random(n) > 0.2)
    params = js.Params(
        jnp.asarray(rng.normal(size=(d, q)), jnp.float32),
        jnp.asarray(rng.normal(size=q), jnp.float32),
    )
    got = evaluate(params, x, y, sample_weight=w, chunk_size=chunk_size)
    want = _numpy_evaluation(params, x.astype(np.float64), y, w)
    for name in ("loss", "accuracy", "top_k_accuracy", "calibration_error"):
        assert getattr(got, name) == pytest.approx(want[name], rel=1e-5), name
    np.testing.assert_allclose(got.confusion, want["confusion"], rtol=1e-5)
    np.testing.assert_allclose(
        got.per_class_accuracy, want["per_class_accuracy"], rtol=1e-5
    )
    unweighted = evaluate(params, x, y, chunk_size=chunk_size)
    assert abs(unweighted.loss - got.loss) > 1e-3  # the weights were used


def test_evaluate_with_integer_weights_equals_repeated_rows_and_zero_dropped():
    x, y, _ = _data(n=80)
    counts = np.random.default_rng(5).integers(0, 4, size=len(y))
    with jax.enable_x64(True):
        params = js.Params(
            jnp.asarray(np.random.default_rng(6).normal(size=(4, 3))),
            jnp.zeros(3, jnp.float64),
        )
        weighted = evaluate(params, x, y, sample_weight=counts)
        repeated = evaluate(params, np.repeat(x, counts, axis=0), np.repeat(y, counts))
        for name in ("loss", "accuracy", "calibration_error"):
            assert getattr(weighted, name) == pytest.approx(
                getattr(repeated, name), rel=1e-12
            ), name
        np.testing.assert_array_equal(weighted.confusion, repeated.confusion)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.ones(5), "must have shape (6,)"),
        (np.array([1, 1, -2, 1, 1, 1.0]), "negative weight (-2.0 at index 2)"),
        (np.array([1, np.nan, 1, 1, 1, 1.0]), "NaN or infinite"),
        (np.zeros(6), "is 0 for every example"),
    ],
)
def test_bad_weights_are_refused_naming_them(bad, message):
    x, y, _ = _data(n=6)
    params = js.init_params(jax.random.key(0), 4, 3)
    with pytest.raises(ValueError, match="sample_weight of the train split") as info:
        fit(
            params,
            x,
            y,
            key=jax.random.key(0),
            batch_size=2,
            epochs=1,
            sample_weight=bad,
        )
    assert message in str(info.value)
    with pytest.raises(ValueError, match="sample_weight of the eval split") as info:
        evaluate(params, x, y, sample_weight=bad)
    assert message in str(info.value)
    with pytest.raises(TypeError, match="sample_weight"):
        evaluate(params, x, y, sample_weight=np.array(["a"] * 6))


def test_float64_fit_and_evaluate_under_x64():
    x, y, w = _data(n=48)
    with jax.enable_x64(True):
        params = js.Params(jnp.zeros((4, 3), jnp.float64), jnp.zeros(3, jnp.float64))
        result = fit(
            params,
            x,
            y,
            key=jax.random.key(0),
            batch_size=16,
            epochs=2,
            sample_weight=w,
            x_test=x,
            y_test=y,
        )
        assert result.params.W.dtype == jnp.float64
        assert result.params.b.dtype == jnp.float64
        assert np.isfinite(result.history[-1].train_loss)
        got = evaluate(result.params, x, y, sample_weight=w)
        want = _numpy_evaluation(result.params, x, y, w)
        assert got.loss == pytest.approx(want["loss"], rel=1e-12)
        assert got.accuracy == pytest.approx(want["accuracy"], rel=1e-12)


MESH_SCRIPT = """
import json, sys
import jax, numpy as np
import jaxsoft as js
from jaxsoft.train import evaluate, fit
sys.path.insert(0, "tests")
from test_weighted_fit import _data
assert jax.device_count() == 8
one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
x, y, w = _data(n=150)  # 150 rows: padded on 8 devices
x = x.astype(np.float32)
params = js.init_params(jax.random.key(0), 4, 3)
out = {}
for name, mesh in (("eight", None), ("one", one)):
    r = fit(params, x, y, key=jax.random.key(1), batch_size=16, epochs=3,
            sample_weight=w, mesh=mesh)
    e = evaluate(r.params, x, y, sample_weight=w, chunk_size=8, mesh=mesh)
    out[name] = {"W": np.asarray(r.params.W).tolist(), "loss": e.loss,
                 "accuracy": e.accuracy, "train": r.history[-1].train_loss}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_weighted_fit_and_evaluate_on_8_devices_equal_1_device():
    result = run_python(
        "-c",
        MESH_SCRIPT,
        env={
            "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
            "JAX_PLATFORMS": "cpu",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    eight, one = out["eight"], out["one"]
    np.testing.assert_allclose(eight["W"], one["W"], rtol=1e-4, atol=1e-6)
    assert eight["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert eight["accuracy"] == pytest.approx(one["accuracy"], rel=1e-6)
    assert eight["train"] == pytest.approx(one["train"], rel=1e-5)
