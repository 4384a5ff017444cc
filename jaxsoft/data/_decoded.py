"""A decoded copy of each prepared split, so that a later `load` skips decoding.

Decoding MNIST's 70,000 PNG images takes about 4 s; reading the decoded
arrays back takes a few hundredths of a second. The copy sits beside TFDS's
prepared files, in ``<builder.data_dir>/jaxsoft-decoded/``: per split, the
images (in the image feature's dtype, e.g. uint8) and labels as ``.npy``
files, and a manifest that records

- the prepared files the copy was made from (name, size, modification time),
  so a dataset prepared anew invalidates it, and
- each array's SHA-256, shape and dtype, so a truncated or altered copy is
  never used.

Any mismatch, or a copy that cannot be read, is a miss: `load` decodes the
prepared files again and rewrites the copy. A folder that cannot be written
means no copy, nothing else. Writes go to temporary files renamed into place,
the manifest last, so concurrent loads never see half a copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from jaxsoft.data._digest import array_record

__all__ = ["FOLDER", "read", "write"]

FOLDER = "jaxsoft-decoded"
_FORMAT = 2  # 2: arrays described by jaxsoft.data._digest


def _folder(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / FOLDER


def _sources(builder: Any, split: str) -> list[list[Any]]:
    """[name, size, mtime_ns] of each prepared file (the copy's origin).

    Raises FileNotFoundError when no file of the split is there (e.g. under
    ``tfds.testing.mock_data``, which prepares nothing): nothing to copy.
    """
    entries = []
    for entry in sorted(os.scandir(builder.data_dir), key=lambda e: e.name):
        if entry.is_file():
            stat = entry.stat()
            entries.append([entry.name, stat.st_size, stat.st_mtime_ns])
    shard = f"{builder.name}-{split}."
    if not any(name.startswith(shard) for name, _, _ in entries):
        raise FileNotFoundError(f"no {shard}* file in {builder.data_dir}")
    return entries


def _load_checked(path: Path, expected: dict[str, Any]) -> np.ndarray | None:
    array = np.load(path, allow_pickle=False)
    if array_record(array) != expected:
        return None
    return array


def read(builder: Any, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(images, labels) of ``split`` from the decoded copy, or None (a miss).

    A miss: no copy, a copy of other prepared files, or one whose arrays do
    not match their manifest (truncated, altered, half-written).
    """
    folder = _folder(builder.data_dir)
    try:
        manifest = json.loads((folder / f"{split}.json").read_text())
        if manifest.get("format") != _FORMAT:
            return None
        if manifest.get("sources") != _sources(builder, split):
            return None
        images = _load_checked(folder / f"{split}-images.npy", manifest["images"])
        labels = _load_checked(folder / f"{split}-labels.npy", manifest["labels"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    if images is None or labels is None or len(images) != len(labels):
        return None
    return images, labels


def _atomic_write(path: Path, write: Any) -> None:
    """Writes through ``write(file)`` to a temporary file renamed to ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, 0o644)  # readable like the prepared files
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write(builder: Any, split: str, images: np.ndarray, labels: np.ndarray) -> bool:
    """Saves the decoded ``split`` of ``builder``; False (and nothing saved)
    if its folder cannot be written or holds no prepared file of the split."""
    folder = _folder(builder.data_dir)
    try:
        manifest = {
            "format": _FORMAT,
            "sources": _sources(builder, split),
            "images": array_record(images),
            "labels": array_record(labels),
        }
        folder.mkdir(exist_ok=True)
        for kind, array in (("images", images), ("labels", labels)):
            _atomic_write(
                folder / f"{split}-{kind}.npy",
                lambda file, array=array: np.save(file, array, allow_pickle=False),
            )
        _atomic_write(
            folder / f"{split}.json",
            lambda file: file.write(json.dumps(manifest).encode()),
        )
    except OSError:
        return False
    return True
