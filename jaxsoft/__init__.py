"""jaxsoft: softmax regression as pure, compiled JAX functions.

>>> import jaxsoft as js
"""

from jaxsoft.compile_cache import enable_compilation_cache
from jaxsoft.errors import JaxsoftError
from jaxsoft.losses import (
    cross_entropy,
    cross_entropy_grad,
    l2_penalty,
    log_softmax,
    logsumexp,
    one_hot,
    softmax,
)
from jaxsoft.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    top_k_accuracy,
)
from jaxsoft.model import (
    Params,
    init_params,
    logits,
    predict,
    predict_proba,
    top_k,
)
from jaxsoft.objective import loss

__version__ = "0.1.0"

__all__ = [
    "JaxsoftError",
    "Params",
    "accuracy",
    "confusion_matrix",
    "cross_entropy",
    "cross_entropy_grad",
    "enable_compilation_cache",
    "expected_calibration_error",
    "init_params",
    "l2_penalty",
    "log_softmax",
    "logits",
    "logsumexp",
    "loss",
    "one_hot",
    "predict",
    "predict_proba",
    "softmax",
    "top_k",
    "top_k_accuracy",
]
