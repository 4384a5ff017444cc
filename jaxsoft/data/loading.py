"""`load` and `describe`: TFDS image-classification datasets, as arrays.

The path is the same for every dataset: ``tfds.builder`` (`_builders`) ->
(first use only) ``download_and_prepare`` into ``data_dir`` in the
``array_record`` format (`_preparing`) -> ``builder.as_data_source`` -> decode
(`_reading`; later loads read a checked decoded copy instead, `_decoded`) ->
`preprocessing.to_features`, all with TFDS kept quiet (`_quiet`). Reading
``array_record`` needs no TensorFlow; preparing a dataset of the TFDS catalog
does (TFDS encodes its images with ``tf.image``), `digits` does not.
`describe` stops after the first step.
"""

from __future__ import annotations

import math
import os

import numpy as np

from jaxsoft.data import (
    _builders,
    _decoded,
    _preparing,
    _quiet,
    _reading,
    preprocessing,
)
from jaxsoft.data.dataset import Dataset, DatasetInfo
from jaxsoft.data.errors import CorruptDatasetError

DEFAULT = "digits"


def list_datasets() -> list[str]:
    """The names `load` accepts: ``digits`` and the TFDS catalog, sorted.

    Catalog entries with configs also take ``name/config`` (``emnist/letters``)
    and a version (``mnist:3.0.1``). Only image-classification datasets with a
    train and a test split load; `load` refuses the others with the reason.
    """
    return _builders.dataset_names()


def load(
    name: str = DEFAULT,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Dataset:
    """Loads the train and test splits of an image-classification dataset.

    The first call for a dataset prepares it into ``data_dir`` (TFDS
    downloads, checks and converts it; later calls only read the prepared
    files, and from the second call on, a checked decoded copy of them that
    the first call keeps in ``<prepared folder>/jaxsoft-decoded/``, about the
    size of the returned arrays; delete it to reclaim the space).
    Images are flattened and scaled to [0, 1] by
    `jaxsoft.data.preprocessing` (pixel / 255 for 8-bit images, pixel / 16 for
    `digits`). TFDS's notices and progress bars show only on a terminal.

    Args:
      name: ``"digits"`` (default: 1,797 8x8 digits shipped with scikit-learn,
        prepared offline without TensorFlow) or a TFDS catalog name with an
        image and a class-label feature, e.g. ``"mnist"``, ``"fashion_mnist"``,
        ``"kmnist"``, ``"emnist/balanced"``, ``"cifar10"``.
      data_dir: where prepared datasets live; default TFDS's own
        (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      manual_dir: a folder holding the dataset's original files (as named in
        the TFDS checksum list, e.g. ``train-images-idx3-ubyte.gz`` for
        MNIST); TFDS checks their checksums and prepares from them with no
        network (files missing from it are downloaded).
      download: if False, never prepare; fail unless already prepared.

    Returns:
      A `Dataset`, validated: ``x_train`` float32 (n_train, d), ``y_train``
      int32 (n_train,), ``x_test``, ``y_test``, ``class_names``,
      ``image_shape`` (h, w, c) with d = h * w * c.

    Raises:
      UnknownDatasetError: no such dataset (the message lists close names).
      UnsupportedDatasetError: no image/label pair, variable image sizes, or
        no train/test split, or an empty one.
      DatasetUnavailableError: not prepared and cannot be downloaded (offline,
        this is known in about two seconds; the message names
        the files ``manual_dir`` lacks).
      CorruptDatasetError: a source or prepared file is truncated or corrupt,
        or the prepared arrays are not a valid `Dataset`.
      MissingDependencyError: TensorFlow is needed (catalog datasets) and
        missing.
      FileNotFoundError: ``manual_dir`` is not a folder.

    >>> ds = load("digits")  # doctest: +SKIP
    >>> ds.x_train.shape, ds.y_test.shape, ds.image_shape  # doctest: +SKIP
    ((1437, 64), (360,), (8, 8, 1))
    """
    name = _builders.clean_name(name)
    with _quiet.quiet_tfds():
        builder = _builders.make_builder(name, data_dir)
        image_key, label_key = _builders.image_label_keys(builder, name)
        if not builder.is_prepared():
            _preparing.prepare(builder, name, manual_dir=manual_dir, download=download)
        _builders.check_splits(builder, name)

        image_feature = builder.info.features[image_key]
        scale = preprocessing.pixel_max(
            image_feature.np_dtype, getattr(builder, "PIXEL_MAX", None)
        )
        label_feature = builder.info.features[label_key]
        decoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        undecoded = []  # splits read from the prepared files, not the copy
        for split in _builders.SPLITS:
            copy = _decoded.read(builder, split)
            if copy is None:
                undecoded.append(split)
                copy = _reading.read_split(builder, name, split, image_key, label_key)
            decoded[split] = copy
    features = {s: preprocessing.to_features(decoded[s][0], scale) for s in decoded}
    try:
        # Validates both splits (labels in range, finite features, shapes).
        dataset = Dataset(
            name=name,
            x_train=features["train"],
            y_train=decoded["train"][1],
            x_test=features["test"],
            y_test=decoded["test"][1],
            class_names=tuple(str(c) for c in label_feature.names),
            image_shape=tuple(int(s) for s in image_feature.shape),
        )
    except (ValueError, TypeError) as e:
        raise CorruptDatasetError(
            f"{name!r} prepared in {builder.data_dir} is not a valid dataset: "
            f"{e} Delete that folder and load again to prepare it anew."
        ) from e
    for split in undecoded:  # only arrays that made a valid Dataset
        _decoded.write(builder, split, *decoded[split])
    return dataset


def describe(
    name: str = DEFAULT, *, data_dir: str | os.PathLike[str] | None = None
) -> DatasetInfo:
    """The name and shapes `load` would return, without loading anything.

    Reads only what TFDS knows about the dataset without preparing it (its
    catalog entry, or the prepared dataset_info.json in ``data_dir``):
    nothing is downloaded, prepared or written, TensorFlow is not imported,
    and it takes milliseconds. Use it to check that a model fits a dataset
    before `load` spends a minute preparing it.

    Args:
      name: as for `load`.
      data_dir: as for `load`; only read, for a dataset prepared there.

    Returns:
      A `DatasetInfo`: ``name``, ``num_features`` (d), ``num_classes`` (q),
      ``class_names`` and ``image_shape``, equal to those of `load`'s
      `Dataset` (see `DatasetInfo.class_names` for one caveat).

    Raises:
      UnknownDatasetError: no such dataset (the message lists close names).
      UnsupportedDatasetError: not image classification with fixed-size
        images (or, once prepared, without a train and a test split).
      CorruptDatasetError: the prepared dataset_info.json is unreadable.

    >>> info = describe("mnist")  # offline: nothing is downloaded
    >>> info.num_features, info.num_classes, info.image_shape
    (784, 10, (28, 28, 1))
    """
    name = _builders.clean_name(name)
    with _quiet.quiet_tfds():
        builder = _builders.make_builder(name, data_dir, for_preparing=False)
        image_key, label_key = _builders.image_label_keys(builder, name)
        _builders.check_splits(builder, name)
        image_shape = tuple(int(s) for s in builder.info.features[image_key].shape)
        label_feature = builder.info.features[label_key]
        class_names = tuple(str(c) for c in label_feature.names)
    return DatasetInfo(
        name=name,
        num_features=math.prod(image_shape),
        num_classes=len(class_names),
        class_names=class_names,
        image_shape=image_shape,
    )
