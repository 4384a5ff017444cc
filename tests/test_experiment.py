"""Tests of jaxsoft.experiment: the whole run as a library call."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _fake_data import fake_dataset, install_fake_datasets
from _helpers import final_params, softmax64
from conftest import run_python

import jaxsoft.data
from jaxsoft import experiment, train
from jaxsoft.experiment import Config, checkpoint
from jaxsoft.train import minibatch


@pytest.fixture
def fake_data(monkeypatch) -> dict:
    """Replaces jaxsoft.data.load/describe with small synthetic datasets."""
    datasets = {
        "fake": fake_dataset("fake"),
        "wide": fake_dataset("wide", image_shape=(5, 5, 1)),
    }
    calls = install_fake_datasets(monkeypatch, datasets)
    return {"datasets": datasets, "calls": calls}


def _config(**overrides) -> Config:
    values = dict(dataset="fake", epochs=5, batch_size=16, checkpoint_every=2)
    values.update(overrides)
    return Config(**values)


def _saved_epochs(workdir: Path) -> list[int]:
    with checkpoint.Checkpointer(workdir / "checkpoints") as ckpt:
        return ckpt.epochs()


@pytest.mark.slow
def test_train_and_evaluate_in_a_fresh_process(tmp_path):
    """The issue's own call, from a fresh Python process, on digits."""
    script = textwrap.dedent(
        f"""
        from jaxsoft.experiment import Config, train_and_evaluate
        config = Config(dataset="digits", epochs=2, data_dir={str(tmp_path / "tfds")!r})
        summary = train_and_evaluate(config, {str(tmp_path / "run")!r}, verbose=False)
        print(summary["test"]["accuracy"])
        """
    )
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert float(result.stdout) == summary["test"]["accuracy"] > 0.8
    assert summary["test"]["num_examples"] == 360
    probs, y_test = _numpy_test_probabilities(run, tmp_path / "tfds")
    ranks = np.argsort(-probs, axis=1, kind="stable")
    assert summary["test"]["accuracy"] == pytest.approx(
        np.mean(ranks[:, 0] == y_test), abs=1e-6
    )
    assert summary["test"]["top_5_accuracy"] == pytest.approx(
        np.mean(np.any(ranks[:, :5] == y_test[:, None], axis=1)), abs=1e-6
    )
    assert summary["test"]["calibration_error"] == pytest.approx(
        _numpy_calibration_error(probs, y_test), abs=1e-5
    )
    assert _saved_epochs(run) == [2]
    from PIL import Image

    for name in ("curves.png", "weights.png", "confusion.png"):
        with Image.open(run / name) as image:  # a whole, readable PNG
            assert image.format == "PNG"
            image.verify()


def _numpy_test_probabilities(run: Path, data_dir: Path) -> tuple[np.ndarray, ...]:
    """The test split's float64 softmax (n, q) of the final parameters, and y."""
    from jaxsoft import data

    w, b, _ = final_params(run)
    ds = data.load("digits", data_dir=data_dir, download=False)
    return softmax64(ds.x_test, w, b), np.asarray(ds.y_test)


