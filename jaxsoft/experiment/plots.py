"""Figures of a training run: curves, per-class weights, confusion, examples.

Each function takes host data and returns a `matplotlib.figure.Figure`, and
writes it as a PNG when given a ``path``. Figures are built without pyplot, so
the functions never change matplotlib's backend: they work headless (the CLI)
and display inline in a notebook (a returned Figure shows as the cell's
output).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jaxsoft import model
from jaxsoft.train.records import EpochRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_confusion", "plot_examples", "plot_history", "plot_weights"]


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    """Writes ``fig`` to ``path`` as a PNG (creating folders) when given."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def plot_history(
    history: Sequence[EpochRecord], path: str | os.PathLike[str] | None = None
) -> Figure:
    """Loss and accuracy per epoch, train and test, side by side.

    Args:
      history: the `EpochRecord`s of a run (at least one).
      path: a PNG file to write, or None.

    Returns:
      The figure.
    """
    if not history:
        raise ValueError("history is empty: there is nothing to plot.")
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in history]
    fig = _new_figure((10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, label in (
        (ax_loss, "loss", "cross-entropy (nats)"),
        (ax_acc, "accuracy", "accuracy"),
    ):
        ax.plot(epochs, [getattr(r, f"train_{metric}") for r in history], label="train")
        test = [getattr(r, f"test_{metric}") for r in history]
        if any(v is not None for v in test):
            ax.plot(epochs, [np.nan if v is None else v for v in test], label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    return _finish(fig, path)


def _grid(count: int) -> tuple[int, int]:
    cols = min(count, max(1, math.ceil(math.sqrt(count * 1.5))))
    return math.ceil(count / cols), cols


def plot_weights(
    params: model.Params,
    image_shape: Sequence[int],
    class_names: Sequence[str],
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Each class's weight column W[:, j] drawn as an image of the input's shape.

    Greyscale inputs use a diverging colour map centred on 0 (red pushes
    towards the class, blue against it), shared by all classes and spanning
    +-(the 99.5th percentile of |W|), so that a few outlying weights saturate
    instead of washing out the rest; colour inputs are rescaled to [0, 1] per
    class.

    Args:
      params: `Params` with W of shape (d, q), d = prod(image_shape).
      image_shape: the shape of one input, e.g. (8, 8, 1) or (28, 28, 1).
      class_names: q names, for the titles.
      path: a PNG file to write, or None.

    Returns:
      The figure.
    """
    weights = np.asarray(params.W, dtype=np.float32)
    d, q = weights.shape
    image_shape = tuple(int(s) for s in image_shape)
    if math.prod(image_shape) != d:
        raise ValueError(
            f"image_shape {image_shape} has {math.prod(image_shape)} pixels but W "
            f"has d = {d} rows."
        )
    if len(class_names) != q:
        raise ValueError(f"{len(class_names)} class names for q = {q} classes.")
    rows, cols = _grid(q)
    fig = _new_figure((max(5.0, 1.6 * cols), max(2.6, 1.8 * rows)))
    axes = fig.subplots(rows, cols, squeeze=False)
    # A few weights on pixels that are almost always 0 (MNIST's border) can
    # dwarf the rest; a robust range keeps the class templates visible.
    limit = float(np.percentile(np.abs(weights), 99.5)) or 1.0
    colour = len(image_shape) == 3 and image_shape[-1] in (3, 4)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j >= q:
            continue
        image = weights[:, j].reshape(image_shape)
        if colour:
            low, high = image.min(), image.max()
            ax.imshow((image - low) / ((high - low) or 1.0))
        else:
            image = (
                image.reshape(image_shape[:2]) if len(image_shape) > 1 else image[None]
            )
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(class_names[j]), fontsize=9)
    fig.suptitle("learned weights W[:, j] per class")
    return _finish(fig, path)


def plot_confusion(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "confusion matrix",
) -> Figure:
    """The confusion matrix as a heat map with counts.

    Args:
      confusion: int array (q, q), rows true classes, columns predictions.
      class_names: q names.
      path: a PNG file to write, or None.
      title: the figure's title.

    Returns:
      The figure.
    """
    confusion = np.asarray(confusion)
    q = len(class_names)
    if confusion.shape != (q, q):
        raise ValueError(f"confusion has shape {confusion.shape}, expected ({q}, {q}).")
    size = max(4.0, 0.5 * q + 2)
    fig = _new_figure((size, size))
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    if q <= 30:
        threshold = confusion.max() / 2 if confusion.size else 0
        for i in range(q):
            for j in range(q):
                ax.text(
                    j,
                    i,
                    str(int(confusion[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if confusion[i, j] > threshold else "black",
                )
        ax.set_xticks(range(q), [str(c) for c in class_names], rotation=90)
        ax.set_yticks(range(q), [str(c) for c in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _finish(fig, path)


def plot_examples(
    x: np.ndarray,
    image_shape: Sequence[int],
    titles: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    columns: int = 8,
) -> Figure:
    """A grid of input examples drawn as images, each with a title.

    Args:
      x: features of shape (k, d) in [0, 1], d = prod(image_shape).
      image_shape: the shape of one input, e.g. (28, 28, 1).
      titles: k titles (e.g. "true 4 / predicted 9").
      path: a PNG file to write, or None.
      columns: images per row.

    Returns:
      The figure.
    """
    x = np.asarray(x, dtype=np.float32)
    image_shape = tuple(int(s) for s in image_shape)
    if x.ndim != 2 or x.shape[1] != math.prod(image_shape):
        raise ValueError(
            f"x must have shape (k, {math.prod(image_shape)}) for images of shape "
            f"{image_shape}, got {x.shape}."
        )
    if len(titles) != len(x):
        raise ValueError(f"{len(titles)} titles for {len(x)} examples.")
    count = max(1, len(x))
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    fig = _new_figure((1.5 * cols, 1.7 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    colour = len(image_shape) == 3 and image_shape[-1] in (3, 4)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(x):
            continue
        image = x[i].reshape(image_shape)
        if colour:
            ax.imshow(np.clip(image, 0.0, 1.0))
        else:
            ax.imshow(image.reshape(image_shape[:2]), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(str(titles[i]), fontsize=8)
    return _finish(fig, path)
