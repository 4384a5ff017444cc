"""accuracy, top_k_accuracy and confusion_matrix against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _strategies import logits_and_labels
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxsoft as js

accuracy = jax.jit(js.accuracy)
confusion_matrix = jax.jit(js.confusion_matrix)
top_k_accuracy = jax.jit(js.top_k_accuracy, static_argnames="k")
expected_calibration_error = jax.jit(
    js.expected_calibration_error, static_argnames="num_bins"
)


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_accuracy_is_the_fraction_of_argmax_hits(o_y):
    o, y = o_y
    expected = np.mean(np.argmax(o, axis=1) == y)
    assert float(accuracy(o, y)) == pytest.approx(expected)
    # Probability labels: their argmax is the label.
    assert float(accuracy(o, js.one_hot(y, o.shape[1]))) == pytest.approx(expected)


def _numpy_top_k_accuracy(o: np.ndarray, y: np.ndarray, k: int) -> float:
    """Fraction of rows whose label's logit is at least the k-th largest."""
    kth_largest = np.sort(o, axis=1)[:, -k]
    return float(np.mean(o[np.arange(len(y)), y] >= kth_largest))


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_top_k_accuracy_matches_numpy_for_every_k(o_y):
    o, y = o_y
    q = o.shape[1]
    for k in range(1, q + 1):
        expected = _numpy_top_k_accuracy(np.asarray(o), np.asarray(y), k)
        assert float(top_k_accuracy(o, y, k=k)) == pytest.approx(expected)


@st.composite
def tied_logits_and_labels(draw):
    """Logits from {0, 1, 2}: most rows have ties, often at the label."""
    n = draw(st.sampled_from([1, 4, 8]))
    q = draw(st.sampled_from([2, 3, 5]))
    o = draw(hnp.arrays(np.int32, (n, q), elements=st.integers(0, 2)))
    y = draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, q - 1)))
    return o.astype(np.float32), y


@given(tied_logits_and_labels(), st.integers(1, 5))
def test_top_k_accuracy_counts_ties_for_the_label(o_y, k):
    o, y = o_y
    k = min(k, o.shape[1])
    # A hit when the label's logit is at least the k-th largest (sorted, with
    # repeats): no class ranked by position, ties go to the label.
    expected = _numpy_top_k_accuracy(o, y, k)
    assert float(top_k_accuracy(o, y, k=k)) == pytest.approx(expected)


def test_top_k_accuracy_with_a_tie_at_the_boundary():
    o = jnp.array([[2.0, 1.0, 1.0, 0.0]])
    # Classes 1 and 2 tie for second place: with k=2 both count as hits.
    assert float(js.top_k_accuracy(o, jnp.array([1]), k=2)) == 1.0
    assert float(js.top_k_accuracy(o, jnp.array([2]), k=2)) == 1.0
    assert float(js.top_k_accuracy(o, jnp.array([3]), k=3)) == 0.0


def test_top_k_accuracy_rejects_bad_k():
    for bad in (4, 0, 2.0, True):
        with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\]"):
            js.top_k_accuracy(jnp.zeros((2, 3)), jnp.array([0, 1]), k=bad)


def test_numpy_integers_are_accepted_for_k_and_num_bins():
    o = jnp.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
    y = jnp.array([2, 0])
    assert float(js.top_k_accuracy(o, y, k=np.int64(2))) == pytest.approx(0.5)
    assert float(js.top_k_accuracy(o, y, k=np.int32(3))) == 1.0
    assert float(
        js.expected_calibration_error(o, y, num_bins=np.int64(4))
    ) == pytest.approx(float(js.expected_calibration_error(o, y, num_bins=4)))
    with pytest.raises(ValueError, match="num_bins must be a positive int"):
        js.expected_calibration_error(o, y, num_bins=np.int64(0))


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_confusion_matrix_matches_numpy(o_y):
    o, y = o_y
    q = o.shape[1]
    expected = np.zeros((q, q), np.int64)
    np.add.at(expected, (y, np.argmax(o, axis=1)), 1)
    cm = np.asarray(confusion_matrix(o, y))
    assert cm.dtype == np.int32
    np.testing.assert_array_equal(cm, expected)


