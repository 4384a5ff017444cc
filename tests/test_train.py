"""Tests of jaxsoft.train: fit, evaluate, solve_lbfgs, validation."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _fake_data import blobs
from _helpers import softmax64

import jaxsoft as js
from jaxsoft import sharding, train
from jaxsoft.train import evaluation, minibatch


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, ...]:
    x, y = blobs(150, num_classes=3, num_features=16, seed=0)
    x_test, y_test = blobs(61, num_classes=3, num_features=16, seed=1)
    return x, y, x_test, y_test


def _params(d: int = 16, q: int = 3) -> js.Params:
    return js.init_params(jax.random.key(0), d, q)


def _same(a: js.Params, b: js.Params) -> bool:
    return all(
        np.array_equal(np.asarray(u), np.asarray(v))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# ------------------------------------------------------------------ fit


def test_fit_learns_and_records_history(data):
    x, y, x_test, y_test = data
    started = time.perf_counter()
    result = train.fit(
        _params(),
        x,
        y,
        key=jax.random.key(1),
        batch_size=16,
        epochs=4,
        learning_rate=0.05,
        x_test=x_test,
        y_test=y_test,
    )
    elapsed = time.perf_counter() - started
    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    assert result.state.epoch == 4
    first, last = result.history[0], result.history[-1]
    assert last.train_loss < first.train_loss
    assert last.test_accuracy >= 0.95
    assert all(r.seconds > 0 for r in result.history)
    assert sum(r.seconds for r in result.history) <= elapsed
    # The final epoch's test metrics, recomputed in float64 from the parameters.
    probs = softmax64(x_test, result.params.W, result.params.b)
    assert last.test_accuracy == pytest.approx(
        np.mean(probs.argmax(axis=1) == y_test), abs=1e-6
    )
    expected_loss = -np.mean(np.log(probs[np.arange(len(y_test)), y_test]))
    assert last.test_loss == pytest.approx(expected_loss, rel=1e-5)
    record = last.to_dict()
    assert set(record) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
    }
    assert train.EpochRecord.from_dict(record) == last


def test_train_metrics_of_every_epoch_match_numpy_when_params_stay_fixed(data):
    # With a zero learning rate the parameters never move, so each epoch's
    # mean minibatch train metrics are those of the starting parameters.
    x, y, x_test, y_test = data
    rng = np.random.default_rng(3)
    w, b = 0.3 * rng.normal(size=(16, 3)), rng.normal(size=3)
    start = js.Params(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    result = train.fit(
        start,
        x,
        y,
        key=jax.random.key(1),
        optimizer=optax.sgd(0.0),
        batch_size=50,
        epochs=2,
        x_test=x_test,
        y_test=y_test,
    )
    assert [r.epoch for r in result.history] == [1, 2]
    for split_x, split_y, acc, loss in (
        (x, y, "train_accuracy", "train_loss"),
        (x_test, y_test, "test_accuracy", "test_loss"),
    ):
        probs = softmax64(split_x, w, b)
        expected_acc = np.mean(probs.argmax(axis=1) == split_y)
        expected_loss = -np.mean(np.log(probs[np.arange(len(split_y)), split_y]))
        assert 0 < expected_acc < 1  # not a trivial 0 or 1
        for record in result.history:
            assert getattr(record, acc) == pytest.approx(expected_acc, abs=1e-6)
            assert getattr(record, loss) == pytest.approx(expected_loss, rel=1e-5)


def test_fit_without_test_data_records_none(data):
    x, y, _, _ = data
    result = train.fit(_params(), x, y, key=jax.random.key(1), batch_size=50, epochs=1)
    assert result.history[0].test_loss is None
    assert result.history[0].test_accuracy is None


def test_fit_is_reproducible_and_depends_on_the_key(data):
    x, y, _, _ = data
    kwargs = dict(batch_size=16, epochs=2, optimizer="sgd", learning_rate=0.5)
    a = train.fit(_params(), x, y, key=jax.random.key(7), **kwargs)
    b = train.fit(_params(), x, y, key=jax.random.key(7), **kwargs)
    c = train.fit(_params(), x, y, key=jax.random.key(8), **kwargs)
    assert _same(a.params, b.params)
    assert not _same(a.params, c.params)


def test_fit_does_not_consume_the_initial_params(data):
    x, y, _, _ = data
    params = _params()
    train.fit(params, x, y, key=jax.random.key(1), batch_size=50, epochs=1)
    assert np.isfinite(np.asarray(params.W)).all()  # still readable, unchanged
    assert _same(params, _params())


def test_fit_takes_full_batches_only(data):
    """150 examples in batches of 16: 9 steps per epoch, 6 examples sit out."""
    x, y, _, _ = data
    result = train.fit(_params(), x, y, key=jax.random.key(1), batch_size=16, epochs=3)
    adam_state = result.state.opt_state[0]
    assert int(adam_state.count) == 3 * (150 // 16)


def test_fit_step_matches_a_hand_written_sgd_step(data):
    """One full batch of SGD: params - lr * grad of js.loss (with L2)."""
    x, y, _, _ = data
    params, lr, l2 = _params(), 0.3, 0.01
    result = train.fit(
        params,
        x,
        y,
        key=jax.random.key(1),
        optimizer="sgd",
        learning_rate=lr,
        schedule="constant",
        l2=l2,
        batch_size=len(x),
        epochs=1,
    )
    # The full-batch gradient in float64 (the order of the rows does not matter).
    w, b = np.asarray(params.W, np.float64), np.asarray(params.b, np.float64)
    probs = softmax64(x, w, b)
    residual = probs - np.eye(3)[y]
    grad_w = np.asarray(x, np.float64).T @ residual / len(x) + l2 * w
    np.testing.assert_allclose(result.params.W, w - lr * grad_w, atol=1e-6)
    np.testing.assert_allclose(result.params.b, b - lr * residual.mean(0), atol=1e-6)
    # The epoch's train loss is the cross-entropy (no L2 term) before the step.
    expected_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    assert result.history[0].train_loss == pytest.approx(expected_loss, rel=1e-5)


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 1.0), ("momentum", 0.1), ("adam", 0.05)]
)
def test_named_optimizers_train(optimizer, lr, data):
    x, y, _, _ = data
    result = train.fit(
        _params(),
        x,
        y,
        key=jax.random.key(1),
        optimizer=optimizer,
        learning_rate=lr,
        schedule="constant",
        batch_size=30,
        epochs=3,
    )
    assert result.history[-1].train_loss < 0.5 * np.log(3)


@pytest.mark.parametrize("name", sorted(train.OPTIMIZERS))
def test_every_named_optimizer_steps_downhill(name):
    params = js.Params(W=jnp.ones((2, 2)), b=jnp.zeros(2))
    grads = js.Params(W=jnp.array([[1.0, -2.0], [0.5, 0.0]]), b=jnp.ones(2))
    optimizer = train.make_optimizer(name, 0.1)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert float(optax.tree.vdot(updates, grads)) < 0
    assert train.make_optimizer(name, 0.1) is optimizer  # cached: no recompiling


def test_schedules():
    lr, total = 0.5, 100
    assert train.make_schedule("constant", lr, total) == lr
    cosine = train.make_schedule("cosine", lr, total)
    assert float(cosine(0)) == pytest.approx(lr)
    assert float(cosine(total)) == pytest.approx(0.0, abs=1e-7)
    linear = train.make_schedule("linear", lr, total)
    assert float(linear(total // 2)) == pytest.approx(lr / 2)
    warmup = train.make_schedule("warmup-cosine", lr, total)
    assert float(warmup(0)) == 0.0
    assert float(warmup(5)) == pytest.approx(lr)
    assert float(warmup(total)) == pytest.approx(0.0, abs=1e-7)


def test_fit_accepts_an_optax_transformation(data):
    x, y, _, _ = data

    def final_loss(optimizer: optax.GradientTransformation) -> float:
        result = train.fit(
            _params(),
            x,
            y,
            key=jax.random.key(1),
            optimizer=optimizer,
            batch_size=16,
            epochs=4,
        )
        return result.history[-1].train_loss

    margin = 0.5 * np.log(3)  # half the loss of a uniform prediction
    assert final_loss(optax.set_to_zero()) > margin  # the bar cannot be met idle
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.05))
    assert final_loss(optimizer) < margin


def test_each_epoch_draws_a_fresh_permutation(data):
    """Epoch 2 must not replay epoch 1's order: its result differs from
    running epoch 1's permutation again from the state after epoch 1."""
    x, y, _, _ = data
    kwargs = dict(optimizer=optax.sgd(0.5), batch_size=16, key=jax.random.key(3))
    first = train.fit(_params(), x, y, epochs=1, **kwargs)
    two = train.fit(_params(), x, y, epochs=2, **kwargs)
    replay_state = first.state._replace(epoch=0)  # epoch 1's key again
    replay = train.fit(_params(), x, y, epochs=1, state=replay_state, **kwargs)
    assert not _same(two.params, replay.params)
    # ...and the epoch orders differ from each other, but not between calls.
    orders = [minibatch.epoch_permutation(kwargs["key"], e, 100) for e in (1, 2, 3)]
    assert len({tuple(order) for order in orders}) == 3
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(100))
    again = minibatch.epoch_permutation(kwargs["key"], 1, 100)
    np.testing.assert_array_equal(orders[0], again)
    legacy = jax.random.PRNGKey(3)  # a raw uint32 key draws the same order
    np.testing.assert_array_equal(minibatch.epoch_permutation(legacy, 1, 100), again)


