"""Tests of `jaxsoft.data`: digits end to end, the catalog path, every error.

Offline: an autouse fixture makes every internet socket fail, so a test that
tried to download would fail rather than reach the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import (
    NonMatchingChecksumError,
)

from jaxsoft import data
from jaxsoft.data import (
    _builders,
    _decoded,
    _network,
    _quiet,
    _reading,
    _tensorflow,
    digits,
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class NetworkDisabledError(OSError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every internet connection attempt raises NetworkDisabledError."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkDisabledError(f"network disabled in tests: {address}")
        return real_connect(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> None:
        raise NetworkDisabledError(f"network disabled in tests: {host}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_nothing_half_written(root: Path, dataset: str) -> None:
    """No TFDS temporary file/folder under ``root``, no file of ``dataset``.

    Complete downloads/extractions (TFDS's download cache) may stay.
    """
    if not root.exists():
        return
    temporary = [
        p
        for p in root.rglob("*")
        if ".tmp." in p.name or p.name.startswith("incomplete")
    ]
    assert temporary == []
    assert files_under(root / dataset) == []


# --- digits ------------------------------------------------------------------


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir where `digits` was prepared from nothing by `load`."""
    root = tmp_path_factory.mktemp("tfds")
    assert not (root / "digits").exists()
    data.load("digits", data_dir=root)
    return root


@pytest.fixture(scope="session")
def digits_ds(digits_dir: Path) -> data.Dataset:
    return data.load(data_dir=digits_dir)


@pytest.fixture
def digits_copy(tmp_path: Path, digits_dir: Path) -> Path:
    """A copy of ``digits_dir`` to damage, without the decoded copy (so
    `load` reads the prepared files)."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(
        digits_dir / "digits",
        root / "digits",
        ignore=shutil.ignore_patterns(_decoded.FOLDER),
    )
    return root


def test_digits_prepared_from_nothing(digits_dir: Path) -> None:
    prepared = digits_dir / "digits" / "1.0.0"
    names = {p.name for p in prepared.iterdir()}
    assert "dataset_info.json" in names
    assert any(n.startswith("digits-train.array_record") for n in names)
    assert any(n.startswith("digits-test.array_record") for n in names)


def test_digits_shapes_dtypes_ranges(digits_ds: data.Dataset) -> None:
    ds = digits_ds
    assert ds.name == "digits"
    assert ds.x_train.shape == (digits.NUM_TRAIN, 64) == (1437, 64)
    assert ds.x_test.shape == (digits.NUM_TEST, 64) == (360, 64)
    assert ds.y_train.shape == (1437,) and ds.y_test.shape == (360,)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int32
    assert ds.image_shape == (8, 8, 1)
    assert ds.num_classes == 10 and ds.num_features == 64
    assert ds.class_names == tuple(str(i) for i in range(10))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.min() == 0.0 and x.max() == 1.0  # 0/16 and 16/16
        assert set(np.unique(y)) == set(range(10))


def test_digits_are_sklearns_pixels_over_16(digits_ds: data.Dataset) -> None:
    from sklearn.datasets import load_digits

    sk = load_digits()
    train, test = digits.split_indices(sk.target)
    for x, y, idx in (
        (digits_ds.x_train, digits_ds.y_train, train),
        (digits_ds.x_test, digits_ds.y_test, test),
    ):
        expected = np.column_stack([sk.data[idx] / 16.0, sk.target[idx]])
        got = np.column_stack([x, y])
        # TFDS shuffles the examples: compare as sorted rows.
        expected = expected[np.lexsort(expected.T[::-1])]
        got = got[np.lexsort(got.T[::-1])]
        np.testing.assert_allclose(got, expected, atol=1e-7)


def test_digits_split_is_fixed_stratified_and_disjoint() -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train, test = digits.split_indices(labels)
    train2, test2 = digits.split_indices(labels)
    np.testing.assert_array_equal(train, train2)
    np.testing.assert_array_equal(test, test2)
    assert len(train) == 1437 and len(test) == 360
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(1797))
    per_class = np.bincount(labels, minlength=10)
    test_share = np.bincount(labels[test], minlength=10)
    np.testing.assert_array_less(np.abs(test_share - per_class * 360 / 1797), 1.0)


def test_second_load_reuses_prepared_files(
    digits_dir: Path, digits_ds: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p: p.stat().st_mtime_ns for p in files_under(digits_dir)}

    def no_prepare(*args: object, **kwargs: object) -> None:
        raise AssertionError("download_and_prepare called on a prepared dataset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_prepare)
    again = data.load("digits", data_dir=digits_dir, download=False)
    assert {p: p.stat().st_mtime_ns for p in files_under(digits_dir)} == before
    np.testing.assert_array_equal(again.x_train, digits_ds.x_train)
    np.testing.assert_array_equal(again.y_test, digits_ds.y_test)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The splits `load` decodes from the prepared files, from now on."""
    reads: list[str] = []
    read_split = _reading.read_split

    def counting(builder: object, name: str, split: str, *args: object) -> object:
        reads.append(split)
        return read_split(builder, name, split, *args)

    monkeypatch.setattr(_reading, "read_split", counting)
    return reads


def test_a_second_load_reads_the_decoded_copy(
    digits_copy: Path, digits_ds: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _count_reads(monkeypatch)
    first = data.load("digits", data_dir=digits_copy)
    assert reads == ["train", "test"]
    copy = digits_copy / "digits" / "1.0.0" / _decoded.FOLDER
    assert {p.name for p in copy.iterdir()} == {
        f"{split}{suffix}"
        for split in ("train", "test")
        for suffix in ("-images.npy", "-labels.npy", ".json")
    }
    second = data.load("digits", data_dir=digits_copy)
    assert reads == ["train", "test"]  # nothing decoded again
    for ds in (first, second):
        np.testing.assert_array_equal(ds.x_train, digits_ds.x_train)
        np.testing.assert_array_equal(ds.y_train, digits_ds.y_train)
        np.testing.assert_array_equal(ds.x_test, digits_ds.x_test)
        np.testing.assert_array_equal(ds.y_test, digits_ds.y_test)


def _damage(copy: Path, damage: str) -> None:
    images = copy / "train-images.npy"
    if damage == "truncated":
        with images.open("r+b") as f:
            f.truncate(images.stat().st_size - 10)
    elif damage == "one byte changed":
        with images.open("r+b") as f:
            f.seek(images.stat().st_size - 5)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
    elif damage == "garbled manifest":
        (copy / "train.json").write_text("{not json")
    elif damage == "labels missing":
        (copy / "train-labels.npy").unlink()
    else:  # the dataset prepared anew: its files are newer than the copy
        (shard,) = copy.parent.glob("digits-train.array_record*")
        os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1))


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "one byte changed",
        "garbled manifest",
        "labels missing",
        "prepared anew",
    ],
)
def test_a_damaged_or_stale_decoded_copy_is_never_used(
    digits_copy: Path,
    digits_ds: data.Dataset,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    data.load("digits", data_dir=digits_copy)  # writes the copy
    _damage(digits_copy / "digits" / "1.0.0" / _decoded.FOLDER, damage)
    reads = _count_reads(monkeypatch)
    again = data.load("digits", data_dir=digits_copy)
    # Decoded from the prepared files (both splits when those changed)...
    expected = ["train", "test"] if damage == "prepared anew" else ["train"]
    assert reads == expected
    np.testing.assert_array_equal(again.x_train, digits_ds.x_train)
    np.testing.assert_array_equal(again.y_train, digits_ds.y_train)
    data.load("digits", data_dir=digits_copy)
    assert reads == expected  # ...and the copy written anew


def test_a_folder_that_cannot_be_written_means_no_copy(
    digits_copy: Path, digits_ds: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(_decoded, "_atomic_write", refuse)
    reads = _count_reads(monkeypatch)
    for _ in range(2):
        ds = data.load("digits", data_dir=digits_copy)
        np.testing.assert_array_equal(ds.x_test, digits_ds.x_test)
    assert reads == ["train", "test"] * 2


def test_invalid_arrays_are_not_copied(
    digits_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _reading.read_split

    def bad_labels(*args: object) -> tuple[np.ndarray, np.ndarray]:
        images, labels = read(*args)
        return images, np.full_like(labels, 99)

    monkeypatch.setattr(_reading, "read_split", bad_labels)
    with pytest.raises(data.CorruptDatasetError):
        data.load("digits", data_dir=digits_copy)
    assert not (digits_copy / "digits" / "1.0.0" / _decoded.FOLDER).exists()


_FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import importlib.machinery, os, socket, sys
    from pathlib import Path

    class HideTensorFlow(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "keras"):
                return None
            return super().find_spec(name, path, target)

    sys.meta_path[:] = [
        HideTensorFlow if f is importlib.machinery.PathFinder else f
        for f in sys.meta_path
    ]

    def no_network(*args, **kwargs):
        raise OSError("network disabled")

    socket.socket.connect = no_network
    socket.getaddrinfo = no_network

    import jaxsoft, jaxsoft.data
    assert "tensorflow" not in sys.modules, "importing jaxsoft imported TF"
    ds = jaxsoft.data.load()
    assert ds.x_train.shape == (1437, 64), ds
    assert "tensorflow" not in sys.modules, "load() imported TF"
    root = Path(os.environ["TFDS_DATA_DIR"])
    assert (root / "digits" / "1.0.0" / "dataset_info.json").is_file()
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print("OK: no TensorFlow")

    # TensorFlow installed again. Unprepared, so TFDS warns that kmnist has
    # no dataset_info.json; offline, so it fails, before importing TF.
    sys.meta_path[:] = [
        importlib.machinery.PathFinder if f is HideTensorFlow else f
        for f in sys.meta_path
    ]
    try:
        jaxsoft.data.load("kmnist")
    except jaxsoft.data.DatasetUnavailableError:
        pass
    else:
        raise AssertionError("an offline load of kmnist worked")
    assert "tensorflow" not in sys.modules, "offline failure imported TF"
    print("OK: offline before TensorFlow")
    """
)


@pytest.mark.slow
def test_fresh_process_no_tensorflow_no_network_no_noise(tmp_path: Path) -> None:
    """A fresh process with no network, TensorFlow first uninstallable.

    `load()` prepares digits without TensorFlow; an offline load of a catalog
    dataset fails without importing it; nothing from TFDS (progress bars,
    absl warnings, preparation notices) reaches stderr or stdout. Also checks
    that ``data_dir`` defaults to TFDS's, which honours TFDS_DATA_DIR.
    """
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing else: TFDS's "Downloading and preparing dataset ..." notices
    # stay off a piped stdout, and its progress bars off a piped stderr.
    assert result.stdout == "OK: no TensorFlow\nOK: offline before TensorFlow\n"
    assert result.stderr == ""


def test_tensorflow_is_imported_quietly_unless_the_user_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TF reads these when imported: no C++ log lines, no oneDNN notice.

    (A real import with them prints nothing on stderr; without them, TF 2.21
    prints "oneDNN custom operations are on..." twice.)
    """
    seen = {}

    class FakeTensorFlow(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            seen.update(os.environ)
            return types.SimpleNamespace(set_visible_devices=lambda *args: None)

    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.setenv(key, "")  # so that the test's end restores it
        monkeypatch.delenv(key)
    monkeypatch.setitem(sys.modules, "tensorflow", FakeTensorFlow("tensorflow"))
    _tensorflow.import_tensorflow("this test")
    assert seen["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert seen["TF_ENABLE_ONEDNN_OPTS"] == "0"
    # A user's own settings win.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    _tensorflow.import_tensorflow("this test")
    assert seen["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert seen["TF_ENABLE_ONEDNN_OPTS"] == "1"


@pytest.mark.slow
def test_tensorflow_sees_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    from jaxsoft.data._tensorflow import import_tensorflow

    calls = []
    hide = tf.config.set_visible_devices

    def spy(devices, device_type=None):
        calls.append((list(devices), device_type))
        return hide(devices, device_type)

    # On a machine without a GPU the device list is empty either way; the spy
    # shows that jaxsoft asks TensorFlow to hide its GPUs.
    monkeypatch.setattr(tf.config, "set_visible_devices", spy)
    assert import_tensorflow("this test") is tf
    assert calls == [([], "GPU")]
    assert tf.config.get_visible_devices("GPU") == []


def test_scaling_is_by_the_formats_maximum() -> None:
    assert data.pixel_max(np.uint8) == 255.0
    assert data.pixel_max(np.uint16) == 65535.0
    assert data.pixel_max(np.uint8, declared=16) == 16.0
    assert data.pixel_max(np.float32) is None
    images = np.array([[[[0], [51]], [[255], [102]]]], dtype=np.uint8)
    x = data.to_features(images, 255.0)
    assert x.dtype == np.float32 and x.shape == (1, 4)
    np.testing.assert_allclose(x, [[0.0, 0.2, 1.0, 0.4]], rtol=1e-7)


# --- Dataset: valid by construction ------------------------------------------


def small_dataset(**changes: object) -> data.Dataset:
    """A valid 3-class `Dataset` of 2x2 images, with ``changes`` applied."""
    rng = np.random.default_rng(0)
    fields: dict[str, object] = {
        "name": "small",
        "x_train": rng.uniform(size=(6, 4)).astype(np.float32),
        "y_train": np.array([0, 1, 2, 0, 1, 2], dtype=np.int32),
        "x_test": rng.uniform(size=(3, 4)).astype(np.float32),
        "y_test": np.array([2, 1, 0], dtype=np.int32),
        "class_names": ("a", "b", "c"),
        "image_shape": (2, 2, 1),
    }
    fields.update(changes)
    return data.Dataset(**fields)  # type: ignore[arg-type]


def with_nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[1, 2] = np.nan
    return x


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"y_train": np.array([0, 1, 3, 0, 1, 2])}, ValueError, r"outside \[0, 3\)"),
        ({"y_test": np.array([2, -1, 0])}, ValueError, "y_test has label -1"),
        ({"class_names": ("a", "b")}, ValueError, r"outside \[0, 2\)"),
        ({"x_test": np.zeros((3, 5), np.float32)}, ValueError, "x_test has 5 features"),
        ({"image_shape": (2, 3, 1)}, ValueError, "image_shape"),
        ({"image_shape": (2, 2.0, 1)}, TypeError, "image_shape"),
        ({"class_names": ()}, ValueError, "class_names"),
        ({"class_names": "abc"}, TypeError, "class_names"),
        ({"y_train": np.zeros(6, np.float32)}, TypeError, "y_train"),
        ({"x_train": np.zeros((6, 2, 2), np.float32)}, ValueError, "x_train"),
        ({"y_test": np.array([2, 1])}, ValueError, "different lengths"),
        (
            {"x_train": np.zeros((0, 4), np.float32), "y_train": np.zeros(0, int)},
            ValueError,
            "empty",
        ),
        ({"name": None}, TypeError, "name"),
    ],
)
def test_dataset_is_valid_by_construction(
    changes: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        small_dataset(**changes)


def test_dataset_nan_features_are_refused() -> None:
    ds = small_dataset()
    for split in ("x_train", "x_test"):
        with pytest.raises(ValueError, match=f"{split} contains NaN"):
            small_dataset(**{split: with_nan(getattr(ds, split))})


def test_dataset_stores_float_features_and_int32_labels() -> None:
    ds = small_dataset(
        x_train=np.ones((6, 4), np.uint8),
        y_train=np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        class_names=["a", "b", "c"],
        image_shape=[2, 2, 1],
    )
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.class_names == ("a", "b", "c") and ds.image_shape == (2, 2, 1)
    assert ds.num_classes == 3 and ds.num_features == 4
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


# --- the TFDS catalog, mocked --------------------------------------------------


@pytest.fixture
def mocked_catalog(monkeypatch: pytest.MonkeyPatch):
    """`tfds.testing.mock_data`: random examples, no download, no files.

    Two shims: the reachability check is made to pass (the download itself is
    mocked away), and TFDS 4.9.10's mocked ``__getitems__`` (unbound, so it
    lacks ``self``) is replaced by a working one.
    """
    from tensorflow_datasets.testing import mocking

    monkeypatch.setattr(_network, "check_reachable", lambda *a, **k: None)

    def getitems(record_keys, generator, serialized=False):
        return [generator[k] for k in record_keys]

    monkeypatch.setattr(mocking, "_getitems", getitems)
    with tfds.testing.mock_data(num_examples=12):
        yield


@pytest.mark.parametrize(
    ("name", "class_names"),
    [
        ("mnist", tuple(str(i) for i in range(10))),
        ("fashion_mnist", FASHION_MNIST_CLASSES),
    ],
)
def test_catalog_path_with_mock_data(
    mocked_catalog: None,
    tmp_path: Path,
    system_tmp: Path,
    name: str,
    class_names: tuple[str, ...],
) -> None:
    ds = data.load(name, data_dir=tmp_path / "tfds")
    assert list(system_tmp.iterdir()) == []
    assert ds.name == name
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (12, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.image_shape == (28, 28, 1)
    assert ds.class_names == class_names
    # The mocked examples as TFDS itself serves them, flattened and / 255.
    for split, x, y in (
        ("train", ds.x_train, ds.y_train),
        ("test", ds.x_test, ds.y_test),
    ):
        images, labels = _tfds_examples(name, split, tmp_path / "tfds")
        np.testing.assert_allclose(x, images.reshape(12, -1) / 255.0, atol=1e-7)
        np.testing.assert_array_equal(y, labels)
        assert len(np.unique(images)) > 2  # random 8-bit pixels, not a constant


def _tfds_examples(name: str, split: str, data_dir: Path) -> tuple[np.ndarray, ...]:
    """(images, labels) of a split straight from a TFDS data source."""
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([e["image"] for e in examples]).astype(np.float64)
    return images, np.array([e["label"] for e in examples])


def test_catalog_rgb_images_are_flattened(mocked_catalog: None, tmp_path: Path) -> None:
    ds = data.load("cifar10", data_dir=tmp_path)
    assert ds.image_shape == (32, 32, 3)
    assert ds.x_train.shape == (12, 32 * 32 * 3)
    images, labels = _tfds_examples("cifar10", "train", tmp_path)
    # Row-major (height, width, channel) flattening, as the images are stored.
    np.testing.assert_allclose(ds.x_train, images.reshape(12, -1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.y_train, labels)
    assert ds.num_classes == 10  # (names come from files cifar10 downloads)


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("mnsit", "mnist"), ("digts", "digits"), ("fashion-mnist", "fashion_mnist")],
)
def test_unknown_name_lists_closest_names(name: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="Closest valid names") as info:
        data.load(name)
    assert isinstance(info.value, data.UnknownDatasetError)
    assert suggestion in str(info.value)


def test_unknown_config_lists_valid_configs() -> None:
    with pytest.raises(data.UnknownDatasetError, match="emnist/balanced"):
        data.load("emnist/balancd")


def test_config_of_a_dataset_without_configs() -> None:
    with pytest.raises(data.UnknownDatasetError, match="'mnist' has no configs"):
        data.load("mnist/xyz")


def test_list_datasets() -> None:
    names = data.list_datasets()
    assert names == sorted(names)
    for name in ("digits", "mnist", "fashion_mnist", "kmnist", "emnist", "cifar10"):
        assert name in names


def test_text_dataset_is_refused_with_reason(tmp_path: Path) -> None:
    with pytest.raises(data.UnsupportedDatasetError, match="no image feature") as info:
        data.load("imdb_reviews", data_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    assert "Text" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_variable_size_images_are_refused_with_reason(tmp_path: Path) -> None:
    with pytest.raises(data.UnsupportedDatasetError, match="varying size"):
        data.load("oxford_flowers102", data_dir=tmp_path)


def test_offline_catalog_dataset_fails_fast_naming_offline_options(
    tmp_path: Path,
) -> None:
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("kmnist", data_dir=tmp_path)
    message = str(info.value)
    for needle in (
        "no network",
        "'digits'",
        "manual_dir",
        "train-images-idx3-ubyte.gz",
    ):
        assert needle in message
    assert isinstance(info.value.__cause__, NetworkDisabledError)
    assert_nothing_half_written(tmp_path, "kmnist")
    assert files_under(tmp_path) == []


def test_failing_tfds_download_is_translated_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TFDS's own downloader fails (as offline); its temp files are removed."""
    import requests
    from tensorflow_datasets.core.download import downloader

    def refuse(url: str, **kwargs: object) -> None:
        raise requests.exceptions.ConnectionError(f"Failed to resolve {url}")

    monkeypatch.setattr(_network, "check_reachable", lambda *a, **k: None)
    monkeypatch.setattr(downloader, "_open_url", refuse)
    with pytest.raises(data.DatasetUnavailableError, match="manual_dir") as info:
        data.load("fashion_mnist", data_dir=tmp_path)
    assert "'digits'" in str(info.value)
    assert_nothing_half_written(tmp_path, "fashion_mnist")


def test_not_prepared_and_download_false(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetUnavailableError, match="download=False"):
        data.load("digits", data_dir=tmp_path, download=False)


def test_missing_tensorflow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import` now fails
    with pytest.raises(
        data.MissingDependencyError, match=r"jaxsoft\[tensorflow\]"
    ) as info:
        data.load("mnist", data_dir=tmp_path)
    assert isinstance(info.value, ImportError)
    assert "tensorflow-cpu" in str(info.value)


def test_manual_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        data.load("mnist", data_dir=tmp_path, manual_dir=tmp_path / "absent")


def test_truncated_manual_file_is_a_clear_error(
    tmp_path: Path, mnist_dir: Path
) -> None:
    manual = tmp_path / "manual"
    manual.mkdir()
    for f in mnist_dir.glob("*-ubyte.gz"):
        (manual / f.name).write_bytes(f.read_bytes())
    with (manual / "train-labels-idx1-ubyte.gz").open("r+b") as f:
        f.truncate(10_000)
    root = tmp_path / "tfds"
    with pytest.raises(data.CorruptDatasetError, match="truncated") as info:
        data.load("mnist", data_dir=root, manual_dir=manual)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)
    assert_nothing_half_written(root, "mnist")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_damaged_prepared_file_is_a_clear_error(digits_copy: Path, damage: str) -> None:
    root = digits_copy
    (shard,) = (root / "digits" / "1.0.0").glob("digits-train.array_record*")
    with shard.open("r+b") as f:
        if damage == "truncate":
            f.truncate(shard.stat().st_size // 2)
        else:
            f.seek(shard.stat().st_size // 2)
            f.write(b"\xff" * 64)
    with pytest.raises(data.CorruptDatasetError, match="delete that folder") as info:
        data.load("digits", data_dir=root)
    assert "\n" not in str(info.value)


def _garble_dataset_info(root: Path) -> None:
    info_file = root / "digits" / "1.0.0" / "dataset_info.json"
    info_file.write_text(info_file.read_text()[:100])


def test_garbled_dataset_info_is_a_clear_error(digits_copy: Path) -> None:
    _garble_dataset_info(digits_copy)
    with pytest.raises(data.CorruptDatasetError, match=r"dataset_info\.json"):
        data.load("digits", data_dir=digits_copy)


@pytest.mark.parametrize("bad", ["label", "length"])
def test_invalid_prepared_arrays_are_corrupt_data(
    digits_copy: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """`Dataset` validates what `load` read; `load` says how to fix it."""
    read = _reading.read_split

    def read_bad(*args: object) -> tuple[np.ndarray, np.ndarray]:
        images, labels = read(*args)
        if bad == "label":
            labels = labels.copy()
            labels[3] = 10
        else:
            images = images[:-1]
        return images, labels

    monkeypatch.setattr(_reading, "read_split", read_bad)
    with pytest.raises(
        data.CorruptDatasetError, match=r"(?i)delete that folder"
    ) as info:
        data.load("digits", data_dir=digits_copy)
    assert isinstance(info.value.__cause__, ValueError)
    assert "\n" not in str(info.value)


def test_a_bug_while_reading_is_not_called_corrupt_data(
    digits_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def buggy(*args: object) -> None:
        raise ZeroDivisionError("a bug inside jaxsoft")

    monkeypatch.setattr(_reading, "decode_image", buggy)
    with pytest.raises(ZeroDivisionError, match="a bug inside jaxsoft"):
        data.load("digits", data_dir=digits_copy)


def test_undecodable_image_is_corrupt_data(
    digits_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PNG cut short inside a record: Pillow's error, as corrupt data."""
    as_data_source = tfds.core.DatasetBuilder.as_data_source

    class CutFirstImage:
        def __init__(self, source: object) -> None:
            self.source = source

        def __len__(self) -> int:
            return len(self.source)  # type: ignore[arg-type]

        def __getitems__(self, keys: list[int]) -> list[dict[str, object]]:
            examples = list(self.source.__getitems__(keys))  # type: ignore[attr-defined]
            if keys[0] == 0:
                examples[0] = {**examples[0], "image": examples[0]["image"][:30]}
            return examples

    def cut(self: object, *args: object, **kwargs: object) -> CutFirstImage:
        return CutFirstImage(as_data_source(self, *args, **kwargs))

    monkeypatch.setattr(tfds.core.DatasetBuilder, "as_data_source", cut)
    with pytest.raises(data.CorruptDatasetError, match="image of example 0") as info:
        data.load("digits", data_dir=digits_copy)
    assert isinstance(info.value.__cause__, OSError)


def mnist_file_sizes(tmp_path: Path) -> dict[str, int]:
    """The four MNIST file names and sizes, from TFDS's checksum list."""
    builder = _builders.make_builder("mnist", tmp_path / "sizes")
    return {i.filename: int(i.size) for i in builder.url_infos.values()}


def test_manual_dir_with_none_of_the_files(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "notes.txt").write_text("not MNIST")
    with pytest.raises(data.DatasetUnavailableError, match="holds none") as info:
        data.load("mnist", data_dir=tmp_path / "tfds", manual_dir=manual)
    message = str(info.value)
    assert f"manual_dir {manual} holds none of the files of 'mnist'" in message
    for name in mnist_file_sizes(tmp_path):
        assert name in message
    assert "\n" not in message


def test_manual_dir_with_some_of_the_files(tmp_path: Path) -> None:
    sizes = mnist_file_sizes(tmp_path)
    manual = tmp_path / "manual"
    manual.mkdir()
    present = ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    for name in present:
        (manual / name).write_bytes(bytes(sizes[name]))
    with pytest.raises(data.DatasetUnavailableError, match="lacks 2 of the 4") as info:
        data.load("mnist", data_dir=tmp_path / "tfds", manual_dir=manual)
    message = str(info.value)
    assert (
        "t10k-images-idx3-ubyte.gz, train-images-idx3-ubyte.gz (it holds "
        "t10k-labels-idx1-ubyte.gz, train-labels-idx1-ubyte.gz)"
    ) in message
    assert "unreachable" in message


def test_manual_file_of_the_wrong_size_fails_before_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = mnist_file_sizes(tmp_path)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "train-labels-idx1-ubyte.gz").write_bytes(b"0123456789")

    def no_tensorflow(purpose: str) -> None:
        raise AssertionError("TensorFlow imported for a file of the wrong size")

    monkeypatch.setattr(_tensorflow, "import_tensorflow", no_tensorflow)
    with pytest.raises(data.CorruptDatasetError) as info:
        data.load("mnist", data_dir=tmp_path / "tfds", manual_dir=manual)
    message = str(info.value)
    expected = sizes["train-labels-idx1-ubyte.gz"]
    assert f"train-labels-idx1-ubyte.gz of 'mnist' ({manual}" in message
    assert f"has 10 bytes, expected {expected}" in message
    assert "\n" not in message and "Download it again" in message


def test_manual_file_with_the_wrong_checksum_is_one_line(tmp_path: Path) -> None:
    """TFDS's multi-line Expected/Got text becomes one line saying what to do."""
    sizes = mnist_file_sizes(tmp_path)
    manual = tmp_path / "manual"
    manual.mkdir()
    for name, size in sizes.items():
        (manual / name).write_bytes(bytes(size))  # the right size, wrong bytes
    root = tmp_path / "tfds"
    with pytest.raises(data.CorruptDatasetError, match="SHA-256") as info:
        data.load("mnist", data_dir=root, manual_dir=manual)
    message = str(info.value)
    assert "\n" not in message and "Expected" not in message
    assert any(f"{n} of 'mnist' ({manual / n})" in message for n in sizes)
    assert isinstance(info.value.__cause__, NonMatchingChecksumError), (
        info.value.__cause__
    )
    assert_nothing_half_written(root, "mnist")


def test_offline_check_is_bounded_and_comes_before_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name lookup that hangs costs CONNECT_TIMEOUT_S; TF is not imported."""
    assert _network.CONNECT_TIMEOUT_S <= 2.0
    monkeypatch.setattr(_network, "CONNECT_TIMEOUT_S", 0.1)
    release = threading.Event()
    lookups_ended: list[object] = []

    def hanging_lookup(host: object, *args: object, **kwargs: object) -> None:
        release.wait(30)
        lookups_ended.append(host)
        raise NetworkDisabledError(f"network disabled in tests: {host}")

    def no_tensorflow(purpose: str) -> None:
        raise AssertionError("TensorFlow imported before the network check")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    monkeypatch.setattr(_tensorflow, "import_tensorflow", no_tensorflow)
    try:
        with pytest.raises(data.DatasetUnavailableError, match="unreachable") as info:
            data.load("fashion_mnist", data_dir=tmp_path)
        # load gave up while every lookup was still hanging: it did not wait.
        assert lookups_ended == []
    finally:
        release.set()
    assert isinstance(info.value.__cause__, TimeoutError)


def test_hosts_are_checked_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each lookup waits until all three are under way: only in parallel."""
    all_started = threading.Barrier(3, timeout=5)

    def lookup(host: object, *args: object, **kwargs: object) -> None:
        all_started.wait()
        raise NetworkDisabledError(f"network disabled in tests: {host}")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    hosts = [("a.invalid", 443), ("b.invalid", 443), ("c.invalid", 80)]
    failures = _network.unreachable(hosts, 5.0)
    assert [address for address, _ in failures] == hosts
    assert all(isinstance(error, NetworkDisabledError) for _, error in failures)


@pytest.fixture
def system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder standing in for the system temp folder."""
    path = tmp_path / "system_tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    assert tempfile.gettempdir() == str(path)
    return path


def test_no_tfds_folder_left_in_the_system_temp_folder(
    tmp_path: Path, system_tmp: Path
) -> None:
    """TFDS makes an empty tmp*tfds folder per builder of an unprepared dataset."""
    with pytest.raises(data.DatasetUnavailableError):
        data.load("kmnist", data_dir=tmp_path / "tfds")
    assert list(system_tmp.iterdir()) == []


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bars_only_when_stderr_is_a_terminal(
    digits_dir: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    from tensorflow_datasets.core.utils import tqdm_utils

    assert tqdm_utils._active  # TFDS's default
    seen = []
    image_label_keys = _builders.image_label_keys

    def spy(*args: object) -> tuple[str, str]:
        seen.append(tqdm_utils._active)
        return image_label_keys(*args)

    monkeypatch.setattr(_builders, "image_label_keys", spy)
    monkeypatch.setattr(_quiet, "stderr_is_terminal", lambda: terminal)
    data.load("digits", data_dir=digits_dir)
    assert seen == [terminal]
    assert tqdm_utils._active  # restored


@pytest.mark.parametrize(
    ("stdout_tty", "stderr_tty", "shown_on"),
    [(False, False, None), (False, True, "err"), (True, False, "out")],
)
def test_preparation_notices_stay_off_a_piped_stdout(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdout_tty: bool,
    stderr_tty: bool,
    shown_on: str | None,
) -> None:
    """TFDS prints "Downloading and preparing ..." with termcolor on stdout.

    jaxsoft's CLI prints results on stdout, so the notices stay there only
    when it is a terminal; else they go to stderr if that is a terminal (as
    the progress bars do), else nowhere.
    """
    monkeypatch.setattr(_quiet, "stdout_is_terminal", lambda: stdout_tty)
    monkeypatch.setattr(_quiet, "stderr_is_terminal", lambda: stderr_tty)
    stdout = sys.stdout
    data.load("digits", data_dir=tmp_path)
    out, err = capfd.readouterr()
    assert sys.stdout is stdout
    notices = ("Downloading and preparing dataset", "Subsequent calls will reuse")
    for notice in notices:
        assert (notice in out) == (shown_on == "out"), out
        assert (notice in err) == (shown_on == "err"), err
    if shown_on is None:
        assert out == err == ""
    # Only that builder's notices were routed: TFDS's own methods are intact.
    for method in ("_log_download_bytes", "_log_download_done"):
        assert callable(getattr(tfds.core.DatasetBuilder, method))


# --- describe: the shapes without the data -------------------------------------


def test_describe_digits_matches_load(
    digits_dir: Path, digits_ds: data.Dataset, tmp_path: Path
) -> None:
    for data_dir in (digits_dir, tmp_path / "unprepared"):
        info = data.describe("digits", data_dir=data_dir)
        assert info == data.DatasetInfo(
            name="digits",
            num_features=digits_ds.num_features,
            num_classes=digits_ds.num_classes,
            class_names=digits_ds.class_names,
            image_shape=digits_ds.image_shape,
        )
        assert (info.num_features, info.num_classes) == (64, 10)
    assert not (tmp_path / "unprepared").exists()
    assert data.describe() == data.describe("digits")
    with pytest.raises(AttributeError):
        info.name = "other"  # type: ignore[misc]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records each attempt to connect or look up a host (which still fail)."""
    attempts: list[object] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def record_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        return connect(self, address)

    def record_lookup(host: object, *args: object, **kwargs: object) -> None:
        attempts.append(host)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", record_connect)
    monkeypatch.setattr(socket, "getaddrinfo", record_lookup)
    return attempts


@pytest.mark.parametrize(
    ("name", "image_shape", "class_names"),
    [
        ("mnist", (28, 28, 1), tuple(str(i) for i in range(10))),
        ("fashion_mnist", (28, 28, 1), FASHION_MNIST_CLASSES),
        # cifar10's names come with its files; before that TFDS has "0".."9".
        ("cifar10", (32, 32, 3), tuple(str(i) for i in range(10))),
        ("emnist/letters", (28, 28, 1), tuple(str(i) for i in range(37))),
    ],
)
def test_describe_catalog_offline_writes_nothing(
    tmp_path: Path,
    system_tmp: Path,
    connections: list[object],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    image_shape: tuple[int, ...],
    class_names: tuple[str, ...],
) -> None:
    def no_prepare(*args: object, **kwargs: object) -> None:
        raise AssertionError("describe prepared a dataset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_prepare)
    root = tmp_path / "tfds"
    info = data.describe(f"  {name} ", data_dir=root)
    assert info.name == name
    assert info.image_shape == image_shape
    assert info.num_features == int(np.prod(image_shape))
    assert info.class_names == class_names
    assert info.num_classes == len(class_names)
    assert connections == []
    assert not root.exists()
    assert list(system_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("mnsit", data.UnknownDatasetError, "Closest valid names: mnist"),
        ("emnist/balancd", data.UnknownDatasetError, "emnist/balanced"),
        ("mnist/xyz", data.UnknownDatasetError, "'mnist' has no configs"),
        ("  ", data.UnknownDatasetError, "non-empty str"),
        (None, data.UnknownDatasetError, "non-empty str"),
        ("imdb_reviews", data.UnsupportedDatasetError, "no image feature"),
        ("oxford_flowers102", data.UnsupportedDatasetError, "varying size"),
    ],
)
def test_describe_refuses_like_load(
    tmp_path: Path, name: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        data.describe(name, data_dir=tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_describe_reads_a_prepared_dataset_info(digits_copy: Path) -> None:
    _garble_dataset_info(digits_copy)
    with pytest.raises(data.CorruptDatasetError, match=r"dataset_info\.json"):
        data.describe("digits", data_dir=digits_copy)


_DESCRIBE_SCRIPT = textwrap.dedent(
    """
    import socket, sys, time

    def no_network(*args, **kwargs):
        raise OSError("network disabled")

    socket.socket.connect = no_network
    socket.getaddrinfo = no_network

    import jaxsoft.data
    start = time.perf_counter()
    infos = [
        jaxsoft.data.describe(name)
        for name in ("mnist", "fashion_mnist", "cifar10", "digits")
    ]
    print(f"{time.perf_counter() - start:.3f}")
    assert [i.num_features for i in infos] == [784, 784, 3072, 64], infos
    assert "tensorflow" not in sys.modules, "describe imported TensorFlow"
    """
)


def test_describe_is_fast_and_needs_no_tensorflow(tmp_path: Path) -> None:
    """In a fresh process: four datasets described in well under a second."""
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    result = subprocess.run(
        [sys.executable, "-c", _DESCRIBE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout) < 1.0, result.stdout
    assert result.stderr == ""
    assert not (tmp_path / "tfds").exists()


def _extra_requirements(extras: dict, name: str) -> set[str]:
    """The distributions that ``jaxsoft[name]`` requires (its own extras
    expanded), lower case, without versions or markers."""
    from packaging.requirements import Requirement

    names = set()
    for line in extras[name]:
        requirement = Requirement(line)
        if requirement.name == "jaxsoft":
            for extra in requirement.extras:
                names |= _extra_requirements(extras, extra)
        else:
            names.add(requirement.name.lower())
    return names


def test_the_tfds_extra_never_brings_a_second_tensorflow() -> None:
    """pip cannot require "any TensorFlow", so only the [tensorflow] extra
    (for machines without one) names a TensorFlow distribution: ``pip install
    jaxsoft[tfds]`` on Colab keeps Colab's TensorFlow alone."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    tensorflows = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"}
    core = {
        line.split(">")[0].split(";")[0].strip() for line in project["dependencies"]
    }
    assert not core & tensorflows
    assert "tensorflow-datasets" in _extra_requirements(extras, "tfds")
    assert not _extra_requirements(extras, "tfds") & tensorflows
    assert {"tensorflow", "tensorflow-cpu"} <= _extra_requirements(extras, "tensorflow")
    # The tests prepare TFDS datasets: the test extra brings a TensorFlow.
    assert "tensorflow-cpu" in _extra_requirements(extras, "test")
