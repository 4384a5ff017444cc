"""js.cross_entropy against optax: optax's own test cases, then side by side.

`js.cross_entropy(logits, labels, axis=-1, where=None)` stands in for both
`optax.softmax_cross_entropy` (probability labels) and
`optax.softmax_cross_entropy_with_integer_labels` (class indices), and for
`optax.safe_softmax_cross_entropy` on -inf logits.

The first part runs optax's own tests for those functions (the classes of
`optax/losses/_classification_test.py`, shipped in optax's wheel) with the
function under test replaced by `js.cross_entropy`; optax's reference
functions inside those tests stay optax's. The second part compares the two
libraries directly on the axis/where cases, and checks that
`js.cross_entropy_grad` is `jax.grad` of `js.cross_entropy` there.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsoft as js

try:
    from optax.losses import _classification_test as optax_suite
except ImportError:  # an optax installed without its tests
    optax_suite = None


# optax's own tests ------------------------------------------------------------------

if optax_suite is not None:

    class _OnJaxsoft:
        """Runs the inherited optax tests with ``replaced`` -> js.cross_entropy.

        optax's test methods call ``_classification.<function>`` through their
        module's global; for the duration of each test that global is a copy of
        optax's module with the functions under test swapped.
        """

        replaced: tuple[str, ...] = ()

        def setUp(self):
            super().setUp()
            original = optax_suite._classification
            shim = types.SimpleNamespace(**vars(original))
            for name in self.replaced:
                setattr(shim, name, js.cross_entropy)
            optax_suite._classification = shim
            self.addCleanup(setattr, optax_suite, "_classification", original)

    class TestOptaxSoftmaxCrossEntropy(_OnJaxsoft, optax_suite.SoftmaxCrossEntropyTest):
        replaced = ("softmax_cross_entropy",)

    class TestOptaxSoftmaxCrossEntropyWithIntegerLabels(
        _OnJaxsoft, optax_suite.SoftmaxCrossEntropyWithIntegerLabelsTest
    ):
        replaced = ("softmax_cross_entropy_with_integer_labels",)

    class TestOptaxSafeSoftmaxCrossEntropy(
        _OnJaxsoft, optax_suite.SafeSoftmaxCrossEntropyTest
    ):
        replaced = ("safe_softmax_cross_entropy",)

    def test_optax_suite_runs_against_jaxsoft():
        # The swap reaches the test methods: a sentinel replaces the function.
        case = TestOptaxSoftmaxCrossEntropy("test_batched")
        case.replaced = ()
        case.setUp()
        try:
            assert optax_suite._classification.softmax_cross_entropy is (
                optax.losses._classification.softmax_cross_entropy
            )
        finally:
            case.doCleanups()
        case = TestOptaxSoftmaxCrossEntropy("test_batched")
        case.setUp()
        try:
            assert optax_suite._classification.softmax_cross_entropy is (
                js.cross_entropy
            )
        finally:
            case.doCleanups()
        assert optax_suite._classification is optax.losses._classification

else:

    def test_optax_suite_runs_against_jaxsoft():
        pytest.skip("optax.losses._classification_test is not installed")


# Side by side ----------------------------------------------------------------------

SHAPE = (3, 4, 5)
# optax's own tests above cover axes 0, 1, 2 and eight tuples for class indices.
AXES = [1, -1, (2, 0), (-1, 1), (0, 1, 2), None]


def _axes(axis):
    """(class axes, batch axes), canonical, class axes in the order given."""
    ndim = len(SHAPE)
    if axis is None:
        class_axes = tuple(range(ndim))
    else:
        class_axes = tuple(a % ndim for a in np.atleast_1d(axis).tolist())
    return class_axes, tuple(i for i in range(ndim) if i not in class_axes)


def _lay_out(flat, axis):
    """(batch..., q) with q a flat class index -> an array of shape SHAPE."""
    class_axes, batch_axes = _axes(axis)
    moved = flat.reshape(flat.shape[:-1] + tuple(SHAPE[a] for a in class_axes))
    return np.transpose(moved, np.argsort(batch_axes + class_axes))


def _to_flat(full, axis):
    """The inverse of `_lay_out`: SHAPE -> (batch..., q)."""
    class_axes, batch_axes = _axes(axis)
    moved = np.transpose(full, batch_axes + class_axes)
    return moved.reshape((*(SHAPE[a] for a in batch_axes), -1))


def _problem(axis, seed):
    """Logits of SHAPE, class indices and probability vectors for ``axis``."""
    rng = np.random.default_rng(seed)
    o = rng.normal(size=SHAPE).astype(np.float32) * 3
    class_axes, batch_axes = _axes(axis)
    batch_shape = tuple(SHAPE[a] for a in batch_axes)
    q = int(np.prod([SHAPE[a] for a in class_axes]))
    labels = rng.integers(0, q, size=batch_shape).astype(np.int32)
    probs = rng.dirichlet(np.ones(q), size=batch_shape).astype(np.float32)
    return o, labels, _lay_out(probs, axis), batch_shape


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_probability_labels_on_any_axes_match_optax(axis):
    o, _, p, batch_shape = _problem(axis, seed=0)
    loss = js.cross_entropy(o, p, axis)
    assert loss.shape == batch_shape
    np.testing.assert_allclose(
        loss, optax.softmax_cross_entropy(o, p, axis), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("axis", [a for a in AXES if a is not None], ids=str)
def test_integer_labels_on_any_axes_match_optax(axis):
    o, y, _, batch_shape = _problem(axis, seed=1)
    loss = js.cross_entropy(o, y, axis)
    assert loss.shape == batch_shape
    expected = optax.softmax_cross_entropy_with_integer_labels(o, y, axis)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    # A label is a flat index into the class axes in the order given: the same
    # loss as the probability vector with its 1 there.
    q = o.size // y.size
    one_hot = _lay_out(np.eye(q, dtype=np.float32)[y], axis)
    np.testing.assert_allclose(js.cross_entropy(o, one_hot, axis), loss, rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, (2, 0)], ids=str)
@pytest.mark.parametrize("mask", ["examples", "logits"])
def test_where_matches_optax_and_grad_is_the_closed_form(axis, mask):
    o, y, p, batch_shape = _problem(axis, seed=2)
    rng = np.random.default_rng(3)
    where = rng.random(batch_shape if mask == "examples" else SHAPE) < 0.6
    for labels, reference in [
        (p, optax.softmax_cross_entropy),
        (y, optax.softmax_cross_entropy_with_integer_labels),
    ]:
        loss = js.cross_entropy(o, labels, axis, where)
        expected = reference(o, labels, axis, where)
        np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
        assert np.all(np.isfinite(loss))

        def total(o, labels=labels):
            return jnp.sum(js.cross_entropy(o, labels, axis, where))

        autodiff = jax.grad(total)(o)
        assert np.all(np.isfinite(autodiff))
        np.testing.assert_allclose(
            js.cross_entropy_grad(o, labels, axis, where), autodiff, atol=1e-6
        )
        if mask == "examples":
            # Masked-out examples contribute nothing: the loss of the others.
            kept = np.asarray(loss)[where]
            flat = _to_flat(o, axis)[where]
            flat_labels = (labels if labels is y else _to_flat(p, axis))[where]
            np.testing.assert_allclose(
                kept, js.cross_entropy(flat, flat_labels), rtol=1e-6
            )
            np.testing.assert_array_equal(np.asarray(loss)[~where], 0.0)


def test_fully_masked_examples_cost_zero_with_finite_gradients():
    o = jnp.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2]])
    p = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y = jnp.array([1, 0])
    for where in (jnp.array([True, False]), jnp.array([[1, 1, 0], [0, 0, 0]], bool)):
        for labels in (p, y):
            loss = js.cross_entropy(o, labels, where=where)
            assert float(loss[1]) == 0.0

            def total(o, labels=labels, where=where):
                return jnp.sum(js.cross_entropy(o, labels, where=where))

            grad = jax.grad(total)(o)
            assert np.all(np.isfinite(grad))
            np.testing.assert_array_equal(grad[1], 0.0)


def test_axis_and_where_under_jit():
    o, y, p, batch_shape = _problem((2, 0), seed=4)
    where = np.arange(np.prod(batch_shape)).reshape(batch_shape) % 2 == 0
    fn = jax.jit(js.cross_entropy, static_argnames="axis")
    for labels in (y, p):
        np.testing.assert_allclose(
            fn(o, labels, axis=(2, 0), where=where),
            js.cross_entropy(o, labels, (2, 0), where),
            rtol=1e-6,
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"axis": 3}, ValueError, "out of bounds"),
        ({"axis": (0, 0)}, ValueError, "twice"),
        ({"axis": ()}, ValueError, "at least one class axis"),
        ({"axis": 1.0}, TypeError, "axis must be an int"),
        ({"where": np.ones((3, 4), np.int32)}, TypeError, "boolean mask"),
        ({"where": np.ones((2,), bool)}, ValueError, "where of shape"),
    ],
)
def test_bad_axis_or_where(kwargs, error, match):
    o = np.zeros(SHAPE, np.float32)
    with pytest.raises(error, match=match):
        js.cross_entropy(o, np.zeros(SHAPE[:-1], np.int32), **kwargs)
