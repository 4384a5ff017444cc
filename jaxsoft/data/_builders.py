"""Finding the TFDS builder for a name, and checking it is image classification.

Everything here uses only what TFDS knows without preparing the dataset: the
catalog, the builder's configs and its static ``info`` (features, supervised
keys; splits once prepared). Nothing is downloaded and TensorFlow is not
imported.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import tensorflow_datasets as tfds
from google.protobuf import json_format

from jaxsoft.data import _quiet
from jaxsoft.data.digits import Digits
from jaxsoft.data.errors import (
    CorruptDatasetError,
    UnknownDatasetError,
    UnsupportedDatasetError,
    one_line,
)

SPLITS = ("train", "test")


def dataset_names() -> list[str]:
    """``digits`` and the names of the TFDS catalog, sorted."""
    return sorted({Digits.name, *tfds.list_builders(with_community_datasets=False)})


def clean_name(name: object) -> str:
    """``name`` without surrounding spaces; UnknownDatasetError if not a name."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownDatasetError(
            f"Dataset name must be a non-empty str, got {name!r}."
        )
    return name.strip()


def check_name(name: str) -> None:
    """UnknownDatasetError, listing close names, unless ``name`` is in the catalog.

    ``name`` is ``dataset``, ``dataset/config``, each optionally with
    ``:version``.
    """
    base, _, rest = name.partition("/")
    base = base.split(":")[0]
    if base == Digits.name:  # ours, registered: no need to list the catalog
        return
    valid = dataset_names()
    if base not in valid:
        close = difflib.get_close_matches(base, valid, n=5, cutoff=0.6)
        hint = (
            f"Closest valid names: {', '.join(close)}."
            if close
            else "No close match; see jaxsoft.data.list_datasets()."
        )
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}. {hint} The offline default is 'digits'."
        )
    config = rest.split(":")[0]
    if not config:
        return
    configs = list(tfds.builder_cls(base).builder_configs)
    if config in configs:
        return
    if not configs:
        raise UnknownDatasetError(
            f"Dataset {base!r} has no configs; load it as {base!r}, "
            f"without {'/' + config!r}."
        )
    close = difflib.get_close_matches(config, configs, n=5, cutoff=0.5)
    shown = close or configs[:10]
    raise UnknownDatasetError(
        f"Dataset {base!r} has no config {config!r}. Valid: "
        + ", ".join(f"{base}/{c}" for c in shown)
        + ("" if close or len(configs) <= 10 else ", ...")
    )


def make_builder(
    name: str, data_dir: Any, *, for_preparing: bool = True
) -> tfds.core.DatasetBuilder:
    """The TFDS builder for ``name``, after `check_name`.

    Args:
      name: a dataset name, e.g. ``"mnist"`` or ``"emnist/letters"``.
      data_dir: where prepared datasets live; None for TFDS's default.
      for_preparing: if the dataset is not prepared yet, a builder that would
        prepare it in the ``array_record`` format (readable without
        TensorFlow); if False, TFDS's default builder (its ``info`` is the
        same).

    Raises:
      UnknownDatasetError: no such dataset or config.
      CorruptDatasetError: the prepared dataset_info.json is unreadable.
    """
    check_name(name)
    data_dir = None if data_dir is None else os.fspath(data_dir)
    try:
        with _quiet.no_tfds_tempdirs():
            builder = tfds.builder(name, data_dir=data_dir)
            if for_preparing and not builder.is_prepared():
                builder = tfds.builder(
                    name, data_dir=data_dir, file_format="array_record"
                )
    except json_format.ParseError as e:
        # The prepared dataset_info.json is truncated or garbled.
        raise CorruptDatasetError(
            f"Cannot read the description of {name!r} prepared under "
            f"{data_dir or 'the TFDS data dir'} ({one_line(e)}). Its "
            "dataset_info.json looks truncated or corrupt: delete that "
            "dataset's folder and load again to prepare it anew."
        ) from e
    except (ValueError, AssertionError) as e:
        raise UnknownDatasetError(f"Cannot load {name!r}: {e}") from e
    return builder


def image_label_keys(builder: tfds.core.DatasetBuilder, name: str) -> tuple[str, str]:
    """The (image, label) feature names, or UnsupportedDatasetError why not."""
    features = builder.info.features
    keys = builder.info.supervised_keys
    if not (
        isinstance(keys, tuple)
        and len(keys) == 2
        and all(isinstance(k, str) for k in keys)
    ):
        keys = ("image", "label")
    image_key, label_key = keys
    kinds = (
        {k: type(f).__name__ for k, f in features.items()}
        if hasattr(features, "items")
        else {}
    )
    need = (
        "jaxsoft needs an image-classification dataset: an Image feature "
        "and a ClassLabel feature"
    )
    if (
        not isinstance(features, tfds.features.FeaturesDict)
        or image_key not in features
        or not isinstance(features[image_key], tfds.features.Image)
    ):
        raise UnsupportedDatasetError(
            f"{name!r} has no image feature to classify (features: {kinds}, "
            f"supervised keys: {builder.info.supervised_keys}). {need}."
        )
    if label_key not in features or not isinstance(
        features[label_key], tfds.features.ClassLabel
    ):
        raise UnsupportedDatasetError(
            f"{name!r} has no class-label feature paired with {image_key!r} "
            f"(features: {kinds}). {need}."
        )
    shape = features[image_key].shape
    if any(s is None for s in shape):
        raise UnsupportedDatasetError(
            f"{name!r} has images of varying size (shape {shape}); jaxsoft "
            "flattens every image into one vector of fixed length, so it "
            "needs a fixed image size."
        )
    return image_key, label_key


def check_splits(builder: tfds.core.DatasetBuilder, name: str) -> None:
    """UnsupportedDatasetError unless a train and a test split, both non-empty.

    Before preparing, TFDS may not know the splits yet; then nothing is
    checked.
    """
    splits = set(builder.info.splits)
    if splits and not set(SPLITS) <= splits:
        raise UnsupportedDatasetError(
            f"{name!r} has splits {sorted(splits)}; jaxsoft needs a 'train' "
            "and a 'test' split."
        )
    for split in SPLITS:
        if split in splits and builder.info.splits[split].num_examples == 0:
            raise UnsupportedDatasetError(f"The {split!r} split of {name!r} is empty.")
