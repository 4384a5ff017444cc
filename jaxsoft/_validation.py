"""Trace-time checks shared by the math modules.

Every check here looks only at static information (shapes and dtypes), so it
fires the same way in eager mode and while tracing under `jax.jit`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The dtype the losses compute in: at least float32 (bf16/f16 -> f32)."""
    return jnp.promote_types(dtype, jnp.float32)


def check_floating(name: str, x: jax.Array) -> None:
    """Raises TypeError unless ``x`` has a floating dtype."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype}. "
            f"Convert it first, e.g. {name}.astype(jnp.float32)."
        )


def check_min_rank(name: str, x: jax.Array, rank: int) -> None:
    """Raises ValueError unless ``x`` has at least ``rank`` axes."""
    if x.ndim < rank:
        raise ValueError(
            f"{name} must have at least {rank} dimension(s) with classes on the "
            f"last axis, got shape {x.shape}."
        )


def is_class_index_labels(logits_shape: tuple[int, ...], labels: jax.Array) -> bool:
    """Decides how ``labels`` encodes the targets for logits of shape (..., q).

    Returns True for integer class indices of shape (...), False for
    probability vectors of shape (..., q). Any other layout raises a
    TypeError/ValueError that names the two accepted ones.
    """
    logits_shape = tuple(logits_shape)
    batch_shape = logits_shape[:-1]
    if labels.shape == logits_shape and labels.ndim > 0:
        if not (
            jnp.issubdtype(labels.dtype, jnp.floating)
            or jnp.issubdtype(labels.dtype, jnp.integer)
            or labels.dtype == jnp.bool_
        ):
            raise TypeError(
                f"probability labels have unsupported dtype {labels.dtype}."
            )
        return False
    if labels.shape == batch_shape:
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(
                f"labels of shape {labels.shape} (one per example) must be "
                f"integer class indices, got dtype {labels.dtype}. Cast them "
                "with labels.astype(jnp.int32), or pass probability vectors of "
                f"shape {logits_shape}."
            )
        return True
    raise ValueError(
        f"labels of shape {labels.shape} do not match logits of shape "
        f"{logits_shape}: pass integer class indices of shape {batch_shape} "
        f"or probability vectors of shape {logits_shape}."
    )
