"""Preparing a dataset with TFDS (``download_and_prepare``), failing clearly.

What can be known without TensorFlow and without waiting is checked first;
TFDS's own failures (checksums, truncated archives, the network) become one
line that says what to do; a failed preparation leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import (
    NonMatchingChecksumError,
)

from jaxsoft.data import _network, _quiet, _tensorflow
from jaxsoft.data.digits import Digits
from jaxsoft.data.errors import (
    CorruptDatasetError,
    DatasetUnavailableError,
    one_line,
)

# What a truncated or garbled source archive raises while TFDS extracts it.
_BAD_ARCHIVE_ERRORS = (
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    tarfile.ReadError,
    zipfile.BadZipFile,
)


def prepare(
    builder: tfds.core.DatasetBuilder,
    name: str,
    *,
    manual_dir: Any,
    download: bool,
) -> None:
    """Runs ``builder.download_and_prepare`` and turns failures into clear errors.

    What can be known without TensorFlow and without waiting is checked first,
    in this order: ``download``, ``manual_dir``, TensorFlow installed, the
    sizes of the files in ``manual_dir``, the download hosts reachable. Only
    then is TensorFlow imported (seconds) and the dataset prepared, with
    TFDS's notices kept off a piped stdout (`_quiet.routed_notices`).
    """
    root = Path(builder.data_dir_root)
    files = _network.source_files(builder)
    if not download:
        raise DatasetUnavailableError(
            f"{name!r} is not prepared in {root} and download=False. "
            + _network.OFFLINE_OPTIONS.format(files=files)
        )
    if manual_dir is not None:
        manual_dir = Path(manual_dir).expanduser()
        if not manual_dir.is_dir():
            raise FileNotFoundError(f"manual_dir {manual_dir} is not a folder.")
    if not isinstance(builder, Digits):
        purpose = f"Preparing the TFDS dataset {name!r}"
        _tensorflow.require_tensorflow(purpose)
        if manual_dir is not None:
            _check_manual_sizes(builder, name, manual_dir)
        _network.check_reachable(builder, name, manual_dir, files)
        _tensorflow.import_tensorflow(purpose)
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir)
    )
    with _quiet.routed_notices(builder), _no_leftovers(root, builder.name):
        try:
            builder.download_and_prepare(download_config=config)
        except NonMatchingChecksumError as e:
            raise CorruptDatasetError(_checksum_message(e, builder, name)) from e
        except _BAD_ARCHIVE_ERRORS as e:
            raise CorruptDatasetError(
                f"A source file of {name!r} is truncated or corrupt "
                f"({type(e).__name__}: {one_line(e)}). Download it again."
            ) from e
        except _network.NETWORK_ERRORS as e:
            raise DatasetUnavailableError(
                f"Cannot download {name!r} (no network?): {type(e).__name__}: "
                f"{one_line(e)}. " + _network.OFFLINE_OPTIONS.format(files=files)
            ) from e


def _bad_source_file(
    name: str, path: Path, filename: str, got: int | None, expected: int
) -> str:
    """One line: which source file is wrong, how, and what to do."""
    if got is not None and got != expected:
        how = f"has {got} bytes, expected {expected}"
    else:
        how = f"has the expected {expected} bytes but not the expected SHA-256"
    return (
        f"The source file {filename} of {name!r} ({path}) {how}: it is "
        "truncated, corrupt or a different file. Download it again."
    )


def _check_manual_sizes(
    builder: tfds.core.DatasetBuilder, name: str, manual_dir: Path
) -> None:
    """A file in ``manual_dir`` of the wrong size fails now, not after TFDS reads it."""
    for info in _network.url_infos(builder).values():
        path = manual_dir / info.filename if info.filename else None
        if path is None or not path.is_file() or not info.size:
            continue
        got = path.stat().st_size
        if got != int(info.size):
            raise CorruptDatasetError(
                _bad_source_file(name, path, info.filename, got, int(info.size))
            )


_CHECKSUM_RE = re.compile(
    r"Artifact (?P<url>\S+), downloaded to (?P<path>.+?), has wrong checksum"
)


def _checksum_message(
    error: NonMatchingChecksumError, builder: tfds.core.DatasetBuilder, name: str
) -> str:
    """TFDS's multi-line Expected/Got text, as one line that says what to do."""
    match = _CHECKSUM_RE.search(str(error))
    info = _network.url_infos(builder).get(match["url"]) if match else None
    if info is None or not info.size:
        return (
            f"A source file of {name!r} does not have the size and checksum "
            f"TFDS expects ({one_line(error)}): it is truncated, corrupt or a "
            "different file. Download it again."
        )
    path = Path(match["path"])
    try:
        got: int | None = path.stat().st_size
    except OSError:
        got = None
    return _bad_source_file(name, path, info.filename or path.name, got, int(info.size))


def _is_temporary(path: Path) -> bool:
    """TFDS's names for what it has not finished writing."""
    name = path.name
    return (
        ".tmp." in name or name.startswith("incomplete") or name.endswith(".todelete")
    )


@contextlib.contextmanager
def _no_leftovers(root: Path, dataset: str) -> Iterator[None]:
    """On failure, removes what this preparation left half-written.

    TFDS writes into ``incomplete*`` folders and ``*.tmp.*`` files and renames
    them when complete; this removes the new temporary ones and the new empty
    folders. Anything present before stays, and so do complete downloads and
    extractions (TFDS's download cache, reused by the next try).
    """
    watched = [root / "downloads", root / dataset]

    def snapshot() -> set[Path]:
        found = {root} if root.exists() else set()
        for top in watched:
            if top.exists():
                found.add(top)
                found.update(top.rglob("*"))
        return found

    before = snapshot()
    try:
        yield
    except BaseException:
        new = sorted(snapshot() - before, key=lambda p: len(p.parts), reverse=True)
        for path in new:
            with contextlib.suppress(OSError):
                if _is_temporary(path):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        raise
