"""The ``jaxsoft`` command: ``train | evaluate | predict | probe``.

argparse -> the library: each command parses its flags and calls one
function of `jaxsoft.experiment` or `jaxsoft.probe`. This package is the only
place that knows flag names (`flags`); `main` runs the command line,
`probe` is ``jaxsoft probe``, `evaluation_table` the report of ``jaxsoft
evaluate``.
"""

from jaxsoft.cli.main import UsageError, main, run

__all__ = ["UsageError", "main", "run"]
