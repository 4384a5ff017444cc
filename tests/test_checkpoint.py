"""Tests of jaxsoft.checkpoint: round trip, resume equality, bad checkpoints."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from _fake_data import blobs

import jaxsoft as js
from jaxsoft import checkpoint, train

CONFIG = {"dataset": "fake", "optimizer": "adam", "epochs": 4}


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(u), np.asarray(v))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A 4-epoch run checkpointed after every epoch (all kept)."""
    directory = tmp_path_factory.mktemp("run") / "checkpoints"
    x, y = blobs(90, num_classes=3, num_features=6)
    params = js.init_params(jax.random.key(0), 6, 3)
    optimizer = train.make_optimizer("adam", 0.05, schedule="cosine", total_steps=4 * 9)
    states: list[train.TrainState] = []
    with checkpoint.Checkpointer(directory, max_to_keep=10) as ckpt:

        def on_epoch_end(state, record):
            states.append(state)
            ckpt.save(state, CONFIG, [*history, record])
            history.append(record)

        history: list[train.EpochRecord] = []
        result = train.fit(
            params,
            x,
            y,
            key=jax.random.key(5),
            optimizer=optimizer,
            batch_size=10,
            epochs=4,
            on_epoch_end=on_epoch_end,
        )
    return {
        "directory": directory,
        "x": x,
        "y": y,
        "params": params,
        "optimizer": optimizer,
        "states": states,
        "result": result,
    }


def _template(run: dict) -> train.TrainState:
    params = run["params"]
    return train.TrainState(params, run["optimizer"].init(params), 0, jax.random.key(5))


def test_round_trip_is_exact(run):
    with checkpoint.Checkpointer(run["directory"]) as ckpt:
        assert ckpt.latest_epoch() == 4
        restored = ckpt.restore(_template(run))
        earlier = ckpt.restore(_template(run), epoch=2)
    final = run["result"].state
    assert restored.state.epoch == 4
    assert _leaves_equal(restored.state.params, final.params)
    assert _leaves_equal(restored.state.opt_state, final.opt_state)
    assert jax.tree.structure(restored.state.opt_state) == jax.tree.structure(
        final.opt_state
    )
    assert np.array_equal(
        jax.random.key_data(restored.state.key), jax.random.key_data(final.key)
    )
    assert restored.config == CONFIG
    assert restored.history == run["result"].history
    assert earlier.state.epoch == 2
    assert _leaves_equal(earlier.state.params, run["states"][1].params)
    assert len(earlier.history) == 2


def test_resuming_from_a_checkpoint_equals_the_uninterrupted_run(run):
    with checkpoint.Checkpointer(run["directory"]) as ckpt:
        restored = ckpt.restore(_template(run), epoch=1)
    resumed = train.fit(
        run["params"],
        run["x"],
        run["y"],
        key=restored.state.key,
        optimizer=run["optimizer"],
        batch_size=10,
        epochs=4,
        state=restored.state,
        history=restored.history,
    )
    assert _leaves_equal(resumed.params, run["result"].params)
    assert [r.train_loss for r in resumed.history] == [
        r.train_loss for r in run["result"].history
    ]


def test_load_params_from_the_run_folder_or_the_checkpoint_folder(run):
    for path in (run["directory"].parent, run["directory"]):
        params, meta = checkpoint.load_params(path)
        assert _leaves_equal(params, run["result"].params)
        assert meta["config"] == CONFIG
        assert meta["epoch"] == 4


def test_raw_uint32_keys_round_trip(tmp_path):
    params = js.init_params(jax.random.key(0), 2, 2)
    optimizer = train.make_optimizer("sgd", 0.1)
    state = train.TrainState(params, optimizer.init(params), 1, jax.random.PRNGKey(3))
    with checkpoint.Checkpointer(tmp_path) as ckpt:
        ckpt.save(state, {}, [])
        restored = ckpt.restore(state)
    assert np.array_equal(restored.state.key, jax.random.PRNGKey(3))


def test_keeps_only_the_latest(tmp_path):
    params = js.init_params(jax.random.key(0), 2, 2)
    optimizer = train.make_optimizer("sgd", 0.1)
    with checkpoint.Checkpointer(tmp_path, max_to_keep=2) as ckpt:
        for epoch in (1, 2, 3):
            state = train.TrainState(
                params, optimizer.init(params), epoch, jax.random.key(0)
            )
            ckpt.save(state, {}, [])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["2", "3"]


# ----------------------------------------------------------- bad checkpoints


def test_missing_checkpoint(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load_params(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load_params(tmp_path / "nowhere")
    with checkpoint.Checkpointer(tmp_path / "empty") as ckpt:
        assert ckpt.latest_epoch() is None
        with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
            ckpt.restore_meta()


def test_incompatible_shapes(run):
    params = js.init_params(jax.random.key(0), 7, 3)  # another dataset: d = 7
    template = train.TrainState(params, run["optimizer"].init(params), 0, None)
    with (
        checkpoint.Checkpointer(run["directory"]) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match=r"incompatible.*\(6, 3\)"),
    ):
        ckpt.restore(template)


def test_incompatible_optimizer(run):
    params = run["params"]
    sgd = train.make_optimizer("momentum", 0.1)
    template = train.TrainState(params, sgd.init(params), 0, None)
    with (
        checkpoint.Checkpointer(run["directory"]) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="another optimizer"),
    ):
        ckpt.restore(template)


def _copy_run(run: dict, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "checkpoints"
    shutil.copytree(run["directory"], target)
    return target


def _garble(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage\xff" + data[len(data) // 2 :])


def test_corrupt_metadata(run, tmp_path):
    directory = _copy_run(run, tmp_path)
    for meta_file in (directory / "4" / "meta").iterdir():
        if meta_file.is_file():
            _garble(meta_file)
    with (
        checkpoint.Checkpointer(directory) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="cannot be read"),
    ):
        ckpt.restore(_template(run))


def test_corrupt_array_data(run, tmp_path):
    directory = _copy_run(run, tmp_path)
    params_dir = directory / "4" / "params"
    garbled = [p for p in params_dir.rglob("*") if p.is_file() and p.stat().st_size]
    assert garbled
    for path in garbled:
        if path.name not in ("_CHECKPOINT_METADATA",):
            _garble(path)
    with (
        checkpoint.Checkpointer(directory) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="corrupt"),
    ):
        ckpt.restore(_template(run))


def test_truncated_array_file(run, tmp_path):
    directory = _copy_run(run, tmp_path)
    data_files = [
        p
        for p in (directory / "4" / "opt_state").rglob("*")
        if p.is_file() and p.parent.name == "d"
    ]
    assert data_files
    for path in data_files:
        path.write_bytes(path.read_bytes()[:3])
    with (
        checkpoint.Checkpointer(directory) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="corrupt"),
    ):
        ckpt.restore(_template(run))


def test_other_format_version(run, tmp_path, monkeypatch):
    directory = _copy_run(run, tmp_path)
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 99)
    with (
        checkpoint.Checkpointer(directory) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="format 1"),
    ):
        ckpt.restore(_template(run))
