"""Sparse rows: the second kind of rows of the exact engine, never made dense.

A pass touches the features in two products per chunk of rows, for every
head at once: the logits ``X_chunk @ W_wide`` (m, d) x (d, H q) and the
gradient ``X_chunk^T R`` (d, m) x (m, H q). For sparse features both are
sparse-times-dense products, each run by JAX's CSR kernel on its own CSR
matrix: the chunk's rows, and the chunk's transpose (a CSR of ``X^T``,
built once on the host), so that neither product scatters. On the CPU this
is XLA's ``cpu_csr_sparse_dense`` kernel, which `benchmarks/bench_sparse.py`
measured against the alternatives: at 50,000 x 2^17 with 4 million
non-zeros and 20 columns, 0.024 s for either product, where scipy takes
0.06 s and XLA's gather with ``segment_sum`` (or a scatter) 0.3-0.4 s.

The rows of a chunk are split over the mesh's ``"data"`` axis as dense rows
are, reordered first so that every device's share holds about as many
non-zeros (`jaxsoft.exact.passes`): each device holds the CSR of its own
rows and of their transpose, and
the products run under `jax.shard_map` (the gradient's sums added up over
the devices). Each block's non-zeros are padded to one bucketed size
(entries past ``indptr[-1]`` are ignored by the kernel), so the chunks stack
and nearby sizes share compiled programs.

Sparse features are never centred (that would make them dense): their
shift is 0, and the centring lives in the change of variables
(`jaxsoft.exact.basis`, diagonal for sparse rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxsoft import sharding
from jaxsoft.exact.buckets import bucket

__all__ = [
    "SparseX",
    "is_sparse",
    "stack_blocks",
    "times",
    "transpose_times",
    "without_empty_columns",
]


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a scipy.sparse matrix or array."""
    return sp.issparse(x)


@jax.tree_util.register_pytree_node_class
class SparseX:
    """The features of chunks of rows as CSR blocks, one per device.

    Leaves (leading axes (D,) per chunk, (K, D) when stacked; D devices on
    the mesh's "data" axis): ``data``, ``indices`` (nse,) and ``indptr``
    (m/D + 1,) of each device's rows; ``t_data``, ``t_indices`` (nse,) and
    ``t_indptr`` (d + 1,) of their transpose. Static: the mesh and d.
    """

    def __init__(self, data, indices, indptr, t_data, t_indices, t_indptr, *, mesh, d):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.t_data, self.t_indices, self.t_indptr = t_data, t_indices, t_indptr
        self.mesh, self.d = mesh, int(d)

    def tree_flatten(self):
        leaves = (
            self.data,
            self.indices,
            self.indptr,
            self.t_data,
            self.t_indices,
            self.t_indptr,
        )
        return leaves, (self.mesh, self.d)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        mesh, d = aux
        return cls(*leaves, mesh=mesh, d=d)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """(rows of a chunk, d) of one chunk's blocks."""
        blocks, rows_each = self.indptr.shape[-2], self.indptr.shape[-1] - 1
        return blocks * rows_each, self.d


def times(x: SparseX, wide: jax.Array) -> jax.Array:
    """``X_chunk @ wide``: (m, d) x (d, k) -> (m, k), rows on "data"."""

    def local(data, indices, indptr, wide):
        rows = indptr.shape[-1] - 1
        block = jsparse.BCSR((data[0], indices[0], indptr[0]), shape=(rows, x.d))
        return block @ wide

    spec = P(sharding.DATA_AXIS)
    return jax.shard_map(
        local, mesh=x.mesh, in_specs=(spec, spec, spec, P()), out_specs=spec
    )(x.data, x.indices, x.indptr, wide.astype(x.dtype))


def transpose_times(x: SparseX, resid: jax.Array, *, squared: bool = False):
    """``X_chunk^T @ resid``: (d, m) x (m, k) -> (d, k), summed over the
    devices (``squared``: of the entries' squares, for the moments)."""

    def local(t_data, t_indices, t_indptr, resid):
        rows = resid.shape[0]
        values = t_data[0] * t_data[0] if squared else t_data[0]
        block = jsparse.BCSR((values, t_indices[0], t_indptr[0]), shape=(x.d, rows))
        return jax.lax.psum(block @ resid, sharding.DATA_AXIS)

    spec = P(sharding.DATA_AXIS)
    return jax.shard_map(
        local, mesh=x.mesh, in_specs=(spec, spec, spec, spec), out_specs=P()
    )(x.t_data, x.t_indices, x.t_indptr, resid.astype(x.dtype))


