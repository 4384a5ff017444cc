"""jaxsoft.exact.lbfgs, one head's L-BFGS state machine, on objectives with
known answers: an ill-conditioned quadratic, Rosenbrock's function (steps
that must backtrack), a barrier that is infinite outside its domain; its
stopping rules (the estimated gap, max_iter, a done head left as it is)
and its batching (heads under `jax.vmap` move as they move alone).

The OWL-QN cases (L1 weights) are in test_exact_l1.py."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import drive_lbfgs

from jaxsoft.exact import lbfgs

ITERATIONS = 500
CFG = lbfgs.Settings(rtol=0.0, gtol=1e-12, max_iter=ITERATIONS, memory=5)


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout


def _quadratic_problem(d=12, condition=1e3, seed=0):
    """(A, a) of f(x) = 1/2 (x - a)^T A (x - a) + 1, A's eigenvalues spread
    over ``condition``: the minimum is 1, at a."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * np.geomspace(1.0, condition, d)) @ Q.T, rng.normal(size=d)


def _quadratic(x, A, a):
    r = x - a
    return 0.5 * r @ A @ r + 1.0, A @ r


def _rosenbrock(x):
    f = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
    g0 = -400.0 * x[0] * (x[1] - x[0] ** 2) - 2.0 * (1.0 - x[0])
    return f, jnp.stack([g0, 200.0 * (x[1] - x[0] ** 2)])


def _barrier(x):
    """-sum log(1 - x^2): +inf outside (-1, 1)^d, minimum 0 at 0."""
    inside = jnp.all(jnp.abs(x) < 1)
    safe = jnp.where(inside, x, 0.0)
    f = jnp.where(inside, -jnp.sum(jnp.log1p(-(safe**2))), jnp.inf)
    return f, 2 * safe / (1 - safe**2)


def _drive(f_and_grad, start, *, data=(), cfg=CFG, trail=None):
    zeros = np.zeros_like(start)  # no L1 term
    return drive_lbfgs(
        f_and_grad, start, zeros, ITERATIONS, data=data, cfg=cfg, trail=trail
    )


def test_an_ill_conditioned_quadratic_reaches_its_minimum():
    """Accepted points never raise f; the answer to 1e-8 in 12 dimensions
    with a memory of 5, in far fewer passes than gradient descent needs."""
    A, a = _quadratic_problem()
    trail: list = []
    state = _drive(_quadratic, np.zeros(12), data=(A, a), trail=trail)
    assert bool(state.converged) and bool(state.done)
    np.testing.assert_allclose(state.theta, a, atol=1e-8)
    assert float(state.f) == pytest.approx(1.0, abs=1e-14)
    values = [float(s.f) for s in trail]
    assert all(after <= before for before, after in itertools.pairwise(values))
    assert int(state.evaluations) == len(trail) < ITERATIONS
    assert 0 < int(state.iterations) <= int(state.evaluations)


def test_rosenbrock_backtracks_and_reaches_one_one():
    """From (-1.2, 1), the classic start: some trials are rejected (the
    point stays, the step shrinks to within [0.1, 0.5] of the last), and
    the head ends at the minimum (1, 1)."""
    trail: list = []
    state = _drive(_rosenbrock, np.array([-1.2, 1.0]), trail=trail)
    assert bool(state.converged)
    np.testing.assert_allclose(state.theta, [1.0, 1.0], atol=1e-8)
    rejected = [
        (before, after)
        for before, after in itertools.pairwise(trail)
        if int(after.backtracks) > 0
    ]
    assert rejected
    for before, after in rejected:
        np.testing.assert_array_equal(after.theta, before.theta)
        assert int(after.iterations) == int(before.iterations)
        assert 0.1 * float(before.step) <= float(after.step)
        assert float(after.step) <= 0.5 * float(before.step)


@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_without_owlqn_the_iterates_are_l1_weights_of_0s(problem):
    """``Settings.owlqn`` False (no L1 term: ``l1w`` None, OWL-QN's
    pseudo-gradient, projections and signs left out of the program) takes
    the steps of L1 weights of 0: the same trials and backtracks, to
    rounding (XLA may fuse the smaller program's arithmetic differently),
    for the first 20 passes, and the same minimum."""
    if problem == "quadratic":
        A, a = _quadratic_problem()
        f_and_grad, start, data, answer = _quadratic, np.zeros(12), (A, a), a
    else:
        f_and_grad, start, data = _rosenbrock, np.array([-1.2, 1.0]), ()
        answer = np.ones(2)
    with_zeros: list = []
    without: list = []
    _drive(f_and_grad, start, data=data, trail=with_zeros)
    last = drive_lbfgs(
        f_and_grad, start, None, ITERATIONS, data=data,
        cfg=CFG._replace(owlqn=False), trail=without,
    )  # fmt: skip
    assert min(len(without), len(with_zeros)) > 20
    for one, other in zip(with_zeros[:20], without[:20], strict=True):
        for field in ("theta", "g", "direction"):
            np.testing.assert_allclose(
                getattr(other, field), getattr(one, field), rtol=1e-9, atol=1e-12
            )
        assert int(other.backtracks) == int(one.backtracks)
    assert bool(last.converged)
    np.testing.assert_allclose(last.theta, answer, atol=1e-8)


