"""Classification datasets through tensorflow-datasets, as in-memory arrays."""

from jaxsoft.data.dataset import Dataset

__all__ = ["Dataset"]