def test_continuing_from_a_state_equals_one_run(data):
    x, y, x_test, y_test = data
    kwargs = dict(
        key=jax.random.key(3),
        batch_size=16,
        epochs=5,
        schedule="cosine",
        x_test=x_test,
        y_test=y_test,
    )
    seen: list[train.TrainState] = []
    full = train.fit(
        _params(), x, y, on_epoch_end=lambda s, r: seen.append(s), **kwargs
    )
    resumed = train.fit(
        _params(), x, y, state=seen[1], history=full.history[:2], **kwargs
    )
    assert _same(full.params, resumed.params)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5]
    assert resumed.history[-1].test_loss == full.history[-1].test_loss


# ------------------------------------------------------------------ divergence


def _explodes_after(steps: int) -> optax.GradientTransformation:
    """SGD whose learning rate jumps to 1e38 after ``steps`` steps."""
    return optax.sgd(lambda count: jnp.where(count < steps, 0.1, 1e38))


def test_divergence_raises_and_keeps_the_last_good_state(data):
    x, y, _, _ = data
    calls: list[int] = []
    with pytest.raises(train.TrainingDiverged) as info:
        train.fit(
            _params(),
            x,
            y,
            key=jax.random.key(1),
            optimizer=_explodes_after(2 * (150 // 50)),
            batch_size=50,
            epochs=5,
            on_epoch_end=lambda s, r: calls.append(s.epoch),
        )
    err = info.value
    assert isinstance(err, train.TrainingError)
    assert err.epoch == 3
    assert not np.isfinite(err.loss)
    assert calls == [1, 2]  # the diverged epoch was never reported
    assert err.last_good.epoch == 2
    assert np.isfinite(np.asarray(err.last_good.params.W)).all()
    assert [r.epoch for r in err.history] == [1, 2]
    message = str(err)
    assert "epoch 3" in message and "smaller" in message


def test_divergence_message_names_the_learning_rate():
    x = np.full((20, 4), 1e3, np.float32)
    y = np.arange(20, dtype=np.int32) % 2
    with pytest.raises(train.TrainingDiverged, match=r"learning rate 1e\+30"):
        train.fit(
            _params(4, 2),
            x,
            y,
            key=jax.random.key(0),
            optimizer="sgd",
            learning_rate=1e30,
            batch_size=10,
            epochs=3,
        )


# ------------------------------------------------------------------ validation


def _fit(x, y, **kwargs):
    defaults = dict(key=jax.random.key(0), batch_size=4, epochs=1)
    defaults.update(kwargs)
    return train.fit(_params(3, 2), x, y, **defaults)


_X = np.zeros((8, 3), np.float32)
_Y = np.array([0, 1] * 4, np.int32)


def _with(array: np.ndarray, index: tuple, value: float) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (_X, _with(_Y, (3,), 2), {}, r"label 2 outside \[0, 2\)"),
        (_X, _with(_Y, (0,), -1), {}, r"label -1 outside \[0, 2\)"),
        (_with(_X, (2, 1), np.nan), _Y, {}, "NaN or infinite"),
        (_with(_X, (5, 0), np.inf), _Y, {}, "NaN or infinite"),
        (_X, _Y[:7], {}, "different lengths"),
        (_X[:0], _Y[:0], {}, "empty"),
        (_X, _Y, {"batch_size": 0}, "batch_size must be a positive integer"),
        (_X, _Y, {"batch_size": -3}, "batch_size must be a positive integer"),
        (_X, _Y, {"batch_size": 2.5}, "batch_size must be a positive integer"),
        (_X, _Y, {"epochs": 0}, "epochs must be a positive integer"),
        (_X, _Y, {"batch_size": 9}, "larger than the 8 training examples"),
        (np.zeros((8, 4), np.float32), _Y, {}, "4 features but d = 3 are expected"),
        (_X[0], _Y, {}, r"shape \(n, d\)"),
        (_X, _Y.astype(np.float32), {}, "integer class indices"),
        (_X, _Y, {"optimizer": "adamx"}, "unknown optimizer 'adamx'"),
        (_X, _Y, {"learning_rate": 0.0}, "learning_rate must be"),
        (_X, _Y, {"learning_rate": float("nan")}, "learning_rate must be"),
        (_X, _Y, {"schedule": "step"}, "unknown schedule"),
        (_X, _Y, {"l2": -1.0}, "l2 must be"),
        (_X, _Y, {"x_test": _X}, "both x_test and y_test"),
        (_X, _Y, {"x_test": _X, "y_test": _Y + 5}, r"y_test has label"),
    ],
)
def test_fit_validates_before_compiling(x, y, kwargs, match, monkeypatch):
    def no_compilation(*args, **kwargs):
        raise AssertionError("the epoch function was built before validation")

    monkeypatch.setattr(minibatch, "_make_epoch_fn", no_compilation)
    with pytest.raises((ValueError, TypeError), match=match):
        _fit(x, y, **kwargs)


