"""A disk cache of compiled XLA programs, so a second process skips compiling.

Compiling is most of a short run's time on a CPU (an MNIST epoch runs in
about 0.05 s; compiling it takes about 0.4 s; a small scikit-learn-style fit
is almost all compiling). JAX can keep compiled programs on disk and load
them instead (its persistent compilation cache); `enable_compilation_cache`
turns that on for every program, however small, in a folder of bounded size
(least recently used programs are evicted; reads and writes hold a file
lock, so processes that fill it at once do not corrupt it).

It is on by default: the ``jaxsoft`` command and the scikit-learn estimators
call `enable_default_cache`, which uses `default_cache_dir` unless JAX's
cache is already configured (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config``); ``JAXSOFT_CACHE_DIR=`` (set empty) turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MAX_BYTES",
    "default_cache_dir",
    "enable_compilation_cache",
    "enable_default_cache",
]

CACHE_ENV = "JAXSOFT_CACHE_DIR"
"""Environment variable naming the cache folder; set it empty to turn it off."""

DEFAULT_MAX_BYTES = 1 << 30
"""The cache's default bound (1 GiB): a small program takes 50-500 kB."""


def default_cache_dir() -> Path | None:
    """``$JAXSOFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxsoft/xla`` (by default
    ``~/.cache/jaxsoft/xla``); None when ``JAXSOFT_CACHE_DIR`` is set empty."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jaxsoft" / "xla"


def enable_compilation_cache(
    folder: str | os.PathLike | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Path | None:
    """Keeps every compiled program in ``folder`` and reuses it next time.

    Sets JAX's process-wide ``jax_compilation_cache_dir`` and caches programs
    of any size and compile time (JAX's default skips those compiled in under
    a second, which is all of softmax regression). A program compiled before
    this call is not cached; one compiled after it is, and a later process
    with the same folder loads it instead of compiling it.

    Args:
      folder: where to keep the programs. None: JAX's own
        ``JAX_COMPILATION_CACHE_DIR`` when set (left as it is), else
        `default_cache_dir`.
      max_bytes: the folder's bound; the least recently used programs are
        evicted beyond it (-1: no bound and no file lock).

    Returns:
      The folder in use, or None when the cache stays off (``folder`` is None
      and ``JAXSOFT_CACHE_DIR`` is set empty).

    Example:
      >>> import jaxsoft as js
      >>> js.enable_compilation_cache("/tmp/jaxsoft-xla")  # doctest: +SKIP
      PosixPath('/tmp/jaxsoft-xla')
    """
    import jax

    if folder is None and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        chosen: Path | None = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    else:
        chosen = Path(folder) if folder is not None else default_cache_dir()
        if chosen is None:
            return None
        jax.config.update("jax_compilation_cache_dir", str(chosen))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    return chosen


_default_done: list[Path | None] = []


def enable_default_cache() -> Path | None:
    """`enable_compilation_cache` in `default_cache_dir`, once per process,
    unless JAX's cache is already set up (then it is left as it is) or
    ``JAXSOFT_CACHE_DIR`` is set empty (then it stays off).

    Returns:
      The folder in use, or None when the cache is off.
    """
    if _default_done:
        return _default_done[0]
    import jax

    configured = jax.config.jax_compilation_cache_dir  # by the user, or JAX's
    # own environment variable: theirs to set up
    chosen = Path(configured) if configured else enable_compilation_cache()
    _default_done.append(chosen)
    return chosen
