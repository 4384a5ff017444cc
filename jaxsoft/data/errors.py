"""Errors raised by `jaxsoft.data`.

Each one subclasses the built-in exception a caller would naturally catch
(`ValueError`, `RuntimeError`, `ImportError`) and the common base
`DatasetError`, so ``except jaxsoft.data.DatasetError`` catches them all.
"""

from __future__ import annotations


class DatasetError(Exception):
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
