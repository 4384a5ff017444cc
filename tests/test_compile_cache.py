"""jaxsoft.compile_cache: where the compiled programs go, and that they do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_python

from jaxsoft.compile_cache import CACHE_ENV, default_cache_dir


def test_the_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "jaxsoft" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "jaxsoft" / "xla"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_ENV, "")
    assert default_cache_dir() is None


_SCRIPT = """
import sys
import jax, jax.numpy as jnp
import jaxsoft as js
folder = None if sys.argv[1] == "-" else sys.argv[1]
print(js.enable_compilation_cache(folder))
print(float(jax.jit(lambda x: jnp.sum(jnp.sin(x) * 3.0))(jnp.arange(4.0))))
"""


def _run(folder: str, env_value: str | None) -> str:
    env = {"JAX_COMPILATION_CACHE_DIR": None, CACHE_ENV: env_value}
    done = run_python("-c", _SCRIPT, folder, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0]


def test_a_small_program_is_cached_and_reused(tmp_path):
    cache = tmp_path / "xla"
    assert _run(str(cache), None) == str(cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # cached although it compiled in far under JAX's 1 s bar
    _run(str(cache), None)
    assert sorted(p.name for p in cache.iterdir()) == entries  # loaded, not new


def test_an_empty_environment_variable_turns_it_off(tmp_path):
    assert _run("-", "") == "None"
    assert _run("-", str(tmp_path / "env")) == str(tmp_path / "env")
    assert any((tmp_path / "env").iterdir())


_FIT = """
import json
import numpy as np
from sklearn.datasets import load_iris
from jaxsoft import compiling
from jaxsoft.linear_model import LogisticRegression

compiled = []
original = compiling._compile
def counted(fun, *args):
    compiled.append(fun.__name__)
    return original(fun, *args)
compiling._compile = counted
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(X, y)
print(json.dumps({"compiled": compiled, "coef": model.coef_.tolist()}))
"""


def _fit(cache: Path) -> dict:
    import json

    done = run_python("-c", _FIT, env={"JAX_COMPILATION_CACHE_DIR": None,
                                      CACHE_ENV: str(cache)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_the_estimators_cache_by_default_and_a_later_process_compiles_nothing(
    tmp_path,
):
    cache = tmp_path / "xla"
    first = _fit(cache)
    assert "_run_in_memory" in first["compiled"]
    assert any((cache / "executables").iterdir())  # kept whole, beside JAX's
    again = _fit(cache)
    assert again["compiled"] == []  # loaded: neither traced nor compiled
    assert again["coef"] == first["coef"]  # the same program, the same fit
    # A damaged executable is compiled again, to the same program.
    for path in (cache / "executables").iterdir():
        path.write_bytes(b"not an executable")
    repaired = _fit(cache)
    assert "_run_in_memory" in repaired["compiled"]
    assert repaired["coef"] == first["coef"]
    # That program came from JAX's own cache: saved again, it would lack its
    # code, and the next process would fail ("Function ... not found").
    after = _fit(cache)
    assert after["coef"] == first["coef"]


_ONE_DEVICE_OF_EIGHT = """
import json, sys
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec
import jaxsoft as js
from jaxsoft import compiling

def double(x):
    return 2 * x

compiled = []
original = compiling._compile
compiling._compile = lambda fun, *a: compiled.append(fun.__name__) or original(fun, *a)
js.enable_compilation_cache(sys.argv[1])
one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
x = jax.device_put(np.arange(6.0), NamedSharding(one, PartitionSpec("data")))
out = compiling.call(double, one, x)
print(json.dumps({"compiled": compiled, "out": np.asarray(out).tolist()}))
"""


def test_a_one_device_program_loads_onto_its_device_among_eight(tmp_path):
    """An executable of a one-device mesh, loaded in a process with eight
    devices, runs on that device (JAX's loader, left to itself, spread it over
    all eight and asked for eight shards of each argument)."""
    import json

    env = {
        "JAX_COMPILATION_CACHE_DIR": None,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    runs = []
    for _ in range(2):
        done = run_python("-c", _ONE_DEVICE_OF_EIGHT, str(tmp_path), env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    assert runs[0]["compiled"] == ["double"] and runs[1]["compiled"] == []
    assert runs[0]["out"] == runs[1]["out"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


_NUMPY_ARGUMENTS_ON_EIGHT = """
import json
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from jaxsoft import compiling, sharding

