"""`score`: top-1 and top-5 accuracy of every head on a split, in one pass."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import model, sharding
from jaxsoft.exact import Part, compute_dtype, inputs, placement, score_pass
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
    H, d, q = heads.W.shape
    if check:
        x, y = validate_features(x, y, num_classes=q, num_features=d, split=split)
    w = inputs.checked_weight(sample_weight, len(y), split)
    mesh = sharding.resolve_mesh(mesh)
    rows = placement.make_rows(
        [Part(x, np.asarray(jax.device_get(y)), w)],
        mesh=mesh,
        budget=placement.device_budget(max_device_bytes),
        rows_per_chunk=placement.chunk_rows(H, q, chunk_rows),
        dtype=compute_dtype(x.dtype),
        shift=np.zeros(d),
    )
    W, b = sharding.replicate((heads.W, heads.b), mesh)
    group = sharding.replicate(np.zeros(H, np.int32), mesh)
    sc = score_pass(rows, W, b, group)
    return sc.top1_inside / sc.weight_inside, sc.top5_inside / sc.weight_inside
