"""Tests of jaxsoft.experiment.checkpoint: exact round trips, bad checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO_ROOT

from jaxsoft import model
from jaxsoft.experiment import checkpoint
from jaxsoft.train.records import TrainState

CONFIG = {"dataset": "fake", "optimizer": "adam", "epochs": 4, "lr": 0.05}


def _params(d: int = 64, q: int = 10, seed: int = 0) -> model.Params:
    w = jax.random.normal(jax.random.key(seed), (d, q))
    return model.Params(W=w, b=jnp.linspace(-1.0, 1.0, q))


def _train(optimizer, params: model.Params, epochs: int) -> list[TrainState]:
    """A fake run: one optimizer step per epoch with pseudo-random gradients."""
    state = TrainState(params, optimizer.init(params), 0, jax.random.key(5))
    states = []
    for epoch in range(1, epochs + 1):
        grads = jax.tree.map(lambda a, e=epoch: jnp.sin(a * e), state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = TrainState(params, opt_state, epoch, state.key)
        states.append(state)
    return states


def _equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(np.asarray(u), np.asarray(v))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _same_state(a: TrainState, b: TrainState) -> bool:
    keys = [jax.random.key_data(s.key) for s in (a, b)]
    return (
        a.epoch == b.epoch
        and _equal(a.params, b.params)
        and _equal(a.opt_state, b.opt_state)
        and np.array_equal(*keys)
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A 4-epoch adam run saved (asynchronously) after every epoch; its
    arrays exceed the 1 KiB that OCDBT stores inline, so have data files."""
    directory = tmp_path_factory.mktemp("run") / "checkpoints"
    optimizer = optax.adam(0.05)
    states = _train(optimizer, _params(), 4)
    with checkpoint.Checkpointer(directory, max_to_keep=10) as ckpt:
        for state in states:
            ckpt.save(state, CONFIG)
    template = TrainState(_params(), optimizer.init(_params()), 0, jax.random.key(0))
    return {"directory": directory, "states": states, "template": template}


def _copy(run: dict, tmp_path: Path) -> Path:
    target = tmp_path / "checkpoints"
    shutil.copytree(run["directory"], target)
    return target


# ------------------------------------------------------------- round trips


def test_round_trip_is_exact(run):
    with checkpoint.Checkpointer(run["directory"]) as ckpt:
        assert ckpt.epochs() == [1, 2, 3, 4]
        assert ckpt.latest_epoch() == 4
        state, meta = ckpt.restore(run["template"])
        earlier, _ = ckpt.restore(run["template"], epoch=2)
        assert ckpt.restore_meta(3)["epoch"] == 3
    assert _same_state(state, run["states"][-1])
    assert _same_state(earlier, run["states"][1])
    assert isinstance(state.params, model.Params)
    assert meta["config"] == CONFIG and meta["epoch"] == 4
    assert "history" not in meta


def test_restores_onto_the_template_sharding(run):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    t = run["template"]
    placed = jax.device_put((t.params, t.opt_state, t.key), replicated)
    template = TrainState(placed[0], placed[1], 0, placed[2])
    abstract = TrainState(
        *jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), template[:2]),
        0,
        None,
    )
    with checkpoint.Checkpointer(run["directory"]) as ckpt:
        state, _ = ckpt.restore(template)
        from_abstract, _ = ckpt.restore(abstract)
    for leaf in jax.tree.leaves((state.params, state.opt_state, state.key)):
        assert leaf.sharding == replicated
    assert _same_state(state, run["states"][-1])
    assert _same_state(from_abstract, run["states"][-1])


def test_stateless_sgd_and_raw_uint32_keys(tmp_path):
    optimizer = optax.sgd(0.1)
    state = _train(optimizer, _params(2, 2), 1)[0]._replace(key=jax.random.PRNGKey(3))
    assert not jax.tree.leaves(state.opt_state)
    with checkpoint.Checkpointer(tmp_path, async_save=False) as ckpt:
        ckpt.save(state, {})
        restored, _ = ckpt.restore(state)
    assert _equal(restored.params, state.params)
    assert restored.opt_state == state.opt_state
    assert np.array_equal(restored.key, jax.random.PRNGKey(3))


