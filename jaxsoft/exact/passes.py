"""Passes over the data in row chunks sharded over a device mesh.

The exact solver reads its training rows many times (once per iteration),
so the rows live in a `Rows` source that hands out fixed-size chunks, each
a global array whose rows are sharded over the mesh's ``"data"`` axis
(`jaxsoft.sharding`): either placed once (in memory) or put on the devices
one chunk at a time (streamed, for features larger than the device budget,
memory-mapped ``.npy`` files included). Each process reads only the rows its
own devices hold. Rows in memory are one stacked array of chunks
(K, chunk_rows, ...), and a pass over them is one program looping over the
chunks (`scan_chunks`); streamed rows run the same chunk function once per
chunk, in the same order, so both give the same sums. XLA adds up each
chunk's sums over the devices.

One data pass evaluates every head at once: the logits of all H heads are
one wide product ``x_chunk @ W_all`` of shapes (m, d) x (d, H q), and the
gradient one product ``x_chunk^T R`` of shapes (d, m) x (m, H q). Features
enter centred, ``x - shift`` (``shift`` is the mean of a sample of rows),
which keeps the float32 sums accurate for features with large offsets; in
memory they are stored centred, so a pass reads x twice and writes nothing
of its size.

Features may also be sparse (scipy.sparse, any format): then each chunk's
features are CSR blocks (`jaxsoft.exact.sparse_rows`), never centred and
never made dense, and the two products of a pass are sparse kernels; the
rest of the pass is the same.

Rows carry a sample weight each and a membership (m, G) in G training sets
(cross-validation folds, or the train indices of any splitter): head h
trains on set ``group[h]`` with weights ``w_i * member[i, group[h]]``.
Padding rows have weight 0, label -1 and no membership.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsoft import compiling, sharding
from jaxsoft.exact import sparse_rows
from jaxsoft.exact.buckets import bucket
from jaxsoft.exact.sparse_rows import SparseX

__all__ = [
    "Chunk",
    "Part",
    "Rows",
    "accumulate",
    "centred_features",
    "compute_dtype",
    "grad_pass",
    "grad_sums_running",
    "head_block",
    "head_logits",
    "host_moments",
    "moments_pass",
    "moments_stride",
]


class Chunk(NamedTuple):
    """m rows on the mesh (rows sharded over ``"data"``).

    Attributes:
      x: (m, d) features, centred when the `Rows` are in memory (bf16 and
        f16 features stay as they are and are centred inside each pass); or
        a `SparseX` (never centred).
      y: (m,) int32 labels; -1 marks a padding row.
      w: (m,) sample weights in the compute dtype; 0 on padding rows.
      member: (m, G) bool, whether the row is in each training set.
    """

    x: jax.Array
    y: jax.Array
    w: jax.Array
    member: jax.Array


class Part(NamedTuple):
    """One block of rows: x (n, d), y (n,), w (n,) or None, member (n, G) or None.

    x may be a NumPy array, a memmap or a `jax.Array`; in several processes
    each process passes the whole (e.g. memory-mapped) array and reads only
    its own rows.
    """

    x: Any
    y: Any
    w: Any = None
    member: Any = None


def compute_dtype(x_dtype: Any) -> np.dtype:
    """float64 for float64 features when JAX's x64 mode is on, else float32."""
    if np.dtype(x_dtype) == np.float64:
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    return np.dtype(np.float32)


def sample_mean(parts: Sequence[Part], rows: int = 4096) -> np.ndarray:
    """The mean (d,) of the first ``rows`` rows, in float64: the centring
    shift (0 for sparse features, which are never centred)."""
    if sparse_rows.is_sparse(parts[0].x):
        return np.zeros(parts[0].x.shape[1])
    x = parts[0].x[: min(rows, parts[0].x.shape[0])]
    return np.asarray(jax.device_get(x), np.float64).mean(0)


