"""Several processes on localhost (`jax.distributed` over gloo), as a user runs them.

Each process is a `python -m jaxsoft train` subprocess with its own
``--process-id``; the runs are compared with a one-process run of the same
command. Bad launches must fail within seconds with one clear line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import final_params, free_port
from conftest import REPO_ROOT

import jaxsoft.data
from jaxsoft import cli

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
ENV.pop("XLA_FLAGS", None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tfds")
    jaxsoft.data.load("digits", data_dir=path)  # prepared once, offline
    return path


def _train(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxsoft", "train", *args]


_PIPES = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


def _launch(n: int, args: list[str], port: int, **extra: str) -> list[subprocess.Popen]:
    flags = ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes"]
    return [
        subprocess.Popen(
            _train(*args, *flags, extra.get(str(i), str(n)), "--process-id", str(i)),
            env=ENV,
            **_PIPES,
        )
        for i in range(n)
    ]


def _finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple]:
    return [(p.wait(timeout), *p.communicate()) for p in processes]


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_in_two_processes_or_in_one(
    data_dir, tmp_path
):
    """Killed (kill -9) after its epoch-2 checkpoint, a 2-process run resumed
    in 2 processes, and a copy of it resumed in 1, both end where an
    uninterrupted 1-process run does (within 1e-5: sums over two devices
    differ from sums over one in their last bits)."""
    args = ["--data-dir", str(data_dir), "--epochs", "8", "--checkpoint-every", "1"]
    killed, copy, reference = tmp_path / "killed", tmp_path / "copy", tmp_path / "ref"
    processes = _launch(2, [*args, "--out", str(killed)], free_port())
    try:
        deadline = time.monotonic() + 180
        while not (killed / "checkpoints" / "2").is_dir():
            assert all(p.poll() is None for p in processes), _finish(processes)
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.05)
        for p in processes:
            p.send_signal(signal.SIGKILL)
    finally:
        _finish(processes, timeout=30)
    assert all(p.returncode == -signal.SIGKILL for p in processes)
    done = max(
        int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert done < 8
    shutil.copytree(killed, copy)

    # The three runs at once: two processes resume, one resumes the copy, one
    # runs uninterrupted.
    two = _launch(2, [*args, "--out", str(killed), "--resume"], free_port())
    one = subprocess.Popen(
        _train(*args, "--out", str(copy), "--resume"), env=ENV, **_PIPES
    )
    single = subprocess.Popen(_train(*args, "--out", str(reference)), env=ENV, **_PIPES)
    resumed, (in_one, uninterrupted) = _finish(two), _finish([one, single])
    for code, _, stderr in [*resumed, in_one, uninterrupted]:
        assert code == 0, stderr[-2000:]
    assert f"resuming after epoch {done}" in resumed[0][1]
    assert f"resuming after epoch {done}" in in_one[1]
    assert "2 cpu device(s) in 2 process(es)" in resumed[0][1]
    # Process 1 prints nothing of its own (gloo's C++ greeting aside).
    assert [x for x in resumed[1][1].splitlines() if not x.startswith("[Gloo]")] == []
    w_ref, b_ref, _ = final_params(reference)
    test1 = json.loads((reference / "summary.json").read_text())["test"]
    for out in (killed, copy):
        w, b, meta = final_params(out)
        assert meta["epoch"] == 8
        np.testing.assert_allclose(w, w_ref, atol=1e-5, rtol=0)
        np.testing.assert_allclose(b, b_ref, atol=1e-5, rtol=0)
        test2 = json.loads((out / "summary.json").read_text())["test"]
        assert test2["accuracy"] == test1["accuracy"]
        assert test2["loss"] == pytest.approx(test1["loss"], rel=1e-5)
        epochs = [
            json.loads(line)["epoch"]
            for line in (out / "metrics.jsonl").read_text().splitlines()
        ]
        assert epochs == list(range(1, 9))


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("jaxsoft:")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "Check failure" not in stderr
    return lines[0]


@pytest.mark.slow
def test_bad_launches_fail_fast_with_one_line(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--epochs", "2", "--out", str(tmp_path / "r")]
    port = free_port()
    out_of_range = subprocess.run(
        _train(
            *args,
            "--coordinator-address",
            f"127.0.0.1:{port}",
            *["--num-processes", "2", "--process-id", "2"],
        ),
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert out_of_range.returncode == 2
    assert "`--process-id 2` is out of range" in _one_error_line(out_of_range.stderr)

    no_coordinator = subprocess.run(
        _train(
            *args,
            "--coordinator-address",
            f"127.0.0.1:{port}",
            *["--num-processes", "2", "--process-id", "1", "--launch-timeout", "2"],
        ),
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert no_coordinator.returncode == 2
    assert "no coordinator answered" in _one_error_line(no_coordinator.stderr)

    mismatched = _finish(_launch(2, args, free_port(), **{"1": "3"}), timeout=60)
    for code, _, stderr in mismatched:
        assert code == 2
        assert "different `--num-processes`" in _one_error_line(stderr)


def _probe_split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(3, 5)) * 1.5
    y = rng.integers(0, 3, size=n).astype(np.int32)
    return (centres[y] + rng.normal(size=(n, 5))).astype(np.float32), y


@pytest.mark.slow
def test_two_processes_probe_like_one(tmp_path):
    (x, y), (xv, yv) = _probe_split(0, 120), _probe_split(1, 60)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "val.npz", x=xv, y=yv)
    l2 = ["--l2", "1e-3", "1e-2", "1e-1"]
    val = ["--val", str(tmp_path / "val.npz"), *l2, "--quiet"]
    # One process: this one (what `python -m jaxsoft` runs).
    one = ["probe", "--train", str(tmp_path / "train.npz"), *val]
    assert cli.main([*one, "--out", str(tmp_path / "one")]) == 0
    a = json.loads((tmp_path / "one" / "heads.json").read_text())
    # Two processes, on the .npz (read whole) and on memory-mapped .npy files
    # (each process reads its own rows), equal the one-process run.
    for name, train in (("npz", ["train.npz"]), ("npy", ["x.npy", "y.npy"])):
        args = ["probe", "--train", *(str(tmp_path / f) for f in train), *val]
        port = free_port()
        flags = ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes"]
        two = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jaxsoft",
                    *args,
                    "--out",
                    str(tmp_path / f"two-{name}"),
                    *flags,
                    "2",
                    "--process-id",
                    str(i),
                ],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        for code, _, err in _finish(two):
            assert code == 0, err
        b = json.loads((tmp_path / f"two-{name}" / "heads.json").read_text())
        assert a["best"] == b["best"] and a["l2"] == b["l2"]
        for key in ("objective", "val_accuracy", "train_accuracy"):
            np.testing.assert_allclose(
                [h[key] for h in b["heads"]],
                [h[key] for h in a["heads"]],
                rtol=1e-5,
                atol=1e-6,
            )
