"""`Dataset`: a classification dataset held in memory as NumPy arrays."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test splits of an image-classification dataset, in memory.

    Images are flattened to feature vectors and scaled to [0, 1] (pixel / 255
    for 8-bit images), in `jaxsoft.data` and nowhere else.

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
