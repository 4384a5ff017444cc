"""`JaxsoftError`: the base class of every error a user of jaxsoft can cause.

Bad settings, inputs, files, datasets, checkpoints, launches and runs each
have their own class (`jaxsoft.experiment.ConfigError`,
`jaxsoft.data.DatasetError`, `jaxsoft.experiment.checkpoint.CheckpointError`,
...), and each subclasses `JaxsoftError` as well as the built-in exception a
caller would naturally catch
(`ValueError`, `RuntimeError`, ...). So ``except jaxsoft.JaxsoftError``
catches every mistake of the user and no bug of the library; the ``jaxsoft``
command prints it as one line and exits with code 2. This module imports
nothing, so any layer of the package can use it.
"""

from __future__ import annotations

__all__ = ["EXIT_INTERRUPTED", "JaxsoftError"]

EXIT_INTERRUPTED = 130
"""The exit code of an interrupted ``jaxsoft`` command (the shell's code for
a process ended by SIGINT). Here, in the module that imports nothing, so the
console script can use it while the rest of the package is still importing;
`jaxsoft.experiment.signals` re-exports it."""


class JaxsoftError(Exception):
    """Base class of jaxsoft's user-facing errors (a mistake, not a bug).

    Example:
      >>> import jaxsoft
      >>> from jaxsoft.experiment import Config
      >>> try:
      ...     Config(epochs=0)
      ... except jaxsoft.JaxsoftError as err:
      ...     print(type(err).__name__, err.field)
      ConfigError epochs
    """
