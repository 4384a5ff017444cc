"""Image files -> input rows: channels, size, scaling, inversion, transparency."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxsoft.experiment.images import load_images


def stroke(size: int = 32) -> np.ndarray:
    """A vertical bar in the middle of a size x size canvas (True = ink)."""
    ink = np.zeros((size, size), bool)
    ink[4:-4, size // 2 - 4 : size // 2 + 4] = True
    return ink


def box_average(pixels: np.ndarray, size: int) -> np.ndarray:
    """Shrinks a square (s, s) image to (size, size) by averaging s/size blocks."""
    block = pixels.shape[0] // size
    return pixels.reshape(size, block, size, block, *pixels.shape[2:]).mean((1, 3))


def test_dark_ink_on_white_paper_is_inverted_to_light_on_dark(tmp_path):
    path = tmp_path / "paper.png"
    Image.fromarray(np.where(stroke(), 0, 255).astype(np.uint8), "L").save(path)
    # The stroke covers whole 4x4 blocks, so the 8x8 image is exactly 0 or 1.
    ink = box_average(stroke().astype(np.float64), 8)
    assert set(np.unique(ink)) == {0.0, 1.0}
    (row,) = load_images([path], (8, 8, 1))
    np.testing.assert_array_equal(row.reshape(8, 8), ink)  # ink bright, paper dark
    (kept,) = load_images([path], (8, 8, 1), invert="no")
    np.testing.assert_array_equal(kept.reshape(8, 8), 1.0 - ink)


def test_transparent_canvas_counts_as_white_paper(tmp_path):
    # Black ink on a fully transparent background, as canvas drawings are saved.
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[stroke(), 3] = 255
    path = tmp_path / "canvas.png"
    Image.fromarray(rgba, "RGBA").save(path)
    (row,) = load_images([path], (8, 8, 1))
    ink = box_average(stroke().astype(np.float64), 8)
    np.testing.assert_array_equal(row.reshape(8, 8), ink)  # the stroke, inverted


def test_colour_photos_are_never_auto_inverted(tmp_path):
    sky = np.full((16, 16, 3), 230, np.uint8)
    sky[6:10, 6:10] = (200, 30, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(sky, "RGB").save(path)
    (row,) = load_images([path], (4, 4, 3))
    assert row.shape == (48,)
    # 4x4 block averages of the 8-bit pixels, rounded to 8 bits, then / 255;
    # not inverted (an inverted sky would be about 0.1).
    expected = box_average(sky.astype(np.float64), 4) / 255
    np.testing.assert_allclose(row.reshape(4, 4, 3), expected, atol=0.5 / 255 + 1e-6)


def test_bad_shapes_and_options():
    with pytest.raises(ValueError, match="image_shape"):
        load_images([], (8,))
    with pytest.raises(ValueError, match="invert"):
        load_images([], (8, 8), invert="maybe")