@given(logits_and_labels(magnitude=5.0, masked=False))
def test_expected_calibration_error_matches_numpy(o_y):
    o, y = o_y
    num_bins = 10
    o64 = np.asarray(o, np.float64)
    probs = np.exp(o64 - o64.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    expected = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = correct[in_bin].mean() - confidence[in_bin].mean()
            expected += in_bin.mean() * abs(gap)
    ece = float(expected_calibration_error(o, y, num_bins=num_bins))
    assert ece == pytest.approx(expected, abs=1e-5)


def _numpy_ece(o: np.ndarray, y: np.ndarray, num_bins: int) -> float:
    """Float64 ECE: sum over equal-width bins of (n_b / n) |acc_b - conf_b|."""
    o64 = np.asarray(o, np.float64)
    probs = np.exp(o64 - o64.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    gaps = [np.sum(correct[bins == b] - confidence[bins == b]) for b in range(num_bins)]
    return float(np.sum(np.abs(gaps)) / len(y))


@pytest.mark.parametrize("num_bins", [10, 15])
def test_expected_calibration_error_matches_numpy_on_spread_confidences(num_bins):
    # Confidences spread over the bins; the top bin always right, the others
    # always wrong, so neighbouring bins' gaps differ in sign and a bin off by
    # one (which merges two bins) or a wrong bin count changes the answer.
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.1, 6.0, (400, 1))
    o = (rng.normal(size=(400, 4)) * scale).astype(np.float32)
    o64 = np.asarray(o, np.float64)
    p = np.exp(o64 - o64.max(axis=1, keepdims=True))
    top = p.max(axis=1) / p.sum(axis=1) >= (num_bins - 1) / num_bins
    assert 0 < top.sum() < 400
    y = np.where(top, o.argmax(axis=1), (o.argmax(axis=1) + 1) % 4)
    ece = float(expected_calibration_error(o, y, num_bins=num_bins))
    assert ece == pytest.approx(_numpy_ece(o, y, num_bins), abs=1e-5)


METRICS = [
    js.accuracy,
    lambda o, y: js.top_k_accuracy(o, y, k=2),
    js.confusion_matrix,
    js.expected_calibration_error,
]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", [3, -1])
def test_concrete_out_of_range_labels_raise(metric, bad):
    o = jnp.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
    with pytest.raises(ValueError, match=rf"label {bad} at index 1 .*\[0, 3\)"):
        metric(o, np.array([0, bad]))


@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_labels_under_jit_never_count_silently(bad):
    o = jnp.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0], [0.0, 0.0, 5.0]])
    y = jnp.array([0, bad, 2])
    for metric in (METRICS[0], METRICS[1], METRICS[3]):
        assert np.isnan(float(jax.jit(metric)(o, y)))
    # Integer counts cannot be NaN: the example is left out, never moved to
    # another cell (a label of -1 would wrap around to the last row).
    cm = np.asarray(confusion_matrix(o, y))
    expected = np.zeros((3, 3), np.int32)
    expected[0, 0] = expected[2, 2] = 1
    np.testing.assert_array_equal(cm, expected)


def test_metric_label_errors():
    with pytest.raises(TypeError, match="integer class indices"):
        js.accuracy(jnp.zeros((3, 4)), jnp.zeros(3))
    with pytest.raises(ValueError, match="do not match logits"):
        js.confusion_matrix(jnp.zeros((3, 4)), jnp.zeros(4, jnp.int32))


@pytest.mark.parametrize("seed", range(3))
def test_where_counts_only_the_masked_in_examples(seed):
    """Each metric with ``where`` equals the metric of the selected rows alone
    (and a rejected, out-of-range padding label is ignored, not an error)."""
    rng = np.random.default_rng(seed)
    o = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.integers(0, 6, size=40)
    keep = rng.random(40) < 0.6
    y_padded = np.where(keep, y, -1)  # padding labels that must not count
    o_kept, y_kept = o[keep], y[keep]
    pairs = [
        (
            js.accuracy(o, y_padded, where=keep),
            np.mean(o_kept.argmax(axis=1) == y_kept),
        ),
        (
            js.top_k_accuracy(o, y_padded, k=3, where=keep),
            _numpy_top_k_accuracy(o_kept, y_kept, 3),
        ),
        (
            js.expected_calibration_error(o, y_padded, where=keep),
            _numpy_ece(o_kept, y_kept, 15),
        ),
    ]
    for masked, subset in pairs:
        assert float(masked) == pytest.approx(float(subset), abs=1e-6)
    expected = np.zeros((6, 6), np.int64)
    np.add.at(expected, (y_kept, o_kept.argmax(axis=1)), 1)
    np.testing.assert_array_equal(
        js.confusion_matrix(o, y_padded, where=keep), expected
    )


