"""`evaluate`: the metrics of a split, over every example, in compiled chunks."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxsoft import compiling, losses, metrics, model, sharding, validation, weights
from jaxsoft.train.records import Evaluation

__all__ = [
    "CALIBRATION_BINS",
    "EVAL_CHUNK_SIZE",
    "TOP_K",
    "evaluate",
    "evaluate_sharded",
]

EVAL_CHUNK_SIZE = 16384
"""Examples per compiled evaluation chunk (`evaluate`'s and `fit`'s default)."""

TOP_K = 5
"""The k of the reported top-k accuracy (reported where q > k)."""
CALIBRATION_BINS = 15
"""Confidence bins of the reported expected calibration error."""


def _chunk_sums(
    o: jax.Array,
    y: jax.Array,
    counted: jax.Array,
    top_k: int,
    w: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """One chunk's sums: loss and hits, and with ``top_k`` > 0 the rest.

    ``top_k == 0`` is the light evaluation of every epoch (loss, accuracy);
    the full one adds the confusion matrix, top-k hits and calibration gaps,
    all from `jaxsoft.metrics`. With weights ``w`` (n,) each example counts
    ``w`` times (padding rows and w = 0 are left out), "weight" is the
    chunk's sum of weights and the confusion matrix holds sums of weights,
    as scikit-learn's ``confusion_matrix(..., sample_weight=w)``.
    """
    if w is None:
        count = jnp.sum(counted)
        sums = {"loss": jnp.sum(losses.cross_entropy(o, y, where=counted))}
    else:
        w = jnp.where(counted, w, 0.0)
        counted = w > 0
        ce = losses.cross_entropy(o, y, where=counted)
        count = jnp.sum(w)
        sums = {"weight": count, "loss": jnp.sum(jnp.where(counted, w * ce, 0.0))}

    def total(mean: jax.Array) -> jax.Array:  # an all-padding chunk adds 0
        return jnp.where(count > 0, mean * count, 0.0)

    kwargs = {"where": counted, "sample_weight": w}
    if top_k == 0:
        sums["hits"] = total(metrics.accuracy(o, y, **kwargs))
        return sums
    sums["confusion"] = metrics.confusion_matrix(o, y, **kwargs)
    sums["top_k"] = total(metrics.top_k_accuracy(o, y, top_k, **kwargs))
    sums["calibration"] = metrics.calibration_gaps(o, y, CALIBRATION_BINS, **kwargs)
    return sums


def _local_totals(
    params: model.Params,
    x: jax.Array,
    y: jax.Array,
    valid: jax.Array,
    chunk_size: int,
    top_k: int,
    w: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Sums over one device's rows, ``chunk_size`` at a time, padding masked.

    Runs inside `jax.shard_map` over the "data" axis.

    One `lax.scan` over the chunks, so memory stays at one chunk's logits
    (no loop when the rows fit in one chunk).
    """
    n, q = x.shape[0], params.num_classes
    num_chunks = -(-n // chunk_size)
    if num_chunks == 1:  # one chunk: no loop to compile
        return _chunk_sums(model.logits(params, x), y, valid, top_k, w)
    pad = num_chunks * chunk_size - n
    chunks = (
        jnp.pad(x, ((0, pad), (0, 0))).reshape(num_chunks, chunk_size, -1),
        jnp.pad(y, (0, pad)).reshape(num_chunks, chunk_size),
        jnp.pad(valid, (0, pad)).reshape(num_chunks, chunk_size),
    )
    if w is not None:
        chunks = (*chunks, jnp.pad(w, (0, pad)).reshape(num_chunks, chunk_size))

    def add_chunk(totals: dict[str, jax.Array], chunk: tuple[jax.Array, ...]) -> Any:
        x_chunk, y_chunk, counted, *w_chunk = chunk
        o = model.logits(params, x_chunk)
        update = _chunk_sums(o, y_chunk, counted, top_k, *w_chunk)
        return jax.tree.map(jnp.add, totals, update), None

    zeros = jax.tree.map(
        jnp.zeros_like,
        jax.eval_shape(
            lambda: _chunk_sums(
                jnp.zeros((chunk_size, q)),
                jnp.zeros((chunk_size,), jnp.int32),
                jnp.ones((chunk_size,), bool),
                top_k,
                None if w is None else jnp.zeros((chunk_size,), w.dtype),
            )
        ),
    )
    # The sums vary from device to device (shard_map's type of the carry).
    zeros = jax.lax.pcast(zeros, (sharding.DATA_AXIS,), to="varying")
    totals, _ = jax.lax.scan(add_chunk, zeros, chunks)
    return totals


def _totals(
    params: model.Params,
    x: jax.Array,
    y: jax.Array,
    w: jax.Array | None,
    *,
    mesh: Mesh,
    num_examples: int,
    chunk_size: int,
    top_k: int,
) -> dict[str, jax.Array]:
    """Sums over every real row of a split sharded on the mesh's "data" axis.

    Each device sums its own rows (`jax.shard_map`); one `psum` adds the
    devices' totals. Rows at global index >= ``num_examples`` are padding.
    """
    rows = x.shape[0] // sharding.num_shards(mesh)
    data = P(sharding.DATA_AXIS)

    def per_device(params: model.Params, x: jax.Array, y: jax.Array, *w: Any) -> Any:
        first = jax.lax.axis_index(sharding.DATA_AXIS) * rows
        valid = first + jnp.arange(rows) < num_examples
        chunk = min(chunk_size, rows)
        totals = _local_totals(params, x, y, valid, chunk, top_k, *w)
        return jax.lax.psum(totals, sharding.DATA_AXIS)

    rows_in = (x, y) if w is None else (x, y, w)
    return jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(), *[data] * len(rows_in)),
        out_specs=P(),
    )(params, *rows_in)


