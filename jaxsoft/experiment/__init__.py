"""The run: a whole training experiment as library calls, and its files.

`train_and_evaluate(config, workdir)` does everything ``jaxsoft train`` does;
`evaluate_checkpoint` and `predict_files` are ``jaxsoft evaluate`` and
``jaxsoft predict``. The modules of the run:

- `config`: `Config`, every setting of a run, checked before any data loads;
- `runner`: the three calls above; `training_run`: the steps of one run;
- `checkpoint`: orbax checkpoints, checksummed; `run_folder`: the run's lock,
  history and summary files;
- `distributed`: several processes through `jax.distributed` (`Launch`);
- `signals`: Ctrl-C and SIGTERM at an epoch boundary, and the process's exit;
- `plots` and `images`: the figures of a run, and image files as inputs.

The run uses the library (`jaxsoft.train`, `jaxsoft.data`, the math); the
library never imports the run.

>>> from jaxsoft.experiment import Config, train_and_evaluate
>>> summary = train_and_evaluate(Config(epochs=2), "/tmp/run")  # doctest: +SKIP

The names load on first use (PEP 562, as in ``jaxsoft``), so the ``jaxsoft``
command imports `signals` before JAX and guards that import with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxsoft._lazy import loader

if TYPE_CHECKING:
    from jaxsoft.experiment.config import Config, ConfigError
    from jaxsoft.experiment.distributed import Launch, LaunchError
    from jaxsoft.experiment.run_folder import RunFolder
    from jaxsoft.experiment.runner import (
        Prediction,
        RunDivergedError,
        RunError,
        evaluate_checkpoint,
        predict_files,
        train_and_evaluate,
    )

_HOMES = {  # each public name -> the module that defines it
    "Config": "config",
    "ConfigError": "config",
    "Launch": "distributed",
    "LaunchError": "distributed",
    "RunFolder": "run_folder",
    **dict.fromkeys(
        (
            "Prediction",
            "RunDivergedError",
            "RunError",
            "evaluate_checkpoint",
            "predict_files",
            "train_and_evaluate",
        ),
        "runner",
    ),
}

__all__ = [
    "Config",
    "ConfigError",
    "Launch",
    "LaunchError",
    "Prediction",
    "RunDivergedError",
    "RunError",
    "RunFolder",
    "evaluate_checkpoint",
    "predict_files",
    "train_and_evaluate",
]


__getattr__, __dir__ = loader(__name__, _HOMES, globals())
