"""jaxsoft.exact: one compiled program per solve, shared by nearby shapes; the
float32-first path of large float64 solves reaches the float64 optimum."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxsoft import compiling
from jaxsoft.exact import batching, buckets, engine, passes, solve, solver
from jaxsoft.exact import problem as problem_lib


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y.astype(np.int32)


def _solve_programs() -> set:
    return {key for key in compiling._executables if key[0] is solver._run_in_memory}


@pytest.mark.parametrize("n", [17, 33, 150, 1000, 1797, 60000])
def test_row_counts_round_up_to_one_of_16_sizes_an_octave(n):
    size = buckets.bucket(n)
    assert n <= size <= n * (1 + 1 / 16)
    top = 1 << (n - 1).bit_length()  # n's octave is (top / 2, top]
    sizes = {buckets.bucket(m) for m in range(top // 2 + 1, top + 1)}
    assert len(sizes) <= 16 and max(sizes) == top


def test_nearby_row_counts_share_one_compiled_solve(digits):
    x, y = digits
    solve(x[:1000], y[:1000], [1e-3], max_iter=5)
    before = _solve_programs()
    sol = solve(x[:1010], y[:1010], [1e-3], max_iter=5)  # the same bucket
    assert _solve_programs() == before
    assert sol.iterations.max() == 5


def test_the_solve_loop_is_one_call_of_the_device(digits, monkeypatch):
    """A small solve runs all its passes in one call of the compiled loop."""
    calls: list[int] = []
    run = solver._run

    def counted(*args, **kwargs):
        state, ran = run(*args, **kwargs)
        calls.append(ran)
        return state, ran

    monkeypatch.setattr(solver, "_run", counted)
    x, y = digits
    sol = solve(x, y, [1e-4, 1e-2], gtol=1e-5, rtol=0.0, max_iter=500)
    assert len(calls) == 1
    assert calls[0] == sol.passes.max() > 10


def test_float32_first_reaches_the_float64_optimum(digits, monkeypatch):
    """With the float32 stage forced on, a float64 solve ends at the optimum
    of the float64 solve alone (its gradient test decided in float64)."""
    x, y = digits
    dtypes: list[np.dtype] = []
    run = batching.run

    def spy(problem, *args, **kwargs):
        dtypes.append(problem.dtype)
        return run(problem, *args, **kwargs)

    monkeypatch.setattr(batching, "run", spy)
    kw = dict(gtol=1e-9, rtol=0.0, max_iter=2000)
    with jax.enable_x64(True):
        plain = solve(x, y, [1e-3], **kw)
        assert dtypes == [np.float64]
        monkeypatch.setattr(problem_lib, "ROUGH_MIN_WORK", 0)
        dtypes.clear()
        mixed = solve(x, y, [1e-3], **kw)
    assert dtypes == [np.float32, np.float64]
    assert mixed.converged.all() and plain.converged.all()
    assert mixed.grad_norm.max() <= 1e-9
    np.testing.assert_allclose(mixed.objective, plain.objective, rtol=1e-12)
    np.testing.assert_allclose(mixed.params.W, plain.params.W, atol=1e-6)


def test_moments_from_a_sample_of_rows_reach_the_same_optimum(digits, monkeypatch):
    """The preconditioner built from every 29th row (64 of digits' 1,797, a
    rank-deficient covariance) changes the path, not the optimum."""
    x, y = digits
    kw = dict(gtol=1e-10, rtol=0.0, max_iter=2000)
    with jax.enable_x64(True):
        plain = solve(x, y, [1e-3, 1e-1], **kw)
        monkeypatch.setattr(passes, "MOMENTS_FULL_MAX_WORK", 0)
        monkeypatch.setattr(passes, "MOMENTS_SAMPLE_ROWS", 64)
        monkeypatch.setattr(passes, "MOMENTS_ROWS_PER_FEATURE", 1)
        assert passes.moments_stride(len(y), x.shape[1]) == 29
        sampled = solve(x, y, [1e-3, 1e-1], **kw)
    assert sampled.converged.all() and plain.converged.all()
    assert not np.array_equal(sampled.iterations, plain.iterations)
    np.testing.assert_allclose(sampled.objective, plain.objective, rtol=1e-12)
    np.testing.assert_allclose(sampled.params.W, plain.params.W, atol=1e-6)


def test_heads_beyond_the_memory_budget_are_solved_in_batches(digits, monkeypatch):
    """Heads whose solver states would not fit together are solved a batch
    after another on the same rows, to the same optimum: one strength a
    batch, each going on from the solution at the strength before."""
    x, y = digits
    kwargs = dict(l1=[0.0, 1e-3, 0.0], rtol=0.0, gtol=1e-10, max_iter=2000)
    with jax.enable_x64(True):
        together = solve(x, y, [1e-4, 1e-3, 1e-2], **kwargs)
        sizes: list[int] = []
        run = batching.run

        def counted(problem, l2, *args, **kw):
            sizes.append(len(l2))
            return run(problem, l2, *args, **kw)

        monkeypatch.setattr(engine, "heads_per_batch", lambda *args: 2)
        monkeypatch.setattr(batching, "run", counted)
        batched = solve(x, y, [1e-4, 1e-3, 1e-2], **kwargs)
    assert sizes == [1, 1, 1]
    np.testing.assert_allclose(batched.objective, together.objective, rtol=1e-12)
    np.testing.assert_allclose(batched.params.W, together.params.W, atol=1e-6)
    assert bool(batched.converged.all())


def test_heads_per_batch_keeps_the_states_within_half_the_budget():
    size, memory = 2**17 * 20 + 20, 10
    per_head = size * (2 * memory + 12) * 8
    assert batching.heads_per_batch(size, memory, np.float64, 10 * per_head) == 5
    assert batching.heads_per_batch(size, memory, np.float64, per_head) == 1
    assert batching.heads_per_batch(size, memory, np.float32, 10 * per_head) == 10


def test_batches_hold_one_strength_across_the_sets(digits, monkeypatch):
    """Batched heads go strongest penalty first, one strength across the sets
    a batch (they take about as many iterations), each set's head starting
    from its solution at the strength before, to the same optimum."""
    x, y = digits
    sets = np.stack([np.arange(len(y)) % 3 != k for k in range(3)])
    kwargs = dict(rtol=0.0, gtol=1e-10, max_iter=2000, row_sets=sets)
    l2 = [1e-4, 1e-2, 1e-3]
    with jax.enable_x64(True):
        together = solve(x, y, l2, **kwargs)
        strengths: list[np.ndarray] = []
        run = batching.run

        def recorded(problem, l2, *args, **kw):
            strengths.append(np.asarray(l2))
            return run(problem, l2, *args, **kw)

        monkeypatch.setattr(engine, "heads_per_batch", lambda *args: 3)
        monkeypatch.setattr(batching, "run", recorded)
        batched = solve(x, y, l2, **kwargs)
    assert [list(s) for s in strengths] == [[1e-2] * 3, [1e-3] * 3, [1e-4] * 3]
    np.testing.assert_allclose(batched.objective, together.objective, rtol=1e-12)
    np.testing.assert_allclose(batched.params.W, together.params.W, atol=1e-6)


def test_sparse_rows_are_dealt_to_devices_by_non_zeros():
    """Each device's share of a chunk holds about as many non-zeros (one
    row's worth at most apart), every row once, devices filled in order."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, chunk, shards = 1001, 512, 8
    counts = rng.integers(1, 200, n)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    x = sp.csr_array((np.ones(indptr[-1]), np.zeros(indptr[-1], int), indptr))
    order = passes._balanced_order(x, chunk, shards)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    dealt = counts[order]
    each = chunk // shards
    for lo in range(0, n, chunk):
        shares = [dealt[s : min(s + each, n)] for s in range(lo, lo + chunk, each)]
        full = [share.sum() for share in shares if len(share) == each]
        assert max(full) - min(full) <= counts.max()
        assert set(order[lo : lo + chunk]) == set(range(lo, min(lo + chunk, n)))


