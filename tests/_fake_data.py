"""Small synthetic datasets for the training, checkpoint, CLI and plot tests."""

from __future__ import annotations

import numpy as np

from jaxsoft.data.dataset import Dataset


def blobs(
    n: int, num_classes: int = 3, num_features: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: x float32 (n, d) in [0, 1], y int32 (n,)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).uniform(0.2, 0.8, (num_classes, num_features))
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = centres[y] + 0.08 * rng.normal(size=(n, num_features))
    return np.clip(x, 0.0, 1.0).astype(np.float32), y.astype(np.int32)


def fake_dataset(
    name: str = "fake",
    n_train: int = 120,
    n_test: int = 45,
    image_shape: tuple[int, ...] = (4, 4, 1),
    num_classes: int = 3,
) -> Dataset:
    """A `Dataset` of blobs shaped like tiny images."""
    d = int(np.prod(image_shape))
    x_train, y_train = blobs(n_train, num_classes, d, seed=0)
    x_test, y_test = blobs(n_test, num_classes, d, seed=1)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(f"class{j}" for j in range(num_classes)),
        image_shape=image_shape,
    )


def install_fake_datasets(monkeypatch, datasets: dict[str, Dataset]) -> list[dict]:
    """Makes `jaxsoft.data.load` and `describe` serve ``datasets`` by name.

    Returns the list of ``load`` calls, in order, each a dict of name,
    data_dir and manual_dir (to check that a run refused its inputs before
    loading anything).
    """
    import jaxsoft.data
    from jaxsoft.data.dataset import DatasetInfo

    calls: list[dict] = []

    def find(name: str) -> Dataset:
        if name not in datasets:
            raise jaxsoft.data.UnknownDatasetError(f"unknown dataset {name!r}")
        return datasets[name]

    def load(name="digits", *, data_dir=None, manual_dir=None, **kwargs):
        calls.append({"name": name, "data_dir": data_dir, "manual_dir": manual_dir})
        return find(name)

    def describe(name="digits", *, data_dir=None):
        ds = find(name)
        return DatasetInfo(
            name, ds.num_features, ds.num_classes, ds.class_names, ds.image_shape
        )

    monkeypatch.setattr(jaxsoft.data, "load", load)
    monkeypatch.setattr(jaxsoft.data, "describe", describe)
    return calls
