"""The workarounds that reach into private APIs of CPython, in one place.

Each prevents a failure shown by a test in ``tests/test_interrupt.py``:

- `finish_at_thread_shutdown` (``threading._register_atexit``): an async
  checkpoint still being written when Python exits must be finished before
  `concurrent.futures` refuses new work; otherwise orbax prints
  "RuntimeError: cannot schedule new futures after interpreter shutdown"
  and the checkpoint is lost.
- `draining_event_loops` (swaps the asyncio event-loop policy): when one read
  of a damaged checkpoint fails, orbax closes its event loop with the other
  reads still pending, which then print "Event loop is closed" and
  "Exception ignored in <coroutine ...>" tracebacks.
- `quick_exit` (``atexit._run_exitfuncs`` then ``os._exit``): ends the
  console script without tearing down every module and XLA's runtime one by
  one (about 0.4 s), after the exit handlers a normal exit runs.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

__all__ = ["draining_event_loops", "finish_at_thread_shutdown", "quick_exit"]


def finish_at_thread_shutdown(callback: Callable[[], Any]) -> None:
    """Runs ``callback`` when the interpreter exits, before the thread pools
    of `concurrent.futures` shut down (they register the same way, earlier,
    and these run last-registered first). Does nothing where CPython's hook is
    missing or the interpreter is already exiting."""
    register = getattr(threading, "_register_atexit", None)  # CPython only
    with contextlib.suppress(TypeError, RuntimeError):  # None, or exiting
        register(callback)


def _draining(policy: asyncio.AbstractEventLoopPolicy) -> Any:
    """``policy`` whose event loops finish their tasks before closing."""

    class Draining(type(policy)):  # type: ignore[misc]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop = super().new_event_loop()
            close = loop.close

            def drain_then_close() -> None:
                try:
                    if pending := asyncio.all_tasks(loop):
                        drain = asyncio.gather(*pending, return_exceptions=True)
                        loop.run_until_complete(asyncio.wait_for(drain, 60.0))
                finally:
                    close()

            loop.close = drain_then_close  # type: ignore[method-assign]
            return loop

    return Draining()


@contextlib.contextmanager
def draining_event_loops() -> Iterator[None]:
    """Within the block, asyncio event loops created by `asyncio.run` and the
    like await their pending tasks before closing (so an error in one task
    does not leave the others to print tracebacks)."""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_draining(policy))
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(policy)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def quick_exit(code: int) -> NoReturn:
    """Ends the process with ``code`` after the exit handlers (`atexit`) and
    flushed output, but without the interpreter's teardown. With a non-daemon
    thread still running (none of jaxsoft's), exits the usual way instead."""
    _flush()
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()  # what a normal exit runs first
    _flush()
    os._exit(code)
