"""Agreement of jaxsoft.linear_model with scikit-learn (float64, NumPy references)."""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn import datasets
from sklearn.linear_model import LogisticRegression as SkLR
from sklearn.preprocessing import StandardScaler

from jaxsoft.linear_model import LogisticRegression


def _objective(coef, intercept, X, y, C):
    """scikit-learn's objective in NumPy float64: mean CE + ||W||^2 / (2 C n)."""
    z = X @ coef.T + intercept
    if z.shape[1] == 1:
        z = np.column_stack([np.zeros(len(z)), z[:, 0]])
    ce = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    return ce.mean() + (coef**2).sum() / (2 * C * len(y))


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
def test_objective_and_proba_match_sklearn(name: str) -> None:
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = LogisticRegression(tol=1e-8, max_iter=1000).fit(X, y)
    ref = SkLR(tol=1e-10, max_iter=10000).fit(X, y)
    f_ours = _objective(ours.coef_, ours.intercept_, X, y, 1.0)
    f_ref = _objective(ref.coef_, ref.intercept_, X, y, 1.0)
    assert abs(f_ours - f_ref) <= 1e-6 * abs(f_ref)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    assert ours.coef_.shape == ref.coef_.shape


def test_string_labels() -> None:
    X, y = datasets.load_iris(return_X_y=True)
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    ours = LogisticRegression().fit(X, labels)
    assert list(ours.classes_) == ["a", "b", "c"]
    assert set(ours.predict(X)) <= {"a", "b", "c"}


def test_nan_rejected() -> None:
    X = np.array([[np.nan, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError):
        LogisticRegression().fit(X, [0, 1])
