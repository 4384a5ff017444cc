"""XLA compiler options for jaxsoft's compiled programs, by platform.

On the CPU, XLA's loop emitters compile the epoch, the evaluation and the
exact engine's solve faster than its newer fusion emitters (0.23 s against
0.33 s for an MNIST epoch; for the solve, `benchmarks/bench_practitioner.py`
prints both) and run them as fast. Compiling is most of a short run, so
jaxsoft asks for them there.
The results are the same up to float summation order (the emitters order some
reductions differently; `tests/test_train.py` compares the two). Other
platforms, and an XLA that no longer knows the option, get XLA's defaults.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import platform
import tempfile
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np
from jax.experimental import serialize_executable
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsoft import sharding

__all__ = ["CPU_OPTIONS", "QUICK_MAX_WORK", "call", "compiler_options", "jit", "quick"]

CPU_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}

QUICK_CPU_OPTIONS: dict[str, Any] = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
"""Added for small programs (``quick=True``, `quick`), where compiling is
most of the time (`benchmarks/bench_practitioner.py` prints the solve's
compile time with and without them). LLVM then optimises the element-wise
code and XLA's own small matrix products less, so the program runs more
slowly: worth it only where the work is small."""

QUICK_MAX_WORK = 1 << 21
"""Programs whose pass does less work than this (rows x heads x classes x
features) are compiled with the quick options."""


def quick(work: int) -> bool:
    """Whether a program of this much work per pass is compiled quickly."""
    return work < QUICK_MAX_WORK


@functools.lru_cache(maxsize=4)
def _accepted(options: tuple[tuple[str, Any], ...]) -> bool:
    """Whether this XLA compiles with ``options`` (a tiny program, once)."""
    try:
        jax.jit(lambda a: a + 1, compiler_options=dict(options)).lower(1.0).compile()
    except Exception:  # an option XLA no longer has: its error type varies
        return False
    return True


def _wanted(mesh: Mesh, quick: bool) -> dict[str, Any]:
    if mesh.devices.flat[0].platform != "cpu":
        return {}
    return {**CPU_OPTIONS, **(QUICK_CPU_OPTIONS if quick else {})}


def compiler_options(mesh: Mesh, *, quick: bool = False) -> dict[str, Any]:
    """The options for programs that run on ``mesh``'s devices (``quick``:
    a small program, compiled with less optimisation); {} where this XLA
    does not know them."""
    options = _wanted(mesh, quick)
    if not options or not _accepted(tuple(sorted(options.items()))):
        return {}
    return options


@functools.cache
def _jitted(fun: Any, options: tuple, settings: tuple) -> Any:
    return jax.jit(fun, compiler_options=dict(options) or None, **dict(settings))


def jit(fun: Any, mesh: Mesh, *, quick: bool = False, **settings: Any) -> Any:
    """``jax.jit(fun, **settings)`` with `compiler_options` for ``mesh``.

    Made once per function, options and settings (pass tuples, not lists),
    so its compiled programs are reused from call to call.
    """
    options = tuple(sorted(compiler_options(mesh, quick=quick).items()))
    return _jitted(fun, options, tuple(sorted(settings.items())))


# Executables kept whole: a program loaded from here skips tracing and lowering
# as well as compiling (JAX's own cache is consulted only after both, which
# cost a small fit more than the fit itself: 0.2 s of the 0.26 s of an iris
# fit in a new process).
EXECUTABLES_FOLDER = "executables"
_executables: dict[tuple, Any] = {}


def _read_code(root: Path = Path(__file__).parent) -> tuple[str, dict[Path, int]]:
    """A digest of the contents of the source files under ``root`` (jaxsoft's),
    and each file's time of change; read once, when this module is imported
    (with the package, before any program is traced)."""
    digest = hashlib.sha256()
    stamps = {}
    for path in sorted(root.rglob("*.py")):
        stamps[path] = path.stat().st_mtime_ns
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest(), stamps


_CODE_DIGEST, _CODE_STAMPS = _read_code()


def _code_digest() -> str | None:
    """The digest of the source this process runs, so that executables of
    other code are never reused; None (keep nothing, load nothing) once a
    source file changed after the process read it, since the process may then
    run a mix of old and new code."""
    for path, stamp in _CODE_STAMPS.items():
        try:
            if path.stat().st_mtime_ns != stamp:
                return None
        except OSError:
            return None
    return _CODE_DIGEST


def _leaf_signature(leaf: Any) -> tuple:
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        spec = getattr(leaf.sharding, "spec", None)
        return (leaf.shape, leaf.dtype, leaf.weak_type, spec)
    return (type(leaf),)  # a Python scalar (a weakly typed value)


def _is_host(leaf: Any) -> bool:
    return isinstance(leaf, (np.ndarray, np.generic))


@functools.lru_cache(maxsize=1024)
def _replicated_value(shape: tuple, dtype: np.dtype, mesh: Mesh) -> Any:
    """The abstract value of a replicated copy (made once per shape: a fit
    passes some 40 NumPy leaves a call)."""
    return jax.ShapeDtypeStruct(
        shape, dtype, sharding=NamedSharding(mesh, PartitionSpec())
    )


def _as_replicated(args: tuple, mesh: Mesh) -> tuple:
    """``args`` with each NumPy leaf as the abstract value of its replicated
    copy on ``mesh``: what the program is traced, keyed and compiled for."""

    def abstract(leaf: Any) -> Any:
        if not _is_host(leaf):
            return leaf
        return _replicated_value(np.shape(leaf), leaf.dtype, mesh)

    return jax.tree.map(abstract, args)


# NumPy arguments larger than this are placed by `jax.device_put` (which
# may share a large array's memory on the CPU) rather than by the call.
_DIRECT_MAX_BYTES = 1 << 20


def _placed(args: tuple, mesh: Mesh) -> tuple:
    """``args`` ready for an executable: in one process small NumPy leaves go
    as they are (the executable copies them to its devices in one step, much
    faster than a `jax.device_put` of each); in several, each process hands
    over its copy (`jaxsoft.sharding.replicate`)."""
    several = jax.process_count() > 1

    def placed(leaf: Any) -> Any:
        if _is_host(leaf) and (several or leaf.nbytes > _DIRECT_MAX_BYTES):
            return sharding.replicate(leaf, mesh)
        return leaf

    return jax.tree.map(placed, args)


def _signature(fun: Any, mesh: Mesh, options: dict, static: dict, args: tuple):
    """Everything the program depends on in this process (hashable)."""
    leaves, tree = jax.tree.flatten(args)
    return (
        fun,
        tuple(sorted(options.items())),
        tuple(sorted(static.items())),
        tree,
        tuple(_leaf_signature(leaf) for leaf in leaves),
        mesh.shape_tuple,
        tuple(mesh.devices.flat),
        jax.config.jax_enable_x64,
    )


@functools.lru_cache(maxsize=1)
def _host_digest() -> str:
    """The host's processor and its instruction sets: an executable compiled
    for one CPU may not run on another that shares the cache folder."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        pass
    return f"{platform.machine()}:{platform.processor()}:{flags}"


def _stable(value: Any) -> str:
    """``repr`` that is the same in every process: functions by name."""
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return "(" + ", ".join(_stable(item) for item in value) + ")"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def _key(signature: tuple) -> str | None:
    """The signature as a file name, with the versions, jaxsoft's source and
    the host's processor; None (kept in memory only) when the source changed
    since it was read, or when a function in it is a closure or a lambda."""
    code = _code_digest()
    if code is None:
        return None
    fun, options, static, tree, leaves, shape, devices, x64 = signature
    named = _stable(fun) + _stable(static)
    if "<locals>" in named or "<lambda>" in named:
        return None  # a closure's name does not say what it captured
    parts = [
        jax.__version__,
        jaxlib.__version__,
        code,
        _host_digest(),
        devices[0].client.platform_version,
        _stable(fun),
        repr(options),
        _stable(static),
        str(tree),
        repr(leaves),
        repr(shape),
        repr([(d.platform, d.device_kind, d.id) for d in devices]),
        str(x64),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _folder() -> Path | None:
    """Where executables are kept: beside JAX's cache, when it is on."""
    root = jax.config.jax_compilation_cache_dir
    if not root or jax.process_count() > 1:
        return None
    return Path(root) / EXECUTABLES_FOLDER


def _load(key: str | None, mesh: Mesh) -> Any | None:
    """The executable saved under ``key``, loaded onto ``mesh``'s devices (left
    to itself, JAX loads it onto every device of the process: a program of a
    one-device mesh then asks for a shard per device), or None."""
    folder = _folder()
    path = None if folder is None or key is None else folder / key
    if path is None or not path.is_file():
        return None
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        return serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=list(mesh.devices.flat)
        )
    except Exception:  # damaged, or from another build: compile it again
        return None


def _save(key: str | None, executable: Any) -> None:
    """Writes the executable atomically (a reader sees all of it or none),
    then trims the folder to a quarter of JAX's cache bound, oldest first."""
    folder = _folder()
    if folder is None or key is None:
        return
    try:
        blob = pickle.dumps(serialize_executable.serialize(executable))
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".writing-")
        with os.fdopen(handle, "wb") as out:
            out.write(blob)
        os.replace(temporary, folder / key)
        _trim(folder, jax.config.jax_compilation_cache_max_size // 4)
    except Exception:  # a full disk, a read-only folder: only the cache is lost
        return


def _trim(folder: Path, bound: int) -> None:
    if bound < 0:
        return
    entries = []
    for path in folder.iterdir():
        try:
            entries.append((path.stat().st_mtime, path.stat().st_size, path))
        except OSError:  # removed by another process meanwhile
            continue
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= bound:
            return
        path.unlink(missing_ok=True)
        total -= size


def call(
    fun: Any,
    mesh: Mesh,
    *args: Any,
    quick: bool = False,
    static: dict[str, Any] | None = None,
    donate: tuple[int, ...] = (),
) -> Any:
    """``jax.jit(fun, donate_argnums=donate)(*args, **static)``, compiled once
    per signature and kept whole (in memory, and on disk beside JAX's cache
    when that is on), so a later process loads it without tracing it.

    The executable's key holds everything its program depends on: jax's
    version, jaxsoft's source, the function, the options, the static
    arguments, each argument's shape, dtype and sharding, and the devices.
    NumPy arguments are taken as replicated on ``mesh`` (the same program as
    for their `jaxsoft.sharding.replicate` copies) and copied there by the
    call itself.
    """
    static = static or {}
    options = _wanted(mesh, quick)
    abstract = _as_replicated(args, mesh)
    signature = _signature(fun, mesh, options, static, abstract)
    executable = _executables.get(signature)
    if executable is None:
        key = _key(signature)
        executable = _load(key, mesh)
        if executable is None:
            executable, compiled_here = _compile(fun, static, donate, options, abstract)
            if compiled_here:
                _save(key, executable)
        _executables[signature] = executable
    return executable(*_placed(args, mesh))


_CACHE_HIT = "/jax/compilation_cache/cache_hits"


def _compile(fun, static, donate, options, args) -> tuple[Any, bool]:
    """The compiled program, with XLA's default options where it does not
    know ``options`` (its error type varies), and whether it was compiled
    here: False when JAX's own cache gave it. An executable JAX loaded from
    its cache serializes without its code (jax 0.10 on the CPU: a later
    process that loads it fails with "Function ... not found"), so only one
    compiled here is saved."""
    hits: list[str] = []

    def listen(event: str, **_: Any) -> None:
        if event == _CACHE_HIT:
            hits.append(event)

    lowered = jax.jit(functools.partial(fun, **static), donate_argnums=donate).lower(
        *args
    )
    jax.monitoring.register_event_listener(listen)
    try:
        if options:
            try:
                return lowered.compile(compiler_options=options), not hits
            except Exception:
                pass
        return lowered.compile(), not hits
    finally:
        jax.monitoring.unregister_event_listener(listen)
