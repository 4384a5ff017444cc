"""L1 and elastic-net heads of jaxsoft.exact (OWL-QN): the state machine on a
problem with a closed-form answer, and the engine against scikit-learn's
saga, an independent solver of the same objective."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import drive_lbfgs, objective64
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import StandardScaler

from jaxsoft.exact import SolveInputError, solve


def test_owlqn_reaches_the_soft_threshold_of_a_quadratic():
    """min 1/2 (x - a)^T A (x - a) + sum l1w |x| with A diagonal has the
    answer x_i = soft(a_i, l1w_i / A_ii): exact zeros included."""
    with jax.enable_x64(True):
        a = np.array([3.0, -2.0, 0.4, -0.1, 1.5, 0.0])
        A = np.array([1.0, 2.0, 1.0, 5.0, 0.5, 1.0])
        l1w = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])  # the 5th is free

        def f_and_grad(x):
            r = x - a
            return 0.5 * jnp.sum(A * r * r), A * r

        # started across zero from the answer: coordinates must stop at 0
        start = np.array([-1.0, 1.0, -1.0, 1.0, 0.0, 0.5])
        state = drive_lbfgs(f_and_grad, start, l1w, 200)
        expected = np.sign(a) * np.maximum(np.abs(a) - l1w / A, 0.0)
        assert bool(state.converged)
        np.testing.assert_allclose(state.theta, expected, atol=1e-10)
        np.testing.assert_array_equal(np.asarray(state.theta) == 0, expected == 0)


def test_without_l1_weights_owlqn_is_lbfgs():
    """l1w = 0: the minimum of a coupled quadratic, as plain L-BFGS finds it."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        M = rng.normal(size=(8, 8))
        A = M @ M.T + np.eye(8)
        a = rng.normal(size=8)

        def f_and_grad(x):
            r = x - a
            return 0.5 * r @ A @ r, A @ r

        state = drive_lbfgs(f_and_grad, np.zeros(8), np.zeros(8), 200)
        np.testing.assert_allclose(state.theta, a, atol=1e-9)


@pytest.mark.parametrize("load", [load_iris, load_wine])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_elastic_net_heads_match_saga(load, l1_ratio):
    """The engine's L1 / elastic-net optimum is saga's (tol 1e-10): the same
    objective to 1e-9 relative and the same zeros."""
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n, C = len(y), 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saga = SkLogisticRegression(
            C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10, max_iter=20000
        ).fit(X, y)
    l2, l1 = (1 - l1_ratio) / (C * n), l1_ratio / (C * n)
    with jax.enable_x64(True):
        sol = solve(X, y, [l2], l1=[l1], rtol=0.0, gtol=1e-10, max_iter=2000)
    W, b = sol.params.W[0, 0], sol.params.b[0, 0]
    ours = objective64(W, b, X, y, l2, l1=l1)
    theirs = objective64(saga.coef_.T, saga.intercept_, X, y, l2, l1=l1)
    assert bool(sol.converged[0, 0])
    assert abs(ours - theirs) <= 1e-9 * theirs
    np.testing.assert_array_equal(W.T == 0, saga.coef_ == 0)
    assert (W == 0).any()


def test_l1_and_l2_heads_solve_together():
    """Heads of several l1 strengths in one solve equal their solves alone,
    and an L2 head in the diagonal basis equals the L2 solve (eigh basis)."""
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    l2s, l1s = [1e-2, 1e-2, 0.0], [0.0, 1e-2, 3e-2]
    with jax.enable_x64(True):
        together = solve(X, y, l2s, l1=l1s, rtol=0.0, gtol=1e-11, max_iter=2000)
        for h, (l2, l1) in enumerate(zip(l2s, l1s, strict=True)):
            alone = solve(X, y, [l2], l1=[l1], rtol=0.0, gtol=1e-11, max_iter=2000)
            np.testing.assert_allclose(
                together.params.W[0, h], alone.params.W[0, 0], atol=1e-7
            )
            assert together.objective[0, h] == pytest.approx(
                alone.objective[0, 0], rel=1e-12
            )
        W = together.params.W[0]
        assert not (W[0] == 0).any() and (W[2] == 0).sum() > (W[1] == 0).sum() > 0


def test_float32_l1_solve_is_near_the_float64_optimum():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    f32 = solve(X, y, [0.0], l1=[1e-2], rtol=0.0, gtol=1e-4, max_iter=500)
    with jax.enable_x64(True):
        f64 = solve(X.astype(np.float64), y, [0.0], l1=[1e-2], gtol=1e-10, rtol=0)
    assert f32.params.W.dtype == np.float32 and bool(f32.converged[0, 0])
    assert f32.objective[0, 0] == pytest.approx(f64.objective[0, 0], rel=1e-5)


@pytest.mark.parametrize(
    ("l1", "match"),
    [([-1e-3], "l1 strengths must be numbers >= 0"), ([1e-3, 1e-3], "shape of l2")],
)
def test_bad_l1_strengths_are_refused(l1, match):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(SolveInputError, match=match):
        solve(X, y, [1e-3], l1=l1)
