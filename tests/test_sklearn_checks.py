"""scikit-learn's own estimator checks on jaxsoft's estimators (none expected to fail)."""

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from jaxsoft.linear_model import LogisticRegression  # noqa: E402


@parametrize_with_checks([LogisticRegression()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
