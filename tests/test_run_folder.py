"""Tests of jaxsoft.experiment.run_folder: the run lock and the history file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from jaxsoft.experiment.run_folder import RunFolder, RunFolderError, RunLockedError
from jaxsoft.train.records import EpochRecord


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, 1.0 / epoch, 0.5, 0.9 / epoch, 0.6, 0.01)


def _hold_lock(path: Path) -> subprocess.Popen:
    """A subprocess that takes the run folder's lock and sleeps."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from jaxsoft.experiment.run_folder import RunFolder
        with RunFolder({str(path)!r}).lock():
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        expected = rf"in use by .* \(pid {holder.pid}\)"
        with pytest.raises(RunLockedError, match=expected), RunFolder(run).lock():
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (run / ".lock").read_text().strip() == str(holder.pid)  # stale pid
    with RunFolder(run).lock():
        assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_lock_leaves_no_empty_folder_behind(tmp_path):
    run = tmp_path / "new" / "run"
    with RunFolder(run).lock():
        assert run.is_dir()
    assert not run.exists()
    with RunFolder(run).lock():
        (run / "metrics.jsonl").write_text("")
    assert (run / "metrics.jsonl").exists()


def test_unusable_folders_are_named(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder(a_file).check_usable()
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder(a_file / "run").check_usable()


def test_history_round_trip_ignores_later_epochs_and_a_torn_line(tmp_path):
    folder = RunFolder(tmp_path)
    records = [_record(e) for e in (1, 2, 3)]
    folder.write_history(records[:2])
    folder.append_record(records[2])
    assert folder.read_history(3) == records
    assert folder.read_history(2) == records[:2]  # epochs after a checkpoint
    with folder.metrics.open("a") as f:
        f.write(json.dumps(_record(4).to_dict())[:20])  # killed mid-write
    assert folder.read_history(10) == records
    assert RunFolder(tmp_path / "none").read_history(5) == []


def test_clear_removes_only_the_runs_outputs(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    for name in ("metrics.jsonl", "summary.json", "curves.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    folder.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