def test_fit_rejects_non_params():
    with pytest.raises(TypeError, match=r"jaxsoft\.Params"):
        train.fit({"W": 0}, _X, _Y, key=jax.random.key(0), batch_size=2, epochs=1)


def test_fit_rejects_a_state_past_the_last_epoch(data):
    x, y, _, _ = data
    done = train.fit(_params(), x, y, key=jax.random.key(1), batch_size=50, epochs=3)
    with pytest.raises(ValueError, match="epochs >= 3"):
        train.fit(
            _params(),
            x,
            y,
            key=jax.random.key(1),
            batch_size=50,
            epochs=2,
            state=done.state,
        )


# ------------------------------------------------------------------ evaluate


@jax.jit
def _unchunked(params: js.Params, x: jax.Array, y: jax.Array) -> dict:
    o = js.logits(params, x)
    return {
        "loss": jnp.mean(js.cross_entropy(o, y)),
        "accuracy": js.accuracy(o, y),
        "top_5": js.top_k_accuracy(o, y, k=5),
        "ece": js.expected_calibration_error(o, y),
        "confusion": js.confusion_matrix(o, y),
    }


@pytest.mark.parametrize("n", [1, 7, 32, 33, 100])
def test_evaluate_in_chunks_equals_the_unchunked_result(n):
    x, y = blobs(n, num_classes=7, num_features=5, seed=n)
    params = js.init_params(jax.random.key(n), 5, 7, scale=1.0)
    result = train.evaluate(params, x, y, chunk_size=32)
    expected = _unchunked(params, x, y)
    assert result.num_examples == n
    assert result.loss == pytest.approx(float(expected["loss"]), rel=1e-6)
    assert result.accuracy == pytest.approx(float(expected["accuracy"]), abs=1e-7)
    assert result.top_k == 5
    assert result.top_k_accuracy == pytest.approx(float(expected["top_5"]), abs=1e-7)
    assert result.calibration_error == pytest.approx(float(expected["ece"]), abs=1e-6)
    np.testing.assert_array_equal(result.confusion, expected["confusion"])
    assert result.confusion.sum() == n
    hits = softmax64(x, params.W, params.b).argmax(axis=1) == y
    for j in range(7):
        if np.any(y == j):
            assert result.per_class_accuracy[j] == pytest.approx(hits[y == j].mean())
        else:
            assert np.isnan(result.per_class_accuracy[j])