class Rows:
    """Row chunks of one or more `Part`s for repeated passes over the mesh.

    Args:
      parts: `Part`s with the same width d and number of sets G.
      mesh: the mesh (rows on its ``"data"`` axis).
      chunk_rows: rows per chunk; rounded up to a multiple of the shards
        (each part's last chunk is padded).
      dtype: the compute dtype (float32 or float64).
      shift: (d,) the centring.
      stream: keep x on the host and put one chunk at a time on the mesh
        (the next chunk's copy starts before the current one is used).
    """

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        mesh: Mesh,
        chunk_rows: int,
        dtype: Any,
        shift: np.ndarray,
        stream: bool = False,
    ) -> None:
        self.mesh, self.dtype = mesh, np.dtype(dtype)
        self.sparse = sparse_rows.is_sparse(parts[0].x)
        if any(sparse_rows.is_sparse(p.x) != self.sparse for p in parts):
            raise ValueError("parts mix sparse and dense features.")
        self.stream = stream and not self.sparse  # sparse rows stay in memory
        self._parts = [self._part(p) for p in parts]
        self.n = sum(len(p.y) for p in self._parts)
        self.d = int(self._parts[0].x.shape[1])
        self.num_sets = int(self._parts[0].member.shape[1])
        shards = sharding.num_shards(mesh)
        # Fewer rows than a chunk: one chunk of a bucketed size, so that
        # nearby row counts (folds, repeated fits) share compiled passes.
        rows = max(1, min(int(chunk_rows), bucket(self.n)))
        self.chunk_rows = -(-rows // shards) * shards
        self._plan = [
            (i, lo, min(lo + self.chunk_rows, len(p.y)))
            for i, p in enumerate(self._parts)
            for lo in range(0, len(p.y), self.chunk_rows)
        ]
        if self.sparse and shards > 1:
            self._parts = [
                _reordered(p, _balanced_order(p.x, self.chunk_rows, shards))
                for p in self._parts
            ]
        if not stream:  # empty chunks (all padding) up to a bucketed count
            self._plan += [(0, 0, 0)] * (bucket(len(self._plan), 8) - len(self._plan))
        self.host_shift = np.asarray(shift, self.dtype)
        self.shift = jax.device_put(self.host_shift, sharding.replicated(mesh))
        self.stacked = None if self.stream else self._load_stacked()

    def _part(self, part: Part) -> Part:
        n = len(part.y)
        w = np.ones(n, self.dtype) if part.w is None else np.asarray(part.w)
        member = np.ones((n, 1), bool) if part.member is None else part.member
        x = sparse_rows.to_csr(part.x, self.dtype) if self.sparse else part.x
        return Part(
            x,
            np.asarray(part.y, np.int32),
            w.astype(self.dtype),
            np.asarray(member, bool),
        )

    def __len__(self) -> int:
        return len(self._plan)

    @property
    def in_memory_centred(self) -> bool:
        """Whether the stacked in-memory features are stored centred (sparse
        ones are used as they are: their shift is 0)."""
        return self.stacked is not None and self.stacked.x.dtype == self.dtype

    def _place(self, a: Any, lo: int, hi: int, fill: Any, dtype: Any) -> jax.Array:
        """Rows lo:hi of ``a`` padded to chunk_rows, sharded on "data".

        Each device's rows are read by the callback for that device only, so
        a process touches only its own rows of a memory-mapped array.
        """
        shape = (self.chunk_rows, *a.shape[1:])
        layout = NamedSharding(self.mesh, P(sharding.DATA_AXIS))
        if isinstance(a, jax.Array):
            block = a[lo:hi].astype(dtype)
            pad = [(0, self.chunk_rows - (hi - lo))] + [(0, 0)] * (a.ndim - 1)
            return jax.device_put(jnp.pad(block, pad, constant_values=fill), layout)

        def read(index: tuple[slice, ...]) -> np.ndarray:
            start, stop, _ = index[0].indices(self.chunk_rows)
            real = max(0, min(stop, hi - lo) - start)
            out = np.full((stop - start, *a.shape[1:]), fill, dtype)
            if real:
                out[:real] = a[lo + start : lo + start + real]
            return out[(slice(None), *index[1:])]

        return jax.make_array_from_callback(shape, layout, read)

    def _x_dtype(self, part: Part) -> np.dtype:
        """The dtype x is kept in on the devices."""
        x_dtype = part.x.dtype
        if not jnp.issubdtype(x_dtype, jnp.floating):
            return self.dtype
        if np.dtype(x_dtype).itemsize > self.dtype.itemsize:
            return self.dtype  # float64 features in a float32 solve
        return np.dtype(x_dtype)

    def _stack(self, field: int, fill: Any, dtype: Any) -> jax.Array:
        """Field ``field`` of every chunk, (K, chunk_rows, ...) with the rows
        sharded on "data"; features are centred here, on the host, in the
        compute dtype (as `_centre` would on the device)."""
        first = self._parts[0][field]
        shape = (len(self._plan), self.chunk_rows, *first.shape[1:])
        layout = NamedSharding(self.mesh, P(None, sharding.DATA_AXIS))
        centre = field == 0 and np.dtype(dtype) == self.dtype

        def read(index: tuple[slice, ...]) -> np.ndarray:
            chunks = range(len(self._plan))[index[0]]
            start, stop, _ = index[1].indices(self.chunk_rows)
            out = np.empty((len(chunks), stop - start, *shape[2:]), dtype)
            for k, (i, lo, hi) in enumerate(self._plan[j] for j in chunks):
                real = max(0, min(stop, hi - lo) - start)
                out[k, real:] = fill
                if real:
                    block = self._parts[i][field][lo + start : lo + start + real]
                    if centre:  # in the compute dtype, as on the device
                        block = np.asarray(block).astype(dtype, copy=False)
                        np.subtract(block, self.host_shift, out=out[k, :real])
                    else:
                        out[k, :real] = block
            return out[(slice(None), slice(None), *index[2:])]

        return jax.make_array_from_callback(shape, layout, read)

    def _load_stacked(self) -> Chunk:
        """Every chunk in memory, stacked (K, chunk_rows, ...)."""
        if self.sparse:
            x = sparse_rows.stack_blocks(
                [p.x for p in self._parts],
                self._plan,
                chunk_rows=self.chunk_rows,
                mesh=self.mesh,
                dtype=self.dtype,
            )
            return Chunk(
                x,
                self._stack(1, -1, np.int32),
                self._stack(2, 0, self.dtype),
                self._stack(3, False, bool),
            )
        if any(isinstance(p.x, jax.Array) for p in self._parts):
            # Device arrays: place (and centre) each chunk there, then stack.
            chunks = [self._load(c, centre=True) for c in self._plan]
            layout = NamedSharding(self.mesh, P(None, sharding.DATA_AXIS))
            return jax.tree.map(
                lambda *a: jax.device_put(jnp.stack(a), layout), *chunks
            )
        return Chunk(
            self._stack(0, 0, self._x_dtype(self._parts[0])),
            self._stack(1, -1, np.int32),
            self._stack(2, 0, self.dtype),
            self._stack(3, False, bool),
        )

    def _load(self, where: tuple[int, int, int], *, centre: bool) -> Chunk:
        i, lo, hi = where
        part = self._parts[i]
        x = self._place(part.x, lo, hi, 0, self._x_dtype(part))
        if centre:
            x = _centre(x, self.shift, self.dtype)
        return Chunk(
            x,
            self._place(part.y, lo, hi, -1, np.int32),
            self._place(part.w, lo, hi, 0, self.dtype),
            self._place(part.member, lo, hi, False, bool),
        )

    def streamed_chunks(self) -> Iterator[Chunk]:
        """Streamed rows' chunks, uncentred, each put on the mesh while the
        one before is in use (rows in memory are `stacked` instead)."""
        upcoming = self._load(self._plan[0], centre=False)
        for k in range(len(self)):
            current = upcoming
            if k + 1 < len(self):
                upcoming = self._load(self._plan[k + 1], centre=False)
            yield current


def _balanced_order(x: Any, chunk_rows: int, shards: int) -> np.ndarray:
    """A permutation of sparse rows that gives each device of each chunk
    (its ``chunk_rows / shards`` consecutive rows) about the same number of
    non-zeros: within a chunk, the rows with most non-zeros first, each to
    the device with the fewest so far that has room."""
    import heapq

    n, each = x.shape[0], chunk_rows // shards
    counts = np.diff(x.indptr)
    order = []
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        room = [min(max(hi - lo - j * each, 0), each) for j in range(shards)]
        heap = [(0, j) for j in range(shards) if room[j]]
        rows: list[list[int]] = [[] for _ in range(shards)]
        for i in lo + np.argsort(-counts[lo:hi], kind="stable"):
            load, j = heapq.heappop(heap)
            rows[j].append(int(i))
            if len(rows[j]) < room[j]:
                heapq.heappush(heap, (load + int(counts[i]), j))
        order.extend(i for device in rows for i in device)
    return np.asarray(order, np.int64)


def _reordered(part: Part, order: np.ndarray) -> Part:
    return Part(part.x[order], part.y[order], part.w[order], part.member[order])


@jax.jit
def _centre_jit(x: jax.Array, shift: jax.Array) -> jax.Array:
    return x.astype(shift.dtype) - shift


def _centre(x: jax.Array, shift: jax.Array, dtype: Any) -> jax.Array:
    """x - shift in the compute dtype (narrower floats keep their dtype)."""
    if np.dtype(x.dtype).itemsize < np.dtype(dtype).itemsize:
        return x  # bf16 / f16 stay small on the device, centred in the pass
    return _centre_jit(x, shift)


class Moments(NamedTuple):
    """Weighted moments of the rows about ``shift`` (float64, on the host).

    Attributes:
      total: sum of the weights.
      mean: (d,) weighted mean of x - shift.
      second: (d, d) weighted covariance, or (d,) variances when diagonal.
    """

    total: float
    mean: np.ndarray
    second: np.ndarray


def centred_features(
    chunk: Chunk, shift: jax.Array, centred: bool
) -> jax.Array | SparseX:
    """The chunk's features centred in the compute dtype (inside a pass);
    sparse features as they are."""
    if centred or isinstance(chunk.x, SparseX):
        return chunk.x
    return chunk.x.astype(shift.dtype) - shift


def _times(x: jax.Array | SparseX, wide: jax.Array) -> jax.Array:
    """``x @ wide``: (m, d) x (d, k) -> (m, k)."""
    if isinstance(x, SparseX):
        return sparse_rows.times(x, wide)
    return x @ wide


def _gradient_wide(x: jax.Array | SparseX, resid: jax.Array) -> jax.Array:
    """``resid^T @ x``: (k, m) x (m, d) -> (k, d)."""
    if isinstance(x, SparseX):
        return sparse_rows.transpose_times(x, resid).T
    return jnp.einsum("mk,md->kd", resid, x)


def scan_chunks(chunk_fn: Any, acc: Any, stacked: Chunk, *args: Any, **static: Any):
    """``acc`` after ``chunk_fn(acc, chunk, *args, **static)`` for each chunk of
    ``stacked`` (K, ...), as one loop inside a program (traceable)."""

    def body(acc, chunk):
        return chunk_fn(acc, chunk, *args, **static), None

    return jax.lax.scan(body, acc, stacked)[0]


def _scan_program(acc, stacked, args, *, chunk_fn, static):
    return scan_chunks(chunk_fn, acc, stacked, *args, **dict(static))


def accumulate(
    rows: Rows, chunk_fn: Any, acc: Any, *args: Any, quick: bool = False, **static: Any
):
    """``acc`` after ``chunk_fn(acc, chunk, *args, shift, centred=...)`` per chunk:
    one program for rows in memory, a program per chunk for streamed rows
    (``quick``: compiled with `jaxsoft.compiling`'s quick options)."""
    if rows.stacked is not None:
        static["centred"] = rows.in_memory_centred
        items = tuple(sorted(static.items()))
        return compiling.call(
            _scan_program,
            rows.mesh,
            acc,
            rows.stacked,
            (*args, rows.shift),
            quick=quick,
            static={"chunk_fn": chunk_fn, "static": items},
        )
    names = ("centred", *static)
    program = compiling.jit(chunk_fn, rows.mesh, quick=quick, static_argnames=names)
    for chunk in rows.streamed_chunks():
        acc = program(acc, chunk, *args, rows.shift, centred=False, **static)
    return acc


@functools.partial(jax.jit, static_argnames=("diagonal", "centred"))
def _moments_chunk(acc, chunk: Chunk, shift, *, diagonal: bool, centred: bool):
    xc = centred_features(chunk, shift, centred)
    w = chunk.w
    if isinstance(xc, SparseX):  # the diagonal basis only
        first = sparse_rows.transpose_times(xc, w[:, None])[:, 0]
        second = sparse_rows.transpose_times(xc, w[:, None], squared=True)[:, 0]
        return acc[0] + w.sum(), acc[1] + first, acc[2] + second
    wx = xc * w[:, None]
    second = jnp.sum(wx * xc, axis=0) if diagonal else wx.T @ xc
    return acc[0] + w.sum(), acc[1] + wx.sum(0), acc[2] + second


def moments_pass(rows: Rows, *, diagonal: bool) -> Moments:
    """Weighted mean and covariance (or variances) of the rows about the shift."""
    if rows.sparse and not diagonal:
        raise ValueError("sparse rows have the diagonal basis only.")
    dt = rows.dtype
    d = rows.d
    second = np.zeros((d,) if diagonal else (d, d), dt)
    acc = sharding.replicate((np.zeros((), dt), np.zeros(d, dt), second), rows.mesh)
    quick = compiling.quick(rows.n * rows.d)
    acc = accumulate(rows, _moments_chunk, acc, diagonal=diagonal, quick=quick)
    total, s1, s2 = (np.asarray(sharding.to_host(a), np.float64) for a in acc)
    return _from_sums(float(total), s1, s2)


def _from_sums(total: float, first: np.ndarray, second: np.ndarray) -> Moments:
    """`Moments` from the weighted sums of x and of its squares (d,) or
    products (d, d) about the shift."""
    m1 = first / total
    return Moments(
        total, m1, second / total - (m1 * m1 if second.ndim == 1 else np.outer(m1, m1))
    )


MOMENTS_FULL_MAX_WORK = 1 << 30
MOMENTS_SAMPLE_ROWS = 1 << 14
MOMENTS_ROWS_PER_FEATURE = 16
"""Rows x features x features above `MOMENTS_FULL_MAX_WORK` (the covariance
of binary_200k's 200,000 x 100 rows, 2e9, took 0.15-0.3 s of a 0.6 s fit on
a 2-core CPU, its sample too little to see, with the same 9 iterations): the
preconditioner's covariance comes from max(`MOMENTS_SAMPLE_ROWS`, this x d)
rows (d features), every k-th row of each part, and a feature whose variance
there is more than 20% off every row's is rescaled to every row's (a rare
pixel the sample misses or over-sees); the other features keep the sample's
covariance, so exact linear relations between them (one-hot columns), which
hold in every row, hold in it too. Any covariance gives an exact change of
variables, so the optimum does not depend on it; the sample conditions
MNIST about as well as every row (59 iterations against 53) for a fraction
of the d x d pass's cost (`benchmarks/bench_practitioner.py` prints both)."""

HOST_MOMENTS_MAX_WORK = 1 << 34
"""Dense NumPy rows whose moments take at most this much work (rows x
features x features for the covariance's rows, plus rows x features) get
them from NumPy on the host: no moments program to trace, lower and compile
(most of 0.17 s of a small first fit on a CPU)."""

# Rows per block of the host moments: the centred copies stay small (and
# their memory is reused from block to block).
_HOST_BLOCK_ROWS = 4096


def moments_stride(n: int, d: int) -> int:
    """Every how many rows the covariance reads: 1 (every row) up to
    `MOMENTS_FULL_MAX_WORK`, then the sample's stride."""
    if n * d * d <= MOMENTS_FULL_MAX_WORK:
        return 1
    sample = max(MOMENTS_SAMPLE_ROWS, MOMENTS_ROWS_PER_FEATURE * d)
    return max(1, -(-n // sample))


def host_moments(
    parts: Sequence[Part], shift: np.ndarray, *, diagonal: bool
) -> Moments | None:
    """The weighted moments of the rows about ``shift``, by NumPy in float64,
    where the parts are dense NumPy arrays (memmaps too) and the work is at
    most `HOST_MOMENTS_MAX_WORK`; None otherwise (device arrays, sparse rows,
    much work: `moments_pass` on the mesh). Every process holds the whole of
    each part, so every process computes the same moments.

    The mean and the variances come from every row, the covariance from
    every `moments_stride`-th row of each part (`MOMENTS_SAMPLE_ROWS`)."""
    if not all(isinstance(p.x, np.ndarray) for p in parts):
        return None
    n, d = sum(len(p.y) for p in parts), int(parts[0].x.shape[1])
    stride = 1 if diagonal else moments_stride(n, d)
    work = n * d + (0 if diagonal else -(-n // stride) * d * d)
    if work > HOST_MOMENTS_MAX_WORK:
        return None
    shift = np.asarray(shift, np.float64)
    total, first, squares = 0.0, np.zeros(d), np.zeros(d)
    s_total, s_first, s_second = 0.0, np.zeros(d), np.zeros((d, d))
    block = max(1, _HOST_BLOCK_ROWS // stride) * stride  # starts on the sample
    for part in parts:
        w_all = None if part.w is None else np.asarray(part.w, np.float64)
        for lo in range(0, len(part.y), block):
            hi = min(lo + block, len(part.y))
            xc = np.asarray(part.x[lo:hi], np.float64) - shift
            w = np.ones(hi - lo) if w_all is None else w_all[lo:hi]
            total += float(w.sum())
            first += w @ xc
            squares += w @ np.square(xc)
            if not diagonal:
                xs, ws = xc[::stride], w[::stride]
                s_total += float(ws.sum())
                s_first += ws @ xs
                s_second += (xs * ws[:, None]).T @ xs
    if not total > 0 or not (diagonal or s_total > 0):
        return None  # no weight (in the sample): the pass, every row
    every_row = _from_sums(total, first, squares)  # the variances
    if diagonal:
        return every_row
    centre = _from_sums(s_total, s_first, s_second).second
    if stride > 1:  # features whose variance the sample misses by 20%:
        variance = np.maximum(every_row.second, 0.0)
        seen = np.maximum(np.diag(centre), 0.0)
        off = np.abs(seen - variance) > 0.2 * variance
        unseen = off & (seen <= 1e-8 * variance)  # constant there, to rounding
        scaled = off & ~unseen
        ratio = np.ones(d)
        ratio[scaled] = np.sqrt(variance[scaled] / seen[scaled])
        centre = centre * np.outer(ratio, ratio)
        centre[unseen, :] = centre[:, unseen] = 0.0
        centre[unseen, unseen] = variance[unseen]
    return Moments(total, every_row.mean, centre)


def head_logits(x: jax.Array, W: jax.Array, c: jax.Array) -> jax.Array:
    """(m, d) centred rows, heads W (H, d, q), c (H, q) -> (m, H, q)."""
    H, d, q = W.shape
    wide = jnp.transpose(W, (1, 0, 2)).reshape(d, H * q)
    return _times(x, wide).reshape(-1, H, q) + c


def _weighted_residual_and_cross_entropy(o: jax.Array, y: jax.Array, weight):
    """``(softmax(o) - y) w`` (m, H, q) and the cross-entropy ``logsumexp(o)
    - o_y`` (m, H), for logits (m, H, q), labels (m, 1, 1) and weights
    (m, H), from one exp of ``o - max(o)`` (the loss's shift: no term
    overflows) and one division a (row, head), not a (row, head, class):
    these are most of a pass's element-wise work."""
    largest = jnp.max(o, axis=-1, keepdims=True)
    e = jnp.exp(o - largest)
    total = jnp.sum(e, axis=-1, keepdims=True)
    onehot = jnp.arange(o.shape[-1]) == y
    o_y = jnp.sum(jnp.where(onehot, o, 0.0), axis=-1, keepdims=True)
    ce = (jnp.log(total) - (o_y - largest))[..., 0]  # o_y - largest first: exact near 0
    resid = e * (weight[..., None] / total) - onehot * weight[..., None]
    return resid, ce


@functools.partial(jax.jit, static_argnames="centred")
def _grad_chunk(acc, chunk: Chunk, W, c, group, shift, *, centred: bool):
    """Adds one chunk's weighted cross-entropy sums and gradients to ``acc``."""
    H, d, q = W.shape
    x = centred_features(chunk, shift, centred)
    o = head_logits(x, W, c)
    weight = chunk.w[:, None] * chunk.member[:, group]  # (m, H)
    y = jnp.maximum(chunk.y, 0)[:, None, None]
    resid, ce = _weighted_residual_and_cross_entropy(o, y, weight)
    ce = jnp.where(weight > 0, ce, 0.0)
    g_wide = _gradient_wide(x, resid.reshape(-1, H * q))  # (H q, d)
    gW = jnp.transpose(g_wide.reshape(H, q, d), (0, 2, 1))
    return acc[0] + (ce * weight).sum(0), acc[1] + gW, acc[2] + resid.sum(0)


def _grad_zeros(W: jax.Array, c: jax.Array):
    return jnp.zeros(W.shape[0], W.dtype), jnp.zeros_like(W), jnp.zeros_like(c)


def grad_sums(stacked: Chunk, W, c, group, shift, *, centred: bool):
    """`grad_pass` over stacked in-memory chunks, traceable (for a caller's
    program that prepares the heads and uses the sums in the same program)."""
    acc = _grad_zeros(W, c)
    return scan_chunks(_grad_chunk, acc, stacked, W, c, group, shift, centred=centred)


HEAD_BLOCK_COLUMNS = 128
"""Logits per row of one block of heads in `grad_sums_running` (heads x
classes): the blocks' matrix products stay wide enough to run near full
speed on a CPU."""


def head_block(num_heads: int, num_classes: int) -> int | None:
    """Heads per block of a pass that skips finished heads (at least two
    blocks), or None: few heads, every head in each pass (`grad_sums`)."""
    block = max(1, HEAD_BLOCK_COLUMNS // num_classes)
    return block if num_heads > block else None


def grad_sums_running(
    stacked: Chunk, W, c, group, shift, running, *, centred: bool, block: int
):
    """`grad_sums` of the heads still ``running`` (H,) bool, traceable: the
    running heads are gathered to the front, in blocks of ``block`` heads,
    and only the blocks that hold one are computed (a loop over blocks whose
    count is a traced value, so one compiled program serves every count);
    the heads of the blocks skipped get sums of 0 (a finished head that
    shares a block with a running one gets its sums). A cross-validation
    over many strengths, whose strong penalties converge in a few passes,
    then pays for the heads still running, not for every head."""
    H = W.shape[0]
    padded = -(-H // block) * block
    order = jnp.argsort(~running, stable=True)  # running heads first
    order = jnp.concatenate([order, jnp.zeros(padded - H, order.dtype)])
    W_all, c_all, group_all = W[order], c[order], group[order]
    blocks = (jnp.sum(running, dtype=jnp.int32) + block - 1) // block

    def one_block(j, acc):
        start = j * block
        W_b, c_b, group_b = (
            jax.lax.dynamic_slice_in_dim(a, start, block)
            for a in (W_all, c_all, group_all)
        )
        sums = grad_sums(stacked, W_b, c_b, group_b, shift, centred=centred)
        return tuple(
            jax.lax.dynamic_update_slice_in_dim(a, s, start, 0)
            for a, s in zip(acc, sums, strict=True)
        )

    acc = jax.lax.fori_loop(0, blocks, one_block, _grad_zeros(W_all, c_all))
    rank = jnp.arange(H, dtype=order.dtype)
    where = jnp.zeros(H, order.dtype).at[order[:H]].set(rank)
    return tuple(a[where] for a in acc)


def grad_pass(
    rows: Rows, W: jax.Array, c: jax.Array, group: jax.Array, *, quick: bool = False
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Weighted cross-entropy sums (H,) and their gradients w.r.t. W, c.

    Head h's logits are ``(x - shift) W[h] + c[h]`` and it trains on the
    rows of set ``group[h]``. Sums, not means: the caller divides by each
    head's total weight.
    """
    shapes = ((W.shape[0],), W.shape, c.shape)
    zeros = sharding.replicate(tuple(np.zeros(a, W.dtype) for a in shapes), rows.mesh)
    return accumulate(rows, _grad_chunk, zeros, W, c, group, quick=quick)
