"""The arguments of `jaxsoft.cross_entropy`: class axes, labels and ``where``.

Shape logic only (no math): which axes of the logits hold the classes, how
to turn them into rows of (n, q), optax's broadcasting rule for ``where``,
and the checks of every argument before anything is computed.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsoft import validation

# cross_entropy works on rows: the logits are transposed so that the class axes
# come last, flattened to (n, q), and each row is one example. A tuple of class
# axes is flattened in the order given (optax's convention), so an integer
# label is a flat index into the slice of those axes.


class _Layout(NamedTuple):
    """Which axes of the logits hold the classes, and how to make them rows."""

    class_axes: tuple[int, ...]
    perm: tuple[int, ...]  # the batch axes in order, then the class axes
    batch_shape: tuple[int, ...]
    class_shape: tuple[int, ...]

    @property
    def num_examples(self) -> int:
        return math.prod(self.batch_shape)

    @property
    def num_classes(self) -> int:
        return math.prod(self.class_shape)

    def to_rows(self, a: jax.Array) -> jax.Array:
        """An array of the logits' shape -> (n, q)."""
        return a.transpose(self.perm).reshape(self.num_examples, self.num_classes)

    def from_rows(self, rows: jax.Array) -> jax.Array:
        """(n, q) -> an array of the logits' shape."""
        moved = rows.reshape(self.batch_shape + self.class_shape)
        return moved.transpose(tuple(self.perm.index(i) for i in range(moved.ndim)))


def _layout(shape: tuple[int, ...], axis: int | tuple[int, ...] | None) -> _Layout:
    ndim = len(shape)
    if axis is None:
        axes: tuple[object, ...] = tuple(range(ndim))
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        axes = (axis,)
    if not axes:
        raise ValueError("axis must name at least one class axis, got ().")
    class_axes = []
    for a in axes:
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"axis must be an int, a tuple of ints or None, got {axis!r}."
            ) from None
        if not -ndim <= a < ndim:
            raise ValueError(
                f"axis {a} is out of bounds for logits of shape {tuple(shape)}."
            )
        class_axes.append(a % ndim)
    if len(set(class_axes)) != len(class_axes):
        raise ValueError(f"axis {axis!r} names an axis twice.")
    batch_axes = tuple(a for a in range(ndim) if a not in class_axes)
    return _Layout(
        class_axes=tuple(class_axes),
        perm=batch_axes + tuple(class_axes),
        batch_shape=tuple(shape[a] for a in batch_axes),
        class_shape=tuple(shape[a] for a in class_axes),
    )


def _check_where_shape(
    where_shape: tuple[int, ...], logits_shape: tuple[int, ...], layout: _Layout
) -> None:
    """Raises ValueError unless optax's rule makes ``where`` the logits' shape."""
    where_shape, logits_shape = tuple(where_shape), tuple(logits_shape)
    expanded = where_shape
    if len(where_shape) != len(logits_shape):
        if len(where_shape) + len(layout.class_axes) != len(logits_shape):
            raise ValueError(
                f"where of shape {where_shape} must have shape "
                f"{layout.batch_shape} (one flag per example) or broadcast to "
                f"the logits' shape {logits_shape}."
            )
        sizes = iter(where_shape)
        expanded = tuple(
            1 if a in layout.class_axes else next(sizes)
            for a in range(len(logits_shape))
        )
    try:
        fits = np.broadcast_shapes(expanded, logits_shape) == logits_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"where of shape {where_shape} does not broadcast to the logits' "
            f"shape {logits_shape}."
        )


def broadcast_where(where, logits_shape, layout: _Layout, xp):
    """optax's rule: a mask over examples gets the class axes, then broadcasts."""
    _check_where_shape(where.shape, logits_shape, layout)
    if where.ndim != len(logits_shape):
        where = xp.expand_dims(where, layout.class_axes)
    return xp.broadcast_to(where, logits_shape)


class Checked(NamedTuple):
    """The arguments of `cross_entropy`, checked; still in the logits' layout."""

    layout: _Layout
    logits: jax.Array  # at least float32
    labels: jax.Array  # class indices or probability vectors
    is_index: bool
    where: jax.Array | None  # bool


def check_arguments(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None,
    where: ArrayLike | None,
) -> Checked:
    """Checks shapes and dtypes, and the labels' values when concrete."""
    logits = validation.as_array("logits", logits)
    validation.check_floating("logits", logits)
    validation.check_min_rank("logits", logits, 1)
    logits = logits.astype(validation.compute_dtype(logits.dtype))
    layout = _layout(logits.shape, axis)
    label_array = validation.as_array("labels", labels)
    is_index = validation.is_class_index_labels(
        logits.shape, label_array, layout.batch_shape
    )
    where_array = None
    if where is not None:
        where_array = validation.as_array("where", where)
        if where_array.dtype != jnp.bool_:
            raise TypeError(
                f"where must be a boolean mask, got dtype {where_array.dtype}."
            )
        _check_where_shape(where_array.shape, logits.shape, layout)
    if is_index:
        # Examples masked out by `where` may carry any label (padding, e.g. -1).
        included = None
        if where is not None:
            concrete_where = validation.concrete_value(where)
            if concrete_where is None:  # traced mask: only the NaN rule applies
                included = np.zeros(layout.batch_shape, np.bool_)
            else:
                full = broadcast_where(concrete_where, logits.shape, layout, np)
                included = np.any(full, axis=layout.class_axes)
        validation.check_class_indices(labels, layout.num_classes, included)
    return Checked(layout, logits, label_array, is_index, where_array)