def test_evaluate_reports_top_5_only_above_5_classes():
    params = js.init_params(jax.random.key(0), 5, 5)
    x, y = blobs(20, num_classes=5, num_features=5)
    result = train.evaluate(params, x, y)
    assert result.top_k_accuracy is None
    assert result.to_dict()["top_5_accuracy"] is None


def test_evaluate_is_one_compiled_call_per_split_shape():
    """The chunks of a split run inside one compiled function, compiled once
    per shape: evaluating the same shape again (e.g. every epoch) reuses it."""
    params = js.init_params(jax.random.key(0), 5, 4, scale=1.0)
    x, y = blobs(200, num_classes=4, num_features=5, seed=3)
    train.evaluate(params, x[:50], y[:50], chunk_size=16)
    compiled = evaluation._compiled_totals(sharding.resolve_mesh())
    before = compiled._cache_size()
    assert before >= 1
    for seed in range(3):
        x_other, y_other = blobs(50, num_classes=4, num_features=5, seed=seed)
        train.evaluate(params, x_other, y_other, chunk_size=16)
    assert compiled._cache_size() == before


def test_evaluate_accepts_bfloat16_features():
    params = js.Params(W=jnp.eye(2), b=jnp.zeros(2))
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]], jnp.bfloat16)
    for features in (x, np.asarray(x)):  # on device, and ml_dtypes on the host
        assert train.evaluate(params, features, np.array([0, 1])).accuracy == 1.0


