"""Image files -> feature rows shaped like a dataset's training inputs."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxsoft.errors import JaxsoftError

__all__ = ["ImageError", "load_images"]


class ImageError(JaxsoftError, ValueError):
    """An image file is missing, unreadable, too large, or of an unusable shape."""


def _load_one(
    path: str | os.PathLike[str], image_shape: tuple[int, ...], invert: str
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width = image_shape[0], image_shape[1]
    channels = image_shape[2] if len(image_shape) == 3 else 1
    if channels not in (1, 3):
        raise ImageError(f"cannot convert images to {channels} channels.")
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that;
            # refuse both, before decoding a single pixel.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = _flatten_transparency(image).convert(
                    "L" if channels == 1 else "RGB"
                )
    except FileNotFoundError:
        raise ImageError(f"image file {path} does not exist.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{path} is too large to read safely: more than "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's decompression-bomb "
            "limit). Shrink it first; the model needs only "
            f"{height}x{width} pixels."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"{path} is not a readable image file ({err}).") from None
    shrinking = image.width > width or image.height > height
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    pixels = np.asarray(image.resize((width, height), resample), dtype=np.float32)
    pixels = pixels / 255.0
    # Only greyscale datasets are light-on-dark; a colour photo is left as is.
    auto_invert = invert == "auto" and channels == 1 and _has_light_background(pixels)
    if invert == "yes" or auto_invert:
        pixels = 1.0 - pixels
    return pixels.reshape(-1)


def _flatten_transparency(image: Any) -> Any:
    """Transparent pixels (a drawing on a canvas) become white paper, not black."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, "white")
        image.alpha_composite(rgba)
    return image


def _has_light_background(pixels: np.ndarray) -> bool:
    """True when the border is mostly light (dark ink on white paper)."""
    border = np.concatenate(
        [
            pixels[0].ravel(),
            pixels[-1].ravel(),
            pixels[:, 0].ravel(),
            pixels[:, -1].ravel(),
        ]
    )
    return float(border.mean()) > 0.5


def load_images(
    paths: Sequence[str | os.PathLike[str]],
    image_shape: Sequence[int],
    *,
    invert: str = "auto",
) -> np.ndarray:
    """Reads image files (PNG, JPEG, ...) as rows like a dataset's inputs.

    Each image is converted to greyscale or RGB to match the channels of
    ``image_shape``, resized to its height and width (area averaging when
    shrinking), scaled to [0, 1] (pixel / 255) and flattened.

    The datasets store light ink on a dark background (MNIST, digits). A
    photo or drawing of dark ink on white paper is inverted: ``invert="auto"``
    does so for greyscale inputs when the image's border is mostly light;
    "yes" and "no" force it. Transparent pixels count as white paper.

    Args:
      paths: image files.
      image_shape: (height, width) or (height, width, channels), channels 1
        or 3.
      invert: "auto", "yes" or "no".

    Returns:
      float32 array of shape (len(paths), prod(image_shape)).

    Raises:
      ImageError (a ValueError): a missing, unreadable or oversized file
        (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels), or an unsupported
        shape.
    """
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) not in (2, 3) or min(image_shape) < 1:
        raise ImageError(
            f"image_shape must be (height, width[, channels]), got {image_shape}."
        )
    if invert not in ("auto", "yes", "no"):
        raise ImageError(f"invert must be 'auto', 'yes' or 'no', got {invert!r}.")
    rows = [_load_one(path, image_shape, invert) for path in paths]
    if not rows:
        return np.zeros((0, math.prod(image_shape)), np.float32)
    return np.stack(rows).astype(np.float32)
