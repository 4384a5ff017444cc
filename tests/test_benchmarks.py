"""Smoke tests of the benchmark scripts: they run and print their tables.

Tiny sizes and no timed assertions (the figures depend on the machine).
``benchmarks/peers.py`` runs on synthetic MNIST-shaped data, so neither the
MNIST files nor TFDS preparation are needed; ``benchmarks/bench_train.py``
has no small option (it always uses 60,000 rows) and is not run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _run(script: str, *args: str) -> str:
    """Runs a benchmark script; returns its stdout (fails with its stderr)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_peers_small_prints_the_table_and_the_ratios() -> None:
    stdout = _run(
        "peers.py",
        "--small",
        "--dataset",
        "synthetic",
        "--train-rows",
        "2000",
        "--test-rows",
        "500",
        "--max-epochs",
        "2",
        "--contenders",
        "jaxsoft",
        "tutorial-jax",
    )
    lines = stdout.strip().splitlines()
    header = next(line for line in lines if line.startswith("| contender"))
    assert "time to 85.0% test accuracy" in header and "s/epoch" in header
    rows = {line.split("|")[1].strip(): line for line in lines if line[:2] == "| "}
    assert set(rows) == {"contender", "jaxsoft", "tutorial-jax"}
    for name in ("jaxsoft", "tutorial-jax"):
        assert "compile" in rows[name] and "failed" not in rows[name], rows[name]
    assert lines[-1].startswith("ratios, peer time / jaxsoft time:")
    assert "vs tutorial JAX" in lines[-1] and "goal >= 1.5x" in lines[-1]


def test_peers_skips_a_missing_peer_with_how_to_install(tmp_path: Path) -> None:
    # A sitecustomize that hides torch, as if it were not installed.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['torch'] = None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "peers.py"),
            "--small",
            "--dataset",
            "synthetic",
            "--contenders",
            "pytorch",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    row = next(line for line in out.stdout.splitlines() if "| pytorch" in line)
    assert "skipped, not installed: pip install torch==2.13.0" in row


@pytest.mark.slow
def test_bench_scaling_tiny() -> None:
    stdout = _run(
        "bench_scaling.py", "--rows", "2000", "--epochs", "1", "--devices", "4"
    )
    assert "s/epoch" in stdout and "full-batch grad s" in stdout
    rows = [line.split()[:2] for line in stdout.splitlines()]
    # One process with 1 and with 4 devices, then 2 processes of 1 device each.
    assert [r for r in rows if r in (["1", "1"], ["4", "1"], ["2", "2"])] == [
        ["1", "1"],
        ["4", "1"],
        ["2", "2"],
    ]
    assert ["2", "1"] not in rows and ["8", "1"] not in rows


@pytest.mark.slow
def test_bench_startup_once() -> None:
    stdout = _run("bench_startup.py", "--repeats", "1")
    lines = stdout.strip().splitlines()
    figures = {line[:36].strip(): line[36:] for line in lines[1:-1]}
    assert set(figures) == {
        "bare import jax + one op",
        "jaxsoft train, cold compile cache",
        "jaxsoft train, warm compile cache",
    }
    assert all(float(value.split()[0]) > 0 for value in figures.values())
    assert lines[-1].startswith("jaxsoft train / bare: cold ")
    assert lines[-1].endswith("(goal <= 3x)")


@pytest.mark.slow
def test_bench_practitioner_one_case() -> None:
    """Each library in its own new processes: the iris line and the means."""
    stdout = _run("bench_practitioner.py", "--cases", "iris")
    lines = stdout.strip().splitlines()
    (row,) = [line for line in lines if line.startswith("iris ")]
    cells = row.split()
    assert len(cells) == 14 and all(c.endswith("x") for c in cells[6:9]), row
    assert float(cells[9]) > 0.9 and float(cells[10]) > 0.9  # held-out accuracy
    assert abs(float(cells[13])) < 1e-3  # jaxsoft's objective is scikit-learn's
    assert lines[-1].startswith("geometric mean (scikit-learn's time / jaxsoft's)")
