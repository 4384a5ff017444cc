"""scikit-learn's estimator checks on jaxsoft's estimators, none expected to fail."""

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

from sklearn.utils.estimator_checks import parametrize_with_checks

from jaxsoft.linear_model import LogisticRegression, LogisticRegressionCV


@parametrize_with_checks([LogisticRegression(), LogisticRegressionCV()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
