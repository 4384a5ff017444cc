"""Scores of heads on rows: weighted top-1 and top-5 hits, in one pass.

`score` places rows as `jaxsoft.exact.solve` places them (the same chunks,
compute dtype and centring) and counts, for every head, the weighted hits
on the rows of its training set and on the real rows outside it (a fold's
held-out rows): a probe's train, cross-validated and validation scores.
`score_pass` is the pass itself, over rows already placed.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxsoft import model, sharding
from jaxsoft.exact import placement
from jaxsoft.exact.inputs import SolveInputError, checked_sets, checked_weight
from jaxsoft.exact.passes import (
    Chunk,
    Part,
    Rows,
    accumulate,
    centred_features,
    compute_dtype,
    head_logits,
    sample_mean,
)

__all__ = ["Scores", "score", "score_pass"]


class Scores(NamedTuple):
    """Weighted top-1 and top-5 hits of each head (H,), with their weights.

    ``inside`` counts the rows of the head's set, ``outside`` the real rows
    outside it (a fold's held-out rows).
    """

    top1_inside: np.ndarray
    top5_inside: np.ndarray
    weight_inside: np.ndarray
    top1_outside: np.ndarray
    top5_outside: np.ndarray
    weight_outside: np.ndarray


@functools.partial(jax.jit, static_argnames="centred")
def _score_chunk(acc, chunk: Chunk, W, c, group, shift, *, centred: bool):
    x = centred_features(chunk, shift, centred)
    o = head_logits(x, W, c)  # (m, H, q)
    k = min(5, o.shape[-1])
    y = jnp.maximum(chunk.y, 0)[:, None, None]
    target = jnp.take_along_axis(o, y, axis=-1)
    rank = jnp.sum(o > target, axis=-1)  # classes scored strictly higher
    top1 = (rank == 0).astype(o.dtype)
    topk = (rank < k).astype(o.dtype)
    inside = chunk.member[:, group]
    real = (chunk.y >= 0)[:, None]
    w_in = jnp.where(inside, chunk.w[:, None], 0.0)
    w_out = jnp.where(real & ~inside, chunk.w[:, None], 0.0)
    new = (
        (top1 * w_in).sum(0),
        (topk * w_in).sum(0),
        w_in.sum(0),
        (top1 * w_out).sum(0),
        (topk * w_out).sum(0),
        w_out.sum(0),
    )
    return tuple(a + b for a, b in zip(acc, new, strict=True))


def score_pass(rows: Rows, W: jax.Array, c: jax.Array, group: jax.Array) -> Scores:
    """Weighted top-1 / top-5 hits of heads (W (H, d, q), c (H, q)) on the rows.

    The true class tied with another counts as a hit.
    """
    H = W.shape[0]
    acc = sharding.replicate(tuple(jnp.zeros(H, W.dtype) for _ in range(6)), rows.mesh)
    acc = accumulate(rows, _score_chunk, acc, W, c, group)
    return Scores(*(np.asarray(sharding.to_host(a), np.float64) for a in acc))


def score(
    heads: model.Params,
    x: Any,
    y: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    row_sets: ArrayLike | None = None,
    group: ArrayLike | None = None,
    split: str = "test",
    mesh: Mesh | None = None,
    max_device_bytes: int | None = None,
    chunk_rows: int | None = None,
) -> Scores:
    """Weighted top-1 / top-5 hits of every head on rows (x, y), in one pass.

    The rows are placed as `solve` places them for these heads (its chunk
    size, compute dtype and centring), so the scores of a solve's heads on
    its own rows add up in the order its passes did.

    Args:
      heads: `Params` with W (H, d, q), b (H, q) (raw, e.g. a `Solution`'s
        heads reshaped to (G L, ...)).
      x: features (n, d), validated by the caller (NumPy, memmap, JAX or
        scipy.sparse).
      y: integer labels (n,) in [0, q).
      sample_weight: weights (n,) >= 0 (None: all 1).
      row_sets: (G, n) bool, the training sets (None: one set of every row).
      group: (H,) each head's set, an index into ``row_sets`` (None: 0).
      split: the split's name, for error messages.
      mesh: a mesh with a "data" axis (None: every device).
      max_device_bytes: stream x through the device above this size.
      chunk_rows: rows per chunk (default: sized for the heads' buffers).

    Returns:
      `Scores` (H,): ``inside`` the head's set, ``outside`` it.

    Raises:
      SolveInputError: bad weights, sets or groups.
    """
    W, b = (np.asarray(jax.device_get(a)) for a in heads)
    H, d, q = W.shape
    y = np.asarray(jax.device_get(y), np.int32)
    n = len(y)
    w = checked_weight(sample_weight, n, split)
    sets = checked_sets(row_sets, n)
    group = np.zeros(H, np.int32) if group is None else np.asarray(group, np.int32)
    if group.shape != (H,) or not np.all((group >= 0) & (group < len(sets))):
        raise SolveInputError(
            f"group must hold one set index in [0, {len(sets)}) per head, "
            f"{H} in all, got {group.tolist()}."
        )
    if int(x.shape[1]) != d:
        raise SolveInputError(f"x_{split} has {x.shape[1]} features but the heads {d}.")
    mesh = sharding.resolve_mesh(mesh)
    parts = [Part(x, y, w, sets.T)]
    dtype = compute_dtype(getattr(x, "dtype", np.float32))
    shift = sample_mean(parts)
    rows = placement.make_rows(
        parts,
        mesh=mesh,
        budget=placement.device_budget(max_device_bytes),
        rows_per_chunk=placement.chunk_rows(H, q, chunk_rows),
        dtype=dtype,
        shift=shift,
    )
    W = W.astype(dtype, copy=False)
    c = (b + np.einsum("d,hdq->hq", shift, W)).astype(dtype)
    return score_pass(rows, *sharding.replicate((W, c, group), mesh))