def _numpy_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """The 15-bin ECE of float64 probabilities (n, q) against labels (n,)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [np.sum(correct[which == k] - confidence[which == k]) for k in range(bins)]
    return float(np.sum(np.abs(gaps)) / len(y))


def test_checkpoints_every_k_epochs_and_at_the_end(fake_data, tmp_path):
    summary = experiment.train_and_evaluate(
        _config(epochs=7, checkpoint_every=3, keep_checkpoints=2),
        tmp_path,
        verbose=False,
    )
    assert summary["epochs"] == 7
    assert _saved_epochs(tmp_path) == [6, 7]  # saved 3, 6, 7; kept the last 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 7


def test_a_run_killed_between_checkpoints_resumes_exactly(
    fake_data, tmp_path, monkeypatch
):
    reference = tmp_path / "reference"
    experiment.train_and_evaluate(_config(), reference, verbose=False)

    real_append = experiment.RunFolder.append_record

    def append_then_die(self, record):
        real_append(self, record)
        if record.epoch == 3:  # after epoch 3; the last checkpoint is epoch 2
            raise KeyboardInterrupt

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(experiment.RunFolder, "append_record", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        experiment.train_and_evaluate(_config(), interrupted, verbose=False)
    monkeypatch.setattr(experiment.RunFolder, "append_record", real_append)
    assert _saved_epochs(interrupted) == [2]
    assert len((interrupted / "metrics.jsonl").read_text().splitlines()) == 3

    experiment.train_and_evaluate(_config(), interrupted, resume=True, verbose=False)
    w_ref, b_ref, _ = final_params(reference)
    w, b, meta = final_params(interrupted)
    assert meta["epoch"] == 5
    np.testing.assert_array_equal(w, w_ref)  # bitwise
    np.testing.assert_array_equal(b, b_ref)
    lines = (interrupted / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]


def test_an_existing_run_is_never_replaced_silently(fake_data, tmp_path):
    experiment.train_and_evaluate(_config(epochs=2), tmp_path, verbose=False)
    with pytest.raises(experiment.RunError, match=r"`resume=True`.*`overwrite=True`"):
        experiment.train_and_evaluate(_config(epochs=2), tmp_path, verbose=False)
    with pytest.raises(experiment.RunError, match="exclude each other"):
        experiment.train_and_evaluate(
            _config(), tmp_path, resume=True, overwrite=True, verbose=False
        )
    summary = experiment.train_and_evaluate(
        _config(epochs=2, seed=4), tmp_path, overwrite=True, verbose=False
    )
    assert summary["config"]["seed"] == 4


def test_resume_keeps_the_runs_settings(fake_data, tmp_path):
    experiment.train_and_evaluate(_config(epochs=2), tmp_path, verbose=False)
    with pytest.raises(
        experiment.RunError, match=r"`learning_rate=0\.5` \(the checkpoint has"
    ):
        experiment.train_and_evaluate(
            _config(learning_rate=0.5), tmp_path, resume=True, verbose=False
        )
    with pytest.raises(experiment.RunError, match="schedule"):
        experiment.train_and_evaluate(
            _config(epochs=4), tmp_path, resume=True, verbose=False
        )
    with pytest.raises(experiment.RunError, match="`dataset='wide'`"):
        experiment.train_and_evaluate(
            _config(dataset="wide"), tmp_path, resume=True, verbose=False
        )
    names = [call["name"] for call in fake_data["calls"]]
    assert names == ["fake"]  # the resumes were refused before loading any data


def test_divergence_keeps_and_describes_the_last_good_state(
    fake_data, tmp_path, monkeypatch
):
    steps_per_epoch = 120 // 16

    def exploding(name, learning_rate, *, schedule, total_steps):
        return optax.sgd(lambda n: jnp.where(n < 3 * steps_per_epoch, 0.1, 1e38))

    monkeypatch.setattr(train, "make_optimizer", exploding)
    with pytest.raises(experiment.RunDivergedError) as info:
        experiment.train_and_evaluate(_config(), tmp_path, verbose=False)
    err = info.value
    assert err.epoch == 4 and err.kept_epoch == 3
    # Epoch 3 is not a multiple of checkpoint_every: it was saved on purpose.
    assert _saved_epochs(tmp_path) == [2, 3]
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 3
    assert err.kept_record.to_dict() == record
    assert not np.isfinite(err.loss)
    defaults = Config()  # the run's settings: fit only saw the transformation
    assert err.learning_rate == defaults.learning_rate
    assert (err.optimizer, err.schedule) == (defaults.optimizer, defaults.schedule)
    assert err.checkpoints == tmp_path / "checkpoints"
    message = str(err)  # a summary from the attributes, without CLI flags
    assert "epoch 4" in message and "--" not in message
    assert f"learning rate {defaults.learning_rate:g}" in message


def test_each_split_is_validated_once(fake_data, tmp_path, monkeypatch):
    """The Dataset is validated when built; the run trusts it after that."""
    calls = []
    real = jaxsoft.validation.validate_split

    def counting(*args, **kwargs):
        calls.append(kwargs.get("split"))
        return real(*args, **kwargs)

    monkeypatch.setattr(jaxsoft.validation, "validate_split", counting)
    monkeypatch.setattr(minibatch.validation, "validate_split", counting)
    experiment.train_and_evaluate(_config(epochs=2), tmp_path, verbose=False)
    assert calls == []  # the fake Dataset was validated when it was built


def test_evaluate_and_predict_from_a_checkpoint(fake_data, tmp_path):
    from PIL import Image

    experiment.train_and_evaluate(_config(epochs=3), tmp_path, verbose=False)
    result, info = experiment.evaluate_checkpoint(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result.to_dict() == summary["test"]
    assert info["dataset"] == "fake" and info["epoch"] == 3
    # The same numbers from a float64 softmax of the saved parameters.
    ds = fake_data["datasets"]["fake"]
    w, b, _ = final_params(tmp_path)
    probs = softmax64(ds.x_test, w, b)
    y = ds.y_test
    assert result.accuracy == pytest.approx(np.mean(probs.argmax(1) == y), abs=1e-6)
    expected_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    assert result.loss == pytest.approx(expected_loss, rel=1e-5)
    assert result.calibration_error == pytest.approx(
        _numpy_calibration_error(probs, y), abs=1e-5
    )
    with pytest.raises(experiment.RunError, match="25 and 3"):
        experiment.evaluate_checkpoint(tmp_path, dataset="wide")

    # Top 2 of 3 classes for two PNGs (read back as pixel / 255 exactly).
    pixels = [
        (ds.x_test[0].reshape(4, 4) * 255).round(),
        np.random.default_rng(3).integers(0, 256, (4, 4)),
    ]
    images = []
    for i, p in enumerate(pixels):
        images.append(tmp_path / f"x{i}.png")
        Image.fromarray(p.astype(np.uint8)).save(images[-1])
    predictions = experiment.predict_files(tmp_path, images, top=2, invert="no")
    expected = softmax64(np.stack([p.reshape(-1) / 255.0 for p in pixels]), w, b)
    for prediction, row in zip(predictions, expected, strict=True):
        order = np.argsort(-row)[:2]
        assert prediction.classes == tuple(ds.class_names[c] for c in order)
        np.testing.assert_allclose(
            prediction.probabilities, row[order], rtol=1e-5, atol=1e-6
        )
