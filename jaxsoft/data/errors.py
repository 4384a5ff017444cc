"""Errors raised by `jaxsoft.data`.

Each one subclasses the built-in exception a caller would naturally catch
(`ValueError`, `RuntimeError`, `ImportError`) and the common base
`DatasetError`, so ``except jaxsoft.data.DatasetError`` catches them all.
"""

from __future__ import annotations

from jaxsoft.errors import JaxsoftError


class DatasetError(JaxsoftError):
    """Base class of every error raised by `jaxsoft.data.load`."""


class UnknownDatasetError(DatasetError, ValueError):
    """The name is neither ``digits`` nor a dataset of the TFDS catalog."""


class UnsupportedDatasetError(DatasetError, ValueError):
    """The dataset exists but is not image classification with train/test."""


class DatasetUnavailableError(DatasetError, RuntimeError):
    """The dataset is not prepared and cannot be downloaded (e.g. no network)."""


class CorruptDatasetError(DatasetError, RuntimeError):
    """A source file or a prepared file is truncated or corrupt."""


class MissingDependencyError(DatasetError, ImportError):
    """An optional package (TensorFlow) is needed for this dataset."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message, at most ``limit`` characters.

    For the messages of the errors above, which are always one line.
    """
    lines = str(error).strip().splitlines()
    line = lines[0].strip() if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
