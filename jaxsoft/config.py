"""`Config`: every setting of a training run, and the one home of their defaults.

The CLI derives its ``jaxsoft train`` flags from the fields below (their help
text is in each field's metadata), the notebooks and tests build a `Config`,
and `jaxsoft.train.fit` takes its hyperparameter defaults from it. Values are
checked when a `Config` is made, before any data is loaded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxsoft import validation

__all__ = ["RUN_DEFINING", "Config", "flags"]


def _field(default: Any, help: str, *, flags: tuple[str, ...] = (), run: bool = False):
    """A dataclass field with the CLI's help text and flags in its metadata.

    ``run=True`` marks a setting that defines the run: resuming with another
    value is refused.
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "flags": flags, "run": run}
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of one training run (`jaxsoft.experiment.train_and_evaluate`).

    Example:
      >>> from jaxsoft.config import Config
      >>> Config(epochs=5).batch_size
      32
      >>> Config(l2=-1.0)
      Traceback (most recent call last):
      ...
      ValueError: l2 must be a finite number >= 0, got -1.0.
    """

    dataset: str = _field(
        "digits", "dataset name: digits (offline) or a TFDS catalog name", run=True
    )
    epochs: int = _field(50, "epochs in the whole run")
    batch_size: int = _field(32, "examples per optimizer step", run=True)
    optimizer: str = _field("adam", "optax optimizer", run=True)
    learning_rate: float = _field(
        0.005, "(peak) learning rate", flags=("--lr", "--learning-rate"), run=True
    )
    schedule: str = _field("cosine", "learning-rate schedule over the run", run=True)
    l2: float = _field(1e-4, "L2 strength on W: loss + (l2/2) ||W||^2", run=True)
    seed: int = _field(0, "PRNG seed of the initial parameters and shuffling", run=True)
    checkpoint_every: int = _field(
        10, "save a checkpoint every this many epochs (and after the last)"
    )
    keep_checkpoints: int = _field(3, "how many of the latest checkpoints to keep")
    eval_chunk_size: int = _field(16384, "examples per compiled evaluation chunk")
    data_dir: str | None = _field(None, "where tensorflow-datasets keeps prepared data")
    manual_dir: str | None = _field(
        None, "folder of manually downloaded files (e.g. MNIST's IDX .gz files)"
    )

    def __post_init__(self) -> None:
        from jaxsoft.train.optimizers import check_optimizer_name, check_schedule_name

        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError(f"dataset must be a non-empty name, got {self.dataset!r}.")
        check_optimizer_name(self.optimizer)
        check_schedule_name(self.schedule)
        checked = {
            "epochs": validation.positive_int("epochs", self.epochs),
            "batch_size": validation.positive_int("batch_size", self.batch_size),
            "learning_rate": validation.positive_float(
                "learning_rate", self.learning_rate
            ),
            "l2": validation.non_negative_float("l2", self.l2),
            "seed": _seed(self.seed),
            "checkpoint_every": validation.positive_int(
                "checkpoint_every", self.checkpoint_every
            ),
            "keep_checkpoints": validation.positive_int(
                "keep_checkpoints", self.keep_checkpoints
            ),
            "eval_chunk_size": validation.positive_int(
                "eval_chunk_size", self.eval_chunk_size
            ),
        }
        for name, value in checked.items():  # NumPy scalars -> Python numbers
            object.__setattr__(self, name, value)

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


def _seed(value: Any) -> int:
    seed = validation.non_negative_int("seed", value)
    if seed >= 2**63:  # what jax.random.key accepts
        raise ValueError(f"seed must be an integer in [0, 2**63), got {value!r}.")
    return seed


def flags(name: str) -> tuple[str, ...]:
    """The command-line flags of a `Config` field, e.g. ("--lr", ...)."""
    field = next(f for f in dataclasses.fields(Config) if f.name == name)
    return field.metadata["flags"] or ("--" + name.replace("_", "-"),)


RUN_DEFINING: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Config) if f.metadata["run"]
)
"""The fields a resumed run must keep (``epochs`` may grow, see the CLI)."""
