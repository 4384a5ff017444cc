"""What identifies an array's contents, for integrity checks on disk."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["array_record"]


def array_record(host: np.ndarray) -> dict[str, Any]:
    """``{"shape", "dtype", "sha256"}`` of a NumPy array; the SHA-256 covers
    the shape and dtype as well as the C-ordered bytes."""
    host = np.asarray(host, order="C")
    spec = f"{tuple(host.shape)} {host.dtype.name}"
    sha = hashlib.sha256(spec.encode() + host.tobytes()).hexdigest()
    return {"shape": list(host.shape), "dtype": host.dtype.name, "sha256": sha}
