"""Data parallelism on a device mesh: examples sharded on 'data', the rest replicated.

The trainer runs on a `jax.sharding.Mesh` with a ``"data"`` axis (by default
every device of the default backend: one CPU, the 8 cores of a TPU, every GPU
of every process). Rows of the data are split evenly over the ``"data"`` axis
(padded with zero rows to a multiple of its size; the padding is never drawn
into a batch and is masked out of every sum), while parameters and optimizer
state are replicated. XLA's SPMD partitioner then turns each step into
per-device work plus one all-reduce of the gradient, so the result equals the
one-device run up to float summation order.

The same code serves several processes (`jax.distributed`): arrays are built
with `jax.make_array_from_callback`, so each process moves only the rows that
its own devices hold.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "DATA_AXIS",
    "ShardedSplit",
    "check_batch_size",
    "data_sharding",
    "num_shards",
    "place_split",
    "replicate",
    "replicated",
    "resolve_mesh",
    "to_host",
]

DATA_AXIS = "data"


def resolve_mesh(mesh: Mesh | None = None) -> Mesh:
    """The mesh to train on, with automatic (compiler-chosen) axis types.

    Args:
      mesh: a mesh with a ``"data"`` axis (explicit or automatic axes; other
        axes, if any, hold replicas), or None for every device of the default
        backend on one ``"data"`` axis.

    Returns:
      A mesh over the same devices and axis names whose axes are
      `AxisType.Auto`, so that XLA places the collectives of each step.
    """
    if mesh is None:
        devices = np.array(jax.devices())
        return Mesh(devices, (DATA_AXIS,), axis_types=(AxisType.Auto,))
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"the mesh has axes {mesh.axis_names}, but jaxsoft shards examples "
            f"over an axis named {DATA_AXIS!r}; e.g. "
            "jax.make_mesh((jax.device_count(),), ('data',))."
        )
    auto = (AxisType.Auto,) * len(mesh.axis_names)
    return Mesh(mesh.devices, mesh.axis_names, axis_types=auto)


def num_shards(mesh: Mesh) -> int:
    """The size of the mesh's ``"data"`` axis: how many ways rows are split."""
    return int(mesh.shape[DATA_AXIS])


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``"data"``, the others whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A global batch must split evenly over the ``"data"`` axis."""
    shards = num_shards(mesh)
    if batch_size % shards:
        low = batch_size // shards * shards
        raise ValueError(
            f"`batch_size={batch_size}` does not split evenly over the {shards} "
            f"devices of the mesh's 'data' axis; use a multiple of {shards} "
            f"(e.g. {max(low, shards)} or {low + shards})."
        )


class ShardedSplit:
    """A split on the mesh: rows padded to a multiple of the shards.

    Attributes:
      x: (n_padded, d), rows sharded on ``"data"``.
      y: (n_padded,) int32, sharded alike (padding labels are 0).
      num_examples: n, the real rows (the first n).
    """

    def __init__(self, x: jax.Array, y: jax.Array, num_examples: int):
        self.x, self.y, self.num_examples = x, y, num_examples


def _padded_rows(a: Any, rows: int) -> Any:
    pad = [(0, rows - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    if rows == a.shape[0]:
        return a
    return jnp.pad(a, pad) if isinstance(a, jax.Array) else np.pad(a, pad)


def _place_rows(a: Any, rows: int, sharding: NamedSharding) -> jax.Array:
    if isinstance(a, jax.Array) and a.shape[0] == rows and a.sharding == sharding:
        return a  # already where it belongs
    padded = _padded_rows(a, rows)
    if isinstance(padded, jax.Array):
        return jax.device_put(padded, sharding)
    return jax.make_array_from_callback(
        padded.shape, sharding, lambda index: padded[index]
    )


def place_split(x: Any, y: Any, mesh: Mesh) -> ShardedSplit:
    """Puts a validated split on the mesh, once (NumPy or `jax.Array` input).

    NumPy rows go straight from the host to the devices that hold them; a
    `jax.Array` (e.g. already sharded on another mesh) is moved device to
    device. Neither comes back to the host.
    """
    n, shards = int(x.shape[0]), num_shards(mesh)
    rows = -(-n // shards) * shards
    sharding = data_sharding(mesh)
    return ShardedSplit(
        _place_rows(x, rows, sharding), _place_rows(y, rows, sharding), n
    )


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(
        leaf.dtype, jax.dtypes.prng_key
    )


def _is_placed(leaf: Any, sharding: NamedSharding) -> bool:
    return isinstance(leaf, jax.Array) and leaf.sharding == sharding


def _replicate_leaf(leaf: Any, sharding: NamedSharding) -> Any:
    if _is_key(leaf):
        data = _replicate_leaf(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    if _is_placed(leaf, sharding):
        return leaf
    host = np.asarray(leaf)  # small (parameters, optimizer state)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` as a full copy on each device of the mesh.

    In one process the host arrays go over in one batched transfer; in
    several, each process hands over its copy for its own devices.
    """
    sharding = replicated(mesh)
    leaves, treedef = jax.tree.flatten(tree)
    moving = []
    if jax.process_count() == 1:
        moving = [
            i
            for i, leaf in enumerate(leaves)
            if not _is_key(leaf) and not _is_placed(leaf, sharding)
        ]
    moved = jax.device_put([leaves[i] for i in moving], sharding)
    placed = dict(zip(moving, moved, strict=True))
    return jax.tree.unflatten(
        treedef,
        [
            placed[i] if i in placed else _replicate_leaf(leaf, sharding)
            for i, leaf in enumerate(leaves)
        ],
    )


def to_host(a: Any) -> np.ndarray:
    """The host copy of an array, as a C-contiguous NumPy array: the one
    helper that brings a replicated (or fully addressable) array home.

    In several processes a replicated array is not fully addressable, but
    every process holds the whole of it: its first local copy is the value.
    NumPy arrays and array-likes are returned as NumPy (a copy only where
    they were not C-contiguous).
    """
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        a = a.addressable_data(0)
    return np.asarray(a, order="C")
