"""The real TFDS ``mnist`` builder, prepared offline from the original files.

Uses ``shared/data/mnist`` (see ``tests/conftest.py``); skipped with the
reason when it is absent. Preparing takes about half a minute, once per
session.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from jaxsoft import data

# From shared/data/README.md (the official MNIST distribution).
# Preparing MNIST through TFDS and TensorFlow is the slowest fixture of the suite.
pytestmark = pytest.mark.slow

TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path
) -> tuple[Path, data.Dataset]:
    """(data dir, dataset): `load` prepared mnist from ``mnist_dir``, offline."""
    root = tmp_path_factory.mktemp("tfds_mnist")
    with pytest.MonkeyPatch.context() as mp:

        def no_network(*args: object, **kwargs: object) -> None:
            raise OSError("network disabled in tests")

        mp.setattr(socket, "getaddrinfo", no_network)
        mp.setattr(socket, "create_connection", no_network)
        ds = data.load("mnist", data_dir=root, manual_dir=mnist_dir)
    return root, ds


@pytest.fixture(scope="module")
def mnist(prepared: tuple[Path, data.Dataset]) -> data.Dataset:
    return prepared[1]


def test_mnist_sizes_and_types(mnist: data.Dataset) -> None:
    assert mnist.x_train.shape == (60_000, 784)
    assert mnist.x_test.shape == (10_000, 784)
    assert mnist.y_train.shape == (60_000,) and mnist.y_test.shape == (10_000,)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int32
    assert mnist.image_shape == (28, 28, 1)
    assert mnist.class_names == tuple(str(i) for i in range(10))


def test_mnist_label_histograms(mnist: data.Dataset) -> None:
    assert np.bincount(mnist.y_train, minlength=10).tolist() == TRAIN_HISTOGRAM
    assert np.bincount(mnist.y_test, minlength=10).tolist() == TEST_HISTOGRAM


def test_mnist_pixels_scaled_by_255(mnist: data.Dataset) -> None:
    for x in (mnist.x_train, mnist.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # Every value is k / 255 for an integer k.
        k = x[:1000] * 255
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    # The well-known normalisation constants (shared/data/README.md).
    assert mnist.x_train.mean() == pytest.approx(0.1307, abs=5e-4)
    assert mnist.x_train.std() == pytest.approx(0.3081, abs=5e-4)
    assert mnist.x_test.mean() == pytest.approx(0.1325, abs=5e-4)


def test_mnist_prepared_as_array_record(prepared: tuple[Path, data.Dataset]) -> None:
    folder = prepared[0] / "mnist" / "3.0.1"
    assert list(folder.glob("mnist-train.array_record-*"))
    assert list(folder.glob("mnist-test.array_record-*"))
