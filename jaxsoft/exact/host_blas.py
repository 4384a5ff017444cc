"""Small host linear algebra on one BLAS thread.

After a compiled program has run, XLA's CPU threads keep spinning for a
while; NumPy's BLAS (OpenBLAS, two threads on a 2-core machine) then waits
for the cores they hold. On breast_cancer's 30 x 30 covariance
`numpy.linalg.eigh` took 0.76-1.47 ms that way inside a fit, 0.17 ms on one
thread, the whole compiled fit 11.5 ms against 9.7 ms. `small_work` runs such
small host work (the moments and eigendecomposition of a problem's
preconditioner) on one BLAS thread; large work keeps every thread.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

__all__ = ["SINGLE_THREAD_MAX_WORK", "small_work"]

SINGLE_THREAD_MAX_WORK = 1 << 28
"""Multiply-adds (rows x features^2 + features^3) up to which the host's
linear algebra runs on one BLAS thread (some 30 ms of it on a CPU core).
BLAS's own threads also spin after their work, while the solve runs: on
this 2-core CPU the compiled synthetic_100k fit (100,000 x 50, 2.5e8) took
0.32-0.33 s with one thread, 0.36-0.37 s with two; digits'
`LogisticRegressionCV` 0.20-0.21 s against 0.24-0.26 s."""


@functools.lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries (about 1 ms, once);
    None where threadpoolctl is missing."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def small_work(work: int) -> Iterator[None]:
    """One BLAS thread inside the block when ``work`` (multiply-adds) is at
    most `SINGLE_THREAD_MAX_WORK`; the threads as they are otherwise."""
    controller = _controller() if work <= SINGLE_THREAD_MAX_WORK else None
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
