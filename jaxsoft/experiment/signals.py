"""Signals and the end of a run's process: Ctrl-C, SIGTERM, exit.

Within `StopRequests`, the first SIGINT or SIGTERM only asks the run to
stop: it finishes the epoch in progress, saves that epoch's checkpoint and
raises `RunInterrupted`. A second signal raises KeyboardInterrupt at once, or,
in the ``jaxsoft`` command (`quit_at_once`), ends the process with exit code
130, leaving the previous complete checkpoint as it is. The previous
handlers come back when the block ends (a notebook keeps its own).

This is also the one module that reaches into private APIs (of CPython
3.11-3.13, used through orbax-checkpoint 0.11 and asyncio); each workaround
says below which failure it prevents, shown by a test in
``tests/test_interrupt.py``:

- `finish_at_thread_shutdown` (``threading._register_atexit``): an async
  checkpoint still being written when Python exits must be finished before
  `concurrent.futures` refuses new work; otherwise orbax prints
  "RuntimeError: cannot schedule new futures after interpreter shutdown"
  and the checkpoint is lost.
- `draining_event_loops` (swaps the asyncio event-loop policy, deprecated in
  Python 3.14): when one read of a damaged checkpoint fails, orbax closes its
  event loop with the other reads still pending, which then print "Event
  loop is closed" and "Exception ignored in <coroutine ...>" tracebacks.
- `quick_exit` (``atexit._run_exitfuncs`` then ``os._exit``): ends the
  console script without tearing down every module and XLA's runtime one by
  one (about 0.4 s), after the exit handlers a normal exit runs.
- `exit_now` (``os._exit``): a second Ctrl-C in the command quits at once,
  from a signal handler, where raising could land inside orbax's writer; so
  does a Ctrl-C while the command imports (`exit_on_interrupt`), where a
  KeyboardInterrupt could land in JAX's garbage-collector callback and be
  lost.

This module imports only the standard library (and `jaxsoft.errors`), so the
``jaxsoft`` command can use it before JAX imports (`jaxsoft.__main__`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, NoReturn

from jaxsoft.errors import EXIT_INTERRUPTED

__all__ = [
    "EXIT_INTERRUPTED",
    "RunInterrupted",
    "StopRequests",
    "command_signals",
    "draining_event_loops",
    "exit_now",
    "exit_on_interrupt",
    "finish_at_thread_shutdown",
    "quick_exit",
    "quit_at_once",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_quit_message: Callable[[str], str] | None = None


class RunInterrupted(KeyboardInterrupt):
    """A run stopped on request at an epoch boundary, its checkpoint saved.

    Attributes:
      epoch: the last completed epoch, whose checkpoint is saved.
      signal: the signal's name ("SIGINT", "SIGTERM"), or None when another
        process of the run received it.
    """

    def __init__(self, epoch: int, signal_name: str | None):
        by = signal_name or "a signal to another process"
        super().__init__(f"stopped by {by} after epoch {epoch} (checkpoint saved)")
        self.epoch = epoch
        self.signal = signal_name


@contextlib.contextmanager
def quit_at_once(message: Callable[[str], str]) -> Iterator[None]:
    """Within the block, a second stop signal prints ``message(how)`` on
    stderr (``how``: e.g. "SIGINT again, quit at once") and ends the process
    (exit code 130) instead of raising."""
    global _quit_message
    previous, _quit_message = _quit_message, message
    try:
        yield
    finally:
        _quit_message = previous


@contextlib.contextmanager
def command_signals(message: Callable[[str], str]) -> Iterator[None]:
    """For the ``jaxsoft`` command: SIGTERM interrupts like Ctrl-C (raises
    KeyboardInterrupt) unless ignored, and a second stop signal during
    training quits at once, printing ``message(how)`` (`quit_at_once`)."""
    main = threading.current_thread() is threading.main_thread()
    default = main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    if default:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    hook, sys.unraisablehook = sys.unraisablehook, _interrupt_again(sys.unraisablehook)
    try:
        with quit_at_once(message):
            yield
    finally:
        sys.unraisablehook = hook
        if default:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_again(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``sys.unraisablehook`` that does not lose a Ctrl-C: a KeyboardInterrupt
    raised where Python can only print it ("Exception ignored in" a garbage
    collector callback such as JAX's) is raised again, by the signal, in the
    code that runs next."""

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):  # a little later,
            # from another thread: the handler runs after this hook, not in it
            again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
            again.daemon = True
            again.start()
        else:
            hook(info)

    return unraisable


class StopRequests:
    """SIGINT and SIGTERM handlers that record a request to stop.

    Used as ``with StopRequests() as stop:``; ``stop.requested`` is the name
    of the first signal received (None before), `agreed` tells every process
    of the run the same. Signals that were ignored (a background job's
    SIGINT) stay ignored; outside the main thread nothing is installed.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequests:
        """Installs the handlers (what entering the ``with`` block does)."""
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:
                    self._previous[signum] = previous
                    signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        """Puts the previous handlers back (what leaving the block does)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __enter__(self) -> StopRequests:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
            _say(
                f"jaxsoft: {name}: stopping after this epoch, once its checkpoint "
                f"is saved ({name} again quits at once)."
            )
            return
        if _quit_message is not None:
            _say(_quit_message(f"{name} again, quit at once"))
            exit_now(EXIT_INTERRUPTED)
        raise KeyboardInterrupt

    def agreed(self) -> bool:
        """Whether any process of the run was asked to stop. With several
        processes this is a collective (every process calls it, at the same
        epoch boundary); with one it only reads the flag."""
        import jax

        asked = self.requested is not None
        if jax.process_count() == 1:
            return asked
        import numpy as np
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(asked))
        return bool(np.max(np.asarray(flags)))


@contextlib.contextmanager
def exit_on_interrupt(line: str) -> Iterator[None]:
    """While the block runs, Ctrl-C prints ``line`` and ends the process at
    once with `EXIT_INTERRUPTED` (`exit_now`): for the ``jaxsoft`` command
    while it imports JAX and the rest, when there is nothing to save yet.

    A KeyboardInterrupt there would print a traceback, or be lost: raised in a
    garbage-collector callback (JAX's, which runs often while modules import),
    Python only prints it ("Exception ignored in") and goes on. Only where
    SIGINT has Python's default handler (not in a background job, where it is
    ignored, nor in a thread); the previous handler comes back after.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def end(signum: int, frame: FrameType | None) -> None:
        _say(line)
        exit_now(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, end)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _say(line: str) -> None:
    """Writes one line to stderr without Python's buffers, which a signal
    handler may interrupt in the middle of a write."""
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


# The workarounds that reach into private APIs (see the module docstring).


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


def exit_now(code: int) -> NoReturn:
    """Ends the process with ``code`` at once: no exit handlers, no teardown
    (from a signal handler, where anything else could run in a half-written
    state)."""
    os._exit(code)