def scaled_rows(x, w, k):
    return (x * w[None, :]).sum(0) + k

compiled = []
original = compiling._compile
compiling._compile = lambda fun, *a: compiled.append(fun.__name__) or original(fun, *a)
mesh = sharding.resolve_mesh()
x = np.arange(16.0).reshape(8, 2)
rows = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
w, k = np.array([1.0, -2.0]), np.float64(0.5)
outs = [compiling.call(scaled_rows, mesh, rows, w, k)]
outs.append(compiling.call(scaled_rows, mesh, rows, *sharding.replicate((w, k), mesh)))
print(json.dumps({
    "compiled": compiled, "devices": len(mesh.devices.flat),
    "outs": [np.asarray(o).tolist() for o in outs],
    "expected": ((x * w).sum(0) + k).tolist(),
}))
"""


def test_numpy_arguments_run_as_their_replicated_copies_on_eight_devices(tmp_path):
    """NumPy arguments of `compiling.call` are taken as replicated over the
    mesh (beside rows sharded over its eight devices): the same program as
    for their replicated copies, compiled once, and the right sums."""
    import json

    env = {
        "JAX_COMPILATION_CACHE_DIR": None,
        "JAXSOFT_CACHE_DIR": "",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "JAX_ENABLE_X64": "1",
    }
    done = run_python("-c", _NUMPY_ARGUMENTS_ON_EIGHT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["devices"] == 8 and result["compiled"] == ["scaled_rows"]
    assert result["outs"][0] == result["outs"][1] == result["expected"]


def test_the_executables_key_follows_the_source_s_contents_not_its_times(tmp_path):
    from jaxsoft import compiling

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    digest, stamps = compiling._read_code(tmp_path)
    assert set(stamps) == {tmp_path / "pkg" / "a.py", tmp_path / "b.py"}
    os.utime(tmp_path / "b.py", ns=(1, 1))  # touched, same contents: same key
    assert compiling._read_code(tmp_path)[0] == digest
    (tmp_path / "b.py").write_text("y = 3\n")  # same size, new contents
    assert compiling._read_code(tmp_path)[0] != digest


def _double(x):
    return 2 * x


def _triple(x):
    return 3 * x


def test_after_a_source_file_changes_a_process_keeps_and_loads_nothing(
    tmp_path, monkeypatch
):
    import jax.numpy as jnp

    from jaxsoft import compiling, sharding

    folder = tmp_path / compiling.EXECUTABLES_FOLDER
    monkeypatch.setattr(compiling, "_folder", lambda: folder)
    mesh = sharding.resolve_mesh()
    stale = {path: stamp + 1 for path, stamp in compiling._CODE_STAMPS.items()}
    # A shape no earlier run compiled, so that JAX's own cache cannot hold it.
    x = jnp.ones(int.from_bytes(os.urandom(2), "little") + 7)

    monkeypatch.setattr(compiling, "_CODE_STAMPS", stale)
    assert compiling._code_digest() is None
    assert float(compiling.call(_double, mesh, x)[0]) == 2.0
    assert not folder.exists()
    monkeypatch.undo()
    monkeypatch.setattr(compiling, "_folder", lambda: folder)

    assert float(compiling.call(_triple, mesh, x)[0]) == 3.0
    assert len(list(folder.iterdir())) == 1


def test_closures_are_kept_in_memory_only(tmp_path, monkeypatch):
    """Two closures of one name capture different values: on disk they would
    share a key, so neither is saved."""
    import jax.numpy as jnp

    from jaxsoft import compiling, sharding

    folder = tmp_path / compiling.EXECUTABLES_FOLDER
    monkeypatch.setattr(compiling, "_folder", lambda: folder)
    mesh = sharding.resolve_mesh()

    def scaled(factor):
        def scale(x):
            return factor * x

        return scale

    # A shape no earlier run compiled: a program JAX's own cache gave would
    # not be saved either way, and the test could not fail.
    x = jnp.full(int.from_bytes(os.urandom(2), "little") + 7, 3.0)
    assert float(compiling.call(scaled(2.0), mesh, x)[0]) == 6.0
    assert float(compiling.call(scaled(5.0), mesh, x)[0]) == 15.0
    assert float(compiling.call(lambda v: v + 1, mesh, x)[0]) == 4.0
    assert not folder.exists()