def _bucket(count: int) -> int:
    return bucket(max(count, 1), 8)


def stack_blocks(
    matrices: Sequence[sp.csr_array],
    plan: Sequence[tuple[int, int, int]],
    *,
    chunk_rows: int,
    mesh: Mesh,
    dtype: Any,
) -> SparseX:
    """The chunks of ``plan`` ((part, lo, hi) row ranges, padded to
    ``chunk_rows``) as stacked CSR blocks on the mesh (K, D, ...)."""
    D = sharding.num_shards(mesh)
    each = chunk_rows // D
    d = int(matrices[0].shape[1])
    blocks, transposed = [], []
    for part, lo, hi in plan:
        for j in range(D):
            start, stop = min(lo + j * each, hi), min(lo + (j + 1) * each, hi)
            block = matrices[part][start:stop]
            if block.shape[0] < each:  # padding rows: empty
                block = sp.vstack(
                    [block, sp.csr_array((each - block.shape[0], d), dtype=dtype)],
                    format="csr",
                )
            blocks.append(sp.csr_array(block))
            transposed.append(sp.csr_array(block.T))  # a CSR of the transpose
    nse = _bucket(max(b.nnz for b in blocks))
    K = len(plan)

    def stack(mats, field: str, length: int, fill_dtype) -> np.ndarray:
        out = np.zeros((K, D, length), fill_dtype)
        for k in range(K):
            for j in range(D):
                values = getattr(mats[k * D + j], field)
                out[k, j, : len(values)] = values
        return out

    arrays = (
        stack(blocks, "data", nse, dtype),
        stack(blocks, "indices", nse, np.int32),
        stack(blocks, "indptr", each + 1, np.int32),
        stack(transposed, "data", nse, dtype),
        stack(transposed, "indices", nse, np.int32),
        stack(transposed, "indptr", d + 1, np.int32),
    )
    layout = jax.sharding.NamedSharding(mesh, P(None, sharding.DATA_AXIS))
    placed = [jax.device_put(a, layout) for a in arrays]
    return SparseX(*placed, mesh=mesh, d=d)


def without_empty_columns(x: Any) -> tuple[Any, np.ndarray | None]:
    """(``x`` without its columns that store no entry, as CSR, the kept
    columns (d,) bool), or (``x``, None) where every column stores one.

    A column with no entry in any row adds nothing to any logit: its
    weights' only term is the penalty, whose optimum there is 0. Hashed
    text leaves most columns empty (2^17 columns, about 41,000 used in
    `benchmarks/bench_practitioner.py`'s text case), and the solver's
    vectors (the L-BFGS memory above all) shrink with them.
    """
    csr = x if isinstance(x, (sp.csr_array, sp.csr_matrix)) else sp.csr_array(x)
    used = np.zeros(csr.shape[1], bool)
    used[csr.indices] = True
    if used.all():
        return x, None
    column = (np.cumsum(used) - 1).astype(np.int32)  # increasing: order kept
    kept = sp.csr_array(
        (csr.data, column[csr.indices], csr.indptr),
        shape=(csr.shape[0], int(used.sum())),
    )
    return kept, used


def to_csr(x: Any, dtype: Any) -> sp.csr_array:
    """Any scipy.sparse matrix or array as a canonical CSR array (sorted,
    summed duplicates) of ``dtype``, int32 indices."""
    csr = sp.csr_array(x, dtype=dtype)
    csr.sum_duplicates()
    csr.sort_indices()
    if csr.nnz and (csr.nnz >= 2**31 or max(csr.shape) >= 2**31):
        raise ValueError("sparse features with 2^31 or more entries or rows.")
    csr.indices = csr.indices.astype(np.int32)
    csr.indptr = csr.indptr.astype(np.int32)
    return csr