def test_keeps_only_the_latest(tmp_path):
    states = _train(optax.sgd(0.1), _params(2, 2), 3)
    with checkpoint.Checkpointer(tmp_path, max_to_keep=2) as ckpt:
        for state in states:
            ckpt.save(state, {})
        ckpt.wait_until_finished()
        assert ckpt.epochs() == [2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3"]


def test_load_params_from_the_run_folder_or_the_checkpoint_folder(run):
    for path in (run["directory"].parent, run["directory"]):
        params, meta = checkpoint.load_params(path)
        assert _equal(params, run["states"][-1].params)
        assert meta["config"] == CONFIG and meta["epoch"] == 4


def test_refuses_to_save_diverged_parameters(tmp_path):
    state = _train(optax.sgd(0.1), _params(2, 2), 1)[0]
    nan = state._replace(params=state.params._replace(b=jnp.array([0.0, jnp.nan])))
    with (
        checkpoint.Checkpointer(tmp_path) as ckpt,
        pytest.raises(ValueError, match="NaN or inf"),
    ):
        ckpt.save(nan, {})


# --------------------------------------------------------- bad checkpoints


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "TensorStore" not in message
    assert "bound method" not in message and len(message) < 600
    return message


def test_missing_checkpoint(run, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load_params(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load_params(tmp_path / "nowhere")
    with checkpoint.Checkpointer(tmp_path / "empty") as ckpt:
        assert ckpt.latest_epoch() is None and ckpt.epochs() == []
        with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
            ckpt.restore(run["template"])
    with (
        checkpoint.Checkpointer(run["directory"]) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="no checkpoint of epoch 7"),
    ):
        ckpt.restore(run["template"], epoch=7)


def test_checkpoint_of_another_dataset(run):
    params = _params(7, 10)
    template = TrainState(params, optax.adam(0.1).init(params), 0, None)
    with (
        checkpoint.Checkpointer(run["directory"]) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match="another dataset") as err,
    ):
        ckpt.restore(template)
    assert "W (64, 10) float32" in _one_line(err)
    assert "W (7, 10) float32" in _one_line(err)


def test_checkpoint_of_another_optimizer(run):
    params = _params()
    for optimizer in (optax.sgd(0.1, momentum=0.9), optax.sgd(0.1)):
        template = TrainState(params, optimizer.init(params), 0, None)
        with (
            checkpoint.Checkpointer(run["directory"]) as ckpt,
            pytest.raises(checkpoint.CheckpointError, match="another optimizer") as err,
        ):
            ckpt.restore(template)
        _one_line(err)


def test_other_format_version(run, monkeypatch):
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 99)
    with (
        checkpoint.Checkpointer(run["directory"]) as ckpt,
        pytest.raises(checkpoint.CheckpointError, match=r"format 2, but .* format 99"),
    ):
        ckpt.restore(run["template"])


def _flip_middle(path: Path, count: int = 8) -> None:
    """Inverts ``count`` bytes in the middle of a file, keeping its size."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _largest_data_file(folder: Path) -> Path:
    data = [p for p in folder.rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(data, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("item", ["params", "opt_state"])
def test_flipped_bytes_in_array_data_are_detected(run, tmp_path, item):
    directory = _copy(run, tmp_path)
    _flip_middle(_largest_data_file(directory / "4" / item))
    with checkpoint.Checkpointer(directory) as ckpt:
        with pytest.raises(
            checkpoint.CorruptCheckpointError, match="is corrupt"
        ) as err:
            ckpt.restore(run["template"])
        assert "Delete that folder" in _one_line(err)
        earlier, _ = ckpt.restore(run["template"], epoch=3)  # the others are fine
    assert _same_state(earlier, run["states"][2])
    if item == "params":  # what `jaxsoft evaluate` and `predict` read
        with pytest.raises(checkpoint.CorruptCheckpointError, match="is corrupt"):
            checkpoint.load_params(directory)


def test_damaged_metadata_is_detected(run, tmp_path):
    directory = _copy(run, tmp_path)
    _flip_middle(directory / "4" / "meta" / "metadata")
    meta_file = directory / "3" / "meta" / "metadata"  # still valid JSON
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "epoch": 4}))
    with checkpoint.Checkpointer(directory) as ckpt:
        for epoch in (4, 3):
            with pytest.raises(checkpoint.CorruptCheckpointError, match="is corrupt"):
                ckpt.restore(run["template"], epoch=epoch)
        with pytest.raises(checkpoint.CorruptCheckpointError, match="checksum"):
            ckpt.restore_meta(3)


def _python(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


RESTORE = """
    import sys, optax, jax
    from jaxsoft import model
    from jaxsoft.experiment import checkpoint
    from jaxsoft.train.records import TrainState
    params = model.Params(W=jax.numpy.zeros((64, 10)), b=jax.numpy.zeros(10))
    template = TrainState(params, optax.adam(0.1).init(params), 0, None)
    try:
        with checkpoint.Checkpointer(sys.argv[1]) as ckpt:
            ckpt.restore(template)
    except checkpoint.CheckpointError as err:
        print(err, file=sys.stderr)
