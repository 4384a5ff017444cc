"""Interrupted ``jaxsoft train`` runs, in subprocesses with real signals.

Each run is stopped (Ctrl-C, SIGTERM, twice, kill -9), then resumed with
``--resume``; the final parameters must equal those of one uninterrupted run
bit for bit, and stderr must hold jaxsoft's lines only (a two-process run
killed and resumed: tests/test_multiprocess.py). The workarounds of
`jaxsoft.experiment.signals` are shown preventing their failures at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

import jaxsoft.data
from jaxsoft import cli
from jaxsoft.experiment import checkpoint

EPOCHS = 100  # about 10 ms each on digits: signals land well before the end
ARGS = ["--epochs", str(EPOCHS), "--batch-size", "32"]
NO_SAVES = ["--checkpoint-every", "1000"]  # only after the last epoch


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The runs' environment: one CPU device, and the suite's compilation
    cache (tests/conftest.py), so the module's runs, which compile the same
    programs, compile them once."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
    environment.pop("XLA_FLAGS", None)
    return environment


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tfds")
    jaxsoft.data.load("digits", data_dir=path)  # prepared once, offline
    return path


def _command(data_dir: Path, out: Path, *extra: str) -> list[str]:
    train = [sys.executable, "-m", "jaxsoft", "train", "--data-dir", str(data_dir)]
    return [*train, "--out", str(out), *ARGS, *extra]


@pytest.fixture(scope="module", autouse=True)
def _sigint_not_ignored():
    """The runs must see Ctrl-C. A child inherits an ignored SIGINT (pytest
    in a background job starts with it ignored), but a handled one is reset
    to the default when the child starts. (A ``preexec_fn`` could reset it in
    the child instead, but running Python between fork and exec can deadlock
    once JAX's threads run here, and the resumes below run jaxsoft here.)"""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(process: subprocess.Popen, stream: str, text: str) -> None:
    for line in getattr(process, stream):
        if text in line:
            return
    raise AssertionError(f"no line with {text!r}: {process.communicate()}")


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=240)
    return process.returncode, out, err


def _jaxsoft_lines(stderr: str) -> list[str]:
    """stderr's lines, which must all be jaxsoft's (no traceback, no noise)."""
    lines = stderr.strip().splitlines()
    assert lines and all(line.startswith("jaxsoft: ") for line in lines), stderr
    return lines


def _params(out: Path) -> tuple[np.ndarray, np.ndarray, int]:
    params, meta = checkpoint.load_params(out)
    return np.asarray(params.W), np.asarray(params.b), meta["epoch"]


def _complete(out: Path) -> list[int]:
    folder = out / "checkpoints"
    return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())


def _resume(command: list[str], capfd: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``command`` with ``--resume``, run in this process (`jaxsoft.cli.main`,
    what ``python -m jaxsoft`` calls; a new process would add only its start):
    (exit code, stdout, stderr), both streams read at the file descriptors, so
    that anything printed below Python is seen too."""
    capfd.readouterr()
    code = cli.main([*command[3:], "--resume"])
    out, err = capfd.readouterr()
    return code, out, err


def _resume_and_compare(
    command: list[str], capfd: pytest.CaptureFixture, out: Path, reference: tuple
) -> str:
    """Resumes the run in ``out``; its final parameters must be the
    reference's, bitwise, and its history complete. Returns its stdout."""
    code, stdout, stderr = _resume(command, capfd)
    assert code == 0, stderr
    assert all(line.startswith("jaxsoft: ") for line in stderr.splitlines()), stderr
    w, b, epoch = _params(out)
    assert epoch == EPOCHS
    np.testing.assert_array_equal(w, reference[0])
    np.testing.assert_array_equal(b, reference[1])
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, EPOCHS + 1))
    return stdout


