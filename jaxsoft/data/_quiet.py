"""Keeping TFDS quiet and tidy: its logs, progress bars, notices, temp folders.

TFDS talks while it works: absl warnings and infos and progress bars on
stderr, two bold notices on stdout while it prepares a dataset. jaxsoft's CLI
prints its results on stdout, so what TFDS says must not end up there when
stdout is piped, and nothing of it should reach stderr unless a person is
watching. TFDS also leaves an empty ``tmp*tfds`` folder behind per builder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import tensorflow_datasets as tfds

# The DatasetBuilder methods that print TFDS's notices with termcolor on
# stdout: "Downloading and preparing dataset ..." and "Dataset ... downloaded
# and prepared to ... Subsequent calls will reuse this data."
_NOTICES = ("_log_download_bytes", "_log_download_done")


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def stdout_is_terminal() -> bool:
    return _is_terminal(sys.stdout)


def stderr_is_terminal() -> bool:
    return _is_terminal(sys.stderr)


@contextlib.contextmanager
def quiet_tfds() -> Iterator[None]:
    """Keeps TFDS's chatter off stderr while `load` runs.

    TFDS's absl warnings and infos (e.g. "Variant folder ... has no
    dataset_info.json" for every dataset not yet prepared) are dropped unless
    the user set absl's verbosity; its progress bars show only when stderr is
    a terminal (and TFDS's own setting allows them).
    """
    from tensorflow_datasets.core.utils import tqdm_utils

    absl_logger = logging.getLogger("absl")
    quiet = absl_logger.level == logging.NOTSET

    def only_errors(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    bars = bool(getattr(tqdm_utils, "_active", True))
    tfds.display_progress_bar(bars and stderr_is_terminal())
    if quiet:
        absl_logger.addFilter(only_errors)
    try:
        yield
    finally:
        if quiet:
            absl_logger.removeFilter(only_errors)
        tfds.display_progress_bar(bars)


@contextlib.contextmanager
def routed_notices(builder: tfds.core.DatasetBuilder) -> Iterator[None]:
    """Keeps TFDS's preparation notices off stdout unless it is a terminal.

    TFDS prints them on stdout on purpose (so a person can cancel a long
    download). When stdout is a terminal they stay there; otherwise they go to
    stderr if that is a terminal, and nowhere if not, like the progress bars.
    Only ``builder``'s own methods are wrapped, and only while this runs.
    """
    if stdout_is_terminal():
        yield
        return
    target = sys.stderr if stderr_is_terminal() else None

    def route(original: Callable[[], None]) -> Callable[[], None]:
        def notice() -> None:
            if target is not None:
                with contextlib.redirect_stdout(target):
                    original()

        return notice

    wrapped = [n for n in _NOTICES if callable(getattr(builder, n, None))]
    for name in wrapped:
        setattr(builder, name, route(getattr(builder, name)))
    try:
        yield
    finally:
        for name in wrapped:
            vars(builder).pop(name, None)  # the class's method again


class _TempfileSpy:
    """Stands in for `tempfile` in TFDS's dataset_info; notes made folders."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __getattr__(self, attribute: str) -> Any:
        return getattr(tempfile, attribute)

    def mkdtemp(self, *args: Any, **kwargs: Any) -> str:
        path = tempfile.mkdtemp(*args, **kwargs)
        self.made.append(path)
        return path


_TEMPFILE_LOCK = threading.Lock()


@contextlib.contextmanager
def no_tfds_tempdirs() -> Iterator[None]:
    """Removes the empty ``tmp*tfds`` folders TFDS makes when making builders.

    Each builder of a dataset not yet prepared runs
    ``DatasetInfo.initialize_from_bucket``, which makes a folder with
    ``tempfile.mkdtemp("tfds")`` to copy metadata from GCS into, then returns
    without using it (TFDS has GCS access disabled) and never removes it. Only
    the folders made here that are still empty are removed: one holding GCS
    metadata stays, as TFDS reads that metadata lazily.
    """
    from tensorflow_datasets.core import dataset_info

    spy = _TempfileSpy()
    with _TEMPFILE_LOCK:
        real = dataset_info.tempfile
        dataset_info.tempfile = spy
        try:
            yield
        finally:
            dataset_info.tempfile = real
            for path in spy.made:
                with contextlib.suppress(OSError):
                    os.rmdir(path)  # only if empty