def test_more_rows_equal_the_rows_in_one_array(digits):
    """`solve(more_rows=)`: blocks of rows placed beside x, in every training
    set, give the optimum of the same rows given as one array."""
    from jaxsoft.exact import Part

    x, y = digits
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    kwargs = dict(rtol=0.0, gtol=1e-10, max_iter=2000)
    with jax.enable_x64(True):
        whole = solve(x, y, [1e-3], sample_weight=w, **kwargs)
        blocks = solve(
            x[:1000], y[:1000], [1e-3], sample_weight=w[:1000],
            more_rows=[Part(x[1000:], y[1000:], w[1000:])], **kwargs,
        )  # fmt: skip
    assert bool(blocks.converged.all())
    np.testing.assert_allclose(blocks.objective, whole.objective, rtol=1e-12)
    np.testing.assert_allclose(blocks.params.W, whole.params.W, atol=1e-6)


def test_score_counts_each_heads_hits_inside_and_outside_its_set(digits):
    """`exact.score`: weighted top-1 and top-5 hits of every head on the rows
    of its set and on the rest, as NumPy counts them."""
    from jaxsoft import model
    from jaxsoft.exact import score

    x, y = digits
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(3, 64, 10)), rng.normal(size=(3, 10))
    w = rng.uniform(0.5, 2.0, len(y))
    sets = np.stack([np.arange(len(y)) % 2 == k for k in range(2)])
    group = np.array([0, 1, 1])
    with jax.enable_x64(True):
        heads = model.Params(W, b)
        sc = score(heads, x, y, sample_weight=w, row_sets=sets, group=group)
    for h in range(3):
        logits = x @ W[h] + b[h]
        rank = (logits > logits[np.arange(len(y)), y][:, None]).sum(1)
        inside = sets[group[h]]
        for where, top1, top5 in (
            (inside, sc.top1_inside, sc.top5_inside),
            (~inside, sc.top1_outside, sc.top5_outside),
        ):
            assert top1[h] == pytest.approx(np.sum(w * (rank == 0) * where))
            assert top5[h] == pytest.approx(np.sum(w * (rank < 5) * where))
        assert sc.weight_inside[h] == pytest.approx(np.sum(w * inside))
