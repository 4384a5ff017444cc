"""jaxsoft.exact.basis, the solver's change of variables, against dense
NumPy computations: the basis is the eigendecomposition (or the variances)
of the rows' weighted covariance about their weighted mean, it whitens the
objective's curvature at the start, and its maps (to the raw weights, the
gradient, the L1 weights, the raw gradient's norms) agree with `jax.grad`
of the plain objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import objective, weighted_ce_sum, weighted_mean_and_cov, weighted_problem

from jaxsoft import sharding
from jaxsoft.exact import basis as basis_lib
from jaxsoft.exact.passes import Part, Rows, moments_pass

Q = 4


pytestmark = pytest.mark.usefixtures("x64")  # float64 throughout


@pytest.fixture(scope="module")
def problem():
    x, y, w, _ = weighted_problem(n=60, d=5, q=Q, seed=1)
    return x, y, w


_BASES: dict = {}


def _basis(x, w, *, diagonal, fit_intercept=True, chunk_rows=16):
    """The engine's way: the moments pass over rows centred by a shift (here
    not the mean), then `make_basis`; NumPy arrays."""
    key = (x.tobytes(), w.tobytes(), diagonal, fit_intercept)
    if key in _BASES:
        return _BASES[key]
    shift = x[:7].mean(0) if fit_intercept else np.zeros(x.shape[1])
    rows = Rows(
        [Part(x, np.zeros(len(x), np.int32), w)],
        mesh=sharding.resolve_mesh(),
        chunk_rows=chunk_rows,
        dtype=np.float64,
        shift=shift,
    )
    moments = moments_pass(rows, diagonal=diagonal)
    _BASES[key] = basis_lib.make_basis(
        moments,
        shift,
        Q,
        dtype=np.float64,
        diagonal=diagonal,
        fit_intercept=fit_intercept,
    )
    return _BASES[key]


def _on_device(basis):
    return jax.tree.map(jnp.asarray, basis)


def _matrix(basis, l2):
    """B (d, d) of W = B U, built from the documented formula
    B = V diag(1 / sqrt(alpha lam + l2)) (V = I for the diagonal basis)."""
    D = 1 / np.sqrt(float(basis.alpha) * basis.lam + l2)
    V = np.eye(len(basis.lam)) if basis.V is None else basis.V
    return V * D


def _in_solver_coordinates(basis, theta, l2, x, y, w):
    """The objective as a function of the solver's coordinates."""
    params = basis_lib.to_weights(basis, theta, jnp.asarray(l2))
    return objective(x, y, w, params.W, params.b, l2)


def _mean_ce(x, y, w, W, c):
    return weighted_ce_sum(x, y, w, W, c) / jnp.sum(w)


# compiled once per kind of basis (dense or diagonal), not once per test
_hessian = jax.jit(jax.hessian(_in_solver_coordinates, argnums=1))
_gradient = jax.jit(jax.grad(_in_solver_coordinates, argnums=1))
_raw_grad = jax.jit(jax.grad(objective, argnums=(3, 4)))
_mean_ce_grad = jax.jit(jax.grad(_mean_ce, argnums=(3, 4)))
_to_pass = jax.jit(basis_lib.to_pass)
_to_solver_grad = jax.jit(basis_lib.to_solver_grad)
_raw_grad_norms = jax.jit(basis_lib.raw_grad_norms)


