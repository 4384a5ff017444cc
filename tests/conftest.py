"""Shared fixtures: where the offline datasets of ``shared/`` live; the
hypothesis profile.

``JAXSOFT_SHARED_DIR`` overrides the shared folder (default: ``../shared``
next to the repository root). Tests that need a dataset from it skip with the
reason when it is absent.

Property tests run under the "jaxsoft" hypothesis profile: no deadline (the
first example of a shape pays for XLA compilation) and few examples, to keep
the suite fast. ``HYPOTHESIS_PROFILE=thorough`` runs many more.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("jaxsoft", deadline=None, max_examples=60)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jaxsoft"))

# The CLI keeps compiled programs in a disk cache. The suite's processes (the
# CLI's subprocesses above all) share one, in a folder of their own that is
# removed at the end, so none is left in the home folder and each program is
# compiled once per run of the suite. JAXSOFT_TEST_CACHE=0 turns it off, so
# that every process compiles from scratch.
if os.environ.get("JAXSOFT_TEST_CACHE", "1") == "0":
    os.environ["JAXSOFT_CACHE_DIR"] = ""
else:
    _CACHE = tempfile.mkdtemp(prefix="jaxsoft-test-xla-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ["JAXSOFT_CACHE_DIR"] = _CACHE

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_python(
    *args: str, env: dict[str, str | None] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python *args`` in a fresh process that imports this checkout's
    jaxsoft; ``env`` adds variables to the environment (None removes one).
    Returns its exit code and text output."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for name, value in (env or {}).items():
        environment.pop(name, None)
        if value is not None:
            environment[name] = value
    return subprocess.run(
        [sys.executable, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder ($JAXSOFT_SHARED_DIR, default <repo>/../shared)."""
    path = Path(os.environ.get("JAXSOFT_SHARED_DIR", REPO_ROOT.parent / "shared"))
    if not path.is_dir():
        pytest.skip(f"shared folder {path} is absent (set JAXSOFT_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def mnist_dir(shared_dir: Path) -> Path:
    """The folder with the four original MNIST files (shared/data/mnist)."""
    path = shared_dir / "data" / "mnist"
    missing = [f for f in MNIST_FILES if not (path / f).is_file()]
    if missing:
        pytest.skip(f"MNIST files absent from {path}: {', '.join(missing)}")
    return path
