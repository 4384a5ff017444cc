"""`Config`: every setting of a training run, checked before any data is loaded.

The CLI derives its ``jaxsoft train`` flags from the fields below (their
help text is in each field's metadata; `jaxsoft.cli.flags` names them), and
the notebooks and tests build a `Config`. A hyperparameter's default lives
beside the function that uses it and is read from there:
`jaxsoft.train.fit`'s signature (epochs, batch size, optimizer, learning
rate, schedule, L2, evaluation chunk) and
`jaxsoft.experiment.checkpoint.Checkpointer`'s (checkpoints kept). The
settings of the run itself (dataset, seed, checkpoint interval, folders)
have theirs here. Values are checked when a `Config` is made; a bad one
raises `ConfigError`, which names the field.

The arrows point down: this module imports `jaxsoft.train` and
`jaxsoft.experiment.checkpoint` and neither of them imports it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from jaxsoft import train, validation
from jaxsoft.errors import JaxsoftError
from jaxsoft.experiment import checkpoint
from jaxsoft.train import optimizers

__all__ = ["RUN_DEFINING", "Config", "ConfigError"]


class ConfigError(JaxsoftError, ValueError):
    """A `Config` setting is invalid.

    Attributes:
      field: the name of the bad field, e.g. "learning_rate".
      value: the value given for it.
    """

    def __init__(self, message: str, field: str, value: Any):
        super().__init__(message)
        self.field = field
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.field, self.value)


def _default(function: Callable[..., Any], name: str) -> Any:
    """The default of parameter ``name`` of ``function`` (its one home)."""
    return inspect.signature(function).parameters[name].default


def _field(default: Any, help: str, *, run: bool = False):
    """A dataclass field with its help text (for the CLI) in its metadata.

    ``run=True`` marks a setting that defines the run: resuming with another
    value is refused.
    """
    return dataclasses.field(default=default, metadata={"help": help, "run": run})


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of one training run (`jaxsoft.experiment.train_and_evaluate`).

    Example:
      >>> from jaxsoft.experiment import Config
      >>> Config(epochs=5).batch_size
      32
      >>> Config(l2=-1.0)
      Traceback (most recent call last):
      ...
      jaxsoft.experiment.config.ConfigError: l2 must be a finite number >= 0, got -1.0.
    """

    dataset: str = _field(
        "digits", "dataset name: digits (offline) or a TFDS catalog name", run=True
    )
    epochs: int = _field(_default(train.fit, "epochs"), "epochs in the whole run")
    batch_size: int = _field(
        _default(train.fit, "batch_size"), "examples per optimizer step", run=True
    )
    optimizer: str = _field(
        _default(train.fit, "optimizer"), "optax optimizer", run=True
    )
    learning_rate: float = _field(
        _default(train.fit, "learning_rate"),
        "(peak) learning rate",
        run=True,
    )
    schedule: str = _field(
        _default(train.fit, "schedule"), "learning-rate schedule over the run", run=True
    )
    l2: float = _field(
        _default(train.fit, "l2"), "L2 strength on W: loss + (l2/2) ||W||^2", run=True
    )
    seed: int = _field(0, "PRNG seed of the initial parameters and shuffling", run=True)
    checkpoint_every: int = _field(
        10, "save a checkpoint every this many epochs (and after the last)"
    )
    keep_checkpoints: int = _field(
        _default(checkpoint.Checkpointer, "max_to_keep"),
        "how many of the latest checkpoints to keep",
    )
    eval_chunk_size: int = _field(
        _default(train.fit, "eval_chunk_size"), "examples per compiled evaluation chunk"
    )
    data_dir: str | None = _field(None, "where tensorflow-datasets keeps prepared data")
    manual_dir: str | None = _field(
        None, "folder of manually downloaded files (e.g. MNIST's IDX .gz files)"
    )

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            value = getattr(self, name)
            try:
                checked = check(name, value)
            except ValueError as err:
                raise ConfigError(str(err), name, value) from None
            object.__setattr__(self, name, checked)  # NumPy scalars -> Python numbers

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """A `Config` from `to_dict`'s output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def run_settings(self) -> dict[str, Any]:
        """The settings that define the run (a resumed run must keep them)."""
        return {name: getattr(self, name) for name in RUN_DEFINING}


def _dataset(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty name, got {value!r}.")
    return value


def _seed(name: str, value: Any) -> int:
    seed = validation.non_negative_int(name, value)
    if seed >= 2**63:  # what jax.random.key accepts
        raise ValueError(f"{name} must be an integer in [0, 2**63), got {value!r}.")
    return seed


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _dataset,
    "optimizer": lambda _, value: optimizers.check_optimizer_name(value),
    "schedule": lambda _, value: optimizers.check_schedule_name(value),
    "epochs": validation.positive_int,
    "batch_size": validation.positive_int,
    "learning_rate": validation.positive_float,
    "l2": validation.non_negative_float,
    "seed": _seed,
    "checkpoint_every": validation.positive_int,
    "keep_checkpoints": validation.positive_int,
    "eval_chunk_size": validation.positive_int,
}
"""Each checked field's check, ``check(name, value) -> value``, in order."""


RUN_DEFINING: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Config) if f.metadata["run"]
)
"""The fields a resumed run must keep (``epochs`` may grow, see the CLI)."""
