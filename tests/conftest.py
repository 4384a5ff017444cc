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
import contextlib
import json
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

# The CLI and the estimators keep compiled programs in a disk cache. The
# suite's processes (the CLI's subprocesses above all) share one, kept between
# runs of the suite in the user's cache folder ($XDG_CACHE_HOME or ~/.cache,
# then jaxsoft/test-suite), so each program is compiled once, and a later run
# of the suite loads what it compiled before. That is safe: an executable's key
# holds the digest of jaxsoft's source, and JAX's own entries are keyed by the
# program. JAXSOFT_TEST_CACHE=fresh uses a new folder, removed at the end (a
# first run's cost); JAXSOFT_TEST_CACHE=0 turns the cache off, so that every
# process compiles from scratch. The folder is chosen by the process that
# loads this file first (pytest itself, or xdist's controller); the xdist
# workers it starts inherit it (_SUITE_CACHE), so they and their subprocesses
# share one cache.
_SUITE_CACHE = "JAXSOFT_TEST_SUITE_CACHE"
_SUITE_CACHE_BOUND = 2 << 30  # bytes; a first run of the suite writes about 130 MB


def _folder_bytes(folder: str) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


# The subprocesses (the CLI's runs, the 8-device scripts, the benchmarks'
# children) keep their programs through JAX's own variables, which jaxsoft's
# default cache leaves as they are, in <suite>/subprocesses: JAX's unbounded
# cache, as in the test processes (below). A test of the default cache itself
# removes them (and sets JAXSOFT_CACHE_DIR to a folder of its own).
_JAX_CACHE_VARIABLES = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
)


def jax_cache_environment(folder: str) -> dict[str, str]:
    """The variables that make a new process keep every program in ``folder``."""
    return dict(zip(_JAX_CACHE_VARIABLES, (folder, "0", "0"), strict=True))


_MODE = os.environ.get("JAXSOFT_TEST_CACHE", "keep")
if _MODE == "0":
    os.environ["JAXSOFT_CACHE_DIR"] = ""
    for _name in _JAX_CACHE_VARIABLES:
        os.environ.pop(_name, None)
elif os.environ.get("PYTEST_XDIST_WORKER") and os.path.isdir(
    os.environ.get(_SUITE_CACHE, "")
):
    os.environ["JAXSOFT_CACHE_DIR"] = os.environ[_SUITE_CACHE]
else:
    if _MODE == "fresh":
        _CACHE = tempfile.mkdtemp(prefix="jaxsoft-test-xla-")
        atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    else:
        _home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        _CACHE = os.path.join(_home, "jaxsoft", "test-suite")
        if _folder_bytes(_CACHE) > _SUITE_CACHE_BOUND:  # programs of old code
            shutil.rmtree(_CACHE, ignore_errors=True)
        os.makedirs(_CACHE, exist_ok=True)
    os.environ["JAXSOFT_CACHE_DIR"] = os.environ[_SUITE_CACHE] = _CACHE
if _MODE != "0":
    os.environ.update(
        jax_cache_environment(os.path.join(os.environ[_SUITE_CACHE], "subprocesses"))
    )

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def x64():
    """JAX's x64 mode for the test (float64 arrays stay float64)."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session", autouse=True)
def _jax_disk_cache_without_a_bound() -> None:
    """The processes that run the tests keep every program they compile in the
    suite's cache, so a later run of the suite loads them (a second run of
    test_losses, test_metrics and test_model: 30 s of CPU against 72 s).

    The cache has no bound there (``max_bytes=-1``): with one, JAX's LRU
    eviction reads every entry of the folder before each write (0.1-0.3 s per
    write once thousands of eager and property-test programs are in it). The
    folder is emptied instead when it outgrows `_SUITE_CACHE_BOUND` (above).
    The estimators and the CLI leave a cache set up this way as it is; the
    subprocesses have their own beside it (``subprocesses``, above)."""
    folder = os.environ.get("JAXSOFT_CACHE_DIR")
    if not folder:
        import jax

        jax.config.update("jax_enable_compilation_cache", False)
        return
    from jaxsoft.compile_cache import enable_compilation_cache

    # A folder of its own: the subprocesses' bounded cache evicts by access
    # times that an unbounded cache does not write.
    enable_compilation_cache(os.path.join(folder, "in-process"), max_bytes=-1)


# How xdist shares the tests out (``--dist loadfile --no-loadscope-reorder``,
# pyproject.toml): a file's tests go to one worker, as one unit, so its module
# fixtures and the programs its tests compile are made once. The longest
# files start first, so that no long file is left to run alone at the end:
# longest by their times in the suite's last run (kept in the suite's cache
# folder), else the files holding a test marked ``slow`` first (xdist's own
# order, by number of tests, put them last).
# (``--dist loadgroup`` cannot be used: xdist 3.8 names a test's group in its
# ``_nodeid``, which pytest 9 no longer reads, so groups are ignored.)
_FILE_SECONDS = "file-seconds.json"


def _file_seconds_path() -> Path | None:
    folder = os.environ.get(_SUITE_CACHE) if _MODE != "0" else None
    return Path(folder) / _FILE_SECONDS if folder else None


def _last_file_seconds() -> dict[str, float]:
    path = _file_seconds_path()
    try:
        seconds = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}
    return seconds if isinstance(seconds, dict) else {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    last = _last_file_seconds()

    def order(item) -> tuple:
        seconds = last.get(item.nodeid.split("::")[0])
        if isinstance(seconds, (int, float)):
            return (0, -seconds)
        return (1, item.path not in slow)  # a file new since the last run

    items.sort(key=order)  # stable: a file's tests stay together, in order


_seconds_this_run: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Adds up each file's time (in the controller, from every worker)."""
    name = report.nodeid.split("::")[0]
    _seconds_this_run[name] = _seconds_this_run.get(name, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keeps each file's time of this run for the next one's order (a partial
    run updates the files it ran)."""
    path = _file_seconds_path()
    if path is None or os.environ.get("PYTEST_XDIST_WORKER") or not _seconds_this_run:
        return
    seconds = {**_last_file_seconds(), **_seconds_this_run}
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(seconds, indent=0, sort_keys=True))


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
