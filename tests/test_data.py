"""Tests of `jaxsoft.data`: digits end to end, the catalog path, every error.

Offline: an autouse fixture makes every internet socket fail, so a test that
tried to download would fail rather than reach the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxsoft import data
from jaxsoft.data import digits, loading

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
    start = time.perf_counter()
    again = data.load("digits", data_dir=digits_dir, download=False)
    assert time.perf_counter() - start < 10
    assert {p: p.stat().st_mtime_ns for p in files_under(digits_dir)} == before
    np.testing.assert_array_equal(again.x_train, digits_ds.x_train)
    np.testing.assert_array_equal(again.y_test, digits_ds.y_test)


_NO_TF_SCRIPT = textwrap.dedent(
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
    """
)


def test_digits_fresh_machine_no_tensorflow_no_network(tmp_path: Path) -> None:
    """In a fresh process with TF uninstallable and no network, `load()` works.

    Also checks that `data_dir` defaults to TFDS's, which honours TFDS_DATA_DIR.
    """
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    result = subprocess.run(
        [sys.executable, "-c", _NO_TF_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK: no TensorFlow" in result.stdout


def test_import_does_not_import_tensorflow() -> None:
    code = "import sys, jaxsoft, jaxsoft.data; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


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


# --- the TFDS catalog, mocked --------------------------------------------------


@pytest.fixture
def mocked_catalog(monkeypatch: pytest.MonkeyPatch):
    """`tfds.testing.mock_data`: random examples, no download, no files.

    Two shims: the reachability check is made to pass (the download itself is
    mocked away), and TFDS 4.9.10's mocked ``__getitems__`` (unbound, so it
    lacks ``self``) is replaced by a working one.
    """
    from tensorflow_datasets.testing import mocking

    monkeypatch.setattr(loading, "_check_reachable", lambda *a, **k: None)

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
    mocked_catalog: None, tmp_path: Path, name: str, class_names: tuple[str, ...]
) -> None:
    ds = data.load(name, data_dir=tmp_path)
    assert ds.name == name
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (12, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.image_shape == (28, 28, 1)
    assert ds.class_names == class_names
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert x.max() > 0.5  # random 8-bit pixels, scaled by 255
        assert ((y >= 0) & (y < 10)).all()


def test_catalog_rgb_images_are_flattened(mocked_catalog: None, tmp_path: Path) -> None:
    ds = data.load("cifar10", data_dir=tmp_path)
    assert ds.image_shape == (32, 32, 3)
    assert ds.x_train.shape == (12, 32 * 32 * 3)
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
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("kmnist", data_dir=tmp_path)
    assert time.perf_counter() - start < 30
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

    monkeypatch.setattr(loading, "_check_reachable", lambda *a, **k: None)
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
    with pytest.raises(data.MissingDependencyError, match=r"jaxsoft\[tfds\]") as info:
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


def test_truncated_prepared_file_is_a_clear_error(
    tmp_path: Path, digits_dir: Path
) -> None:
    import shutil

    root = tmp_path / "tfds"
    shutil.copytree(digits_dir / "digits", root / "digits")
    (shard,) = (root / "digits" / "1.0.0").glob("digits-train.array_record*")
    with shard.open("r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    with pytest.raises(data.CorruptDatasetError, match="delete that folder"):
        data.load("digits", data_dir=root)
