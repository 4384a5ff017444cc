"""Reading the prepared splits of a dataset into NumPy arrays.

``array_record`` files (what `load` prepares) are read with TFDS's data
source and the images decoded with Pillow, without TensorFlow; a dataset
prepared earlier by TFDS itself as ``tfrecord`` is read with TensorFlow. Only
errors that mean truncated or corrupt files become `CorruptDatasetError`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxsoft.data import _tensorflow
from jaxsoft.data.errors import CorruptDatasetError, one_line

# Examples read from an array_record file per call.
_CHUNK = 8192

# What Pillow raises for a truncated or garbled PNG/JPEG: OSError ("image file
# is truncated", "broken data stream", UnidentifiedImageError), SyntaxError
# (e.g. "broken PNG file").
_BAD_IMAGE_ERRORS = (OSError, SyntaxError)


def _corrupt(
    builder: tfds.core.DatasetBuilder,
    name: str,
    split: str,
    error: BaseException,
    what: str = "",
) -> CorruptDatasetError:
    return CorruptDatasetError(
        f"Cannot read the {split!r} split of {name!r} prepared in "
        f"{builder.data_dir}{what}: {type(error).__name__}: "
        f"{one_line(error)}. The prepared files look truncated or corrupt: "
        "delete that folder and load again to prepare it anew."
    )


def read_split(
    builder: tfds.core.DatasetBuilder,
    name: str,
    split: str,
    image_key: str,
    label_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w, c) in the feature's dtype and labels (n,) of a split.

    Only the errors that mean truncated or corrupt prepared files become
    `CorruptDatasetError`; anything else (a bug) propagates as it is.
    """
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        return _read_split_with_tensorflow(builder, name, split, image_key, label_key)
    feature = builder.info.features[image_key]
    shape = tuple(int(s) for s in feature.shape)
    # array_record raises RuntimeError for a missing, truncated or garbled
    # shard ("Corrupted Riegeli/records file: ... hash mismatch", "ArrayRecord
    # file should be at least 64KB big", "open() failed").
    try:
        source = builder.as_data_source(
            split=split, decoders={image_key: tfds.decode.SkipDecoding()}
        )
        n = len(source)
    except RuntimeError as e:
        raise _corrupt(builder, name, split, e) from e
    images = np.empty((n, *shape), dtype=feature.np_dtype)
    labels = np.empty((n,), dtype=np.int64)
    for start in range(0, n, _CHUNK):
        keys = list(range(start, min(n, start + _CHUNK)))
        try:
            examples = source.__getitems__(keys)
        except RuntimeError as e:
            raise _corrupt(builder, name, split, e) from e
        for i, example in zip(keys, examples, strict=True):
            try:
                images[i] = decode_image(example[image_key], feature, shape)
            except _BAD_IMAGE_ERRORS as e:
                what = f" (the image of example {i})"
                raise _corrupt(builder, name, split, e, what) from e
            labels[i] = example[label_key]
    return images, labels


def _read_split_with_tensorflow(
    builder: tfds.core.DatasetBuilder,
    name: str,
    split: str,
    image_key: str,
    label_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """A split prepared earlier by TFDS itself in its default (tfrecord) format."""
    tf = _tensorflow.import_tensorflow(
        f"Reading {name!r}, prepared as {builder.info.file_format.value}"
    )
    try:
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    except (tf.errors.DataLossError, tf.errors.NotFoundError) as e:
        # DataLossError: a truncated or garbled record; NotFoundError: a
        # missing shard.
        raise _corrupt(builder, name, split, e) from e
    return np.asarray(data[image_key]), np.asarray(data[label_key])


def decode_image(encoded: Any, feature: Any, shape: tuple[int, ...]) -> np.ndarray:
    """One PNG/JPEG image -> array of ``shape``.

    Pillow directly: the same decoder TFDS uses without OpenCV, minus its
    per-image overhead (twice as fast on MNIST). Anything unusual goes to
    TFDS's own decoder.
    """
    if isinstance(encoded, np.ndarray):
        return encoded.reshape(shape)
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        array = np.asarray(image)
    if array.dtype == feature.np_dtype and array.size == int(np.prod(shape)):
        return array.reshape(shape)
    return feature.decode_example_np(encoded)
