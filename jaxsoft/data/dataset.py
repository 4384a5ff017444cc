"""`Dataset`: a classification dataset held in memory as NumPy arrays.

`DatasetInfo`: the shapes of one, without its arrays (`jaxsoft.data.describe`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jaxsoft import validation


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test splits of an image-classification dataset, in memory.

    Images are flattened to feature vectors and scaled to [0, 1] (pixel / 255
    for 8-bit images), in `jaxsoft.data` and nowhere else.

    A `Dataset` is valid by construction: both splits go through
    `jaxsoft.validation.validate_split` (with q = ``len(class_names)``, and
    the test split with the train split's d), and ``prod(image_shape)`` must
    be d; otherwise the constructor raises its `ValueError` or `TypeError`.
    Integer or bool features are stored as float32 and labels as int32.

    Attributes:
      name: the dataset's name as passed to `jaxsoft.data.load` (e.g. "mnist").
      x_train: float32 features of shape (n_train, d), d = prod(image_shape).
      y_train: int32 labels of shape (n_train,), each in [0, num_classes).
      x_test: float32 features of shape (n_test, d).
      y_test: int32 labels of shape (n_test,).
      class_names: q human-readable class names; index j names class j.
      image_shape: the original shape of one example (height, width, channels),
        to turn a row of x (or a column of W) back into an image.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}.")
        class_names = _class_names(self.class_names)
        x_train, y_train = validation.validate_split(
            self.x_train, self.y_train, num_classes=len(class_names), split="train"
        )
        d = int(x_train.shape[1])
        x_test, y_test = validation.validate_split(
            self.x_test,
            self.y_test,
            num_classes=len(class_names),
            num_features=d,
            split="test",
        )
        image_shape = _image_shape(self.image_shape, d)
        for field, value in (
            ("x_train", x_train),
            ("y_train", y_train),
            ("x_test", x_test),
            ("y_test", y_test),
            ("class_names", class_names),
            ("image_shape", image_shape),
        ):
            object.__setattr__(self, field, value)

    @property
    def num_classes(self) -> int:
        """q, the number of classes."""
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        """d, the length of one flattened example."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
            f"test={self.x_test.shape}, num_classes={self.num_classes}, "
            f"image_shape={self.image_shape})"
        )


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The name and shapes of the `Dataset` that `jaxsoft.data.load` returns.

    Made by `jaxsoft.data.describe` from what TFDS knows before preparing a
    dataset, to check that a model fits a dataset before loading it.

    Attributes:
      name: the dataset's name, as `Dataset.name`.
      num_features: d = prod(image_shape), as `Dataset.num_features`.
      num_classes: q, as `Dataset.num_classes`.
      class_names: q class names, as `Dataset.class_names`, with one caveat:
        a few catalog datasets (e.g. ``cifar10``, ``cifar100``) learn their
        names from the downloaded files, so until they are prepared in the
        ``data_dir`` given to `describe` their names are ``"0"``..``"q-1"``.
      image_shape: (height, width, channels), as `Dataset.image_shape`.
    """

    name: str
    num_features: int
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if math.prod(self.image_shape) != self.num_features:
            raise ValueError(
                f"num_features {self.num_features} is not the product of "
                f"image_shape {self.image_shape}."
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{len(self.class_names)} class_names for num_classes "
                f"{self.num_classes}."
            )


def _class_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"class_names must be a sequence of str, got {names!r}.")
    if not names:
        raise ValueError("class_names is empty: a dataset needs at least one class.")
    return tuple(names)


def _image_shape(shape: Sequence[int], d: int) -> tuple[int, ...]:
    if isinstance(shape, str) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
        for s in shape
    ):
        raise TypeError(
            f"image_shape must be a sequence of positive ints, got {shape!r}."
        )
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("image_shape is empty; give (height, width, channels).")
    if math.prod(shape) != d:
        raise ValueError(
            f"image_shape {shape} holds {math.prod(shape)} values but each "
            f"example has d = {d} features."
        )
    return shape