"""


@pytest.mark.slow
def test_truncated_files_give_one_clean_line_promptly(run, tmp_path):
    """Once, the error embedded TensorStore specs and ~60 lines followed it
    ("Exception ignored in <coroutine ...>", "Event loop is closed")."""
    folders = []
    for which in ("largest", "every"):
        folder = _copy(run, tmp_path / which)
        for item in ("params", "opt_state"):
            data = [p for p in (folder / "4" / item).rglob("*") if p.parent.name == "d"]
            if which == "largest":
                data = [max(data, key=lambda p: p.stat().st_size)]
            for path in data:
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        folders.append(folder)
    processes = [_python(RESTORE, str(f)) for f in folders for _ in range(3)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)  # a hang fails here
        assert process.returncode == 0, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert "is corrupt" in lines[0]
        for noise in ("Exception ignored", "Traceback", "TensorStore", "bound method"):
            assert noise not in stderr


# ---------------------------------------------------- crashes and interrupts


SAVE_THEN = """
    import os, signal, sys, time, optax, jax
    # Ctrl-C raises KeyboardInterrupt even when this test runs in a background
    # job, whose children start with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from jaxsoft import model
    from jaxsoft.experiment import checkpoint
    from jaxsoft.train.records import TrainState
    def state(epoch):
        w = jax.random.normal(jax.random.key(epoch), (1000, 1000))
        params = model.Params(W=w, b=jax.numpy.zeros(1000))
        opt_state = optax.adam(0.1).init(params)
        return TrainState(params, opt_state, epoch, jax.random.key(1))
    ckpt = checkpoint.Checkpointer(sys.argv[1])
    ckpt.save(state(1), {"epoch": 1})
    ckpt.wait_until_finished()
    if sys.argv[2] == "ctrl-c-in-with":
        with ckpt:
            ckpt.save(state(2), {"epoch": 2})
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
    ckpt.save(state(2), {"epoch": 2})  # returns before the write ends
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGINT)  # no close(): Python exits mid-save
    time.sleep(30)
"""


def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    process = _python(SAVE_THEN, str(tmp_path), "kill")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == -9, stderr
    with checkpoint.Checkpointer(tmp_path) as ckpt:
        assert ckpt.epochs() in ([1], [1, 2])  # 2 only if its write had ended
        for epoch in ckpt.epochs():
            params, meta = ckpt.restore_params(epoch)
            assert meta["config"] == {"epoch": epoch}
            w = jax.random.normal(jax.random.key(epoch), (1000, 1000))
            assert np.array_equal(params.W, w)
        if ckpt.epochs() == [1]:  # a resumed run saves epoch 2 over the debris
            ckpt.save(_train(optax.sgd(0.1), _params(2, 2), 2)[1], {"epoch": 2})
    assert checkpoint.load_params(tmp_path)[1]["config"] == {"epoch": 2}


@pytest.mark.parametrize("how", ["ctrl-c-in-with", "ctrl-c-without-close"])
def test_ctrl_c_during_an_async_save_finishes_it_quietly(tmp_path, how):
    """Once, it printed "cannot schedule new futures after shutdown"."""
    process = _python(SAVE_THEN, str(tmp_path), how)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (-2, 1, 130)  # Python re-raises the SIGINT
    assert stderr.strip().splitlines()[-1] == "KeyboardInterrupt", stderr
    for noise in ("cannot schedule", "RuntimeError", "Exception ignored", "ERROR"):
        assert noise not in stderr
    with checkpoint.Checkpointer(tmp_path) as ckpt:
        assert ckpt.epochs() == [1, 2]
        assert ckpt.restore_meta()["config"] == {"epoch": 2}


def test_close_reports_a_failed_save_but_never_hides_another_error(tmp_path):
    def fail() -> None:
        raise OSError("disk full")

    ckpt = checkpoint.Checkpointer(tmp_path)
    ckpt._manager.wait_until_finished = fail  # as orbax does after a failed write
    with pytest.raises(checkpoint.CheckpointError, match="OSError: disk full"):
        ckpt.close()
    ckpt.close()  # closing twice is fine

    ckpt = checkpoint.Checkpointer(tmp_path)
    ckpt._manager.wait_until_finished = fail
    with pytest.raises(KeyboardInterrupt), ckpt:
        raise KeyboardInterrupt