@functools.lru_cache(maxsize=8)
def _compiled_totals(mesh: Mesh) -> Any:
    """`_totals`, compiled for ``mesh``'s platform."""
    return jax.jit(
        _totals,
        static_argnames=("mesh", "num_examples", "chunk_size", "top_k"),
        compiler_options=compiling.compiler_options(mesh),
    )


def _split_totals(
    params: model.Params,
    split: sharding.ShardedSplit,
    mesh: Mesh,
    *,
    chunk_size: int,
    top_k: int,
    w: jax.Array | None = None,
) -> dict[str, Any]:
    """`_totals` of a split on the mesh, brought to the host."""
    return jax.device_get(
        _compiled_totals(mesh)(
            params,
            split.x,
            split.y,
            w,
            mesh=mesh,
            num_examples=split.num_examples,
            chunk_size=chunk_size,
            top_k=top_k,
        )
    )


def loss_and_accuracy_sharded(
    params: model.Params,
    split: sharding.ShardedSplit,
    mesh: Mesh,
    *,
    chunk_size: int,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a split on the mesh: the light pass
    that `fit` runs after every epoch (a smaller program than `evaluate`)."""
    n = split.num_examples
    totals = _split_totals(params, split, mesh, chunk_size=chunk_size, top_k=0)
    return float(totals["loss"]) / n, round(float(totals["hits"])) / n


def evaluate_sharded(
    params: model.Params,
    split: sharding.ShardedSplit,
    mesh: Mesh,
    *,
    chunk_size: int,
    w: jax.Array | None = None,
) -> Evaluation:
    """`evaluate` of a validated split already on the mesh (params replicated).

    ``w``: None, or the sample weights laid out like ``split.y`` (padding 0).
    """
    n, q = split.num_examples, params.num_classes
    totals = _split_totals(
        params, split, mesh, chunk_size=chunk_size, top_k=min(TOP_K, q), w=w
    )
    confusion = np.asarray(totals["confusion"], None if w is None else np.float64)
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, np.diag(confusion) / counts, np.nan)
    if w is None:
        total, top_k_hits = n, round(float(totals["top_k"]))
    else:
        total, top_k_hits = float(totals["weight"]), float(totals["top_k"])
    return Evaluation(
        loss=float(totals["loss"]) / total,
        accuracy=float(np.trace(confusion)) / total,
        top_k_accuracy=top_k_hits / total if q > TOP_K else None,
        top_k=TOP_K,
        calibration_error=float(np.sum(np.abs(totals["calibration"]))) / total,
        per_class_accuracy=per_class.astype(np.float64),
        confusion=confusion,
        num_examples=n,
    )


def evaluate(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int = EVAL_CHUNK_SIZE,
    check_input: bool = True,
    mesh: Mesh | None = None,
    sample_weight: ArrayLike | None = None,
) -> Evaluation:
    """Loss, accuracy, top-5 accuracy, calibration and confusion of a split.

    Every example counts exactly once, on any number of devices. The rows are
    sharded over the "data" axis of ``mesh`` (default: every device); each
    device runs over its rows ``chunk_size`` at a time in one compiled
    function (the padding masked out), so memory stays bounded, and one
    all-reduce adds up the devices. The result equals the unchunked,
    one-device computation. The metrics are those of `jaxsoft.metrics`.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      chunk_size: rows per chunk (>= 1).
      check_input: validate x and y first; pass False only for a split
        already validated (e.g. of a `jaxsoft.data.Dataset`).
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None for every
        device.
      sample_weight: optional weights (n,), each finite and >= 0, not all 0
        (`jaxsoft.weights.check_sample_weight`). Every metric is then
        weighted: ``sum_i w_i m_i / sum_i w_i`` (the loss, accuracy, top-5
        accuracy, calibration error, per-class accuracy), and the confusion
        matrix holds sums of weights (float64) as scikit-learn's does. Integer
        weights equal repeated rows; zero weights equal dropped rows.

    Returns:
      An `Evaluation` (loss, accuracy, top-5 accuracy where q > 5, expected
      calibration error, per-class accuracy, confusion matrix, n: the rows
      given, weighted or not).

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
    sample_weight = weights.check_sample_weight(
        sample_weight, int(np.shape(x)[0]), split="eval"
    )
    mesh = sharding.resolve_mesh(mesh)
    split = sharding.place_split(x, y, mesh)
    return evaluate_sharded(
        sharding.replicate(params, mesh),
        split,
        mesh,
        chunk_size=chunk_size,
        w=place_weights(sample_weight, split, params, mesh),
    )


def place_weights(
    sample_weight: Any,
    split: sharding.ShardedSplit,
    params: model.Params,
    mesh: Mesh,
) -> jax.Array | None:
    """Checked weights (n,) laid out on the mesh like ``split.y`` (padding 0),
    in the parameters' float dtype (at least float32); None for None.

    The weights come to the host once (n numbers) and each device gets its
    rows, as `jaxsoft.sharding.place_split` does for the labels.
    """
    if sample_weight is None:
        return None
    w = np.asarray(jax.device_get(sample_weight), np.float64)
    padded = np.zeros(split.y.shape, jnp.promote_types(params.W.dtype, jnp.float32))
    padded[: w.shape[0]] = w
    return jax.make_array_from_callback(
        padded.shape, sharding.data_sharding(mesh), lambda index: padded[index]
    )
