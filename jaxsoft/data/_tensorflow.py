"""TensorFlow, imported only when a dataset needs it, with GPUs hidden.

TFDS needs TensorFlow to prepare the image datasets of its catalog (it encodes
images with ``tf.image``). jaxsoft never needs it for `digits`, nor to read a
prepared ``array_record`` dataset, and the math modules never import it.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from jaxsoft.data.errors import MissingDependencyError

INSTALL_HINT = (
    "pip install 'jaxsoft[tfds]' (or: pip install tensorflow-cpu, "
    "or tensorflow on a machine where TensorFlow should see the GPU)"
)


def import_tensorflow(purpose: str) -> ModuleType:
    """Imports TensorFlow with every GPU hidden from it, so JAX keeps the memory.

    Args:
      purpose: what TensorFlow is needed for, for the error message.

    Returns:
      The ``tensorflow`` module.

    Raises:
      MissingDependencyError: TensorFlow is not installed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise MissingDependencyError(
            f"{purpose} needs TensorFlow, which is not installed. Install it "
            f"with: {INSTALL_HINT}. Without TensorFlow you can still load "
            "'digits', and any dataset already prepared in the array_record "
            "format."
        ) from e
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
