"""Hypothesis strategies for logits and labels shared by the math tests.

Logits are drawn on a grid of multiples of 1/8 within [-1e4, 1e4]. On that
grid float32 sums such as ``o + c`` (c an integer) are exact, and two distinct
logits differ by at least 1/8, so properties like shift invariance and
"argmax is preserved" can be checked exactly instead of up to a fudge factor.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

BIG = 1e4
GRID = 8  # logits are multiples of 1 / GRID
BATCH_SIZES = (1, 3, 8)
NUM_CLASSES = (2, 3, 10)


@st.composite
def logits(
    draw: st.DrawFn,
    *,
    magnitude: float = BIG,
    masked: bool = True,
) -> np.ndarray:
    """float32 logits of shape (n, q), optionally with -inf masks.

    Every row keeps at least one finite entry. Magnitudes reach +-``magnitude``
    so that a naive exp() would overflow. Shapes come from a short list so
    that XLA compiles each function a few times, not once per example.
    """
    n = draw(st.sampled_from(BATCH_SIZES))
    q = draw(st.sampled_from(NUM_CLASSES))
    steps = int(magnitude * GRID)
    grid = draw(hnp.arrays(np.int32, (n, q), elements=st.integers(-steps, steps)))
    o = grid.astype(np.float32) / GRID
    if masked and draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, (n, q)))
        keep = draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, q - 1)))
        mask[np.arange(n), keep] = False  # one finite entry per row
        o = np.where(mask, -np.inf, o).astype(np.float32)
    return o


def labels_for(o: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """int32 labels of shape (n,) that never point at a masked (-inf) class."""

    @st.composite
    def draw_labels(draw: st.DrawFn) -> np.ndarray:
        labels = []
        for row in o:
            allowed = np.flatnonzero(np.isfinite(row))
            labels.append(draw(st.sampled_from(allowed.tolist())))
        return np.asarray(labels, np.int32)

    return draw_labels()


def soft_labels_for(o: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """float32 probability vectors of shape (n, q), zero on masked classes."""
    n, q = o.shape

    @st.composite
    def draw_soft(draw: st.DrawFn) -> np.ndarray:
        weights = draw(
            hnp.arrays(np.float32, (n, q), elements=st.floats(0.0, 1.0, width=32))
        )
        weights = np.where(np.isfinite(o), weights, 0.0)
        weights[np.arange(n), np.argmax(o, axis=1)] += 0.5  # never all zero
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)

    return draw_soft()


@st.composite
def logits_and_labels(draw: st.DrawFn, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    o = draw(logits(**kwargs))
    return o, draw(labels_for(o))
