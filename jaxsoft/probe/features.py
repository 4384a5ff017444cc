"""Feature files for probes: NumPy arrays, ``.npz`` files, pairs of ``.npy`` files.

A split is given as

- a pair of arrays ``(x, y)`` (NumPy or JAX; x (n, d), y (n,) int);
- the path of an ``.npz`` file holding arrays named ``x`` and ``y`` (and,
  optionally, ``sample_weight`` (n,), read by `load_sample_weight`);
- a pair of paths ``(x.npy, y.npy)``: memory-mapped, so the features need
  not fit in host memory (`jaxsoft.probe.sweep` streams them);
- a pair of paths ``(x.npz, y.npy)`` whose x is a scipy.sparse matrix saved
  with ``scipy.sparse.save_npz`` (text, one-hot tables): kept sparse.

Every split goes through `jaxsoft.validation.validate_split`, the project's
one host-validation path; memory-mapped or very large features are checked
block by block, so they are never read into memory whole. Input mistakes
raise `ProbeInputError` (a ValueError) with a one-line message.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxsoft.exact import SolveInputError, validate_features

__all__ = [
    "ProbeInputError",
    "load_features",
    "load_sample_weight",
    "validate_features",
]


ProbeInputError = SolveInputError
"""A bad input to a probe: a missing file, a wrong array, a bad strength (the
exact engine's `SolveInputError`, under the name the probe has always used)."""


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _existing(path: str | os.PathLike[str], split: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ProbeInputError(f"{split} features: no such file: {path}")
    return path


def _load_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                held = ", ".join(data.files) or "nothing"
                raise ProbeInputError(
                    f"{path} has no array named {missing[0]!r} (it holds: {held}); "
                    "save features with np.savez(path, x=x, y=y)."
                )
            return data["x"], data["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, ProbeInputError):
            raise
        raise ProbeInputError(_unreadable(path, ".npz", err)) from None


def _unreadable(path: Path, kind: str, err: Exception) -> str:
    """One line for a file NumPy cannot load, never its ``allow_pickle`` advice."""
    if "pickle" in str(err):
        return (
            f"{path} is not an .npz or .npy archive; save features with "
            "np.savez(path, x=x, y=y) or np.save(path, array)."
        )
    return f"cannot read {path} as {kind}: {err}"


def load_sample_weight(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The optional ``sample_weight`` array (n,) of an ``.npz`` split, or None.

    ``.npy`` pairs carry no weights (None). Weights are checked by the
    engine (finite, >= 0, one per row) where they are used.
    """
    path = Path(path)
    if path.suffix == ".npy" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "sample_weight" not in data.files:
                return None
            return data["sample_weight"]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ProbeInputError(_unreadable(path, ".npz", err)) from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ProbeInputError(_unreadable(path, ".npy", err)) from None


def _load_x(path: Path) -> Any:
    """Features from a ``.npy`` file (memory-mapped) or a scipy.sparse
    ``.npz`` file (``scipy.sparse.save_npz``)."""
    if path.suffix != ".npz":
        return _load_npy(path)
    import scipy.sparse as sp

    try:
        return sp.load_npz(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ProbeInputError(
            f"cannot read {path} as a sparse matrix (scipy.sparse.save_npz): {err}"
        ) from None


def load_features(
    source: str | os.PathLike[str] | Sequence[Any], *, split: str = "train"
) -> tuple[Any, Any]:
    """Features and labels ``(x (n, d), y (n,))`` of one split, not yet validated.

    Args:
      source: ``(x, y)`` arrays, an ``.npz`` path with ``x`` and ``y``,
        ``(x.npy, y.npy)`` paths (memory-mapped, read-only) or ``(x.npz,
        y.npy)`` paths with sparse x (``scipy.sparse.save_npz``).
      split: the split's name, for messages.

    Returns:
      ``(x, y)`` as given or as loaded (``np.memmap`` for ``.npy`` files).

    Raises:
      ProbeInputError: a missing or unreadable file, an ``.npz`` without
        ``x`` or ``y``, or a source of another form.
    """
    if _is_path(source):
        path = _existing(source, split)
        if path.suffix == ".npy":
            raise ProbeInputError(
                f"{split} features: {path} is one .npy file; give the pair "
                "(x.npy, y.npy) or an .npz file holding x and y."
            )
        return _load_npz(path, split)
    if isinstance(source, (tuple, list)) and len(source) == 2:
        first, second = source
        if _is_path(first) and _is_path(second):
            return _load_x(_existing(first, split)), _load_npy(_existing(second, split))
        if not (_is_path(first) or _is_path(second)):
            return first, second
    raise ProbeInputError(
        f"{split} features must be (x, y) arrays, an .npz path, or (x.npy, y.npy) "
        f"or (x.npz, y.npy) paths, got {type(source).__name__}."
    )
