"""Passes over the data in row chunks, on the device or streamed from the host.

A probe reads its training rows many times (once per solver iteration), so
the rows live in a `Rows` source that hands out fixed-size chunks: either
device arrays placed once (in memory) or host slices put on the device one
chunk at a time (streamed, for features larger than ``max_device_bytes``,
including memory-mapped ``.npy`` files). Both run the same compiled chunk
functions in the same order, so both give the same sums.

One data pass evaluates every head at once: the logits of all H heads are one
wide product ``x_chunk @ W_all`` of shapes (m, d) x (d, H q), and the
gradient one product ``x_chunk^T G`` of shapes (d, m) x (m, H q).
Features are standardised inside the pass, ``(x - mu) / s``, which keeps
the float32 sums accurate for features with large offsets; the solver maps
parameters in and out of that space (`jaxsoft.probe.basis`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import losses

__all__ = ["Chunk", "Rows", "Standardise", "grad_pass", "moments_pass", "score_pass"]

NO_FOLD = -1  # a head trained on every row


class Chunk(NamedTuple):
    """m rows on the device: x (m, d), y (m,) int32, fold (m,) int32.

    Padding rows (at the end of the last chunk) have fold -2: no head
    trains on them and none scores them.
    """

    x: jax.Array
    y: jax.Array
    fold: jax.Array


PADDING = -2


class Rows:
    """Row chunks of one or more parts (x, y[, fold]) for repeated passes.

    Args:
      parts: ``(x, y)`` or ``(x, y, fold)`` tuples with the same width d:
        x (n_i, d) of any numeric dtype (NumPy array, memmap or
        `jax.Array`; bf16 stays bf16 on the device and becomes float32 in
        the pass), y (n_i,) int labels, fold (n_i,) int fold indices for
        cross-validation (default 0).
      chunk_rows: rows per chunk (each part's last chunk is padded).
      stream: keep x on the host and put one chunk at a time on the device
        (the next chunk's copy starts before the current one is used).
    """

    def __init__(
        self, parts: Sequence[tuple], *, chunk_rows: int, stream: bool = False
    ) -> None:
        self._parts = [self._part(*p) for p in parts]
        self.n = sum(len(p[1]) for p in self._parts)
        self.d = int(self._parts[0][0].shape[1])
        self.chunk_rows = max(1, min(int(chunk_rows), self.n))
        self._plan = [
            (i, lo, min(lo + self.chunk_rows, len(y)))
            for i, (_, y, _) in enumerate(self._parts)
            for lo in range(0, len(y), self.chunk_rows)
        ]
        self.stream = stream
        self._chunks = None if stream else [self._load(c) for c in self._plan]

    @staticmethod
    def _part(x, y, fold=None) -> tuple:
        y = np.asarray(y, np.int32)
        fold = np.zeros(len(y), np.int32) if fold is None else np.asarray(fold)
        return x, y, fold.astype(np.int32)

    def __len__(self) -> int:
        return len(self._plan)

    def _load(self, where: tuple[int, int, int]) -> Chunk:
        i, lo, hi = where
        x, y, fold = self._parts[i]
        x, y, fold = x[lo:hi], y[lo:hi], fold[lo:hi]
        if not isinstance(x, jax.Array):
            x = np.asarray(x)
            if x.dtype == np.float64:
                x = x.astype(np.float32)
        pad = self.chunk_rows - (hi - lo)
        if pad:
            xp = jnp if isinstance(x, jax.Array) else np
            x = xp.concatenate([x, xp.zeros((pad, self.d), x.dtype)])
            y = np.concatenate([y, np.zeros(pad, np.int32)])
            fold = np.concatenate([fold, np.full(pad, PADDING, np.int32)])
        return Chunk(jax.device_put(x), jax.device_put(y), jax.device_put(fold))

    def __iter__(self) -> Iterator[Chunk]:
        if self._chunks is not None:
            yield from self._chunks
            return
        upcoming = self._load(self._plan[0])
        for k in range(len(self)):
            current = upcoming
            if k + 1 < len(self):
                upcoming = self._load(self._plan[k + 1])
            yield current


class Standardise(NamedTuple):
    """Per-feature shift and inverse scale: features enter as (x - mu) * inv_s."""

    mu: jax.Array  # (d,)
    inv_s: jax.Array  # (d,)


def _standardised(x: jax.Array, st: Standardise) -> jax.Array:
    return (x.astype(jnp.float32) - st.mu) * st.inv_s


@jax.jit
def _moments_chunk(acc, chunk: Chunk, shift: jax.Array):
    keep = (chunk.fold != PADDING).astype(jnp.float32)[:, None]
    xc = (chunk.x.astype(jnp.float32) - shift) * keep
    return acc[0] + xc.sum(0), acc[1] + xc.T @ xc


def moments_pass(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of the rows, as float64 NumPy arrays.

    Accumulated in float32 around the first chunk's mean (which keeps large
    offsets out of the products); accurate enough for a preconditioner.
    """
    shift = None
    acc = (jnp.zeros(rows.d), jnp.zeros((rows.d, rows.d)))
    for chunk in rows:
        if shift is None:
            keep = np.asarray(chunk.fold) != PADDING
            shift = jnp.asarray(
                np.asarray(chunk.x, np.float32)[keep].mean(0), jnp.float32
            )
        acc = _moments_chunk(acc, chunk, shift)
    s1, s2 = (np.asarray(a, np.float64) for a in acc)
    m1 = s1 / rows.n
    mean = np.asarray(shift, np.float64) + m1
    return mean, s2 / rows.n - np.outer(m1, m1)


def _head_logits(xs: jax.Array, Wt: jax.Array, c: jax.Array) -> jax.Array:
    """(m, d) standardised rows, heads Wt (H, d, q), c (H, q) -> (m, H, q)."""
    H, d, q = Wt.shape
    wide = jnp.transpose(Wt, (1, 0, 2)).reshape(d, H * q)
    return (xs @ wide).reshape(-1, H, q) + c


@jax.jit
def _grad_chunk(acc, chunk: Chunk, Wt, c, held, st: Standardise):
    """Adds one chunk's cross-entropy sums and gradients to ``acc``."""
    H, d, q = Wt.shape
    xs = _standardised(chunk.x, st)
    o = _head_logits(xs, Wt, c)
    weight = (
        (chunk.fold[:, None] != held[None, :]) & (chunk.fold[:, None] != PADDING)
    ).astype(jnp.float32)  # (m, H): rows each head trains on
    log_p = losses.log_softmax(o)
    y = chunk.y[:, None, None]
    ce = -jnp.take_along_axis(log_p, y, axis=-1)[..., 0]  # (m, H)
    resid = jnp.exp(log_p) - (jnp.arange(q) == y)  # softmax - one-hot
    resid = resid * weight[..., None]
    g_wide = xs.T @ resid.reshape(-1, H * q)  # (d, H q)
    gW = jnp.transpose(g_wide.reshape(d, H, q), (1, 0, 2))
    return acc[0] + (ce * weight).sum(0), acc[1] + gW, acc[2] + resid.sum(0)


@jax.jit
def _grad_zeros(Wt: jax.Array, c: jax.Array):
    return jnp.zeros(Wt.shape[0]), jnp.zeros_like(Wt), jnp.zeros_like(c)


def grad_pass(
    rows: Rows, Wt: jax.Array, c: jax.Array, held: jax.Array, st: Standardise
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Summed cross-entropy (H,) and its gradients w.r.t. Wt (H, d, q), c (H, q).

    Head h trains on the rows whose fold differs from ``held[h]`` (-1: all).
    Sums, not means: the caller divides by each head's row count.
    """
    acc = _grad_zeros(Wt, c)
    for chunk in rows:
        acc = _grad_chunk(acc, chunk, Wt, c, held, st)
    return acc


@jax.jit
def _score_chunk(acc, chunk: Chunk, W, b):
    """Adds one chunk's top-1 and top-5 hits per fold and head."""
    o = _head_logits(chunk.x.astype(jnp.float32), W, b)  # (m, H, q)
    k = min(5, o.shape[-1])
    target = jnp.take_along_axis(o, chunk.y[:, None, None], axis=-1)
    rank = jnp.sum(o > target, axis=-1)  # classes scored strictly higher
    top1 = (rank == 0).astype(jnp.float32)
    topk = (rank < k).astype(jnp.float32)
    folds = acc[2].shape[0]
    member = (chunk.fold[:, None] == jnp.arange(folds)[None, :]).astype(jnp.float32)
    return acc[0] + member.T @ top1, acc[1] + member.T @ topk, acc[2] + member.sum(0)


def score_pass(
    rows: Rows, W: jax.Array, b: jax.Array, num_folds: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-1 and top-5 hits of heads W (H, d, q), b (H, q) on raw features.

    Returns:
      ``(top1, top5, count)``: hits (num_folds, H) counted over the rows of
      each fold (without folds every row is fold 0) and rows per fold
      (num_folds,). The true class tied with another counts as a hit.
    """
    H = W.shape[0]
    acc = (jnp.zeros((num_folds, H)), jnp.zeros((num_folds, H)), jnp.zeros(num_folds))
    for chunk in rows:
        acc = _score_chunk(acc, chunk, W, b)
    top1, top5, count = (np.asarray(a, np.float64) for a in acc)
    return top1, top5, count
