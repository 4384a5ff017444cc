"""jaxsoft: softmax regression as pure, compiled JAX functions.

>>> import jaxsoft as js

The names below are loaded on first use (PEP 562), so ``import jaxsoft`` is
quick and imports no JAX: the ``jaxsoft`` command starts, and a Ctrl-C while
JAX imports ends it with one line, not a traceback (`jaxsoft.__main__`).
``js.accuracy``, ``from jaxsoft import accuracy`` and ``js.metrics`` work as
with eager imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxsoft._lazy import loader

if TYPE_CHECKING:
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

_HOMES = {  # each public name -> the module that defines it
    "enable_compilation_cache": "compile_cache",
    "JaxsoftError": "errors",
    **dict.fromkeys(
        (
            "cross_entropy",
            "cross_entropy_grad",
            "l2_penalty",
            "log_softmax",
            "logsumexp",
            "one_hot",
            "softmax",
        ),
        "losses",
    ),
    **dict.fromkeys(
        (
            "accuracy",
            "confusion_matrix",
            "expected_calibration_error",
            "top_k_accuracy",
        ),
        "metrics",
    ),
    **dict.fromkeys(
        ("Params", "init_params", "logits", "predict", "predict_proba", "top_k"),
        "model",
    ),
    "loss": "objective",
}

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


__getattr__, __dir__ = loader(__name__, _HOMES, globals())
