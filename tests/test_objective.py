"""The training objective: mean cross-entropy + (l2 / 2) ||W||^2."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxsoft as js


def problem(seed: int, n: int = 16, d: int = 6, q: int = 4, scale: float = 3.0):
    key_p, key_x, key_y = jax.random.split(jax.random.key(seed), 3)
    params = js.init_params(key_p, d, q, scale=scale)
    params = params._replace(b=jnp.linspace(-1.0, 1.0, q))
    x = jax.random.normal(key_x, (n, d))
    y = jax.random.randint(key_y, (n,), 0, q)
    return params, x, y


grad_loss = jax.jit(jax.grad(js.loss))


def _numpy_objective_and_grads(params, x, y, l2: float):
    """Float64 mean cross-entropy + (l2 / 2) ||W||^2 and its gradients (W, b)."""
    w = np.asarray(params.W, np.float64)
    b = np.asarray(params.b, np.float64)
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    o = x @ w + b  # (n, q)
    shifted = o - o.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n, q = o.shape
    value = -log_p[np.arange(n), y].mean() + 0.5 * l2 * np.sum(w**2)
    residual = np.exp(log_p) - np.eye(q)[y]  # (n, q)
    return value, x.T @ residual / n + l2 * w, residual.mean(axis=0)


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 2.5]))
def test_jax_grad_of_the_loss_is_the_closed_form(seed, l2):
    params, x, y = problem(seed)
    grads = grad_loss(params, x, y, l2)
    _, grad_w, grad_b = _numpy_objective_and_grads(params, x, y, l2)
    np.testing.assert_allclose(grads.W, grad_w, rtol=1e-5, atol=1e-6)
    # The bias is not penalised: its gradient is the mean residual for any l2.
    np.testing.assert_allclose(grads.b, grad_b, rtol=1e-5, atol=1e-6)


def test_loss_value_is_mean_cross_entropy_plus_half_l2_norm():
    params, x, y = problem(0)
    expected, _, _ = _numpy_objective_and_grads(params, x, y, 0.3)
    assert float(js.loss(params, x, y, l2=0.3)) == pytest.approx(expected, rel=1e-6)


def test_integer_and_one_hot_targets_give_the_same_loss():
    params, x, y = problem(1)
    assert float(js.loss(params, x, y)) == pytest.approx(
        float(js.loss(params, x, js.one_hot(y, 4))), rel=1e-6
    )


def test_uniform_prediction_costs_log_q_nats():
    params = js.init_params(jax.random.key(0), 6, 4, scale=0.0)
    _, x, y = problem(2)
    assert float(js.loss(params, x, y)) == pytest.approx(np.log(4), rel=1e-6)


def test_loss_with_traced_l2_compiles_once():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def value_and_grad(params, x, y, l2):
        return jax.value_and_grad(js.loss)(params, x, y, l2)

    for seed, l2 in [(0, 0.0), (1, 0.5), (2, 1e-3)]:
        value_and_grad(*problem(seed), l2)


def test_loss_rejects_mismatched_lengths_under_jit():
    params, x, y = problem(0)
    with pytest.raises(ValueError, match=r"labels of shape \(15,\)"):
        jax.jit(js.loss)(params, x, y[:-1])


def test_out_of_range_labels_raise_eagerly_and_give_nan_under_jit():
    params, x, _ = problem(0, n=2)
    with pytest.raises(ValueError, match=r"label 5 at index 1 .*\[0, 4\)"):
        js.loss(params, x, [0, 5])
    with pytest.raises(ValueError, match=r"label -1 at index 0"):
        js.loss(params, x, np.array([-1, 0]))
    value, grads = jax.jit(jax.value_and_grad(js.loss))(params, x, jnp.array([0, 5]))
    assert np.isnan(float(value))  # never a silent 0
    chex.assert_tree_all_finite(grads)  # the valid examples still pull


def test_non_numeric_features_are_a_type_error():
    params, _, _ = problem(0)
    x = np.array([["a", "b", "c", "d", "e", "f"]])
    with pytest.raises(TypeError, match="x must be numeric, got dtype <U1"):
        js.loss(params, x, [0])


def test_where_averages_over_the_masked_in_examples_only():
    rng = np.random.default_rng(0)
    params = js.init_params(jax.random.key(0), 5, 3, scale=1.0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=12)
    keep = np.arange(12) < 9
    padded_y = np.where(keep, y, -1)  # padding labels are never checked
    masked = js.loss(params, x, padded_y, 0.1, where=keep)
    assert float(masked) == pytest.approx(float(js.loss(params, x[:9], y[:9], 0.1)))
