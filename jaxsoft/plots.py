"""PNG figures of a training run: curves, per-class weights, confusion matrix.

Drawn with matplotlib's non-interactive "Agg" backend (no display needed).
Each function takes host data, writes one PNG and returns its path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxsoft import model
from jaxsoft.train import EpochRecord

__all__ = ["plot_confusion", "plot_history", "plot_weights"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_history(history: Sequence[EpochRecord], path: str | os.PathLike[str]) -> Path:
    """Loss and accuracy per epoch, train and test, side by side.

    Args:
      history: the `EpochRecord`s of a run (at least one).
      path: the PNG file to write.

    Returns:
      The path written.
    """
    if not history:
        raise ValueError("history is empty: there is nothing to plot.")
    plt = _pyplot()
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in (
        (ax_loss, "loss", "cross-entropy (nats)"),
        (ax_acc, "accuracy", "accuracy"),
    ):
        ax.plot(epochs, [getattr(r, f"train_{metric}") for r in history], label="train")
        test = [getattr(r, f"test_{metric}") for r in history]
        if any(v is not None for v in test):
            ax.plot(epochs, [np.nan if v is None else v for v in test], label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    return _save(fig, path)


def _grid(count: int) -> tuple[int, int]:
    cols = min(count, max(1, math.ceil(math.sqrt(count * 1.5))))
    return math.ceil(count / cols), cols


def plot_weights(
    params: model.Params,
    image_shape: Sequence[int],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Each class's weight column W[:, j] drawn as an image of the input's shape.

    Greyscale inputs use a diverging colour map centred on 0 (red pushes
    towards the class, blue against it); colour inputs are rescaled to
    [0, 1] per class.

    Args:
      params: `Params` with W of shape (d, q), d = prod(image_shape).
      image_shape: the shape of one input, e.g. (8, 8, 1) or (28, 28, 1).
      class_names: q names, for the titles.
      path: the PNG file to write.

    Returns:
      The path written.
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
    plt = _pyplot()
    rows, cols = _grid(q)
    fig, axes = plt.subplots(
        rows, cols, figsize=(max(5.0, 1.6 * cols), max(2.6, 1.8 * rows)), squeeze=False
    )
    limit = float(np.abs(weights).max()) or 1.0
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
    return _save(fig, path)


def plot_confusion(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "confusion matrix",
) -> Path:
    """The confusion matrix as a heat map with counts.

    Args:
      confusion: int array (q, q), rows true classes, columns predictions.
      class_names: q names.
      path: the PNG file to write.
      title: the figure's title.

    Returns:
      The path written.
    """
    confusion = np.asarray(confusion)
    q = len(class_names)
    if confusion.shape != (q, q):
        raise ValueError(f"confusion has shape {confusion.shape}, expected ({q}, {q}).")
    plt = _pyplot()
    size = max(4.0, 0.5 * q + 2)
    fig, ax = plt.subplots(figsize=(size, size))
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
    return _save(fig, path)
