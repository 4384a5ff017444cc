"""Tests of jaxsoft.experiment.plots: each figure is a valid PNG of a sensible size."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

import jaxsoft as js
from jaxsoft.experiment import plots
from jaxsoft.train import EpochRecord


def _check_png(path, min_side: int = 200, max_side: int = 4000) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.verify()
    assert min_side <= width <= max_side
    assert min_side <= height <= max_side


def _history(with_test: bool = True) -> list[EpochRecord]:
    return [
        EpochRecord(
            epoch=e,
            train_loss=1.0 / e,
            train_accuracy=1 - 0.5 / e,
            test_loss=1.2 / e if with_test else None,
            test_accuracy=1 - 0.6 / e if with_test else None,
            seconds=0.1,
        )
        for e in range(1, 6)
    ]


@pytest.mark.parametrize("with_test", [True, False])
def test_plot_history(tmp_path, with_test):
    path = tmp_path / "sub" / "curves.png"
    history = _history(with_test)
    fig = plots.plot_history(history, path)
    _check_png(path)
    # The curves are the records' values, epoch by epoch.
    epochs = [1, 2, 3, 4, 5]
    for ax, metric in zip(fig.axes, ("loss", "accuracy"), strict=True):
        splits = ("train", "test") if with_test else ("train",)
        assert [line.get_label() for line in ax.lines] == list(splits)
        for line, split in zip(ax.lines, splits, strict=True):
            expected = [getattr(r, f"{split}_{metric}") for r in history]
            np.testing.assert_array_equal(line.get_xdata(), epochs)
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)


def test_plot_history_ticks_whole_epochs():
    # Three epochs: matplotlib's default ticks would be 1, 1.5, 2, 2.5, 3.
    fig = plots.plot_history(_history()[:3])
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_plot_history_needs_records(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plots.plot_history([], tmp_path / "curves.png")


@pytest.mark.parametrize(
    ("image_shape", "num_classes"),
    [((8, 8, 1), 10), ((28, 28), 10), ((4, 4, 3), 3), ((5, 5, 1), 26)],
)
def test_plot_weights(tmp_path, image_shape, num_classes):
    d = int(np.prod(image_shape))
    params = js.init_params(jax.random.key(0), d, num_classes, scale=1.0)
    names = [f"c{j}" for j in range(num_classes)]
    path = tmp_path / "weights.png"
    fig = plots.plot_weights(params, image_shape, names, path)
    _check_png(path)
    # One panel per class: its weight column as an image, titled by name.
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == names
    w = np.asarray(params.W, np.float64)
    colour = len(image_shape) == 3 and image_shape[-1] == 3
    limit = np.percentile(np.abs(w), 99.5)
    for j, ax in enumerate(drawn):
        (image,) = ax.images
        column = w[:, j].reshape(image_shape if colour else image_shape[:2])
        if colour:  # rescaled to [0, 1] per class
            low, high = column.min(), column.max()
            expected = (column - low) / (high - low)
        else:  # a shared colour range, centred on 0
            expected = column
            np.testing.assert_allclose(image.get_clim(), (-limit, limit), rtol=1e-6)
        np.testing.assert_allclose(image.get_array(), expected, rtol=1e-5, atol=1e-6)


def test_plot_weights_checks_shapes(tmp_path):
    params = js.init_params(jax.random.key(0), 64, 10)
    with pytest.raises(ValueError, match="64"):
        plots.plot_weights(
            params, (7, 7, 1), [str(j) for j in range(10)], tmp_path / "w.png"
        )
    with pytest.raises(ValueError, match="class names"):
        plots.plot_weights(params, (8, 8, 1), ["a"], tmp_path / "w.png")


@pytest.mark.parametrize("num_classes", [2, 10, 40])
def test_plot_confusion(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (num_classes, num_classes))
    names = [f"class {j}" for j in range(num_classes)]
    path = tmp_path / "confusion.png"
    fig = plots.plot_confusion(confusion, names, path)
    _check_png(path)
    (ax,) = fig.axes
    np.testing.assert_array_equal(ax.images[0].get_array(), confusion)
    if num_classes <= 30:  # the counts are written in their cells
        counts = {(t.get_position(), t.get_text()) for t in ax.texts}
        expected = {
            ((j, i), str(confusion[i, j]))
            for i in range(num_classes)
            for j in range(num_classes)
        }
        assert counts == expected


def test_plot_confusion_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        plots.plot_confusion(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "c.png")


@pytest.mark.parametrize("image_shape", [(8, 8, 1), (4, 4, 3)])
def test_plot_examples(tmp_path, image_shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(11, int(np.prod(image_shape))))
    path = tmp_path / "examples.png"
    fig = plots.plot_examples(x, image_shape, [f"#{i}" for i in range(11)], path)
    _check_png(path)
    assert len([ax for ax in fig.axes if ax.images]) == 11


def test_plot_examples_checks_shapes():
    with pytest.raises(ValueError, match=r"shape \(k, 64\)"):
        plots.plot_examples(np.zeros((2, 63)), (8, 8, 1), ["a", "b"])
    with pytest.raises(ValueError, match="titles"):
        plots.plot_examples(np.zeros((2, 64)), (8, 8, 1), ["a"])


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    # A notebook's inline backend must survive plotting; "svg" stands in for it.
    backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plots.plot_history(_history(True), tmp_path / "curves.png")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
