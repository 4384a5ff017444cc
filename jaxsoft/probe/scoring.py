"""`score`: top-1 and top-5 accuracy of every head on a split, in one pass
(`jaxsoft.exact.score`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.sharding import Mesh

from jaxsoft import exact, model
from jaxsoft.probe.features import validate_features

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
    sample_weight: Any = None,
    mesh: Mesh | None = None,
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
      sample_weight: weights (n,) of the rows (None: all 1): weighted
        accuracies.
      mesh: a mesh with a "data" axis (None: every device).

    Returns:
      ``(accuracy, top5)``; top-5 counts the true class among the 5 highest
      logits (all of them when q <= 5).

    Raises:
      ProbeInputError: a split that does not fit the heads.
    """
    _, d, q = heads.W.shape
    if check:
        x, y = validate_features(x, y, num_classes=q, num_features=d, split=split)
    sc = exact.score(
        heads,
        x,
        y,
        sample_weight=sample_weight,
        split=split,
        mesh=mesh,
        max_device_bytes=max_device_bytes,
        chunk_rows=chunk_rows,
    )
    return sc.top1_inside / sc.weight_inside, sc.top5_inside / sc.weight_inside