def test_non_finite_trials_are_rejected():
    """The barrier's first trial (a step of -g from (0.9, -0.5)) leaves its
    domain, where f is inf: rejected, the head backtracks into the domain,
    never accepts a non-finite value and ends at 0."""
    trail: list = []
    state = _drive(_barrier, np.array([0.9, -0.5]), trail=trail)
    first = trail[0]  # the start, accepted; its first trial point:
    assert np.abs(np.asarray(first.theta + first.step * first.direction)).max() > 1
    assert int(trail[1].backtracks) == 1
    np.testing.assert_array_equal(trail[1].theta, first.theta)
    assert all(np.isfinite(float(s.f)) for s in trail)
    assert bool(state.converged)
    np.testing.assert_allclose(state.theta, [0.0, 0.0], atol=1e-8)


def test_the_estimated_gap_stops_the_head_near_the_optimum():
    """rtol alone (gtol 0): the head stops once its estimated gap is at most
    rtol |f|, and the true gap f - 1 is then of that order too."""
    A, a = _quadratic_problem(condition=1e2, seed=1)
    rtol = 1e-6
    cfg = CFG._replace(rtol=rtol, gtol=0.0)
    state = _drive(_quadratic, np.zeros(12), data=(A, a), cfg=cfg)
    assert bool(state.converged)
    assert float(state.gap) <= rtol * abs(float(state.f))
    assert 0 < float(state.f) - 1.0 <= 10 * rtol
    more = _drive(_quadratic, np.zeros(12), data=(A, a))  # gtol 1e-12
    assert int(more.iterations) > int(state.iterations)


def test_max_iter_stops_a_head_unconverged():
    A, a = _quadratic_problem()
    cfg = CFG._replace(gtol=0.0, max_iter=7)
    state = _drive(_quadratic, np.zeros(12), data=(A, a), cfg=cfg)
    assert bool(state.done) and not bool(state.converged)
    assert int(state.iterations) == 7
    assert float(state.grad_norm) > 1e-3


def _batched_pass(state, A, a, cfg):
    zeros = jnp.zeros_like(state.theta)
    point = jax.vmap(lbfgs.trial)(state, zeros)
    f, g = jax.vmap(_quadratic)(point, A, a)
    norm = jnp.max(jnp.abs(g), axis=1)
    advance = jax.vmap(lbfgs.advance, in_axes=(0, 0, 0, 0, 0, None))
    return advance(state, f, g, norm, zeros, cfg)


def test_heads_under_vmap_move_as_they_move_alone():
    """Three heads, three quadratics, one batched state: after every pass
    each head is where it is when it runs alone (as the solver batches
    them), and a head that is done waits for the others unchanged."""
    problems = [_quadratic_problem(condition=c, seed=k) for k, c in enumerate([3, 30])]
    problems.append(_quadratic_problem(seed=2))
    A, a = (np.stack(arrays) for arrays in zip(*problems, strict=True))
    state = jax.tree.map(jnp.asarray, lbfgs.init_host(np.zeros((3, 12)), CFG.memory))
    step = jax.jit(_batched_pass, static_argnames="cfg")
    trail = []
    while not bool(state.done.all()) and len(trail) < 4 * ITERATIONS:
        state = step(state, A, a, cfg=CFG)
        trail.append(state)
    for h in range(3):
        alone: list = []
        _drive(_quadratic, np.zeros(12), data=(A[h], a[h]), trail=alone)
        assert bool(state.converged[h])
        assert int(state.evaluations[h]) == len(alone)
        for together, own in zip(trail, alone, strict=False):
            np.testing.assert_allclose(
                together.theta[h], own.theta, rtol=1e-12, atol=1e-14
            )
        np.testing.assert_allclose(state.theta[h], a[h], atol=1e-8)
        # done, it waited unchanged: the final state is its own last one
        for name, mine, own in zip(
            lbfgs.HeadState._fields, state, alone[-1], strict=True
        ):
            np.testing.assert_array_equal(mine[h], own, err_msg=name)
    assert len({int(e) for e in state.evaluations}) == 3  # done at different passes