@pytest.fixture(scope="module")
def reference(data_dir, env, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("reference")
    command = _command(data_dir, out, *NO_SAVES, "--overwrite")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return _params(out)


SAVED = re.compile(
    r"^jaxsoft: interrupted; the checkpoint of epoch (\d+) is saved in \S+: "
    r"`jaxsoft train .*--resume` continues from it\.$"
)


def _stop(
    process: subprocess.Popen, signum: int, out: Path
) -> tuple[int, list[str], int]:
    """Sends ``signum`` once epoch 2 is done; (exit code, stderr's lines, the
    epoch saved) after checking the stop's two lines."""
    _wait_for_line(process, "stdout", "epoch    2 ")
    process.send_signal(signum)
    code, _, stderr = _finish(process)
    name = signal.Signals(signum).name
    notice, last = _jaxsoft_lines(stderr)
    assert notice.startswith(f"jaxsoft: {name}: stopping after this epoch"), stderr
    epoch = int(SAVED.match(last).group(1))
    assert 2 <= epoch < EPOCHS
    assert _complete(out)[-1] == epoch
    return code, [notice, last], epoch


@pytest.mark.slow
def test_ctrl_c_before_the_first_checkpoint_saves_the_epoch(
    data_dir, env, reference, tmp_path, capfd
):
    """The run finishes its epoch, saves it, exits 130; resume is exact."""
    out = tmp_path / "run"
    command = _command(data_dir, out, *NO_SAVES)
    code, _, epoch = _stop(_start(command, env), signal.SIGINT, out)
    assert code == 130
    assert _complete(out) == [epoch]
    stdout = _resume_and_compare(command, capfd, out, reference)
    assert f"resuming after epoch {epoch}" in stdout


@pytest.mark.slow
def test_sigterm_during_saves_then_a_damaged_newest_checkpoint_falls_back(
    data_dir, env, reference, tmp_path, capfd
):
    """With --checkpoint-every 1 a save is always in flight: the stop waits
    for it. Then the newest checkpoint is damaged: resume takes the one
    before, says so, sets the damaged one aside, and still ends exactly."""
    out = tmp_path / "run"
    code, _, epoch = _stop(
        _start(_command(data_dir, out, "--checkpoint-every", "1"), env),
        signal.SIGTERM,
        out,
    )
    assert code == 130
    before = _complete(out)[-2]
    assert before == epoch - 1
    saved = [p for p in (out / "checkpoints" / str(epoch)).rglob("*") if p.is_file()]
    victim = max(saved, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[::-1])  # same size, scrambled
    code, stdout, stderr = _resume(_command(data_dir, out, *NO_SAVES), capfd)
    assert code == 0, stderr
    (line,) = _jaxsoft_lines(stderr)
    assert f"the checkpoint of epoch {epoch} is damaged" in line
    assert f"resuming from epoch {before}, the newest intact one" in line
    assert (out / "damaged-checkpoints" / str(epoch)).is_dir()
    assert f"resuming after epoch {before}" in stdout
    w, b, last = _params(out)
    assert last == EPOCHS
    np.testing.assert_array_equal(w, reference[0])
    np.testing.assert_array_equal(b, reference[1])


# The next runs signal themselves from inside the epoch loop (the same real
# signals, at a known point) through hooks that wrap jaxsoft's own functions;
# the rest is ``python -m jaxsoft train``.
HOOKED = """
    import os, signal, sys
    from jaxsoft import cli
    from jaxsoft.experiment import checkpoint, training_run
    how, then = sys.argv[1], getattr(signal, sys.argv[2])
    line, save = training_run._metrics_line, checkpoint.Checkpointer.save
    def metrics_line(record):
        if record.epoch == 3 and how == "twice":  # Ctrl-C in epoch 3
            os.kill(os.getpid(), signal.SIGINT)
        return line(record)
    def save_then_signal(self, state, config):
        save(self, state, config)  # returns while orbax writes the arrays
        if state.epoch == 3 and how != "plots":  # the stop's save, or the first
            os.kill(os.getpid(), then)
    training_run._metrics_line = metrics_line
    checkpoint.Checkpointer.save = save_then_signal
    if how == "plots":  # Ctrl-C while the first plot is drawn, after training
        from jaxsoft.experiment import plots
        plot = plots.plot_history
        def plot_history(*args, **kwargs):
            os.kill(os.getpid(), then)
            return plot(*args, **kwargs)
        plots.plot_history = plot_history
    sys.argv[0:3] = ["jaxsoft"]
    cli.run()
"""


def _hooked(how: str, signum: str, command: list[str]) -> list[str]:
    script = textwrap.dedent(HOOKED)
    return [sys.executable, "-c", script, how, signum, *command[3:]]


@pytest.mark.slow
def test_a_second_ctrl_c_quits_at_once_keeping_the_previous_checkpoint(
    data_dir, env, reference, tmp_path, capfd
):
    out = tmp_path / "run"
    command = _command(data_dir, out, "--checkpoint-every", "2")
    code, _, stderr = _finish(_start(_hooked("twice", "SIGINT", command), env))
    assert code == 130
    notice, last = _jaxsoft_lines(stderr)
    assert notice.startswith("jaxsoft: SIGINT: stopping after this epoch")
    assert last.startswith(
        "jaxsoft: SIGINT again, quit at once; the checkpoint of epoch 2 is saved"
    )
    assert _complete(out) == [2]  # epoch 3's save was cut short
    stdout = _resume_and_compare(command, capfd, out, reference)
    assert "resuming after epoch 2" in stdout


@pytest.mark.slow
def test_kill_9_during_the_first_save_then_resume_starts_again(
    data_dir, env, reference, tmp_path, capfd
):
    """Only orbax's temporary folder is left: resume starts from epoch 1 with
    the run's saved settings (config.json) and says so; the dead run's lock
    file is no obstacle."""
    out = tmp_path / "run"
    command = _command(data_dir, out, "--checkpoint-every", "3")
    code, _, _ = _finish(_start(_hooked("once", "SIGKILL", command), env))
    assert code == -signal.SIGKILL
    assert _complete(out) == []
    left = [p.name for p in (out / "checkpoints").iterdir()]
    assert len(left) == 1 and left[0].startswith("3.orbax-checkpoint-tmp"), left
    assert (out / ".lock").exists()
    stdout = _resume_and_compare([*command[:-2], *NO_SAVES], capfd, out, reference)
    notice = [line for line in stdout.splitlines() if "no complete checkpoint" in line]
    assert len(notice) == 1, stdout
    assert "starting the run again from epoch 1 with its saved settings" in notice[0]


@pytest.mark.slow
def test_ctrl_c_while_plotting_after_training_keeps_the_run(
    data_dir, env, tmp_path, capfd
):
    out = tmp_path / "run"
    command = _command(data_dir, out, "--epochs", "5")
    code, _, stderr = _finish(_start(_hooked("plots", "SIGINT", command), env))
    assert code == 130
    (line,) = _jaxsoft_lines(stderr)
    assert SAVED.match(line) and int(SAVED.match(line).group(1)) == 5
    code, stdout, stderr = _resume(command, capfd)
    assert code == 0, stderr
    assert "done: 5 epochs" in stdout
    assert (out / "summary.json").is_file()


# ---------------------------------------------------- jaxsoft.experiment.signals

UNFINISHED_SAVE = """
    import sys, jax, optax
    from jaxsoft import model
    from jaxsoft.experiment import checkpoint, signals
    from jaxsoft.train.records import TrainState
    if sys.argv[2] == "without":
        signals.finish_at_thread_shutdown = lambda callback: None
    w = jax.random.normal(jax.random.key(0), (1000, 1000))
    params = model.Params(W=w, b=jax.numpy.zeros(1000))
    state = TrainState(params, optax.adam(0.1).init(params), 1, jax.random.key(1))
    checkpoint.Checkpointer(sys.argv[1]).save(state, {})  # then Python exits
"""


def test_finish_at_thread_shutdown_keeps_a_save_pending_at_exit(env, tmp_path):
    """Without it, Python's exit shuts the thread pools down under orbax's
    write: tracebacks, and the checkpoint is lost."""
    script = textwrap.dedent(UNFINISHED_SAVE)
    for how in ("with", "without"):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / how), how],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0
        if how == "with":
            assert done.stderr == ""
            assert _complete(tmp_path) == []  # (tmp_path itself holds none)
            assert sorted(p.name for p in (tmp_path / how).iterdir()) == ["1"]
        else:
            assert "cannot schedule new futures after" in done.stderr
            assert not (tmp_path / how / "1").exists()


