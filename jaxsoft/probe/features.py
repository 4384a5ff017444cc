"""Feature files for probes: NumPy arrays, ``.npz`` files, pairs of ``.npy`` files.

A split is given as

- a pair of arrays ``(x, y)`` (NumPy or JAX; x (n, d), y (n,) int);
- the path of an ``.npz`` file holding arrays named ``x`` and ``y`` (and,
  optionally, ``sample_weight`` (n,), read by `load_sample_weight`);
- a pair of paths ``(x.npy, y.npy)``: memory-mapped, so the features need
  not fit in host memory (`jaxsoft.probe.sweep` streams them).

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

import jax
import numpy as np

from jaxsoft import validation
from jaxsoft.errors import JaxsoftError

__all__ = [
    "ProbeInputError",
    "load_features",
    "load_sample_weight",
    "validate_features",
]


_BLOCK_BYTES = 256 << 20  # validate large features in blocks of this size


class ProbeInputError(JaxsoftError, ValueError):
    """A bad input to a probe: a missing file, a wrong array, a bad strength."""


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


def load_features(
    source: str | os.PathLike[str] | Sequence[Any], *, split: str = "train"
) -> tuple[Any, Any]:
    """Features and labels ``(x (n, d), y (n,))`` of one split, not yet validated.

    Args:
      source: ``(x, y)`` arrays, an ``.npz`` path with ``x`` and ``y``, or
        ``(x.npy, y.npy)`` paths (memory-mapped, read-only).
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
            return _load_npy(_existing(first, split)), _load_npy(
                _existing(second, split)
            )
        if not (_is_path(first) or _is_path(second)):
            return first, second
    raise ProbeInputError(
        f"{split} features must be (x, y) arrays, an .npz path or (x.npy, y.npy) "
        f"paths, got {type(source).__name__}."
    )


def _check_block(x: Any, y: Any, num_classes: int, split: str) -> tuple[Any, Any]:
    try:
        return validation.validate_split(x, y, num_classes=num_classes, split=split)
    except (TypeError, ValueError) as err:
        raise ProbeInputError(str(err)) from None


def validate_features(
    x: Any, y: Any, *, num_classes: int, num_features: int | None, split: str
) -> tuple[Any, np.ndarray]:
    """Validates one split; returns ``(x, y int32)``.

    Small in-memory features come back as `validate_split` returns them;
    memory-mapped or large ones are checked in row blocks and returned as
    they are (integer features are cast to float32 inside the passes).
    """
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == 2 and num_features not in (None, shape[1]):
        raise ProbeInputError(
            f"x_{split} has {shape[1]} features but x_train has {num_features}."
        )
    blockwise = isinstance(x, np.memmap) or getattr(x, "nbytes", 0) > _BLOCK_BYTES
    if not blockwise or len(shape) != 2 or shape[0] == 0 or np.ndim(y) != 1:
        x, y = _check_block(x, y, num_classes, split)
        return x, np.asarray(y) if not isinstance(y, jax.Array) else y
    if shape[0] != len(y):
        raise ProbeInputError(
            f"x_{split} and y_{split} have different lengths: {shape[0]} examples "
            f"but {len(y)} labels."
        )
    first, last = _own_rows(shape[0])
    step = max(1, _BLOCK_BYTES // max(1, x.itemsize * shape[1]))
    error = None
    try:
        for lo in range(first, last, step):
            hi = min(lo + step, last)
            name = split if (lo, hi) == (0, shape[0]) else f"{split}[{lo}:{hi}]"
            _check_block(x[lo:hi], y[lo:hi], num_classes, name)
    except ProbeInputError as err:
        error = err
    _agree(error, split)
    return x, np.asarray(y, np.int32)


def _own_rows(n: int) -> tuple[int, int]:
    """This process's contiguous share ``[first, last)`` of n rows.

    With several processes each validates only its own rows, so a
    memory-mapped feature file is never read whole by one host.
    """
    count, index = jax.process_count(), jax.process_index()
    return n * index // count, n * (index + 1) // count


def _agree(error: ProbeInputError | None, split: str) -> None:
    """Raises on every process when any process found bad rows."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(error is not None))
        bad = np.flatnonzero(np.asarray(flags))
        if error is None and bad.size:
            raise ProbeInputError(
                f"process {int(bad[0])} found bad rows in the {split} split; "
                "its message says which."
            )
    if error is not None:
        raise error
