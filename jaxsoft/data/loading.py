"""`load`: any TFDS image-classification dataset as in-memory NumPy arrays.

The path is the same for every dataset: ``tfds.builder`` -> (first use only)
``download_and_prepare`` into ``data_dir`` in the ``array_record`` format ->
``builder.as_data_source`` -> decode -> `preprocessing.to_features`. Reading
``array_record`` needs no TensorFlow; preparing a dataset of the TFDS catalog
does (TFDS encodes its images with ``tf.image``), `digits` does not.
"""

from __future__ import annotations

import contextlib
import difflib
import gzip
import io
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import (
    NonMatchingChecksumError,
)

from jaxsoft.data import preprocessing
from jaxsoft.data._tensorflow import import_tensorflow
from jaxsoft.data.dataset import Dataset
from jaxsoft.data.digits import Digits
from jaxsoft.data.errors import (
    CorruptDatasetError,
    DatasetUnavailableError,
    UnknownDatasetError,
    UnsupportedDatasetError,
)

DEFAULT = "digits"
SPLITS = ("train", "test")
# Seconds to wait for a TCP connection when checking that downloads can work.
CONNECT_TIMEOUT_S = 5.0
# Examples read from an array_record file per call.
_CHUNK = 8192

_OFFLINE_OPTIONS = (
    "Offline options: jaxsoft.data.load('digits') (ships with scikit-learn, "
    "needs no network), or download the original files elsewhere and pass "
    "manual_dir=<folder holding them>{files}, or pass data_dir=<folder where "
    "the dataset is already prepared>."
)


def list_datasets() -> list[str]:
    """The names `load` accepts: ``digits`` and the TFDS catalog, sorted.

    Catalog entries with configs also take ``name/config`` (``emnist/letters``)
    and a version (``mnist:3.0.1``). Only image-classification datasets with a
    train and a test split load; `load` refuses the others with the reason.
    """
    return sorted({DEFAULT, *tfds.list_builders(with_community_datasets=False)})


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
    files). Images are flattened and scaled to [0, 1] by
    `jaxsoft.data.preprocessing` (pixel / 255 for 8-bit images, pixel / 16 for
    `digits`).

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
        network.
      download: if False, never prepare; fail unless already prepared.

    Returns:
      A `Dataset`: ``x_train`` float32 (n_train, d), ``y_train`` int32
      (n_train,), ``x_test``, ``y_test``, ``class_names``, ``image_shape``
      (h, w, c) with d = h * w * c.

    Raises:
      UnknownDatasetError: no such dataset (the message lists close names).
      UnsupportedDatasetError: no image/label pair, variable image sizes, or
        no train/test split.
      DatasetUnavailableError: not prepared and cannot be downloaded.
      CorruptDatasetError: a source or prepared file is truncated or corrupt.
      MissingDependencyError: TensorFlow is needed (catalog datasets) and
        missing.

    >>> ds = load("digits")  # doctest: +SKIP
    >>> ds.x_train.shape, ds.y_test.shape, ds.image_shape  # doctest: +SKIP
    ((1437, 64), (360,), (8, 8, 1))
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownDatasetError(
            f"Dataset name must be a non-empty str, got {name!r}."
        )
    name = name.strip()
    builder = _make_builder(name, data_dir)
    image_key, label_key = _image_label_keys(builder, name)
    if not builder.is_prepared():
        _prepare(builder, name, manual_dir=manual_dir, download=download)
    _check_splits(builder, name)

    image_feature = builder.info.features[image_key]
    scale = preprocessing.pixel_max(
        image_feature.np_dtype, getattr(builder, "PIXEL_MAX", None)
    )
    class_names = tuple(str(c) for c in builder.info.features[label_key].names)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in SPLITS:
        images, labels = _read_split(builder, name, split, image_key, label_key)
        x = preprocessing.to_features(images, scale)
        y = labels.astype(np.int32)
        _check_arrays(name, split, x, y, len(class_names), builder)
        arrays[split] = (x, y)
    return Dataset(
        name=name,
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        class_names=class_names,
        image_shape=tuple(int(s) for s in image_feature.shape),
    )


# --- Finding the builder ---------------------------------------------------


