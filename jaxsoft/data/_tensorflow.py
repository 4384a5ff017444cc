"""TensorFlow, imported only when a dataset needs it, quiet and with GPUs hidden.

TFDS needs TensorFlow to prepare the image datasets of its catalog (it encodes
images with ``tf.image``). jaxsoft never needs it for `digits`, nor to read a
prepared ``array_record`` dataset, and the math modules never import it.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

from jaxsoft.data.errors import MissingDependencyError

INSTALL_HINT = (
    "pip install 'jaxsoft[tensorflow]' (TensorFlow's CPU build, tensorflow-cpu; "
    "or: pip install tensorflow on a machine where TensorFlow should see the GPU)"
)

# Set before TensorFlow is imported, unless the user set them: no C++ log
# lines (TF_CPP_MIN_LOG_LEVEL does not cover the oneDNN notice, which only
# TF_ENABLE_ONEDNN_OPTS=0 silences; TFDS only encodes and decodes images with
# TensorFlow, which oneDNN does not change).
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def _missing(purpose: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"{purpose} needs TensorFlow, which is not installed. Install it "
        f"with: {INSTALL_HINT}. Without TensorFlow you can still load "
        "'digits', and any dataset already prepared in the array_record "
        "format."
    )


def require_tensorflow(purpose: str) -> None:
    """Fails, without importing TensorFlow, if it is not installed.

    Args:
      purpose: what TensorFlow is needed for, for the error message.

    Raises:
      MissingDependencyError: TensorFlow is not installed.
    """
    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(purpose)


def import_tensorflow(purpose: str) -> ModuleType:
    """Imports TensorFlow quietly, with every GPU hidden so JAX keeps the memory.

    Quietly: `QUIET_ENVIRONMENT` is applied with ``os.environ.setdefault``, so
    a value the user set wins; it has no effect once TensorFlow is imported.

    Args:
      purpose: what TensorFlow is needed for, for the error message.

    Returns:
      The ``tensorflow`` module.

    Raises:
      MissingDependencyError: TensorFlow is not installed.
    """
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    try:
        import tensorflow as tf
    except ImportError as e:
        raise _missing(purpose) from e
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        # TF was initialised before jaxsoft could hide the GPUs.
        if tf.config.get_visible_devices("GPU"):
            warnings.warn(
                "TensorFlow was initialised before jaxsoft.data could hide the "
                "GPUs from it, so it may hold GPU memory that JAX needs. Call "
                "tf.config.set_visible_devices([], 'GPU') first.",
                stacklevel=2,
            )
    return tf
