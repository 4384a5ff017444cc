"""scikit-learn estimators on jaxsoft's exact engine (`jaxsoft.exact.solve`).

``LogisticRegression`` and ``LogisticRegressionCV`` are drop-ins for
scikit-learn 1.9's: the same parameters in the same order with the same
defaults, validation, errors and warnings (``penalty`` deprecated for
``l1_ratio`` and ``C=np.inf``, ``n_jobs`` warned about, ``_check_solver``'s
refusals), plus a last keyword ``mesh`` (a `jax.sharding.Mesh` with a "data"
axis to shard rows over; None: every device). They hold no math of their
own: labels are encoded, class weights folded into sample weights, ``C`` and
``l1_ratio`` mapped to the engine's strengths, the engine's optimum mapped
back to scikit-learn's attributes.

Every ``solver`` name reaches the optimum of the objective that solver
minimises in scikit-learn, and each is solved by the one engine (L-BFGS, and
OWL-QN for an L1 term). ``lbfgs``, ``newton-cg``, ``newton-cholesky``,
``sag`` and ``saga`` all minimise

    sum_i s_i l_i / S + ((1 - r) / 2 ||W||^2 + r ||W||_1) / (C S)

(``s_i`` the sample weights times the class weights, ``S = sum_i s_i``,
``r`` the ``l1_ratio``, the intercept unpenalised; ``C=np.inf``: no
penalty), the engine's ``sum_i s_i CE_i / S + (l2 / 2) ||W||^2 + l1 ||W||_1``:

- More than two classes: the same multinomial model, so ``l2 = (1 - r) / (C S)``,
  ``l1 = r / (C S)``, ``coef_ = W.T`` and ``intercept_ = b - mean(b)``.
- Two classes: scikit-learn fits one logit ``z = x w + c``. A two-class
  softmax depends only on ``W[:, 1] - W[:, 0]``, and the penalty is smallest
  at ``W = [-w/2, w/2]``, where ``||W||^2 = ||w||^2 / 2`` and
  ``||W||_1 = ||w||_1``; so ``l2 = 2 (1 - r) / (C S)``, ``l1 = r / (C S)``,
  ``coef_ = (W[:, 1] - W[:, 0]).T`` (shape (1, d)), ``intercept_ = b1 - b0``.

``liblinear`` (two classes only, as in scikit-learn 1.9) penalises the
intercept: it fits ``[X, intercept_scaling]`` with no separate intercept, so
the engine fits that matrix with ``fit_intercept=False`` and
``intercept_ = intercept_scaling * w[-1]``. ``dual=True`` (L2 only) has the
same optimum. As scikit-learn's liblinear, it returns float64 attributes.

``tol``: every solver name stops when the largest entry of the gradient of
the objective above (for an L1 term, of its minimum-norm subgradient) is at
most ``tol`` (scipy's ``gtol``, scikit-learn's meaning for ``lbfgs``; the
other solvers' own rules differ, and no rule of theirs is imitated). For two
classes the gradient w.r.t. the softmax's ``W[:, 1]`` is half the gradient
w.r.t. ``w``, so the engine gets ``gtol = tol / 2``. A `ConvergenceWarning`
(with the message scikit-learn's solver of that name gives) means that bound
was not met within ``max_iter``. In float64, where a data pass is small (rows
x heads x classes x features under 2^22, a pass of a millisecond or so), the
engine then polishes, to ``1e-6 * tol`` in at most 100 more iterations
(within ``max_iter``): the result no longer depends on the path taken (so
integer weights give exactly repeated rows' fit, as scikit-learn's checks
demand to 1e-7), for a few milliseconds. Larger float64 fits, and float32
fits, stop at ``tol`` itself, as scikit-learn does.

``random_state`` is accepted and has no effect: the engine is deterministic.
``verbose`` is accepted and prints nothing. Callbacks (``set_callbacks``) see
the fit as one task: the iterations run on the device as one compiled
program, with no host hook per iteration.

float64 input is solved in float64 (under ``jax.enable_x64``), float32 input
in float32 with float32 ``coef_`` and ``intercept_`` (``LogisticRegressionCV``
validates X to float64, as scikit-learn's does). Sparse X (any scipy.sparse
format; text, one-hot tables) is fitted as it is, never made dense: the
engine's sparse rows (`jaxsoft.exact.sparse_rows`); predictions take sparse
X too, and ``sparsify()`` makes ``coef_`` sparse. Fitted attributes are NumPy
arrays: the estimators pickle and clone.
"""

from jaxsoft.linear_model._logistic import LogisticRegression
from jaxsoft.linear_model._logistic_cv import LogisticRegressionCV

__all__ = ["LogisticRegression", "LogisticRegressionCV"]
