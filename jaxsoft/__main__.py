"""The ``jaxsoft`` console script and ``python -m jaxsoft``: `run`.

This module, the package's ``__init__`` and `jaxsoft.experiment.signals`
import only the standard library, so `run` holds Ctrl-C before JAX,
TensorFlow or the command line import: a Ctrl-C while they do ends the
command with one line and exit code 130, as a Ctrl-C during a command does,
never with a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from jaxsoft.errors import EXIT_INTERRUPTED

__all__ = ["run"]

INTERRUPTED = "jaxsoft: interrupted."


def run() -> NoReturn:
    """Imports the command line (`jaxsoft.cli.main`) and runs it.

    During the import, Ctrl-C prints `INTERRUPTED` and exits at once
    (`jaxsoft.experiment.signals.exit_on_interrupt`). A KeyboardInterrupt
    that reaches here otherwise (the command's own handler, which says what
    a run saved, not installed yet or no longer) prints the same line and
    exits with `EXIT_INTERRUPTED`.
    """
    try:
        from jaxsoft.experiment import signals

        with signals.exit_on_interrupt(INTERRUPTED):
            from jaxsoft.cli.main import run as run_command
        run_command()
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    run()
