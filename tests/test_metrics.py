"""accuracy, top_k_accuracy and confusion_matrix against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _strategies import logits_and_labels
from hypothesis import given, settings

import jaxsoft as js

settings.register_profile("jaxsoft", deadline=None, max_examples=60)
settings.load_profile("jaxsoft")

accuracy = jax.jit(js.accuracy)
confusion_matrix = jax.jit(js.confusion_matrix)


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_accuracy_is_the_fraction_of_argmax_hits(o_y):
    o, y = o_y
    expected = np.mean(np.argmax(o, axis=1) == y)
    assert float(accuracy(o, y)) == pytest.approx(expected)
    # Probability labels: their argmax is the label.
    assert float(accuracy(o, js.one_hot(y, o.shape[1]))) == pytest.approx(expected)


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_top_k_accuracy_is_monotone_and_bounded(o_y):
    o, y = o_y
    q = o.shape[1]
    values = [float(js.top_k_accuracy(o, y, k=k)) for k in range(1, q + 1)]
    assert values == sorted(values)
    assert values[-1] == 1.0
    # Without ties, top-1 is accuracy.
    if all(len(set(row.tolist())) == q for row in o):
        assert values[0] == pytest.approx(float(accuracy(o, y)))


def test_top_k_accuracy_rejects_bad_k():
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\]"):
        js.top_k_accuracy(jnp.zeros((2, 3)), jnp.array([0, 1]), k=4)


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_confusion_matrix_matches_numpy(o_y):
    o, y = o_y
    q = o.shape[1]
    expected = np.zeros((q, q), np.int64)
    np.add.at(expected, (y, np.argmax(o, axis=1)), 1)
    cm = np.asarray(confusion_matrix(o, y))
    assert cm.dtype == np.int32
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == len(y)
    assert np.trace(cm) / len(y) == pytest.approx(float(accuracy(o, y)))


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_expected_calibration_error_matches_numpy(o_y):
    o, y = o_y
    num_bins = 10
    probs = np.asarray(js.softmax(o), np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    expected = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = correct[in_bin].mean() - confidence[in_bin].mean()
            expected += in_bin.mean() * abs(gap)
    ece = float(js.expected_calibration_error(o, y, num_bins=num_bins))
    assert ece == pytest.approx(expected, abs=1e-5)
    assert 0.0 <= ece <= 1.0


def test_metric_label_errors():
    with pytest.raises(TypeError, match="integer class indices"):
        js.accuracy(jnp.zeros((3, 4)), jnp.zeros(3))
    with pytest.raises(ValueError, match="do not match logits"):
        js.confusion_matrix(jnp.zeros((3, 4)), jnp.zeros(4, jnp.int32))
