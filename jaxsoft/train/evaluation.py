"""`evaluate`: the metrics of a split, over every example, in compiled chunks."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import losses, metrics, model, validation
from jaxsoft.config import Config
from jaxsoft.records import Evaluation

__all__ = ["CALIBRATION_BINS", "TOP_K", "evaluate", "evaluate_validated"]

TOP_K = 5
"""The k of the reported top-k accuracy (reported where q > k)."""
CALIBRATION_BINS = 15
"""Confidence bins of the reported expected calibration error."""


@functools.partial(jax.jit, static_argnames=("chunk_size", "top_k"))
def _totals(
    params: model.Params, x: jax.Array, y: jax.Array, *, chunk_size: int, top_k: int
) -> dict[str, jax.Array]:
    """Sums over every example of (n, d) features, ``chunk_size`` rows at a time.

    The rows are padded to whole chunks; the padding is masked out of every
    sum. One `lax.scan` over the chunks, so memory stays at one chunk's
    logits and the whole split is one compiled call.
    """
    n, q = x.shape[0], params.num_classes
    num_chunks = -(-n // chunk_size)
    pad = num_chunks * chunk_size - n
    x_chunks = jnp.pad(x, ((0, pad), (0, 0))).reshape(num_chunks, chunk_size, -1)
    y_chunks = jnp.pad(y, (0, pad)).reshape(num_chunks, chunk_size)
    valid_chunks = (jnp.arange(num_chunks * chunk_size) < n).reshape(
        num_chunks, chunk_size
    )

    def add_chunk(totals: dict[str, jax.Array], chunk: tuple[jax.Array, ...]) -> Any:
        x_chunk, y_chunk, valid = chunk
        o = model.logits(params, x_chunk)
        count = jnp.sum(valid)
        update = {
            "loss": jnp.sum(losses.cross_entropy(o, y_chunk, where=valid)),
            "confusion": metrics.confusion_matrix(o, y_chunk, where=valid),
            "top_k": metrics.top_k_accuracy(o, y_chunk, top_k, where=valid) * count,
            "calibration": metrics.calibration_gaps(
                o, y_chunk, CALIBRATION_BINS, where=valid
            ),
        }
        return jax.tree.map(jnp.add, totals, update), None

    zeros = {
        "loss": jnp.zeros((), jnp.float32),
        "confusion": jnp.zeros((q, q), jnp.int32),
        "top_k": jnp.zeros((), jnp.float32),
        "calibration": jnp.zeros((CALIBRATION_BINS,), jnp.float32),
    }
    totals, _ = jax.lax.scan(add_chunk, zeros, (x_chunks, y_chunks, valid_chunks))
    return totals


def evaluate_validated(
    params: model.Params, x: Any, y: Any, *, chunk_size: int
) -> Evaluation:
    """`evaluate` of a split that `jaxsoft.validation` has already checked."""
    n, q = x.shape[0], params.num_classes
    top_k = min(TOP_K, q)
    totals = jax.device_get(
        _totals(params, x, y, chunk_size=min(chunk_size, n), top_k=top_k)
    )
    confusion = np.asarray(totals["confusion"])
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, np.diag(confusion) / counts, np.nan)
    return Evaluation(
        loss=float(totals["loss"]) / n,
        accuracy=float(np.trace(confusion)) / n,
        top_k_accuracy=round(float(totals["top_k"])) / n if q > TOP_K else None,
        top_k=TOP_K,
        calibration_error=float(np.sum(np.abs(totals["calibration"]))) / n,
        per_class_accuracy=per_class.astype(np.float64),
        confusion=confusion,
        num_examples=n,
    )


def evaluate(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int = Config.eval_chunk_size,
    check_input: bool = True,
) -> Evaluation:
    """Loss, accuracy, top-5 accuracy, calibration and confusion of a split.

    Every example counts exactly once. The examples go through one compiled
    function, ``chunk_size`` rows at a time (the last chunk padded, the
    padding masked out), so memory stays bounded; the result equals the
    unchunked computation. The metrics are those of `jaxsoft.metrics`.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      chunk_size: rows per chunk (>= 1).
      check_input: validate x and y first; pass False only for a split
        already validated (e.g. of a `jaxsoft.data.Dataset`).

    Returns:
      An `Evaluation` (loss, accuracy, top-5 accuracy where q > 5, expected
      calibration error, per-class accuracy, confusion matrix, n).

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> import jaxsoft as js
      >>> from jaxsoft.train import evaluate
      >>> params = js.Params(W=jnp.eye(2), b=jnp.zeros(2))
      >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
      >>> result = evaluate(params, x, np.array([0, 1, 1]), chunk_size=2)
      >>> round(result.accuracy, 4), result.confusion.tolist()
      (0.6667, [[1, 0], [1, 1]])
    """
    validation.check_params(params)
    chunk_size = validation.positive_int("chunk_size", chunk_size)
    if check_input:
        x, y = validation.validate_split(
            x,
            y,
            num_classes=params.num_classes,
            num_features=params.num_features,
            split="eval",
        )
    return evaluate_validated(params, x, y, chunk_size=chunk_size)
