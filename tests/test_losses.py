"""Properties of softmax, log-sum-exp, one-hot and the cross-entropy loss."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _strategies import BATCH_SIZES, logits, logits_and_labels, soft_labels_for
from absl.testing import parameterized
from hypothesis import given
from hypothesis import strategies as st

import jaxsoft as js

# Property tests call compiled functions: one compilation per shape instead of
# one per primitive per shape in eager mode. `JitTest` checks jit == no jit.
softmax = jax.jit(js.softmax, static_argnames="axis")
log_softmax = jax.jit(js.log_softmax)
logsumexp = jax.jit(js.logsumexp)
cross_entropy = jax.jit(js.cross_entropy)
cross_entropy_grad = jax.jit(js.cross_entropy_grad)
# jax.grad of the summed loss, w.r.t. the logits: one program per shape.
autodiff_grad = jax.jit(jax.grad(lambda o, y: jnp.sum(js.cross_entropy(o, y))))


# Independent references: NumPy, float64, one example at a time. -inf logits are
# masked classes; a label puts no weight on them (as the strategies draw).


def log_softmax64(row: np.ndarray) -> np.ndarray:
    """log softmax of one row in float64; -inf stays -inf."""
    row = np.asarray(row, np.float64)
    finite = np.isfinite(row)
    m = row[finite].max()
    log_z = m + np.log(np.sum(np.exp(row[finite] - m)))
    return np.where(finite, row - log_z, -np.inf)


def cross_entropy64(o: np.ndarray, p: np.ndarray) -> np.ndarray:
    """-sum_j p_ij log softmax(o_i)_j for each row i, with 0 log 0 = 0."""
    losses = []
    for row, weights in zip(o, p, strict=True):
        log_p = log_softmax64(row)
        losses.append(
            -sum(w * lp for w, lp in zip(weights, log_p, strict=True) if w != 0)
        )
    return np.array(losses)


def one_hot64(y: np.ndarray, q: int) -> np.ndarray:
    return np.array([[1.0 if j == label else 0.0 for j in range(q)] for label in y])


# The lecture's worked examples -------------------------------------------------

LECTURE_CLASSES = ("Dog", "Cat", "Bear", "Tiger")
LECTURE_LOGITS = np.array([3.2, 1.3, 0.2, 0.8], np.float32)


def test_lecture_softmax_example():
    probs = np.asarray(js.softmax(LECTURE_LOGITS), np.float64)
    np.testing.assert_array_equal(np.round(probs, 2), [0.78, 0.12, 0.04, 0.07])
    assert LECTURE_CLASSES[int(jnp.argmax(probs))] == "Dog"


def test_lecture_one_hot_example():
    # y = (Cat, Dog, Cat, Frog) over the classes (Cat, Dog, Frog). The lecture
    # draws classes as rows and examples as columns; jaxsoft returns the
    # transpose (examples as rows).
    classes = ("Cat", "Dog", "Frog")
    y = [classes.index(name) for name in ("Cat", "Dog", "Cat", "Frog")]
    lecture_matrix = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(js.one_hot(jnp.array(y), 3), lecture_matrix.T)


def test_lecture_cross_entropy_example_in_nats_and_base_10():
    # y = (1, 0, 0, 0) and y_hat_Dog = 0.78 (the rest of y_hat sums to 0.22).
    y_hat = jnp.array([0.78, 0.12, 0.04, 0.06])
    y = jnp.array([1.0, 0.0, 0.0, 0.0])
    nats = float(js.cross_entropy(jnp.log(y_hat), y))
    assert round(nats, 3) == 0.248  # -ln 0.78: what jaxsoft reports
    # The lecture prints 0.108: that is the base-10 logarithm, -log10 0.78.
    assert round(nats / math.log(10), 3) == 0.108
    assert nats == pytest.approx(-math.log(0.78), rel=1e-6)


# softmax -------------------------------------------------------------------------


@given(logits())
def test_softmax_is_a_probability_distribution(o):
    p = np.asarray(softmax(o))
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(p[np.isneginf(o)] == 0)  # masked classes get exactly 0


@given(logits(), st.integers(-1000, 1000))
def test_softmax_is_invariant_to_adding_a_constant(o, c):
    # On the strategy's grid, o + c is exact in float32, so equality is exact.
    np.testing.assert_array_equal(softmax(o + np.float32(c)), softmax(o))


@given(logits())
def test_softmax_preserves_argmax(o):
    np.testing.assert_array_equal(
        jnp.argmax(softmax(o), axis=-1), jnp.argmax(o, axis=-1)
    )


@given(logits())
def test_softmax_along_another_axis(o):
    np.testing.assert_array_equal(softmax(o.T, axis=0), softmax(o).T)


def test_softmax_of_huge_logits_does_not_overflow():
    o = jnp.array([1e4, -1e4, 1e4 - 1.0])
    naive = jnp.exp(o) / jnp.sum(jnp.exp(o))
    assert not np.all(np.isfinite(naive))  # the lecture's formula, as written
    np.testing.assert_allclose(
        softmax(o), [1 / (1 + math.exp(-1)), 0.0, 1 - 1 / (1 + math.exp(-1))]
    )


# log_softmax and logsumexp -------------------------------------------------------


@given(logits(magnitude=20.0))
def test_log_softmax_equals_log_of_softmax_where_finite(o):
    log_p = np.asarray(log_softmax(o))
    p = np.asarray(softmax(o), np.float64)
    finite = p > 0
    log_of_p = np.log(p, where=finite, out=np.full_like(p, -np.inf))
    np.testing.assert_allclose(log_p[finite], log_of_p[finite], atol=1e-5)
    np.testing.assert_array_equal(np.isneginf(log_p), np.isneginf(o))


@given(logits())
def test_log_softmax_matches_jax_nn(o):
    np.testing.assert_allclose(
        log_softmax(o), jax.nn.log_softmax(o), rtol=1e-6, atol=1e-3
    )


@given(logits())
def test_logsumexp_matches_jax_scipy(o):
    np.testing.assert_allclose(
        logsumexp(o), jax.scipy.special.logsumexp(o, axis=-1), rtol=1e-6
    )


def test_logsumexp_of_all_masked_row_is_minus_inf():
    assert float(logsumexp(jnp.array([-jnp.inf, -jnp.inf]))) == -math.inf


# one_hot -------------------------------------------------------------------------


@given(
    st.tuples(st.integers(1, 12), st.sampled_from(BATCH_SIZES)).flatmap(
        lambda q_n: st.tuples(
            st.just(q_n[0]),
            st.lists(st.integers(0, q_n[0] - 1), min_size=q_n[1], max_size=q_n[1]),
        )
    )
)
def test_one_hot_rows_pick_the_class(q_and_labels):
    # Every number of classes from 1 to 12; lengths from the strategies' short
    # list (one_hot runs eagerly: each new shape compiles its operations).
    q, labels = q_and_labels
    y = np.asarray(js.one_hot(jnp.array(labels), q))
    assert y.shape == (len(labels), q) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    np.testing.assert_array_equal(y.argmax(axis=1), labels)


def test_one_hot_rejects_float_labels_and_bad_num_classes():
    with pytest.raises(TypeError, match="integer class indices"):
        js.one_hot(jnp.array([0.0, 1.0]), 2)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="positive int"):
            js.one_hot(jnp.array([0, 1]), bad)


def test_one_hot_takes_numpy_integers_and_gives_zero_rows_out_of_range():
    y = js.one_hot(np.array([2, -1, 3]), np.int64(3))
    # As its docstring says (and like jax.nn.one_hot): -1 is not the last class.
    np.testing.assert_array_equal(y, [[0, 0, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(y, jax.nn.one_hot(np.array([2, -1, 3]), 3))


# cross_entropy ---------------------------------------------------------------------


@given(logits_and_labels())
def test_cross_entropy_is_nonnegative_and_minus_log_softmax_of_label(o_y):
    o, y = o_y
    loss = np.asarray(cross_entropy(o, y))
    assert loss.shape == y.shape
    assert np.all(loss >= 0) and np.all(np.isfinite(loss))
    expected = -np.asarray(log_softmax(o))[np.arange(len(y)), y]
    np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-6)


@given(logits_and_labels())
def test_integer_and_one_hot_labels_agree(o_y):
    o, y = o_y
    np.testing.assert_allclose(
        cross_entropy(o, y),
        cross_entropy(o, js.one_hot(y, o.shape[1])),
        rtol=1e-6,
    )


@given(logits().flatmap(lambda o: st.tuples(st.just(o), soft_labels_for(o))))
def test_soft_labels_are_the_mix_of_integer_label_losses(o_p):
    # The loss is linear in y: l(p, o) = sum_j p_j l(e_j, o).
    o, p = o_p
    n, q = o.shape
    per_class = np.stack(
        [np.asarray(cross_entropy(o, np.full(n, j, np.int32))) for j in range(q)],
        axis=1,
    )
    # 0 * inf (a masked class with weight 0) counts as 0.
    weighted = np.multiply(p, per_class, where=p > 0, out=np.zeros_like(per_class))
    mixed = np.sum(weighted, axis=1)
    np.testing.assert_allclose(cross_entropy(o, p), mixed, rtol=1e-5, atol=1e-5)


@given(logits_and_labels(masked=False))
def test_cross_entropy_matches_optax(o_y):
    o, y = o_y
    np.testing.assert_allclose(
        cross_entropy(o, y),
        optax.softmax_cross_entropy_with_integer_labels(o, y),
        rtol=1e-5,
        atol=1e-3,
    )
    np.testing.assert_allclose(
        cross_entropy(o, js.one_hot(y, o.shape[1])),
        optax.softmax_cross_entropy(o, js.one_hot(y, o.shape[1])),
        rtol=1e-5,
        atol=1e-3,
    )


@pytest.mark.parametrize("offset", [0.0, 1e4, -1e4])
def test_cross_entropy_keeps_its_digits_at_large_logits(offset):
    # Adding 1e4 to every logit changes neither the loss nor its accuracy:
    # float32 spacing at 1e4 is ~1e-3, so logsumexp(o) - o_y computed naively
    # would be off by that much.
    o = np.array([[0.5, -0.25, 0.0], [2.0, 2.0, 1.0]], np.float32) + np.float32(offset)
    p = np.array([[0.6, 0.4, 0.0], [0.5, 0.25, 0.25]], np.float32)
    shifted = o.astype(np.float64) - o.max(axis=1, keepdims=True)
    log_softmax64 = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(
        js.cross_entropy(o, p), -(p * log_softmax64).sum(axis=1), rtol=1e-6
    )
    np.testing.assert_allclose(
        js.cross_entropy(o, np.array([1, 2])),
        -log_softmax64[[0, 1], [1, 2]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(js.log_softmax(o), log_softmax64, rtol=1e-6)


def test_cross_entropy_of_a_masked_true_class_is_infinite():
    o = jnp.array([0.0, -jnp.inf, 1.0])
    assert float(cross_entropy(o, jnp.array(1))) == math.inf


def test_cross_entropy_over_extra_leading_axes():
    o = jax.random.normal(jax.random.key(0), (2, 3, 5))
    y = jnp.array([[0, 1, 4], [3, 3, 2]])
    loss = cross_entropy(o, y)
    assert loss.shape == (2, 3)
    o64, y64 = np.asarray(o, np.float64), np.asarray(y)
    expected = [
        [-log_softmax64(o64[i, j])[y64[i, j]] for j in range(3)] for i in range(2)
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


@given(logits_and_labels())
def test_batched_loss_and_gradient_match_a_float64_loop(o_y):
    o, y = o_y
    q = o.shape[1]
    expected = [-log_softmax64(row)[label] for row, label in zip(o, y, strict=True)]
    np.testing.assert_allclose(cross_entropy(o, y), expected, rtol=1e-6, atol=1e-6)
    expected_grad = [
        np.exp(log_softmax64(row)) - one_hot64([label], q)[0]
        for row, label in zip(o, y, strict=True)
    ]
    np.testing.assert_allclose(cross_entropy_grad(o, y), expected_grad, atol=1e-6)


@given(logits().flatmap(lambda o: st.tuples(st.just(o), soft_labels_for(o))))
def test_batched_loss_with_soft_labels_matches_a_float64_loop(o_p):
    o, p = o_p
    np.testing.assert_allclose(
        cross_entropy(o, p), cross_entropy64(o, p), rtol=1e-5, atol=1e-5
    )


# The gradient -------------------------------------------------------------------


@given(logits_and_labels())
def test_jax_grad_equals_closed_form_softmax_minus_y(o_y):
    o, y = o_y
    autodiff = autodiff_grad(o, y)
    probs64 = np.exp(np.array([log_softmax64(row) for row in o]))
    closed_form = probs64 - one_hot64(np.asarray(y), o.shape[1])
    np.testing.assert_allclose(autodiff, closed_form, atol=1e-6)
    np.testing.assert_allclose(cross_entropy_grad(o, y), closed_form, atol=1e-6)
    assert np.all(np.isfinite(autodiff))  # also at +-1e4 and with -inf masks


@given(logits().flatmap(lambda o: st.tuples(st.just(o), soft_labels_for(o))))
def test_jax_grad_equals_closed_form_for_soft_labels(o_p):
    o, p = o_p
    autodiff = autodiff_grad(o, p)
    closed_form = np.exp(np.array([log_softmax64(row) for row in o])) - p
    np.testing.assert_allclose(autodiff, closed_form, atol=1e-6)
    np.testing.assert_allclose(cross_entropy_grad(o, p), closed_form, atol=1e-6)


@given(logits_and_labels(magnitude=1e4))
def test_loss_and_gradient_stay_finite_at_extreme_logits(o_y):
    o, y = o_y
    value, grad = jax.value_and_grad(lambda o: jnp.mean(cross_entropy(o, y)))(o)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))


grad_wrt_labels = jax.jit(jax.grad(lambda p, o: jnp.sum(js.cross_entropy(o, p))))


def test_gradient_w_r_t_labels_is_minus_log_softmax():
    # The loss is linear in y with slope -log softmax(o)_j, also where y_j = 0.
    o = np.array([10.0, 1.0, -2.0], np.float32)
    y = np.array([0.0, 1.0, 0.0], np.float32)
    expected = -log_softmax64(o)  # (1.3e-4, 9.00013, 12.00013)
    # float32: log(sum exp(o - max)) = log(1.00013) is good to ~1e-7 absolute.
    np.testing.assert_allclose(grad_wrt_labels(y, o), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(expected, [1.3e-4, 9.00013, 12.00013], atol=1e-5)


@given(logits().flatmap(lambda o: st.tuples(st.just(o), soft_labels_for(o))))
def test_gradient_w_r_t_soft_labels_is_minus_log_softmax(o_p):
    o, p = o_p
    # On a masked class (-inf) the derivative, truly +inf, is reported as 0.
    expected = [np.where(np.isfinite(row), -log_softmax64(row), 0.0) for row in o]
    np.testing.assert_allclose(grad_wrt_labels(p, o), expected, rtol=1e-5, atol=1e-5)


def test_gradient_w_r_t_soft_labels_is_finite_with_masks():
    o = jnp.array([2.0, -jnp.inf, 0.5])
    p = jnp.array([0.5, 0.0, 0.5])
    grad_p = jax.grad(lambda p: cross_entropy(o, p))(p)
    expected = -log_softmax64(o)
    np.testing.assert_allclose(grad_p, [expected[0], 0.0, expected[2]], rtol=1e-6)


def test_all_masked_row_with_zero_labels_costs_zero_with_finite_gradients():
    # optax.safe_softmax_cross_entropy's convention 0 log 0 = 0, for a whole row.
    o = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [1.0, -jnp.inf, 0.0]])
    p = jnp.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    loss = cross_entropy(o, p)
    assert float(loss[0]) == 0.0
    np.testing.assert_allclose(loss[1], cross_entropy64(o[1:], p[1:])[0], rtol=1e-6)
    grad_o, grad_p = jax.grad(lambda o, p: jnp.sum(cross_entropy(o, p)), (0, 1))(o, p)
    assert np.all(np.isfinite(grad_o)) and np.all(np.isfinite(grad_p))
    np.testing.assert_array_equal(grad_o[0], 0.0)
    np.testing.assert_array_equal(cross_entropy_grad(o, p)[0], 0.0)


def test_weight_on_a_masked_class_costs_infinity():
    o = jnp.array([-jnp.inf, 0.0, 0.0])
    assert float(cross_entropy(o, jnp.array([0.4, 0.3, 0.3]))) == math.inf
    assert float(cross_entropy(o, jnp.array(0))) == math.inf
    grad = jax.grad(lambda o: cross_entropy(o, jnp.array(0)))(o)
    assert np.all(np.isfinite(grad))


# Out-of-range class indices -------------------------------------------------------


@pytest.mark.parametrize(
    "labels, bad",
    [
        ([5], "5"),
        ([0, -1], "-1"),
        (np.array([0, 3]), "3"),
        (jnp.array([7, 0]), "7"),
        (np.array([2**33]), "8589934592"),  # would wrap to 0 as int32
    ],
)
def test_concrete_out_of_range_labels_raise(labels, bad):
    o = jnp.zeros((len(labels), 3))
    match = rf"label {bad} .*\[0, 3\)"
    for fn in (js.cross_entropy, js.cross_entropy_grad):
        with pytest.raises(ValueError, match=match):
            fn(o, labels)
    # Closed over by a jitted function, the labels are concrete too.
    with pytest.raises(ValueError, match=match):
        jax.jit(lambda o: js.cross_entropy(o, labels))(o)


def test_out_of_range_labels_under_jit_give_nan_not_zero():
    o = jnp.array([[1.0, 2.0, 3.0]] * 4)
    y = jnp.array([0, 3, -1, 2])
    loss = np.asarray(cross_entropy(o, y))
    assert np.isnan(loss[1]) and np.isnan(loss[2])
    np.testing.assert_allclose(loss[[0, 3]], cross_entropy(o[:2], jnp.array([0, 2])))
    grad = np.asarray(cross_entropy_grad(o, y))
    assert np.all(np.isnan(grad[1:3])) and np.all(np.isfinite(grad[[0, 3]]))
    assert np.isnan(jax.jit(jax.vmap(js.cross_entropy))(o, y)[1])


def test_labels_of_examples_masked_out_with_where_are_not_checked():
    o = jnp.zeros((3, 4))
    y = np.array([1, -1, 2])  # -1: padding
    where = np.array([True, False, True])
    loss = js.cross_entropy(o, y, where=where)
    np.testing.assert_allclose(loss, [math.log(4), 0.0, math.log(4)], rtol=1e-6)
    with pytest.raises(ValueError, match="label -1"):
        js.cross_entropy(o, y, where=np.array([True, True, False]))


# Low precision -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@given(o_y=logits_and_labels(magnitude=30.0, masked=False))
def test_low_precision_logits_are_computed_in_float32(dtype, o_y):
    o, y = o_y
    low = jnp.asarray(o, dtype)
    loss = js.cross_entropy(low, y)
    assert loss.dtype == jnp.float32
    # Exactly the float32 computation on the same (rounded) values...
    np.testing.assert_array_equal(loss, js.cross_entropy(low.astype(jnp.float32), y))
    # ...and within the rounding of the inputs of the full-precision loss.
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(
        loss, js.cross_entropy(o, y), atol=2 * eps * (1 + np.max(np.abs(o)))
    )
    assert js.cross_entropy_grad(low, y).dtype == jnp.float32


# jit, retracing, errors ------------------------------------------------------------


class JitTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_equals_no_jit(self):
        o = jax.random.normal(jax.random.key(1), (7, 5)) * 100
        o = o.at[0, 3].set(-jnp.inf)
        y = jnp.array([0, 1, 2, 3, 4, 0, 1])
        y = y.at[0].set(0)
        for fn in (js.cross_entropy, js.cross_entropy_grad):
            np.testing.assert_allclose(
                self.variant(fn)(o, y), fn(o, y), rtol=1e-6, atol=1e-6
            )
        np.testing.assert_allclose(
            self.variant(js.softmax)(o), js.softmax(o), rtol=1e-6, atol=1e-7
        )
        np.testing.assert_allclose(
            self.variant(js.log_softmax)(o), js.log_softmax(o), rtol=1e-6
        )


def test_second_call_with_same_shapes_does_not_retrace():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss_and_grad(o, y):
        return jnp.mean(js.cross_entropy(o, y)), js.cross_entropy_grad(o, y)

    o = jnp.zeros((4, 3))
    y = jnp.array([0, 1, 2, 0])
    loss_and_grad(o, y)
    loss_and_grad(o + 1.0, jnp.array([2, 2, 1, 0]))  # new values, same shapes
    with pytest.raises(AssertionError):
        loss_and_grad(jnp.zeros((5, 3)), jnp.zeros(5, jnp.int32))  # a new shape


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
class TestErrors:
    def call(self, fn, jit, *args):
        return (jax.jit(fn) if jit else fn)(*args)

    def test_float_labels_of_batch_shape_are_a_type_error(self, jit):
        with pytest.raises(TypeError, match="integer class indices"):
            self.call(js.cross_entropy, jit, jnp.zeros((3, 4)), jnp.array([0.0, 1, 2]))

    def test_mismatched_batch_size_is_a_value_error(self, jit):
        with pytest.raises(ValueError, match=r"labels of shape \(2,\)"):
            self.call(js.cross_entropy, jit, jnp.zeros((3, 4)), jnp.array([0, 1]))

    def test_wrong_label_rank_is_a_value_error(self, jit):
        with pytest.raises(ValueError, match="do not match logits"):
            self.call(
                js.cross_entropy_grad, jit, jnp.zeros((3, 4)), jnp.zeros((3, 4, 1))
            )

    def test_integer_logits_are_a_type_error(self, jit):
        with pytest.raises(TypeError, match="floating-point"):
            self.call(
                js.cross_entropy,
                jit,
                jnp.zeros((3, 4), jnp.int32),
                jnp.zeros(3, jnp.int32),
            )

    def test_scalar_logits_are_a_value_error(self, jit):
        with pytest.raises(ValueError, match="at least 1 dimension"):
            self.call(js.cross_entropy, jit, jnp.float32(1.0), jnp.int32(0))


def test_l2_penalty_is_half_the_squared_norm_and_its_gradient_is_w():
    w = jax.random.normal(jax.random.key(0), (4, 3))
    assert float(js.l2_penalty(w)) == pytest.approx(
        0.5 * float(jnp.sum(w**2)), rel=1e-6
    )
    np.testing.assert_allclose(jax.grad(js.l2_penalty)(w), w)