def test_draining_event_loops_finish_pending_tasks_before_closing():
    """orbax closes its loop when one read fails; the other reads, still
    pending, were destroyed and printed tracebacks (intermittently:
    "Event loop is closed"). Under the policy they finish first."""
    import asyncio

    from jaxsoft.experiment import signals

    def close_with_a_pending_task() -> list[str]:
        finished = []

        async def slow() -> None:
            await asyncio.sleep(0.01)
            finished.append("slow")

        loop = asyncio.new_event_loop()
        task = loop.create_task(slow())
        loop.close()
        assert task.done() == bool(finished)
        return finished

    with signals.draining_event_loops():
        assert close_with_a_pending_task() == ["slow"]
    before = asyncio.get_event_loop_policy()
    assert close_with_a_pending_task() == []  # the default: destroyed pending
    assert asyncio.get_event_loop_policy() is before


TEARDOWN = """
    import atexit, sys
    from jaxsoft.experiment import signals
    class Module:
        def __del__(self):
            print("teardown", flush=True)
    kept = Module()  # a module global: finalised by the interpreter's teardown
    atexit.register(print, "exit handler", flush=True)
    signals.quick_exit(3) if sys.argv[1] == "quick" else sys.exit(3)
"""


def test_quick_exit_runs_the_exit_handlers_but_skips_the_teardown(env):
    """The teardown it skips (every module, XLA's runtime) is what took
    about 0.4 s at the console script's end; the exit code and the exit
    handlers stay."""
    script = textwrap.dedent(TEARDOWN)
    for how, printed in (("quick", "exit handler\n"), ("usual", None)):
        done = subprocess.run(
            [sys.executable, "-c", script, how],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3, done.stderr
        if printed is not None:
            assert done.stdout == printed
        else:
            assert done.stdout.splitlines() == ["exit handler", "teardown"]


def test_a_ctrl_c_swallowed_as_unraisable_is_raised_again():
    """A KeyboardInterrupt raised in a garbage-collector callback (JAX has
    one) is only printed ("Exception ignored in"), and the command went on;
    within `command_signals` it interrupts the code that runs next."""
    from jaxsoft.experiment import signals

    class RaisesWhenCollected:
        def __del__(self) -> None:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), signals.command_signals(str):
            RaisesWhenCollected()  # collected at once: unraisable
            time.sleep(60)  # the signal's handler interrupts it
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


def test_stop_requests_restore_the_previous_handlers():
    """Library code called from a notebook must not keep its handlers."""
    from jaxsoft.experiment import signals

    def mine(signum, frame):
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGINT, mine)
    try:
        with signals.StopRequests() as stop:
            assert signal.getsignal(signal.SIGINT) == stop._handle
            signal.raise_signal(signal.SIGTERM)  # only recorded
            assert stop.requested == "SIGTERM" and stop.agreed()
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
