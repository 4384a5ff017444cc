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


def test_after_a_source_file_changes_a_process_keeps_and_loads_nothing(
    tmp_path, monkeypatch
):
    import jax.numpy as jnp

    from jaxsoft import compiling, sharding

    folder = tmp_path / compiling.EXECUTABLES_FOLDER
    monkeypatch.setattr(compiling, "_folder", lambda: folder)
    mesh = sharding.resolve_mesh()
    stale = {path: stamp + 1 for path, stamp in compiling._CODE_STAMPS.items()}

    def double(x):
        return 2 * x

    monkeypatch.setattr(compiling, "_CODE_STAMPS", stale)
    assert compiling._code_digest() is None
    assert float(compiling.call(double, mesh, jnp.float32(3.0))) == 6.0
    assert not folder.exists()
    monkeypatch.undo()
    monkeypatch.setattr(compiling, "_folder", lambda: folder)

    factor = float(int.from_bytes(os.urandom(2), "little") + 1)  # a program

    def scale(x):  # that JAX's own cache cannot hold from an earlier run
        return factor * x

    assert float(compiling.call(scale, mesh, jnp.float32(3.0))) == 3.0 * factor
    assert len(list(folder.iterdir())) == 1