def test_calibration_gaps_add_up_over_batches():
    rng = np.random.default_rng(7)
    o = rng.normal(size=(50, 4)).astype(np.float32) * 3
    y = rng.integers(0, 4, size=50)
    gaps = sum(
        np.asarray(js.metrics.calibration_gaps(o[i : i + 10], y[i : i + 10]))
        for i in range(0, 50, 10)
    )
    assert np.sum(np.abs(gaps)) / 50 == pytest.approx(_numpy_ece(o, y, 15), abs=1e-6)


def test_where_must_be_a_mask_over_examples():
    with pytest.raises(ValueError, match="mask over examples"):
        js.accuracy(np.zeros((3, 2), np.float32), np.array([0, 1, 0]), where=[True])


@pytest.mark.parametrize("seed", range(3))
def test_integer_sample_weights_equal_repeated_rows(seed):
    """scikit-learn's convention: weight k counts an example k times, 0 drops
    it; with ``where`` too, under jit and not."""
    rng = np.random.default_rng(seed)
    o = rng.normal(size=(30, 6)).astype(np.float32) * 2
    y = rng.integers(0, 6, size=30)
    counts = rng.integers(0, 4, size=30)
    keep = rng.random(30) < 0.8
    o_rep, y_rep = np.repeat(o, counts, axis=0), np.repeat(y, counts)
    rep_keep = np.repeat(keep, counts)
    w = counts.astype(np.float32)
    for where, rows in ((None, None), (keep, rep_keep)):
        for metric, kwargs in (
            (js.accuracy, {}),
            (js.top_k_accuracy, {"k": 3}),
            (js.expected_calibration_error, {"num_bins": 10}),
        ):
            expected = metric(o_rep, y_rep, where=rows, **kwargs)
            got = metric(o, y, where=where, sample_weight=w, **kwargs)
            jitted = jax.jit(
                lambda o, y, where, w, metric=metric, kwargs=kwargs: metric(
                    o, y, where=where, sample_weight=w, **kwargs
                )
            )(o, y, where, w)
            assert float(got) == pytest.approx(float(expected), abs=1e-6)
            assert float(jitted) == pytest.approx(float(expected), abs=1e-6)
        np.testing.assert_array_equal(
            js.confusion_matrix(o, y, where=where, sample_weight=w),
            js.confusion_matrix(o_rep, y_rep, where=rows),
        )
        np.testing.assert_allclose(
            js.metrics.calibration_gaps(o, y, 10, where, sample_weight=w),
            js.metrics.calibration_gaps(o_rep, y_rep, 10, rows),
            atol=1e-5,
        )


def test_weighted_metrics_agree_with_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    o = rng.normal(size=(50, 5)).astype(np.float32)
    y = rng.integers(0, 5, size=50)
    w = rng.uniform(0, 3, size=50) * (rng.random(50) > 0.2)
    predicted = o.argmax(axis=1)
    assert float(js.accuracy(o, y, sample_weight=w)) == pytest.approx(
        sklearn_metrics.accuracy_score(y, predicted, sample_weight=w), rel=1e-6
    )
    assert float(js.top_k_accuracy(o, y, k=2, sample_weight=w)) == pytest.approx(
        sklearn_metrics.top_k_accuracy_score(
            y, o, k=2, sample_weight=w, labels=range(5)
        ),
        rel=1e-6,
    )
    confusion = js.confusion_matrix(o, y, sample_weight=w)
    assert jnp.issubdtype(confusion.dtype, jnp.floating)
    np.testing.assert_allclose(
        confusion,
        sklearn_metrics.confusion_matrix(
            y, predicted, labels=range(5), sample_weight=w
        ),
        rtol=1e-6,
    )


def test_sample_weight_is_checked():
    o, y = np.zeros((3, 2), np.float32), np.array([0, 1, 0])
    with pytest.raises(ValueError, match="one weight per example"):
        js.accuracy(o, y, sample_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        js.confusion_matrix(o, y, sample_weight=[1.0, -1.0, 1.0])
    # A zero weight drops the example: its out-of-range label is not checked.
    assert float(js.accuracy(o, [0, 5, 0], sample_weight=[1.0, 0.0, 1.0])) == 1.0
