"""Params, init_params, logits and predictions."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxsoft as js


def random_problem(seed: int, n: int = 5, d: int = 4, q: int = 3):
    key_w, key_b, key_x = jax.random.split(jax.random.key(seed), 3)
    params = js.Params(
        W=jax.random.normal(key_w, (d, q)), b=jax.random.normal(key_b, (q,))
    )
    return params, jax.random.normal(key_x, (n, d))


def test_init_params_shapes_dtype_and_scale():
    params = js.init_params(jax.random.key(0), 784, 10)
    chex.assert_shape(params.W, (784, 10))
    chex.assert_shape(params.b, (10,))
    chex.assert_type([params.W, params.b], jnp.float32)
    np.testing.assert_array_equal(params.b, 0.0)
    # N(0, 0.01^2): 7,840 draws give the sample std a standard error of
    # 0.01 / sqrt(2 * 7840) ~ 8e-5, so 5 standard errors is 4e-4; a sqrt(2)
    # scaled init (0.01414) or a uniform draw would fail, as would a mean shift.
    w = np.asarray(params.W, np.float64)
    assert abs(w.std() - 0.01) < 4e-4
    assert abs(w.mean()) < 5 * 0.01 / np.sqrt(w.size)
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert abs(kurtosis - 3.0) < 5 * np.sqrt(24 / w.size)  # normal, not uniform
    assert params.num_features == 784 and params.num_classes == 10


def test_init_params_is_reproducible_and_zero_scale_gives_zeros():
    a = js.init_params(jax.random.key(3), 4, 3)
    b = js.init_params(jax.random.key(3), 4, 3)
    chex.assert_trees_all_equal(a, b)
    zeros = js.init_params(jax.random.key(3), 4, 3, scale=0.0)
    np.testing.assert_array_equal(zeros.W, 0.0)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"num_features": 0, "num_classes": 3}, ValueError),
        ({"num_features": 4, "num_classes": -1}, ValueError),
        ({"num_features": 4.0, "num_classes": 3}, ValueError),
        ({"num_features": 4, "num_classes": 3, "dtype": jnp.int32}, TypeError),
    ],
)
def test_init_params_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        js.init_params(jax.random.key(0), **kwargs)


def test_logits_is_x_w_plus_b_for_one_example_and_a_batch():
    params, x = random_problem(0)
    expected = np.asarray(x) @ np.asarray(params.W) + np.asarray(params.b)
    o = js.logits(params, x)
    chex.assert_shape(o, (5, 3))
    np.testing.assert_allclose(o, expected, rtol=1e-5, atol=1e-6)
    o1 = js.logits(params, x[2])
    chex.assert_shape(o1, (3,))
    np.testing.assert_allclose(o1, expected[2], rtol=1e-5, atol=1e-6)


def test_lecture_network_four_inputs_three_outputs():
    # o_j = x_1 w_j1 + ... + x_4 w_j4 + b_j, written out term by term.
    params, x = random_problem(1, n=1, d=4, q=3)
    x = x[0]
    W, b = np.asarray(params.W), np.asarray(params.b)
    by_hand = [sum(float(x[i]) * W[i, j] for i in range(4)) + b[j] for j in range(3)]
    np.testing.assert_allclose(js.logits(params, x), by_hand, rtol=1e-5)


logits_jit = jax.jit(js.logits)


@given(st.integers(0, 1000))
def test_batched_and_single_example_logits_match_a_float64_loop(seed):
    params, x = random_problem(seed)
    W, b = np.asarray(params.W, np.float64), np.asarray(params.b, np.float64)
    expected = np.array(
        [
            [sum(xi[i] * W[i, j] for i in range(W.shape[0])) + b[j] for j in range(3)]
            for xi in np.asarray(x, np.float64)
        ]
    )
    np.testing.assert_allclose(logits_jit(params, x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        logits_jit(params, x[0]), expected[0], rtol=1e-5, atol=1e-5
    )


def test_predict_proba_rows_are_distributions_and_predict_is_argmax():
    params, x = random_problem(2, n=50)
    probs = js.predict_proba(params, x)
    np.testing.assert_allclose(jnp.sum(probs, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(
        js.predict(params, x), np.argmax(js.logits(params, x), axis=1)
    )
    assert js.predict(params, x[0]).shape == ()


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_logits_shape_errors_fire_eagerly_and_under_jit(jit):
    params, _ = random_problem(0)
    logits = jax.jit(js.logits) if jit else js.logits
    with pytest.raises(ValueError, match="x has 5 features but W expects d = 4"):
        logits(params, jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="Flatten images"):
        logits(params, jnp.zeros((2, 2, 2)))
    bad = js.Params(W=params.W, b=jnp.zeros(4))
    with pytest.raises(TypeError, match="b of shape"):
        logits(bad, jnp.zeros((2, 4)))
    with pytest.raises(TypeError, match="W of shape"):
        logits(js.Params(W=params.W[0], b=params.b), jnp.zeros((2, 4)))


@pytest.mark.parametrize(
    "x, dtype",
    [
        (np.array([["a", "b", "c", "d"]]), "<U1"),
        (np.array([[None, 1, 2, 3]], dtype=object), "object"),
        ([["1", "2", "3", "4"]], "<U1"),
    ],
)
def test_non_numeric_x_is_a_type_error(x, dtype):
    params, _ = random_problem(0)
    with pytest.raises(TypeError, match=f"x must be numeric, got dtype {dtype}"):
        js.logits(params, x)


def test_bool_and_integer_x_are_converted_to_the_weights_dtype():
    params, _ = random_problem(0)
    x_int = np.array([[1, 0, 2, 3]])
    o = js.logits(params, x_int)
    assert o.dtype == jnp.float32
    np.testing.assert_allclose(o, js.logits(params, x_int.astype(np.float32)))
    o_bool = js.logits(params, np.array([True, False, True, True]))
    np.testing.assert_allclose(o_bool, js.logits(params, jnp.array([1.0, 0, 1, 1])))


def test_numpy_integers_are_accepted_for_sizes_and_k():
    params = js.init_params(jax.random.key(0), np.int64(4), np.int32(3))
    assert params.W.shape == (4, 3)
    classes, _ = js.top_k(params, jnp.ones((2, 4)), k=np.int64(2))
    assert classes.shape == (2, 2)


def test_params_must_be_params():
    with pytest.raises(TypeError, match=r"jaxsoft.Params\(W, b\)"):
        js.logits({"W": jnp.zeros((4, 3)), "b": jnp.zeros(3)}, jnp.zeros(4))


def test_logits_do_not_retrace_for_new_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def predict(params, x):
        return js.predict_proba(params, x)

    for seed in range(3):
        predict(*random_problem(seed))


def test_params_is_a_pytree():
    params, _ = random_problem(0)
    doubled = jax.tree.map(lambda a: 2 * a, params)
    assert isinstance(doubled, js.Params)
    np.testing.assert_array_equal(doubled.W, 2 * params.W)


def test_predict_proba_matches_a_float64_softmax_with_nonzero_w_and_b():
    params, x = random_problem(11, n=7, d=4, q=6)
    o = np.asarray(x, np.float64) @ np.asarray(params.W, np.float64) + np.asarray(
        params.b, np.float64
    )
    expected = np.exp(o - o.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        js.predict_proba(params, x), expected, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        js.predict_proba(params, x[3]), expected[3], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(js.predict(params, x), expected.argmax(axis=1))