def test_evaluate_accepts_device_arrays_and_to_dict():
    params = js.Params(W=jnp.eye(2), b=jnp.zeros(2))
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    result = train.evaluate(params, x, jnp.array([0, 0, 0]), chunk_size=2)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.confusion.tolist() == [[2, 1], [0, 0]]
    record = result.to_dict()
    assert record["per_class_accuracy"] == [pytest.approx(2 / 3), None]


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (_X, _with(_Y, (0,), 7), {}, "outside"),
        (_with(_X, (0, 0), np.nan), _Y, {}, "NaN"),
        (_X, _Y[:3], {}, "different lengths"),
        (_X[:0], _Y[:0], {}, "empty"),
        (_X, _Y, {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_evaluate_validates(x, y, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        train.evaluate(_params(3, 2), x, y, **kwargs)


def test_top_k():
    params = js.Params(W=jnp.eye(3), b=jnp.zeros(3))
    classes, probs = js.top_k(params, np.array([[0.0, 2.0, 1.0]]), k=5)
    classes, probs = np.asarray(classes), np.asarray(probs)
    assert classes.tolist() == [[1, 2, 0]]
    e = np.exp([2.0, 1.0, 0.0])
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)


def test_top_k_matches_a_numpy_softmax_with_more_classes_than_k():
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=(4, 9)), rng.normal(size=9)
    x = rng.normal(size=(6, 4))
    params = js.Params(W=jnp.asarray(w, jnp.float32), b=jnp.asarray(b, jnp.float32))
    classes, probs = js.top_k(params, x.astype(np.float32), k=4)
    expected = softmax64(x, w, b)
    order = np.argsort(-expected, axis=1)[:, :4]
    np.testing.assert_array_equal(classes, order)
    np.testing.assert_allclose(
        probs, np.take_along_axis(expected, order, axis=1), rtol=1e-5, atol=1e-6
    )


# ------------------------------------------------------------------ L-BFGS


@pytest.fixture(scope="module")
def digits_subset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x[:600] / 16.0).astype(np.float32), y[:600].astype(np.int32)


def _numpy_objective_and_grad_norm(
    w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float
) -> tuple[float, float]:
    """Float64 mean cross-entropy + (l2 / 2) ||W||^2 and its gradient's 2-norm."""
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    probs = softmax64(x, w, b)
    n, q = probs.shape
    value = -np.mean(np.log(probs[np.arange(n), y])) + 0.5 * l2 * np.sum(w**2)
    residual = probs - np.eye(q)[y]
    grad_w = np.asarray(x, np.float64).T @ residual / n + l2 * w
    grad_b = residual.mean(axis=0)
    return value, float(np.sqrt(np.sum(grad_w**2) + np.sum(grad_b**2)))


def test_lbfgs_reaches_the_objective_of_scikit_learn(digits_subset):
    from sklearn.linear_model import LogisticRegression

    x, y = digits_subset
    n, l2 = len(x), 1e-3
    params, info = train.solve_lbfgs(
        js.init_params(jax.random.key(0), 64, 10, scale=0.0), x, y, l2=l2, tol=1e-5
    )
    assert info.converged
    assert 0 < info.iterations < 1000
    # The gradient at the returned parameters, in float64: the solver's
    # float32 stopping test (||grad|| <= 1e-5) up to float32 rounding.
    objective, grad_norm = _numpy_objective_and_grad_norm(params.W, params.b, x, y, l2)
    assert grad_norm <= 1.2e-5
    assert info.objective == pytest.approx(objective, rel=1e-5)

    # scikit-learn minimises C * sum(cross-entropy) + ||W||^2 / 2: the same
    # function times C * n when C = 1 / (l2 * n).
    reference = LogisticRegression(
        solver="lbfgs", C=1.0 / (l2 * n), tol=1e-10, max_iter=10_000
    ).fit(x.astype(np.float64), y)
    sk_objective, sk_grad_norm = _numpy_objective_and_grad_norm(
        reference.coef_.T, reference.intercept_, x, y, l2
    )
    assert sk_grad_norm <= 1e-6  # the reference is an optimum
    assert objective == pytest.approx(sk_objective, rel=1e-6)
    np.testing.assert_allclose(params.W, reference.coef_.T, atol=1e-3)