def _theta(d, seed=0):
    return np.random.default_rng(seed).normal(size=d * Q + Q)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_dense_basis_whitens_the_weighted_covariance(problem, l2):
    x, _, w = problem
    basis = _basis(x, w, diagonal=False)
    mean, cov = weighted_mean_and_cov(x, w)
    np.testing.assert_allclose(basis.mu, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(basis.shift, x[:7].mean(0), rtol=1e-15)
    assert float(basis.alpha) == pytest.approx(1 / Q) and float(basis.intercept) == 1
    V, lam = basis.V, basis.lam
    np.testing.assert_allclose(V.T @ V, np.eye(5), atol=1e-12)
    np.testing.assert_allclose((V * lam) @ V.T, cov, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sort(lam), np.linalg.eigvalsh(cov), rtol=1e-10)
    B = _matrix(basis, l2)
    whitened = B.T @ (cov / Q + l2 * np.eye(5)) @ B
    np.testing.assert_allclose(whitened, np.eye(5), atol=1e-10)


def test_diagonal_basis_scales_by_the_weighted_variances(problem):
    x, _, w = problem
    basis = _basis(x, w, diagonal=True)
    mean, cov = weighted_mean_and_cov(x, w)
    assert basis.V is None
    np.testing.assert_allclose(basis.mu, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(basis.lam, np.diag(cov), rtol=1e-10)


@pytest.mark.parametrize("diagonal", [False, True])
def test_without_intercept_the_basis_is_about_zero(problem, diagonal):
    x, _, w = problem
    basis = _basis(x, w, diagonal=diagonal, fit_intercept=False)
    _, second = weighted_mean_and_cov(x, w, about_zero=True)
    np.testing.assert_array_equal(basis.mu, np.zeros(5))
    np.testing.assert_array_equal(basis.shift, np.zeros(5))
    assert float(basis.intercept) == 0
    if diagonal:
        np.testing.assert_allclose(basis.lam, np.diag(second), rtol=1e-10)
    else:
        np.testing.assert_allclose(
            (basis.V * basis.lam) @ basis.V.T, second, rtol=1e-10, atol=1e-10
        )


@pytest.mark.parametrize("diagonal", [False, True])
def test_flat_directions_get_a_floor(problem, diagonal):
    """A constant column has variance 0: its eigenvalue is floored at 1e-6
    of the largest, so D stays finite at l2 = 0."""
    x, _, w = problem
    x = x.copy()
    x[:, 2] = 3.0
    basis = _basis(x, w, diagonal=diagonal)
    _, cov = weighted_mean_and_cov(x, w)
    largest = np.linalg.eigvalsh(cov).max() if not diagonal else np.diag(cov).max()
    assert basis.lam.min() == pytest.approx(1e-6 * largest, rel=1e-9)
    assert np.isfinite(_matrix(basis, 0.0)).all()


def _contrasts(d):
    """The projector onto the class contrasts of theta (d q + q,): each row
    of U, and c', with its mean over the classes removed."""
    P = np.eye(Q) - 1 / Q
    return np.kron(np.eye(d + 1), P)


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_start_hessian_is_the_identity_on_class_contrasts(problem, l2):
    """At W = 0, b = 0 (uniform predictions) the Hessian of the objective in
    the solver's coordinates is the identity on the class contrasts, the
    intercept's included (centring decouples it from the weights)."""
    x, y, w = problem
    basis = _on_device(_basis(x, w, diagonal=False))

    hessian = np.asarray(_hessian(basis, jnp.zeros(5 * Q + Q), l2, x, y, w))
    P = _contrasts(5)
    np.testing.assert_allclose(P @ hessian @ P, P, atol=1e-10)


def test_diagonal_basis_gives_unit_curvature_per_feature(problem):
    """The diagonal basis evens out scales: the start Hessian's diagonal on
    the contrasts is that of the identity (correlations remain off it)."""
    x, y, w = problem
    basis = _on_device(_basis(x, w, diagonal=True))

    hessian = np.asarray(_hessian(basis, jnp.zeros(5 * Q + Q), 0.0, x, y, w))
    P = _contrasts(5)
    np.testing.assert_allclose(np.diag(P @ hessian @ P), np.diag(P), atol=1e-10)
    assert np.abs(P @ hessian @ P - P).max() > 1e-3  # the correlations


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_coordinates_map_to_the_documented_weights(problem, diagonal, fit_intercept):
    """W = V D U, b = c' / sqrt(alpha) - mu W (0 without intercept); the
    penalty keeps its value; from_params inverts to_weights; the pass's
    logits (x - shift) W + c_s are x W + b."""
    x, _, w = problem
    basis = _basis(x, w, diagonal=diagonal, fit_intercept=fit_intercept)
    l2 = np.asarray(0.2)
    theta = _theta(5)
    U, cc = theta[: 5 * Q].reshape(5, Q), theta[5 * Q :]
    W = _matrix(basis, 0.2) @ U
    b = (cc * np.sqrt(Q) - basis.mu @ W) if fit_intercept else np.zeros(Q)
    params = basis_lib.to_weights(basis, theta, l2)
    np.testing.assert_allclose(params.W, W, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params.b, b, rtol=1e-12, atol=1e-12)
    penalty = basis_lib.penalty(_on_device(basis), jnp.asarray(theta), l2)
    assert float(penalty) == pytest.approx(0.1 * np.sum(W * W), rel=1e-12)
    back = basis_lib.from_params(basis, params, l2)
    if not fit_intercept:
        theta[5 * Q :] = 0
    np.testing.assert_allclose(back, theta, rtol=1e-10, atol=1e-10)
    W_pass, c_pass = basis_lib.to_pass(basis, theta, l2)
    np.testing.assert_allclose(
        (x - basis.shift) @ W_pass + c_pass, x @ W + b, rtol=1e-10, atol=1e-10
    )


def _pass_gradient(x, y, w, shift, W, c):
    """The mean cross-entropy's gradient w.r.t. the pass's (W, c_s), whose
    logits are (x - shift) W + c_s: what a data pass hands the basis."""
    return _mean_ce_grad(x - shift, y, w, W, c)


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_solver_gradient_is_jax_grad_in_solver_coordinates(
    problem, diagonal, fit_intercept
):
    x, y, w = problem
    basis = _on_device(_basis(x, w, diagonal=diagonal, fit_intercept=fit_intercept))
    l2 = jnp.asarray(0.07)
    theta = jnp.asarray(0.3 * _theta(5, seed=2))
    W, c = _to_pass(basis, theta, l2)
    gW, gc = _pass_gradient(x, y, w, basis.shift, W, c)
    ours = _to_solver_grad(basis, theta, gW, gc, l2)

    expected = _gradient(basis, theta, l2, x, y, w)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_l1_weights_give_the_l1_norm_of_the_raw_weights(problem):
    """Diagonal basis: sum l1w |theta| = l1 ||W||_1, with l1w = l1 D_j on U's
    entries and 0 on the intercept's; with a rotation the weights are 0."""
    x, _, w = problem
    basis = _basis(x, w, diagonal=True)
    l1, l2 = 0.3, 0.05
    weights = np.asarray(
        basis_lib.l1_weights(_on_device(basis), jnp.asarray(l1), jnp.asarray(l2), Q)
    )
    D = 1 / np.sqrt(basis.lam / Q + l2)
    np.testing.assert_allclose(weights[: 5 * Q], np.repeat(l1 * D, Q), rtol=1e-12)
    np.testing.assert_array_equal(weights[5 * Q :], np.zeros(Q))
    theta = _theta(5, seed=3)
    W = basis_lib.to_weights(basis, theta, np.asarray(l2)).W
    assert weights @ np.abs(theta) == pytest.approx(l1 * np.abs(W).sum(), rel=1e-12)
    dense = _on_device(_basis(x, w, diagonal=False))
    rotated = basis_lib.l1_weights(dense, jnp.asarray(l1), jnp.asarray(l2), Q)
    np.testing.assert_array_equal(np.asarray(rotated), np.zeros(5 * Q + Q))


def _min_norm_subgradient(W, g, l1):
    """NumPy: g + l1 sign(W) off zero, soft-thresholded g at zero."""
    at_zero = np.sign(g) * np.maximum(np.abs(g) - l1, 0.0)
    return np.where(W != 0, g + l1 * np.sign(W), at_zero)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize(
    ("diagonal", "l1"),
    # L1 heads get the diagonal basis (a rotation leaves no exact zeros in W)
    [(False, 0.0), (True, 0.0), (True, 0.02)],
)
def test_raw_grad_norms_are_those_of_jax_grad(problem, diagonal, fit_intercept, l1):
    """(max |g|, ||g||_2) of the gradient w.r.t. the raw (W, b), from the
    pass's gradient: as `jax.grad` of the objective gives it (with an L1
    term, its minimum-norm subgradient; b's part only with an intercept)."""
    x, y, w = problem
    basis = _basis(x, w, diagonal=diagonal, fit_intercept=fit_intercept)
    rng = np.random.default_rng(4)
    W = rng.normal(size=(5, Q)) * 0.2
    W[rng.uniform(size=W.shape) < 0.3] = 0.0  # zeros: the subgradient's case
    b = rng.normal(size=Q) if fit_intercept else np.zeros(Q)
    l2 = 0.1
    gW_raw, gb_raw = _raw_grad(x, y, w, W, b, l2)
    gW_raw = _min_norm_subgradient(W, np.asarray(gW_raw), l1)
    g = np.concatenate([gW_raw.ravel(), np.asarray(gb_raw) * fit_intercept])

    theta = basis_lib.from_params(basis, basis_lib.model.Params(W, b), np.asarray(l2))
    dev = _on_device(basis)
    W_pass, c_pass = _to_pass(dev, jnp.asarray(theta), jnp.asarray(l2))
    gW, gc = _pass_gradient(x, y, w, basis.shift, W_pass, c_pass)
    largest, norm = _raw_grad_norms(
        dev, jnp.asarray(theta), gW, gc, jnp.asarray(l2), jnp.asarray(l1)
    )
    assert float(largest) == pytest.approx(np.abs(g).max(), rel=1e-10)
    assert float(norm) == pytest.approx(np.linalg.norm(g), rel=1e-10)


def test_small_host_work_runs_on_one_blas_thread():
    """`host_blas.small_work`: one BLAS thread inside the block for work up
    to the limit (threadpoolctl's count), the threads as they were after it;
    above the limit, the threads untouched."""
    from threadpoolctl import threadpool_info

    from jaxsoft.exact import host_blas

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl sees no BLAS library in this process")
    with host_blas.small_work(host_blas.SINGLE_THREAD_MAX_WORK):
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
    with host_blas.small_work(host_blas.SINGLE_THREAD_MAX_WORK + 1):
        assert blas_threads() == before
