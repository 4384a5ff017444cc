"""A disk cache of compiled XLA programs, so a second process skips compiling.

Compiling is most of a short run's time on a CPU (an MNIST epoch runs in
about 0.05 s; compiling it takes about 0.4 s). JAX can keep compiled
programs on disk and load them instead (its persistent compilation cache);
`enable_compilation_cache` turns that on for every program, however small.
The ``jaxsoft`` command calls it; a notebook or script may too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir", "enable_compilation_cache"]

CACHE_ENV = "JAXSOFT_CACHE_DIR"
"""Environment variable naming the cache folder; set it empty to turn it off."""


def default_cache_dir() -> Path | None:
    """``$JAXSOFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxsoft/xla`` (by default
    ``~/.cache/jaxsoft/xla``); None when ``JAXSOFT_CACHE_DIR`` is set empty."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "jaxsoft" / "xla"


def enable_compilation_cache(folder: str | os.PathLike | None = None) -> Path | None:
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
    return chosen
