"""Stopping a training run on Ctrl-C or SIGTERM, at an epoch boundary.

Within `StopRequests`, the first SIGINT or SIGTERM only asks the run to
stop: it finishes the epoch in progress, saves that epoch's checkpoint and
raises `RunInterrupted`. A second signal raises KeyboardInterrupt at once, or,
in the ``jaxsoft`` command (`quit_at_once`), ends the process with exit code
130, leaving the previous complete checkpoint as it is. The previous
handlers come back when the block ends (a notebook keeps its own).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

__all__ = [
    "RunInterrupted",
    "StopRequests",
    "command_signals",
    "interrupted_message",
    "quit_at_once",
    "resume_command",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130
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


def resume_command(argv: Sequence[str]) -> str:
    """The ``jaxsoft train`` command line ``argv`` (without the program name)
    that resumes its run: ``--overwrite`` dropped, ``--resume`` added."""
    kept = [a for a in argv if a != "--overwrite"]
    return shlex.join(["jaxsoft", *kept, *([] if "--resume" in kept else ["--resume"])])


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
            os._exit(EXIT_INTERRUPTED)
        raise KeyboardInterrupt

    def agreed(self) -> bool:
        """Whether any process of the run was asked to stop. With several
        processes this is a collective (every process calls it, at the same
        epoch boundary); with one it only reads the flag."""
        import jax

        asked = self.requested is not None
        if jax.process_count() == 1:
            return asked
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(asked))
        return bool(np.max(np.asarray(flags)))


def _say(line: str) -> None:
    """Writes one line to stderr without Python's buffers, which a signal
    handler may interrupt in the middle of a write."""
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


def saved_epochs(out: str | os.PathLike[str]) -> list[int]:
    """The epochs of the complete checkpoints in ``out/checkpoints``, from the
    folder names only (orbax renames a save's temporary folder when done)."""
    folder = Path(out) / "checkpoints"
    return sorted(
        int(c.name) for c in folder.glob("*") if c.name.isdigit() and c.is_dir()
    )


def interrupted_message(
    out: str | os.PathLike[str], resume: str, how: str = "interrupted"
) -> str:
    """The one line an interrupted ``jaxsoft train`` prints: ``how`` it
    ended, the newest complete checkpoint in ``out`` and ``resume`` (the
    command that continues from it), or what ``resume`` does without one."""
    epochs = saved_epochs(out)
    if epochs:
        return (
            f"jaxsoft: {how}; the checkpoint of epoch {epochs[-1]} is saved "
            f"in {Path(out) / 'checkpoints'}: `{resume}` continues from it."
        )
    if (Path(out) / "config.json").is_file():
        return (
            f"jaxsoft: {how} before the first checkpoint, so no epoch is "
            f"saved: `{resume}` starts the run again from epoch 1 with its settings."
        )
    return f"jaxsoft: {how} before training started; nothing was saved in {out}."
