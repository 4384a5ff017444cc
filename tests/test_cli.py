"""Tests of the ``jaxsoft`` command line (through ``main(argv)`` and a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _fake_data import fake_dataset, install_fake_datasets
from _helpers import final_params, softmax64
from conftest import REPO_ROOT, run_python
from PIL import Image

import jaxsoft.data
from jaxsoft import cli, experiment, train
from jaxsoft.experiment import Config, checkpoint

FAST = ["--epochs", "3", "--batch-size", "16"]


@pytest.fixture
def fake_data(monkeypatch) -> dict:
    """Replaces jaxsoft.data.load/describe with small synthetic datasets."""
    datasets = {
        "fake": fake_dataset("fake"),
        "wide": fake_dataset("wide", image_shape=(5, 5, 1)),
        "big": fake_dataset("big", image_shape=(16, 16, 1)),
    }
    calls = install_fake_datasets(monkeypatch, datasets)
    return {"datasets": datasets, "calls": calls}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def train_fake(out: Path, capsys, *extra: str) -> tuple[int, str, str]:
    return run(["train", "--dataset", "fake", "--out", str(out), *FAST, *extra], capsys)


def numpy_loss_and_accuracy(x, y, w, b) -> tuple[float, float]:
    """Float64 mean cross-entropy and accuracy of softmax(x W + b) on (x, y)."""
    probs = softmax64(x, w, b)
    loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    return float(loss), float(np.mean(probs.argmax(axis=1) == y))


def read_records(out: Path) -> list[dict]:
    return [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]


# ------------------------------------------------------------------ train


def test_train_writes_everything(fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    manual = tmp_path / "M"
    manual.mkdir()
    data_dir = str(tmp_path / "D")
    code, stdout, stderr = train_fake(
        out,
        capsys,
        "--data-dir",
        data_dir,
        "--manual-dir",
        str(manual),
        "--checkpoint-every",
        "1",
    )
    assert code == 0, stderr
    assert fake_data["calls"] == [
        {"name": "fake", "data_dir": data_dir, "manual_dir": str(manual)}
    ]
    assert "done: 3 epochs" in stdout
    for name in ("curves.png", "weights.png", "confusion.png", "summary.json"):
        assert (out / name).is_file(), name
    records = read_records(out)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    # Each epoch's test metrics, recomputed in float64 from that epoch's
    # checkpoint (all three are kept).
    dataset = fake_data["datasets"]["fake"]
    with checkpoint.Checkpointer(out / "checkpoints", async_save=False) as saved:
        assert saved.epochs() == [1, 2, 3]
        epoch_params = [saved.restore_params(e)[0] for e in (1, 2, 3)]
    for record, params in zip(records, epoch_params, strict=True):
        loss, accuracy = numpy_loss_and_accuracy(
            dataset.x_test, dataset.y_test, params.W, params.b
        )
        assert record["test_loss"] == pytest.approx(loss, rel=1e-5)
        assert record["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert records[0]["test_loss"] != records[-1]["test_loss"]  # the params moved
    # The printed per-epoch lines are those records, rounded.
    printed = [line.split() for line in stdout.splitlines() if line[:6] == "epoch "]
    assert [line[:13] for line in printed] == [
        [
            "epoch",
            str(r["epoch"]),
            "train",
            "loss",
            f"{r['train_loss']:.4f}",
            "acc",
            f"{r['train_accuracy']:.4f}",
            "test",
            "loss",
            f"{r['test_loss']:.4f}",
            "acc",
            f"{r['test_accuracy']:.4f}",
            f"{r['seconds']:.2f}s",
        ]
        for r in records
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3
    assert summary["test"]["num_examples"] == 45
    assert summary["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert summary["config"]["optimizer"] == Config().optimizer
    assert summary["test"]["top_5_accuracy"] is None  # only 3 classes
    w, b, meta = final_params(out)
    np.testing.assert_array_equal(w, epoch_params[-1].W)
    np.testing.assert_array_equal(b, epoch_params[-1].b)
    assert meta["epoch"] == 3
    assert meta["config"]["image_shape"] == [4, 4, 1]


def test_metrics_jsonl_train_metrics_match_numpy(
    fake_data, tmp_path, capsys, monkeypatch
):
    """With a zero learning rate the saved parameters are those every
    minibatch saw, so each epoch's mean train metrics are theirs."""

    def frozen(name, learning_rate, *, schedule, total_steps):
        return optax.sgd(0.0)

    monkeypatch.setattr(train, "make_optimizer", frozen)
    out = tmp_path / "run"
    # 40 divides the 120 training examples: every one is in a minibatch.
    code, _, stderr = train_fake(out, capsys, "--epochs", "2", "--batch-size", "40")
    assert code == 0, stderr
    w, b, _ = final_params(out)
    assert np.abs(w).max() > 0  # a random, not a zero, initialisation
    dataset = fake_data["datasets"]["fake"]
    records = read_records(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for prefix, x, y in (
        ("train", dataset.x_train, dataset.y_train),
        ("test", dataset.x_test, dataset.y_test),
    ):
        loss, accuracy = numpy_loss_and_accuracy(x, y, w, b)
        for record in records:
            assert record[f"{prefix}_loss"] == pytest.approx(loss, rel=1e-5)
            assert record[f"{prefix}_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_train_refuses_to_overwrite_silently(fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_fake(out, capsys)[0] == 0
    code, _, stderr = train_fake(out, capsys)
    assert code == 2
    assert "--resume" in stderr and "--overwrite" in stderr
    code, _, stderr = train_fake(out, capsys, "--overwrite", "--seed", "4")
    assert code == 0, stderr
    assert final_params(out)[2]["config"]["seed"] == 4


def test_interrupted_then_resumed_equals_uninterrupted(
    fake_data, tmp_path, capsys, monkeypatch
):
    args = ["--epochs", "5", "--batch-size", "16", "--checkpoint-every", "1"]
    reference = tmp_path / "reference"
    assert (
        run(["train", "--dataset", "fake", "--out", str(reference), *args], capsys)[0]
        == 0
    )

    real_save = checkpoint.Checkpointer.save

    def save_then_interrupt(self, state, config):
        real_save(self, state, config)
        if state.epoch == 2:
            raise KeyboardInterrupt

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_interrupt)
    code, _, stderr = run(
        ["train", "--dataset", "fake", "--out", str(interrupted), *args], capsys
    )
    assert code == 130
    assert "--resume" in stderr
    assert final_params(interrupted)[2]["epoch"] == 2
    monkeypatch.setattr(checkpoint.Checkpointer, "save", real_save)

    code, stdout, stderr = run(["train", "--out", str(interrupted), "--resume"], capsys)
    assert code == 0, stderr
    assert "resuming after epoch 2" in stdout
    w_ref, b_ref, _ = final_params(reference)
    w, b, meta = final_params(interrupted)
    assert meta["epoch"] == 5
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(b, b_ref)
    epochs = [
        json.loads(line)["epoch"]
        for line in (interrupted / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3, 4, 5]


def test_resume_checks(fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, stderr = run(["train", "--out", str(out), "--resume"], capsys)
    assert code == 2 and "no checkpoint" in stderr
    assert train_fake(out, capsys)[0] == 0
    code, _, stderr = run(
        ["train", "--out", str(out), "--resume", "--lr", "0.5"], capsys
    )
    assert code == 2 and "--lr 0.5" in stderr
    code, _, stderr = run(
        ["train", "--out", str(out), "--resume", "--epochs", "6"], capsys
    )
    assert code == 2 and "schedule" in stderr
    # A run with a constant learning rate can be extended.
    out = tmp_path / "constant"
    assert train_fake(out, capsys, "--schedule", "constant")[0] == 0
    code, _, stderr = run(
        ["train", "--out", str(out), "--resume", "--epochs", "5"], capsys
    )
    assert code == 0, stderr
    assert final_params(out)[2]["epoch"] == 5
    # Nothing left to do: the run is already complete.
    code, stdout, _ = run(
        ["train", "--out", str(out), "--resume", "--epochs", "5"], capsys
    )
    assert code == 0 and "done: 5 epochs" in stdout


def test_resume_on_another_dataset_is_refused(fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_fake(out, capsys)[0] == 0
    code, _, stderr = run(
        ["train", "--out", str(out), "--resume", "--dataset", "wide"], capsys
    )
    assert code == 2 and "--dataset wide" in stderr


def test_divergence_keeps_the_last_good_checkpoint(
    fake_data, tmp_path, capsys, monkeypatch
):
    steps_per_epoch = 120 // 16

    def exploding(name, learning_rate, *, schedule, total_steps):
        return optax.sgd(lambda n: jnp.where(n < 2 * steps_per_epoch, 0.1, 1e38))

    monkeypatch.setattr(train, "make_optimizer", exploding)
    out = tmp_path / "run"
    code, _, stderr = train_fake(out, capsys, "--epochs", "5")
    assert code == 1
    assert "diverged in epoch 3" in stderr
    assert "smaller" in stderr
    assert "Traceback" not in stderr
    assert final_params(out)[2]["epoch"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["bogus"], "invalid choice"),
        (["train", "--epochs", "0"], "--epochs: epochs must be a positive integer"),
        (["train", "--epochs", "ten"], "not an integer"),
        (["train", "--batch-size", "-2"], "batch_size must be a positive integer"),
        (["train", "--optimizer", "adamax2"], "invalid choice"),
        (["train", "--schedule", "steps"], "invalid choice"),
        (["train", "--lr", "fast"], "not a number"),
        (["train", "--lr", "-1"], "--lr: learning_rate must be"),
        (["train", "--lr", "0"], "--lr: learning_rate must be"),
        (["train", "--l2", "-0.5"], "l2 must be"),
        (["train", "--l2", "nan"], "l2 must be"),
        (["train", "--seed", "99999999999999999999"], "in [0, 2**63)"),
        (["train", "--checkpoint-every", "0"], "--checkpoint-every: checkpoint_every"),
        (["train", "--batch-size", "1000"], "larger than the 120 training examples"),
        (["train", "--resume", "--overwrite"], "not allowed with"),
        (["evaluate"], "--checkpoint"),
        (["predict", "--checkpoint", "somewhere"], "IMAGE"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(
    argv, message, fake_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    if argv and argv[0] == "train":
        argv = [*argv, "--dataset", "fake"]
    code, _, stderr = run(argv, capsys)
    assert code == 2
    assert stderr.startswith("jaxsoft: error:")
    assert message in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "runs" / "fake").exists()
    if "--batch-size" not in argv or "1000" not in argv:
        assert fake_data["calls"] == []  # refused before loading the data


@pytest.mark.parametrize(
    "bad", [["--lr", "-1"], ["--dataset", "nope"], ["--l2", "nan"]], ids=str
)
def test_overwrite_with_a_mistake_keeps_the_old_run(bad, fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_fake(out, capsys)[0] == 0
    before = final_params(out)
    code, _, stderr = train_fake(out, capsys, "--overwrite", *bad)
    assert code == 2 and "Traceback" not in stderr
    after = final_params(out)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[2]["epoch"] == before[2]["epoch"]


def test_a_second_train_into_the_same_out_is_refused(fake_data, tmp_path, capsys):
    out = tmp_path / "run"
    script = (
        "import sys, time; from jaxsoft.experiment.run_folder import RunFolder\n"
        f"with RunFolder({str(out)!r}).lock():\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, stderr = train_fake(out, capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    assert f"is in use by another jaxsoft train (pid {holder.pid})" in stderr
    assert fake_data["calls"] == []
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    assert train_fake(out, capsys)[0] == 0  # the dead holder's lock is taken over


def test_resume_from_a_corrupt_checkpoint_leaves_the_run_untouched(
    fake_data, tmp_path, capsys
):
    out = tmp_path / "run"
    args = ["train", "--dataset", "big", "--out", str(out), *FAST]
    assert run(args, capsys)[0] == 0
    data_files = [
        p
        for p in (out / "checkpoints" / "3" / "params").rglob("*")
        if p.is_file() and p.parent.name == "d"
    ]
    largest = max(data_files, key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = bytes(
        b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 8]
    )
    largest.write_bytes(bytes(data))  # same size, flipped bytes
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    code, _, stderr = run([*args, "--resume"], capsys)
    assert code == 2
    assert "is corrupt" in stderr and stderr.count("\n") == 1
    code, _, stderr = run(["evaluate", "--checkpoint", str(out)], capsys)
    assert code == 2 and "is corrupt" in stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    changed = [p for p in before if before[p] != after[p] and p.name != ".lock"]
    assert changed == []


def test_out_that_is_a_file_names_the_option(fake_data, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    code, _, stderr = train_fake(a_file, capsys)
    assert code == 2 and f"--out {a_file} is a file" in stderr
    assert a_file.read_text() == "keep me"


def test_a_bug_is_not_reported_as_a_usage_error(fake_data, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(experiment, "train_and_evaluate", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["train", "--dataset", "fake", "--out", str(tmp_path / "run")])


def test_unknown_dataset(fake_data, tmp_path, capsys):
    code, _, stderr = run(
        ["train", "--dataset", "nope", "--out", str(tmp_path)], capsys
    )
    assert code == 2
    assert "unknown dataset 'nope'" in stderr.lower()


def test_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0
    assert "--manual-dir" in capsys.readouterr().out


# ------------------------------------------------------------------ evaluate


@pytest.fixture
def trained(fake_data, tmp_path, capsys) -> Path:
    out = tmp_path / "trained"
    assert train_fake(out, capsys)[0] == 0
    return out


def test_evaluate(trained, fake_data, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    code, stdout, stderr = run(
        ["evaluate", "--checkpoint", str(trained), "--json", str(report)], capsys
    )
    assert code == 0, stderr
    # The printed and saved metrics vs NumPy on the saved parameters.
    dataset = fake_data["datasets"]["fake"]
    w, b, _ = final_params(trained)
    loss, accuracy = numpy_loss_and_accuracy(dataset.x_test, dataset.y_test, w, b)
    assert f"test: 45 examples  loss {loss:.4f}  accuracy {accuracy:.4f}" in stdout
    predicted = softmax64(dataset.x_test, w, b).argmax(axis=1)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (dataset.y_test, predicted), 1)
    table = stdout.split("confusion matrix (rows: true class, columns: predicted):\n")
    rows = [line.split()[1:] for line in table[1].splitlines()[1:4]]  # no header
    assert rows == [[str(v) for v in row] for row in confusion]
    metrics = json.loads(report.read_text())
    assert metrics["confusion"] == confusion.tolist()
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
    summary = json.loads((trained / "summary.json").read_text())
    assert metrics["confusion"] == summary["test"]["confusion"]
    code, stdout, _ = run(
        ["evaluate", "--checkpoint", str(trained / "checkpoints"), "--split", "train"],
        capsys,
    )
    assert code == 0
    loss, accuracy = numpy_loss_and_accuracy(dataset.x_train, dataset.y_train, w, b)
    assert f"train: 120 examples  loss {loss:.4f}  accuracy {accuracy:.4f}" in stdout


def test_evaluate_errors(trained, tmp_path, capsys):
    code, _, stderr = run(["evaluate", "--checkpoint", str(tmp_path / "no")], capsys)
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = run(
        ["evaluate", "--checkpoint", str(trained), "--dataset", "wide"], capsys
    )
    assert code == 2 and "25 and 3" in stderr
    for path in (trained / "checkpoints").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")
    code, _, stderr = run(["evaluate", "--checkpoint", str(trained)], capsys)
    assert code == 2
    assert "corrupt" in stderr
    assert "Traceback" not in stderr


def test_unwritable_output_is_a_clear_error(trained, tmp_path, capsys):
    report = tmp_path / "no such folder" / "metrics.json"
    code, stdout, stderr = run(
        ["evaluate", "--checkpoint", str(trained), "--json", str(report)], capsys
    )
    assert code == 2 and "Traceback" not in stderr
    assert f"--json {report}" in stderr and "does not exist" in stderr
    assert stdout == ""  # refused before evaluating anything
    code, stdout, stderr = run(
        ["evaluate", "--checkpoint", str(trained), "--json", str(tmp_path)], capsys
    )
    assert code == 2 and "is a folder" in stderr and stdout == ""


# ------------------------------------------------------------------ predict


def _write_image(path: Path, pixels: np.ndarray, mode: str = "L") -> Path:
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(path)
    return path


def _printed_predictions(line: str) -> tuple[str, list[str], list[float]]:
    """``path: name (p), name (p)`` -> (path, names, probabilities)."""
    path, ranked = line.rsplit(": ", 1)
    pairs = [pair.rstrip(")").split(" (") for pair in ranked.split(", ")]
    return path, [name for name, _ in pairs], [float(p) for _, p in pairs]


def test_predict(trained, fake_data, tmp_path, capsys):
    dataset = fake_data["datasets"]["fake"]
    first_pixels = (dataset.x_test[0].reshape(4, 4) * 255).round()
    first = _write_image(tmp_path / "first.png", first_pixels)
    big_rgb = np.repeat(
        np.kron(dataset.x_test[1].reshape(4, 4), np.ones((7, 7)))[..., None] * 255,
        3,
        -1,
    )
    second = _write_image(tmp_path / "second.jpg", big_rgb.round(), mode="RGB")
    # Noise: an input unlike any of the data.
    noise_pixels = np.random.default_rng(5).integers(0, 256, (4, 4))
    noise = _write_image(tmp_path / "noise.png", noise_pixels)
    code, stdout, stderr = run(
        [
            "predict",
            "--checkpoint",
            str(trained),
            str(first),
            str(second),
            str(noise),
            "--top",
            "2",
            "--invert",
            "no",
        ],
        capsys,
    )
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 3
    # The expected top 2 of 3 classes: a float64 softmax of x W + b with the
    # saved parameters. A greyscale PNG is read back as pixel / 255 exactly;
    # the (lossy) JPEG's pixels are read as the command reads them.
    from jaxsoft.experiment.images import load_images

    w, b, _ = final_params(trained)
    x = np.stack(
        [
            first_pixels.reshape(-1) / 255.0,
            load_images([second], (4, 4, 1), invert="no")[0],
            noise_pixels.reshape(-1) / 255.0,
        ]
    )
    probs = softmax64(x, w, b)
    for line, path, row, label in zip(
        lines, (first, second, noise), probs, (*dataset.y_test[:2], None), strict=True
    ):
        printed_path, names, printed = _printed_predictions(line)
        order = np.argsort(-row)[:2]
        assert printed_path == str(path)
        assert names == [f"class{c}" for c in order]
        np.testing.assert_allclose(printed, row[order], atol=5e-4 + 1e-6)
        if label is not None:
            assert order[0] == label


def test_predict_errors(trained, tmp_path, capsys):
    code, _, stderr = run(
        ["predict", "--checkpoint", str(trained), str(tmp_path / "missing.png")], capsys
    )
    assert code == 2 and "does not exist" in stderr
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    code, _, stderr = run(
        ["predict", "--checkpoint", str(trained), str(not_an_image)], capsys
    )
    assert code == 2 and "not a readable image" in stderr
    assert "Traceback" not in stderr


def _png_header_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` pixels."""
    import struct
    import zlib

    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_predict_refuses_a_decompression_bomb(trained, tmp_path, capsys):
    bomb = _png_header_claiming(tmp_path / "huge.png", 20_000, 20_000)
    code, _, stderr = run(["predict", "--checkpoint", str(trained), str(bomb)], capsys)
    assert code == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert str(bomb) in stderr and "too large" in stderr
    assert f"{Image.MAX_IMAGE_PIXELS:,}" in stderr


# ------------------------------------------------------------------ real digits


@pytest.fixture(scope="module")
def digits_data_dir(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    jaxsoft.data.load("digits", data_dir=data_dir)  # prepare once (offline)
    return data_dir


def test_train_with_defaults_on_digits(digits_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run(["train", "--data-dir", str(digits_data_dir)], capsys)
    assert code == 0, stderr
    summary = json.loads((tmp_path / "runs" / "digits" / "summary.json").read_text())
    assert summary["dataset"] == "digits"
    assert summary["test"]["num_examples"] == 360
    assert summary["test"]["accuracy"] >= 0.95


@pytest.mark.slow
def test_a_second_run_reuses_the_compiled_programs(digits_data_dir, tmp_path):
    cache = tmp_path / "cache"
    env = {"JAXSOFT_CACHE_DIR": str(cache), "JAX_COMPILATION_CACHE_DIR": None}
    command = ["-m", "jaxsoft", "train", "--epochs", "2"]
    command += ["--data-dir", str(digits_data_dir), "--out", str(tmp_path / "run")]
    first = run_python(*command, env=env)
    assert first.returncode == 0, first.stderr
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # the compiled epoch, evaluation, ...
    second = run_python(*command, "--overwrite", env=env)
    assert second.returncode == 0, second.stderr
    # Every program came from the cache: nothing new was compiled or written.
    assert sorted(p.name for p in cache.iterdir()) == entries
    summaries = [
        json.loads(line.split("test accuracy ")[1].split(",")[0])
        for line in (first.stdout + second.stdout).splitlines()
        if line.startswith("done:")
    ]
    assert len(summaries) == 2 and summaries[0] == summaries[1]


def test_python_dash_m_help():
    result = run_python("-m", "jaxsoft", "--help", timeout=120)
    assert result.returncode == 0
    assert "evaluate" in result.stdout


def test_help_imports_neither_tensorflow_nor_orbax():
    script = (
        "import sys; from jaxsoft import cli; cli.main(['train', '--help']); "
        "print('tensorflow' in sys.modules, 'orbax.checkpoint' in sys.modules)"
    )
    result = run_python("-c", script, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False False"
    assert "--checkpoint-every" in result.stdout  # flags derived from Config


def test_the_console_script_exits_with_mains_code_and_its_output(tmp_path):
    """`cli.run` (the console script) ends the process quickly, but only after
    the output, the exit handlers and main's exit code."""
    script = (
        "import atexit; from jaxsoft import cli; "
        "atexit.register(lambda: print('exit handler ran', flush=True)); "
        "print('before', end=''); cli.run()"
    )
    bad = run_python("-c", script, "train", "--epochs", "0", timeout=120)
    assert bad.returncode == 2
    assert "epochs" in bad.stderr
    assert bad.stdout == "beforeexit handler ran\n"
    good = run_python("-c", script, "--help", timeout=120)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("before") and "train" in good.stdout
    assert good.stdout.endswith("exit handler ran\n")


def _console_script_code() -> str:
    """What pip's wrapper of the ``jaxsoft`` console script runs, from the
    entry point that pyproject.toml declares."""
    import re

    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    entry = re.search(r'^jaxsoft = "([\w.]+):(\w+)"$', pyproject, re.MULTILINE)
    module, name = entry.groups()
    return f"import sys; from {module} import {name}; sys.exit({name}())"


# Runs before the command: Ctrl-C raises KeyboardInterrupt (a background
# job's children start with SIGINT ignored); announces (on stdout) the moment
# the import of jax begins and, with a pause, holds it there until the signal.
_IMPORT_WATCH = """\
import importlib.abc, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "jax":
            sys.meta_path.remove(self)
            print("importing jax", flush=True)
            # Short sleeps: a signal that lands just before a long one would
            # be handled only when it ends.
            deadline = time.monotonic() + {pause}
            while time.monotonic() < deadline:
                time.sleep(0.02)
        return None
sys.meta_path.insert(0, Watch())
"""


def _interrupt_while_importing(entry: str, pause: float, delay: float):
    """Starts the command through ``entry``, sends SIGINT ``delay`` seconds
    after jax begins to import (held there ``pause`` seconds); -> the child's
    exit code, stdout and stderr."""
    start = (
        _console_script_code()
        if entry == "console script"
        else "import runpy; runpy.run_module('jaxsoft', run_name='__main__')"
    )
    argv = ["train", "--help"]  # if the signal came late: the usage, exit 0
    child = subprocess.Popen(
        [sys.executable, "-c", _IMPORT_WATCH.format(pause=pause) + start, *argv],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "importing jax\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    return child.returncode, out, err


@pytest.mark.parametrize("entry", ["console script", "python -m jaxsoft"])
def test_ctrl_c_while_the_command_imports_prints_one_line_and_exits_130(entry):
    """SIGINT while jax imports (held there; then as it really imports, at
    several moments): one line on stderr, exit code 130. Never a traceback,
    nor a Ctrl-C lost in a garbage-collector callback of JAX's ("Exception
    ignored in"), after which the command would go on."""
    from jaxsoft.experiment.signals import EXIT_INTERRUPTED

    code, out, err = _interrupt_while_importing(entry, pause=60, delay=0)
    assert (code, err, out) == (EXIT_INTERRUPTED, "jaxsoft: interrupted.\n", "")
    assert EXIT_INTERRUPTED == 130
    for delay in (0.0, 0.2, 0.5, 1.0):
        code, out, err = _interrupt_while_importing(entry, pause=0, delay=delay)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        if code == 0:  # the import was over: --help printed the usage
            assert "usage" in out
        else:
            assert (code, err) == (EXIT_INTERRUPTED, "jaxsoft: interrupted.\n")


def test_the_entry_and_its_guard_import_no_jax():
    """What runs before the guard of the import (`jaxsoft.__main__`, the
    package, `jaxsoft.experiment.signals`) imports neither JAX nor NumPy."""
    script = (
        "import sys, jaxsoft.__main__, jaxsoft.experiment.signals; "
        "print(sorted({'jax', 'numpy'} & set(sys.modules)))"
    )
    result = run_python("-c", script, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
