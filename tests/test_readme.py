"""The README's claims that a command can check: its Python example runs, and
its two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["l"].shape == (2,) and namespace["g"].shape == (2, 3)


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command():
    assert "pip install -e . && jaxsoft train" in README
    test_command = (
        'pip install -e ".[test]" && ruff check . && ruff format --check . && pytest'
    )
    assert test_command in README
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_experiment_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    (example,) = [b for b in blocks if "train_and_evaluate" in b]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    summary = namespace["summary"]
    assert summary["epochs"] == 10 and summary["test"]["accuracy"] > 0.9
    assert (tmp_path / "runs" / "demo" / "summary.json").is_file()
