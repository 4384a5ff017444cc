"""scikit-learn's estimator checks on jaxsoft's estimators, none expected to fail."""

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

from sklearn.utils.estimator_checks import parametrize_with_checks

from jaxsoft.linear_model import LogisticRegression, LogisticRegressionCV


# cv=3 as scikit-learn checks its own LogisticRegressionCV
# (sklearn/utils/_test_common/instance_generator.py): check_sparsify_coefficients
# fits 9 rows of 3 classes, too few for 5 stratified folds.
@parametrize_with_checks([LogisticRegression(), LogisticRegressionCV(cv=3)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