def test_lbfgs_reports_non_convergence(digits_subset):
    x, y = digits_subset
    _, info = train.solve_lbfgs(
        js.init_params(jax.random.key(0), 64, 10, scale=0.0),
        x,
        y,
        l2=1e-3,
        tol=1e-12,
        max_iter=3,
    )
    assert info.iterations == 3
    assert not info.converged
    assert info.grad_norm > 1e-12


def test_lbfgs_counts_the_objectives_evaluations(digits_subset, monkeypatch):
    """`info.evaluations` against the data passes (each one value and gradient
    of the objective) that the device loop reports running, counted by a
    wrapper around each call of it."""
    from jaxsoft.exact import solver

    calls: list[int] = []
    run = solver._run

    def counted(*args: object, **kwargs: object) -> object:
        state, ran = run(*args, **kwargs)
        calls.append(ran)
        return state, ran

    monkeypatch.setattr(solver, "_run", counted)
    x, y = digits_subset
    _, info = train.solve_lbfgs(
        js.init_params(jax.random.key(0), 64, 10, scale=0.0), x, y, l2=1e-3
    )
    assert info.converged
    assert info.iterations < info.evaluations == sum(calls)


def test_lbfgs_validates():
    with pytest.raises(ValueError, match="outside"):
        train.solve_lbfgs(_params(3, 2), _X, _with(_Y, (0,), 5))
    with pytest.raises(ValueError, match="max_iter"):
        train.solve_lbfgs(_params(3, 2), _X, _Y, max_iter=0)


# ------------------------------------------------------------ compiler options


def _fit_evaluate_solve(x, y, x_test, y_test) -> list[np.ndarray]:
    """Every array fit, evaluate and solve_lbfgs give, freshly compiled."""
    minibatch._make_epoch_fn.cache_clear()
    evaluation._compiled_totals.cache_clear()
    fitted = train.fit(
        _params(),
        x,
        y,
        key=jax.random.key(2),
        batch_size=16,
        epochs=3,
        x_test=x_test,
        y_test=y_test,
    )
    report = train.evaluate(fitted.params, x_test, y_test, chunk_size=32)
    solved, info = train.solve_lbfgs(_params(), x, y, l2=1e-2, max_iter=30)
    history = [[r.train_loss, r.test_loss, r.test_accuracy] for r in fitted.history]
    return [
        *map(np.asarray, jax.tree.leaves((fitted.params, solved))),
        np.asarray(history),
        np.asarray([report.loss, report.calibration_error, info.objective]),
        report.confusion,
    ]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_cpu_compiler_options_agree_with_xlas_defaults(data, monkeypatch):
    """The CPU options that compile faster (`_compiling.CPU_OPTIONS`) give
    what XLA's default options give, up to float summation order."""
    from jaxsoft import compiling as _compiling

    x, y, x_test, y_test = data
    mesh = sharding.resolve_mesh()
    assert _compiling.compiler_options(mesh) == _compiling.CPU_OPTIONS != {}
    with_options = _fit_evaluate_solve(x, y, x_test, y_test)
    monkeypatch.setattr(_compiling, "CPU_OPTIONS", {})
    xla_default = _fit_evaluate_solve(x, y, x_test, y_test)
    monkeypatch.undo()
    _fit_evaluate_solve(x, y, x_test, y_test)  # leave the caches as found
    # Three epochs of Adam carry rounding differences of ~1e-7 up to ~1e-4.
    for ours, theirs in zip(with_options, xla_default, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-4)


def test_an_option_xla_does_not_know_falls_back_to_its_defaults(monkeypatch):
    from jaxsoft import compiling as _compiling

    monkeypatch.setattr(_compiling, "CPU_OPTIONS", {"xla_no_such_option": True})
    assert _compiling.compiler_options(sharding.resolve_mesh()) == {}
