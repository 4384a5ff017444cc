"""XLA compiler options for the trainer's compiled programs, by platform.

On the CPU, XLA's loop emitters compile the epoch, the evaluation and the
L-BFGS loop about a third faster than its newer fusion emitters (0.23 s
against 0.33 s for an MNIST epoch on this project's 2-core CPU) and run them
as fast. Compiling is most of a short run, so jaxsoft asks for them there.
The results are the same up to float summation order (the emitters order some
reductions differently; `tests/test_train.py` compares the two). Other
platforms, and an XLA that no longer knows the option, get XLA's defaults.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from jax.sharding import Mesh

__all__ = ["CPU_OPTIONS", "compiler_options"]

CPU_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=4)
def _accepted(options: tuple[tuple[str, Any], ...]) -> bool:
    """Whether this XLA compiles with ``options`` (a tiny program, once)."""
    try:
        jax.jit(lambda a: a + 1, compiler_options=dict(options)).lower(1.0).compile()
    except Exception:  # an option XLA no longer has: its error type varies
        return False
    return True


def compiler_options(mesh: Mesh) -> dict[str, Any]:
    """The options for programs that run on ``mesh``'s devices."""
    if mesh.devices.flat[0].platform != "cpu" or not CPU_OPTIONS:
        return {}
    if not _accepted(tuple(sorted(CPU_OPTIONS.items()))):
        return {}
    return dict(CPU_OPTIONS)
