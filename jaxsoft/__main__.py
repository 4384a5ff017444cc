"""The ``jaxsoft`` console script and ``python -m jaxsoft``: `run`.

This module and the package's ``__init__`` import only the standard library
(and `jaxsoft.errors`, which imports nothing), so `run` is entered before
JAX, TensorFlow or the command line import: a Ctrl-C while they do ends the
command with one line and exit code 130, as a Ctrl-C during a command does,
never with a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from jaxsoft.errors import EXIT_INTERRUPTED

__all__ = ["run"]


def run() -> NoReturn:
    """Imports the command line (`jaxsoft.cli.main`) and runs it.

    A KeyboardInterrupt that reaches here (the command's own handler, which
    says what a run saved, is not installed yet or no longer) prints
    ``jaxsoft: interrupted.`` and exits with `EXIT_INTERRUPTED`.
    """
    try:
        from jaxsoft.cli.main import run as run_command

        run_command()
    except KeyboardInterrupt:
        print("jaxsoft: interrupted.", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    run()