def _make_builder(name: str, data_dir: Any) -> tfds.core.DatasetBuilder:
    """The TFDS builder for ``name``; ``array_record`` if not yet prepared."""
    base, _, rest = name.partition("/")
    base = base.split(":")[0]
    valid = list_datasets()
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
    if config:
        configs = list(tfds.builder_cls(base).builder_configs)
        if config not in configs:
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
    data_dir = None if data_dir is None else os.fspath(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except (ValueError, AssertionError) as e:
        raise UnknownDatasetError(f"Cannot load {name!r}: {e}") from e
    return builder


def _image_label_keys(builder: tfds.core.DatasetBuilder, name: str) -> tuple[str, str]:
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


def _check_splits(builder: tfds.core.DatasetBuilder, name: str) -> None:
    splits = set(builder.info.splits)
    if splits and not set(SPLITS) <= splits:
        raise UnsupportedDatasetError(
            f"{name!r} has splits {sorted(splits)}; jaxsoft needs a 'train' "
            "and a 'test' split."
        )


# --- Preparing -------------------------------------------------------------


def _prepare(
    builder: tfds.core.DatasetBuilder,
    name: str,
    *,
    manual_dir: Any,
    download: bool,
) -> None:
    """Runs ``builder.download_and_prepare`` and turns failures into clear errors."""
    root = Path(builder.data_dir_root)
    files = _source_files(builder)
    if not download:
        raise DatasetUnavailableError(
            f"{name!r} is not prepared in {root} and download=False. "
            + _OFFLINE_OPTIONS.format(files=files)
        )
    if manual_dir is not None:
        manual_dir = Path(manual_dir).expanduser()
        if not manual_dir.is_dir():
            raise FileNotFoundError(f"manual_dir {manual_dir} is not a folder.")
    if not isinstance(builder, Digits):
        import_tensorflow(f"Preparing the TFDS dataset {name!r}")
        _check_reachable(builder, name, manual_dir, files)
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir)
    )
    with _no_leftovers(root, builder.name):
        try:
            builder.download_and_prepare(download_config=config)
        except NonMatchingChecksumError as e:
            raise CorruptDatasetError(
                f"A source file of {name!r} does not have the size and checksum "
                f"TFDS expects: it is truncated, corrupt or a different file. "
                f"Download it again. TFDS said: {e}"
            ) from e
        except (
            EOFError,
            zlib.error,
            gzip.BadGzipFile,
            tarfile.ReadError,
            zipfile.BadZipFile,
        ) as e:
            raise CorruptDatasetError(
                f"A source file of {name!r} is truncated or corrupt "
                f"({type(e).__name__}: {e}). Download it again."
            ) from e
        except _NETWORK_ERRORS as e:
            raise DatasetUnavailableError(
                f"Cannot download {name!r} (no network?): {type(e).__name__}: "
                f"{e}. " + _OFFLINE_OPTIONS.format(files=files)
            ) from e


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (
        tfds.download.DownloadError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib.error.URLError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )


_NETWORK_ERRORS = _network_errors()


def _url_infos(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
    """The URLs TFDS will download for ``builder`` (its checksum list)."""
    try:
        return dict(builder.url_infos or {})
    except Exception:
        return {}


def _source_files(builder: tfds.core.DatasetBuilder) -> str:
    names = sorted({i.filename for i in _url_infos(builder).values() if i.filename})
    return f" ({', '.join(names)})" if names else ""


def _check_reachable(
    builder: tfds.core.DatasetBuilder, name: str, manual_dir: Path | None, files: str
) -> None:
    """Fails fast (seconds, not TFDS's minutes of retries) when offline.

    Checks a TCP connection to each host that TFDS would download from, for
    the files not in ``manual_dir``. Skipped behind a proxy, or when TFDS has
    no checksum list (then TFDS's own download error is translated).
    """
    import requests

    hosts = set()
    for url, info in _url_infos(builder).items():
        if (
            manual_dir is not None
            and info.filename
            and (manual_dir / info.filename).exists()
        ):
            continue
        if requests.utils.get_environ_proxies(url):
            return
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname:
            default = 443 if parsed.scheme == "https" else 80
            hosts.add((parsed.hostname, parsed.port or default))
    for host, port in sorted(hosts):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                pass
        except OSError as e:
            raise DatasetUnavailableError(
                f"{name!r} is not prepared in {builder.data_dir_root} and cannot "
                f"be downloaded: {host}:{port} is unreachable (no network?): "
                f"{e}. " + _OFFLINE_OPTIONS.format(files=files)
            ) from e


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


# --- Reading ---------------------------------------------------------------


def _read_split(
    builder: tfds.core.DatasetBuilder,
    name: str,
    split: str,
    image_key: str,
    label_key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w, c) in the feature's dtype and labels (n,) of a split."""
    feature = builder.info.features[image_key]
    shape = tuple(int(s) for s in feature.shape)
    try:
        if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
            source = builder.as_data_source(
                split=split, decoders={image_key: tfds.decode.SkipDecoding()}
            )
            n = len(source)
            images = np.empty((n, *shape), dtype=feature.np_dtype)
            labels = np.empty((n,), dtype=np.int64)
            for start in range(0, n, _CHUNK):
                keys = list(range(start, min(n, start + _CHUNK)))
                for i, example in zip(keys, source.__getitems__(keys), strict=True):
                    images[i] = _decode_image(example[image_key], feature, shape)
                    labels[i] = example[label_key]
            return images, labels
        # Prepared earlier by TFDS itself in its default (tfrecord) format.
        import_tensorflow(
            f"Reading {name!r}, prepared as {builder.info.file_format.value}"
        )
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        return np.asarray(data[image_key]), np.asarray(data[label_key])
    except (UnsupportedDatasetError, ImportError):
        raise
    except Exception as e:
        raise CorruptDatasetError(
            f"Cannot read the {split!r} split of {name!r} prepared in "
            f"{builder.data_dir}: {type(e).__name__}: {e}. The prepared files "
            "look truncated or corrupt: delete that folder and load again to "
            "prepare it anew."
        ) from e


def _decode_image(encoded: Any, feature: Any, shape: tuple[int, ...]) -> np.ndarray:
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


def _check_arrays(
    name: str,
    split: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    builder: tfds.core.DatasetBuilder,
) -> None:
    """Host-side checks of one split before anything reaches `jax.jit`."""
    if len(y) == 0:
        raise UnsupportedDatasetError(f"The {split!r} split of {name!r} is empty.")
    if y.min() < 0 or y.max() >= num_classes:
        raise CorruptDatasetError(
            f"Labels of the {split!r} split of {name!r} fall outside "
            f"[0, {num_classes}): min {y.min()}, max {y.max()}. Delete "
            f"{builder.data_dir} and load again."
        )
    if not np.isfinite(x).all():
        raise CorruptDatasetError(
            f"Features of the {split!r} split of {name!r} hold NaN or inf."
        )
