"""Pixel scaling: the one place where images become feature vectors.

Images of shape (n, h, w, c) become float32 rows of shape (n, h*w*c) in
[0, 1]: each pixel is divided by the largest value its format can hold
(`pixel_max`): 255 for 8-bit images, 65535 for 16-bit ones, 16 for the
scikit-learn `digits` (whose builder says so in ``PIXEL_MAX``). Floating
images are taken as already scaled. No centring or standardisation is done
here: the data keep their meaning as intensities, for plots.
"""

from __future__ import annotations

import numpy as np


def pixel_max(dtype: np.dtype, declared: float | None = None) -> float | None:
    """The value that maps to 1.0, or None if images are used as they are.

    Args:
      dtype: the images' dtype (from the TFDS image feature).
      declared: a builder's own ``PIXEL_MAX`` (e.g. 16 for `digits`); wins
        over the dtype.

    Returns:
      ``declared`` if given; ``np.iinfo(dtype).max`` for unsigned integers
      (255 for uint8); None for floating images.
    """
    if declared is not None:
        return float(declared)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.unsignedinteger):
        return float(np.iinfo(dtype).max)
    if np.issubdtype(dtype, np.floating):
        return None
    raise TypeError(f"Cannot scale images of dtype {dtype}.")


def to_features(images: np.ndarray, scale: float | None) -> np.ndarray:
    """Flattens and scales images: x = image / scale.

    Args:
      images: array of shape (n, h, w, c) (any trailing shape).
      scale: from `pixel_max`; None leaves the values unchanged.

    Returns:
      float32 array of shape (n, h*w*c).

    >>> to_features(np.array([[[0, 255]]], dtype=np.uint8), 255.0)
    array([[0., 1.]], dtype=float32)
    """
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    if scale is not None:
        x /= np.float32(scale)
    return x
