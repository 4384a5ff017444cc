"""Derivatives of js.cross_entropy and js.loss against finite differences.

`jax.test_util.check_grads` compares forward- and reverse-mode derivatives of
orders 1 and 2 with finite differences, in float64 (x64 enabled for each test
by a fixture that restores the previous setting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxsoft as js

MODES = ("fwd", "rev")
N, D, Q = 4, 5, 3


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    o = rng.normal(size=(N, Q)) * 2.0
    y = np.array([0, 2, 1, 2])
    labels = {
        "one-hot": np.eye(Q)[y],
        "soft": rng.dirichlet(np.ones(Q), size=N),
    }
    params = js.Params(W=jnp.asarray(rng.normal(size=(D, Q))), b=jnp.arange(Q) - 1.0)
    x = rng.normal(size=(N, D))
    return o, y, labels, params, x


def test_the_fixture_computes_in_float64(problem):
    o, y, labels, params, x = problem
    assert js.cross_entropy(o, labels["soft"]).dtype == jnp.float64
    assert js.loss(params, x, y).dtype == jnp.float64


@pytest.mark.parametrize("order", [1, 2])
def test_cross_entropy_w_r_t_logits_with_class_indices(problem, order):
    o, y, _, _, _ = problem
    check_grads(lambda o: js.cross_entropy(o, y), (o,), order, modes=MODES)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kind", ["one-hot", "soft"])
def test_cross_entropy_w_r_t_logits_and_labels(problem, kind, order):
    o, _, labels, _, _ = problem
    check_grads(js.cross_entropy, (o, labels[kind]), order, modes=MODES)


@pytest.mark.parametrize("order", [1, 2])
def test_cross_entropy_with_axis_and_where(problem, order):
    o, _, labels, _, _ = problem
    where = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], bool)

    def f(o, p):
        return js.cross_entropy(o.T, p.T, axis=0, where=where.T)

    check_grads(f, (o, labels["soft"]), order, modes=MODES)


@pytest.mark.parametrize("order", [1, 2])
def test_loss_w_r_t_params_and_x(problem, order):
    _, y, _, params, x = problem
    check_grads(
        lambda params, x: js.loss(params, x, y, l2=0.1),
        (params, x),
        order,
        modes=MODES,
    )


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kind", ["one-hot", "soft"])
def test_loss_w_r_t_params_x_and_labels(problem, kind, order):
    _, _, labels, params, x = problem
    check_grads(js.loss, (params, x, labels[kind]), order, modes=MODES)
