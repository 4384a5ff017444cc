"""Classification datasets through tensorflow-datasets, as in-memory arrays.

>>> from jaxsoft import data
>>> ds = data.load()  # doctest: +SKIP
>>> ds.x_train.shape, ds.y_train.shape, ds.class_names[:3]  # doctest: +SKIP
((1437, 64), (1437,), ('0', '1', '2'))
>>> data.describe("mnist").num_features  # no download  # doctest: +SKIP
784

Importing this package imports tensorflow_datasets but never TensorFlow;
TensorFlow is imported (with GPUs hidden) only to prepare catalog datasets.
"""

from jaxsoft.data.dataset import Dataset, DatasetInfo
from jaxsoft.data.digits import Digits
from jaxsoft.data.errors import (
    CorruptDatasetError,
    DatasetError,
    DatasetUnavailableError,
    MissingDependencyError,
    UnknownDatasetError,
    UnsupportedDatasetError,
)
from jaxsoft.data.loading import DEFAULT, describe, list_datasets, load
from jaxsoft.data.preprocessing import pixel_max, to_features

__all__ = [
    "DEFAULT",
    "CorruptDatasetError",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetUnavailableError",
    "Digits",
    "MissingDependencyError",
    "UnknownDatasetError",
    "UnsupportedDatasetError",
    "describe",
    "list_datasets",
    "load",
    "pixel_max",
    "to_features",
]
