"""`score`: top-1 and top-5 accuracy of every head on a split, in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsoft import model
from jaxsoft.probe import placement
from jaxsoft.probe.features import validate_features
from jaxsoft.probe.passes import score_pass

__all__ = ["score"]


def score(
    heads: model.Params,
    x: Any,
    y: Any,
    *,
    split: str = "test",
    max_device_bytes: int | None = None,
    chunk_rows: int | None = None,
    check: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and top-5 accuracy of each head, each (H,).

    Args:
      heads: `Params` with W (H, d, q), b (H, q) (e.g. `SweepResult.heads`).
      x: features (n, d) (memory-mapped ones are streamed when large).
      y: integer labels (n,) in [0, q).
      split: the split's name, for error messages.
      max_device_bytes: stream x through the device above this size.
      chunk_rows: rows per chunk (default: sized for the heads' buffers).
      check: validate the split first (False only for one already
        validated with `validate_features`).

    Returns:
      ``(accuracy, top5)``; top-5 counts the true class among the 5 highest
      logits (all of them when q <= 5).

    Raises:
      ProbeInputError: a split that does not fit the heads.
    """
    H, d, q = heads.W.shape
    if check:
        x, y = validate_features(x, y, num_classes=q, num_features=d, split=split)
    rows = placement.make_rows(
        [(x, y)],
        budget=placement.device_budget(max_device_bytes),
        rows_per_chunk=placement.chunk_rows(H, q, chunk_rows),
    )
    top1, top5, count = score_pass(rows, heads.W, heads.b)
    return top1[0] / count[0], top5[0] / count[0]
