"""Where a probe's rows live: on the mesh, or streamed through it in chunks.

Rows are sharded over the mesh's "data" axis (`jaxsoft.sharding`). Features
stay in device memory when each device's share fits within
``max_device_bytes`` (by default half the device's memory, or a quarter of
host RAM on CPU); larger ones are streamed from the host, one chunk per
step. The chunk size bounds the per-chunk buffers of all heads together
(rows x heads x classes): about 2^20 elements on CPU and 2^25 on
accelerators; streamed chunks hold at most `STREAMED_CHUNK_ROWS` rows,
chunks in memory at most `IN_MEMORY_CHUNK_BYTES` of features a device (a
pass copies each chunk it slices out of the stacked rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxsoft import sharding
from jaxsoft.exact import sparse_rows
from jaxsoft.exact.inputs import SolveInputError
from jaxsoft.exact.passes import Part, Rows

__all__ = ["device_budget", "make_rows"]


def device_budget(max_device_bytes: int | None) -> int:
    """The bytes of features allowed on the device (the limit, or a default)."""
    if max_device_bytes is not None:
        if isinstance(max_device_bytes, bool) or not isinstance(
            max_device_bytes, (int, np.integer)
        ):
            raise SolveInputError(
                f"max_device_bytes must be an integer, got {max_device_bytes!r}."
            )
        if max_device_bytes < 0:
            raise SolveInputError(
                f"max_device_bytes must be >= 0, got {max_device_bytes}."
            )
        return int(max_device_bytes)
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) // 2
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def device_bytes(x: Any, dtype: Any) -> int:
    """Bytes x takes on the devices, all together, in a solve of ``dtype``
    (sparse features: their non-zeros, twice, with their column indices)."""
    if sparse_rows.is_sparse(x):
        return 2 * int(x.nnz) * (np.dtype(dtype).itemsize + 4)
    itemsize = np.dtype(x.dtype).itemsize
    if not np.issubdtype(np.dtype(x.dtype), np.floating) or itemsize > 4:
        itemsize = np.dtype(dtype).itemsize
    return int(x.shape[0]) * int(x.shape[1]) * itemsize


STREAMED_CHUNK_ROWS = 1 << 16
"""Rows per chunk at most when the rows stream from the host (each chunk is
one copy to the device)."""

IN_MEMORY_CHUNK_BYTES = 1 << 29
"""Features (dense, or sparse non-zeros) a device holds of one chunk of rows
in memory, at most
(or `STREAMED_CHUNK_ROWS` rows, where that is more). A pass loops over the
chunks inside one program, and XLA copies each chunk it slices out of the
stacked rows: fewer, larger chunks are faster (binary_200k's 200,000 x 100
float64 rows: 27.9 ms a pass in one chunk, 75.2 ms in four of 65,536 rows on
a 2-core CPU, printed by `benchmarks/bench_practitioner.py --cases mnist`),
and this bounds the copy's memory. MNIST's 60,000 x 784 float64 (376 MB) is one
chunk."""


def chunk_rows(num_heads: int, num_classes: int, requested: int | None) -> int:
    """Rows per chunk: ``requested``, or sized for the heads' buffers (rows
    x heads x classes about 2^20 on a CPU, 2^25 on an accelerator)."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)):
            raise SolveInputError(f"chunk_rows must be an integer, got {requested!r}.")
        if requested < 1:
            raise SolveInputError(f"chunk_rows must be >= 1, got {requested}.")
        return int(requested)
    on_cpu = jax.default_backend() == "cpu"
    elements = (1 << 20) if on_cpu else (1 << 25)
    return max(64, elements // max(1, num_heads * num_classes))


def make_rows(
    parts: Sequence[Part],
    *,
    mesh: Mesh,
    budget: int,
    rows_per_chunk: int,
    dtype: Any,
    shift: np.ndarray,
) -> Rows:
    """`Rows` over ``parts``, streamed when a device's share exceeds ``budget``
    (in chunks of at most `STREAMED_CHUNK_ROWS` rows), else in memory (chunks
    of at most `IN_MEMORY_CHUNK_BYTES` of features a device)."""
    total = sum(device_bytes(p.x, dtype) for p in parts)
    shards = sharding.num_shards(mesh)
    stream = total // shards > budget
    if stream:
        rows_per_chunk = min(rows_per_chunk, STREAMED_CHUNK_ROWS)
    else:  # bytes a row: d x itemsize dense, the mean non-zeros' sparse
        n = sum(int(p.x.shape[0]) for p in parts)
        row_bytes = max(1, -(-total // max(1, n)))
        most = max(STREAMED_CHUNK_ROWS, IN_MEMORY_CHUNK_BYTES * shards // row_bytes)
        rows_per_chunk = min(rows_per_chunk, most)
    return Rows(
        parts,
        mesh=mesh,
        chunk_rows=rows_per_chunk,
        dtype=dtype,
        shift=shift,
        stream=stream,
    )
