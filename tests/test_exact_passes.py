"""jaxsoft.exact.passes, the data passes every head shares, against plain
JAX and NumPy: each head's weighted cross-entropy sum and its gradient over
its own training set (rows in several parts and chunks, in memory or
streamed) against `jax.grad`, the objective and its raw gradient rebuilt
from them, the moments against NumPy's weighted moments, the scores
against NumPy's top-k; and sparse rows (jaxsoft.exact.sparse_rows) give
what the same rows give dense."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import objective, weighted_ce_sum, weighted_mean_and_cov, weighted_problem

from jaxsoft import sharding
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact import passes, placement, scoring
from jaxsoft.exact.passes import Part, Rows

N, D, Q = 60, 5, 7
GROUP = np.array([0, 1, 2, 1], np.int32)  # head h trains on set GROUP[h]
L2 = np.array([0.0, 1e-3, 0.1, 1.0])  # and has strength L2[h]


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout


@pytest.fixture(scope="module")
def problem():
    return weighted_problem(n=N, d=D, q=Q, sets=3, seed=2)


def _rows(x, y, w, member, *, shift, stream=False):
    """The rows in two parts of unequal sizes, in chunks of 16 rows (the
    last chunk of each part padded)."""
    parts = [
        Part(x[:37], y[:37], w[:37], member[:37]),
        Part(x[37:], y[37:], w[37:], member[37:]),
    ]
    return Rows(
        parts,
        mesh=sharding.resolve_mesh(),
        chunk_rows=16,
        dtype=np.float64,
        shift=shift,
        stream=stream,
    )


def _heads(seed=0):
    """Heads W (H, d, q), c (H, q): one at 0 (uniform predictions), the
    others random."""
    rng = np.random.default_rng(seed)
    W = 0.3 * rng.normal(size=(len(GROUP), D, Q))
    c = rng.normal(size=(len(GROUP), Q))
    W[0], c[0] = 0.0, 0.0
    return W, c


def _grad_pass(rows, W, c):
    heads = sharding.replicate((W, c, GROUP), rows.mesh)
    return tuple(np.asarray(a) for a in passes.grad_pass(rows, *heads))


_ce_and_grad = jax.jit(jax.value_and_grad(weighted_ce_sum, argnums=(3, 4)))
_objective_and_grad = jax.jit(jax.value_and_grad(objective, argnums=(3, 4)))


@pytest.mark.parametrize("stream", [False, True])
def test_grad_pass_is_jax_grad_of_each_heads_weighted_sum(problem, stream):
    """Head h: sum over its set's rows of w_i CE_i at logits
    (x - shift) W[h] + c[h], and its gradient w.r.t. W[h], c[h]."""
    x, y, w, member = problem
    shift = x[:9].mean(0)
    rows = _rows(x, y, w, member, shift=shift, stream=stream)
    assert rows.stream == stream and len(rows) >= 4
    W, c = _heads()
    ce, gW, gc = _grad_pass(rows, W, c)
    for h, g in enumerate(GROUP):
        weights = w * member[:, g]
        value, (eW, ec) = _ce_and_grad(x - shift, y, weights, W[h], c[h])
        assert ce[h] == pytest.approx(float(value), rel=1e-12)
        np.testing.assert_allclose(gW[h], eW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gc[h], ec, rtol=1e-10, atol=1e-12)
    assert ce[0] == pytest.approx(np.log(Q) * w.sum(), rel=1e-12)  # uniform


def test_the_pass_keeps_its_digits_at_logits_of_a_thousand(problem):
    """Logits of order 1e3 (exp overflows without the shift; a confident
    row's cross-entropy is ~exp(-1000)): the sums are still jax.grad's of
    the weighted sum through jax.nn.logsumexp."""
    x, y, w, member = problem
    shift = x[:9].mean(0)
    rows = _rows(x, y, w, member, shift=shift)
    W, c = _heads(seed=5)
    W, c = 400.0 * W, 400.0 * c
    assert np.abs((x - shift) @ W[1] + c[1]).max() > 1e3
    ce, gW, gc = _grad_pass(rows, W, c)
    assert np.isfinite(ce).all() and np.isfinite(gW).all()
    for h, g in enumerate(GROUP):
        value, (eW, ec) = _ce_and_grad(x - shift, y, w * member[:, g], W[h], c[h])
        assert ce[h] == pytest.approx(float(value), rel=1e-12)
        np.testing.assert_allclose(gW[h], eW, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(gc[h], ec, rtol=1e-10, atol=1e-9)


def test_rows_in_memory_are_one_chunk_and_streamed_ones_bounded(monkeypatch):
    """70,000 rows, 1 head of 2 classes: in memory, one chunk (a pass
    copies every chunk it slices out of the stacked rows), or chunks of at
    most `IN_MEMORY_CHUNK_BYTES` of features; streamed, chunks of at most
    `STREAMED_CHUNK_ROWS` rows; all give the same sums."""
    rng = np.random.default_rng(0)
    n = 70_000
    x, y = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    parts = [Part(x, y, None, None)]
    rows_per_chunk = placement.chunk_rows(1, 2, None)
    assert rows_per_chunk >= n
    kw = dict(rows_per_chunk=rows_per_chunk, dtype=np.float64, shift=np.zeros(3))
    mesh = sharding.resolve_mesh()
    in_memory = placement.make_rows(parts, mesh=mesh, budget=1 << 40, **kw)
    streamed = placement.make_rows(parts, mesh=mesh, budget=0, **kw)
    assert not in_memory.stream and len(in_memory) == 1
    assert in_memory.chunk_rows >= n
    assert streamed.stream and streamed.chunk_rows == placement.STREAMED_CHUNK_ROWS
    monkeypatch.setattr(placement, "IN_MEMORY_CHUNK_BYTES", 68_000 * 3 * 8)
    bounded = placement.make_rows(parts, mesh=mesh, budget=1 << 40, **kw)
    assert not bounded.stream and len(bounded) == 2
    assert bounded.chunk_rows * 3 * 8 <= placement.IN_MEMORY_CHUNK_BYTES
    heads = sharding.replicate(
        (rng.normal(size=(1, 3, 2)), rng.normal(size=(1, 2)), np.zeros(1, np.int32)),
        mesh,
    )
    one_chunk = passes.grad_pass(in_memory, *heads)
    for rows in (streamed, bounded):
        chunked = passes.grad_pass(rows, *heads)
        for whole, chunks in zip(one_chunk, chunked, strict=True):
            np.testing.assert_allclose(whole, chunks, rtol=1e-12)


@pytest.mark.parametrize(
    "running", [[1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
)
def test_the_pass_of_running_heads_skips_finished_ones(problem, running):
    """`grad_sums_running` in blocks of 3 heads (4 heads: a padded block):
    each running head's sums are jax.grad's of its weighted sum; only the
    blocks that hold a running head are computed (a finished head sharing
    one gets its sums too), the others' sums are 0."""
    x, y, w, member = problem
    shift = x[:9].mean(0)
    rows = _rows(x, y, w, member, shift=shift)
    W, c = _heads(seed=3)
    running = np.asarray(running, bool)
    run = jax.jit(functools.partial(passes.grad_sums_running, centred=True, block=3))
    ce, gW, gc = (
        np.asarray(a)
        for a in run(rows.stacked, W, c, GROUP, rows.shift, jnp.asarray(running))
    )
    computed = -(-running.sum() // 3) * 3  # heads in the blocks computed
    assert np.count_nonzero(ce) == min(computed, len(GROUP))
    for h, g in enumerate(GROUP):
        if not running[h] and ce[h] == 0:  # skipped
            assert not gW[h].any() and not gc[h].any()
            continue
        value, (eW, ec) = _ce_and_grad(x - shift, y, w * member[:, g], W[h], c[h])
        assert ce[h] == pytest.approx(float(value), rel=1e-12)
        np.testing.assert_allclose(gW[h], eW, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gc[h], ec, rtol=1e-10, atol=1e-12)


def test_the_pass_gives_each_heads_objective_and_raw_gradient(problem):
    """The objective sum w CE / sum w + (l2/2) ||W||^2 of each head (its own
    rows and strength) and its gradient w.r.t. the raw (W, b), from the
    pass's sums: b = c_s - shift W, so dW = gW + shift gc^T."""
    x, y, w, member = problem
    shift = x[:9].mean(0)
    W, c = _heads(seed=1)
    ce, gW, gc = _grad_pass(_rows(x, y, w, member, shift=shift), W, c)
    for h, g in enumerate(GROUP):
        weights = w * member[:, g]
        total = weights.sum()
        b = c[h] - shift @ W[h]
        value, (eW, eb) = _objective_and_grad(x, y, weights, W[h], b, L2[h])
        ours = ce[h] / total + 0.5 * L2[h] * np.sum(W[h] ** 2)
        assert ours == pytest.approx(float(value), rel=1e-12)
        ours_W = (gW[h] + np.outer(shift, gc[h])) / total + L2[h] * W[h]
        np.testing.assert_allclose(ours_W, eW, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gc[h] / total, eb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_moments_are_numpys_weighted_moments(problem, diagonal, stream):
    x, y, w, member = problem
    shift = x[:9].mean(0)
    rows = _rows(x, y, w, member, shift=shift, stream=stream)
    moments = passes.moments_pass(rows, diagonal=diagonal)
    mean, cov = weighted_mean_and_cov(x, w)
    assert moments.total == pytest.approx(w.sum(), rel=1e-12)
    np.testing.assert_allclose(moments.mean, mean - shift, rtol=1e-10, atol=1e-12)
    expected = np.diag(cov) if diagonal else cov
    np.testing.assert_allclose(moments.second, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("diagonal", [False, True])
def test_host_moments_are_numpys_weighted_moments(problem, diagonal, monkeypatch):
    """Small dense NumPy rows: the moments come from NumPy on the host (no
    program to compile), in blocks of rows, and are the same weighted
    moments; parts without weights weigh 1."""
    x, y, w, _ = problem
    shift = x[:9].mean(0)
    monkeypatch.setattr(passes, "_HOST_BLOCK_ROWS", 16)  # several blocks a part
    parts = [Part(x[:37], y[:37], w[:37]), Part(x[37:], y[37:], None)]
    moments = passes.host_moments(parts, shift, diagonal=diagonal)
    weights = np.concatenate([w[:37], np.ones(N - 37)])
    mean, cov = weighted_mean_and_cov(x, weights)
    assert moments.total == pytest.approx(weights.sum(), rel=1e-12)
    np.testing.assert_allclose(moments.mean, mean - shift, rtol=1e-10, atol=1e-12)
    expected = np.diag(cov) if diagonal else cov
    np.testing.assert_allclose(moments.second, expected, rtol=1e-10, atol=1e-12)


def test_host_moments_of_many_rows_take_the_covariance_from_every_kth_row(
    monkeypatch,
):
    """Beyond the full pass's work the mean and the variances are every
    row's, the covariance that of every k-th row of each part (k from
    `moments_stride`), whatever the blocks; a feature whose variance the
    sample misses by more than 20% is rescaled to every row's variance (its
    correlations kept), and one constant in the sample gets its variance
    and no correlation."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(500, 4)), rng.uniform(0.5, 2.0, 500)
    x[:, 1] += 0.8 * x[:, 0]
    x[:, 2] = 0.0
    x[3, 2] = 5.0  # rare: not in the sample
    x[::11, 3] *= 3.0  # the sample sees 9 times its variance
    y = np.zeros(500, np.int32)
    monkeypatch.setattr(passes, "MOMENTS_FULL_MAX_WORK", 0)
    monkeypatch.setattr(passes, "MOMENTS_SAMPLE_ROWS", 40)
    monkeypatch.setattr(passes, "_HOST_BLOCK_ROWS", 4)
    stride = passes.moments_stride(500, 4)
    assert stride == 8  # 64 rows (16 per feature): 27 + 37 of them
    x[::11, 3] /= 3.0
    x[::8, 3] *= 3.0
    parts = [Part(x[:210], y[:210], w[:210]), Part(x[210:], y[210:], w[210:])]
    shift = x[:50].mean(0)
    moments = passes.host_moments(parts, shift, diagonal=False)
    rows = np.concatenate([np.arange(0, 210, stride), np.arange(210, 500, stride)])
    mean, cov = weighted_mean_and_cov(x, w)
    _, sample = weighted_mean_and_cov(x[rows], w[rows])
    variance, seen = np.diag(cov), np.diag(sample)
    off = np.abs(seen - variance) > 0.2 * variance
    assert off[2] and off[3] and not off[0]
    ratio = np.ones(4)
    scaled = off & (seen > 0)
    ratio[scaled] = np.sqrt(variance[scaled] / seen[scaled])
    expected = sample * np.outer(ratio, ratio)
    expected[2, 2] = variance[2]
    assert moments.total == pytest.approx(w.sum(), rel=1e-12)
    np.testing.assert_allclose(moments.mean, mean - shift, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(moments.second, expected, rtol=1e-10, atol=1e-12)
    diagonal = passes.host_moments(parts, shift, diagonal=True)  # every row
    np.testing.assert_allclose(diagonal.second, variance, rtol=1e-10)


def test_host_moments_leave_device_and_large_rows_to_the_pass(problem, monkeypatch):
    """Rows already on a device, and rows with more work than
    HOST_MOMENTS_MAX_WORK, get None: the moments pass on the mesh."""
    x, y, w, _ = problem
    shift = np.zeros(D)
    on_device = [Part(jnp.asarray(x), y, w)]
    assert passes.host_moments(on_device, shift, diagonal=False) is None
    monkeypatch.setattr(passes, "HOST_MOMENTS_MAX_WORK", N * D * D - 1)
    assert passes.host_moments([Part(x, y, w)], shift, diagonal=False) is None
    assert passes.host_moments([Part(x, y, w)], shift, diagonal=True) is not None


def _top_k_hits(o, y, k):
    """NumPy: whether the true class is among the k highest logits (ties
    with the true class count as hits)."""
    target = o[np.arange(len(y)), y]
    return (o > target[:, None]).sum(1) < k


def test_scores_are_numpys_top1_and_top5_inside_and_outside_each_set(problem):
    x, y, w, member = problem
    shift = x[:9].mean(0)
    W, c = _heads(seed=3)
    rows = _rows(x, y, w, member, shift=shift)
    heads = sharding.replicate((W, c, GROUP), rows.mesh)
    scores = scoring.score_pass(rows, *heads)
    for h, g in enumerate(GROUP):
        o = (x - shift) @ W[h] + c[h]
        inside, outside = w * member[:, g], w * ~member[:, g]
        for hits, k in ((scores.top1_inside, 1), (scores.top5_inside, 5)):
            assert hits[h] == pytest.approx(inside @ _top_k_hits(o, y, k), rel=1e-12)
        for hits, k in ((scores.top1_outside, 1), (scores.top5_outside, 5)):
            assert hits[h] == pytest.approx(outside @ _top_k_hits(o, y, k), rel=1e-12)
        assert scores.weight_inside[h] == pytest.approx(inside.sum(), rel=1e-12)
        assert scores.weight_outside[h] == pytest.approx(outside.sum(), rel=1e-12)
    # head 0 predicts uniformly: every class tied with the true one, all hits
    assert scores.top1_inside[0] == pytest.approx(scores.weight_inside[0])
    assert scores.top1_inside[1] < scores.top5_inside[1] < scores.weight_inside[1]


@pytest.fixture(scope="module")
def sparse_problem(problem):
    """The problem's rows with about 70% of the features 0 (an empty row
    and an empty column included), dense and as scipy.sparse CSC."""
    x, y, w, member = problem
    rng = np.random.default_rng(5)
    x = np.where(rng.uniform(size=x.shape) < 0.7, 0.0, x)
    x[3], x[:, 1] = 0.0, 0.0
    return x, sp.csc_array(x), y, w, member


def test_sparse_rows_give_the_dense_rows_sums(sparse_problem):
    """Sparse rows are never centred: compared with dense rows at shift 0,
    the passes' sums agree (gradient, moments, scores)."""
    x, xs, y, w, member = sparse_problem
    dense = _rows(x, y, w, member, shift=np.zeros(D))
    sparse = _rows(xs, y, w, member, shift=np.zeros(D))
    assert sparse.sparse and not dense.sparse
    W, c = _heads(seed=4)
    for ours, theirs in zip(
        _grad_pass(sparse, W, c), _grad_pass(dense, W, c), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    ours = passes.moments_pass(sparse, diagonal=True)
    theirs = passes.moments_pass(dense, diagonal=True)
    assert ours.total == pytest.approx(theirs.total, rel=1e-12)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.second, theirs.second, rtol=1e-10, atol=1e-12)
    heads = sharding.replicate((jnp.asarray(W), jnp.asarray(c), GROUP), dense.mesh)
    for ours, theirs in zip(
        scoring.score_pass(sparse, *heads),
        scoring.score_pass(dense, *heads),
        strict=True,
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_sparse_rows_have_the_diagonal_basis_only(sparse_problem):
    _, xs, y, w, member = sparse_problem
    with pytest.raises(ValueError, match="diagonal"):
        passes.moments_pass(_rows(xs, y, w, member, shift=np.zeros(D)), diagonal=False)


def _in_solver_coordinates(basis, theta, l2, x, y, w):
    params = basis_lib.to_weights(basis, theta, l2)
    return objective(x, y, w, params.W, params.b, l2)


_solver_value_and_grad = jax.jit(jax.value_and_grad(_in_solver_coordinates, argnums=1))
_to_pass = jax.jit(basis_lib.to_pass)
_penalty = jax.jit(basis_lib.penalty)
_to_solver_grad = jax.jit(basis_lib.to_solver_grad)


@pytest.mark.parametrize("diagonal", [False, True])
def test_the_pass_in_solver_coordinates_is_jax_grad_there(problem, diagonal):
    """The solver's use of a pass: heads' coordinates theta -> the pass's
    (W, c_s) -> the sums -> each head's objective and gradient in its own
    coordinates, as `jax.grad` of the plain objective composed with the
    change of variables gives them."""
    x, y, w, member = problem
    shift = x[:9].mean(0)
    rows = _rows(x, y, w, member, shift=shift)
    moments = passes.moments_pass(rows, diagonal=diagonal)
    basis = basis_lib.make_basis(moments, shift, Q, dtype=np.float64, diagonal=diagonal)
    basis = jax.tree.map(jnp.asarray, basis)
    theta = 0.3 * np.random.default_rng(6).normal(size=(len(GROUP), D * Q + Q))
    W, c = zip(
        *(_to_pass(basis, theta[h], L2[h]) for h in range(len(GROUP))),
        strict=True,
    )
    ce, gW, gc = _grad_pass(rows, np.stack(W), np.stack(c))
    for h, g in enumerate(GROUP):
        weights = w * member[:, g]
        total = weights.sum()
        l2 = jnp.asarray(L2[h])
        f = ce[h] / total + _penalty(basis, jnp.asarray(theta[h]), l2)
        grad = _to_solver_grad(
            basis, jnp.asarray(theta[h]), gW[h] / total, gc[h] / total, l2
        )
        value, expected = _solver_value_and_grad(basis, theta[h], l2, x, y, weights)
        assert float(f) == pytest.approx(float(value), rel=1e-12)
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
