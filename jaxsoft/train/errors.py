"""The errors that stop a training run."""

from __future__ import annotations

from collections.abc import Sequence

from jaxsoft.errors import JaxsoftError
from jaxsoft.train.records import EpochRecord, TrainState

__all__ = ["TrainingDiverged", "TrainingError", "divergence_advice"]


def divergence_advice(learning_rate: float | None) -> str:
    """What to do when training diverged (the one home of this advice)."""
    if learning_rate is None:
        rate, smaller = "The learning rate", "a smaller one (e.g. 10x smaller)"
    else:
        rate = f"The learning rate {learning_rate:g}"
        smaller = f"a smaller one (e.g. `learning_rate={learning_rate / 10:g}`)"
    return (
        f"{rate} is probably too large for this data: try {smaller}, another "
        "optimizer (adam), or a stronger L2."
    )


class TrainingError(JaxsoftError, RuntimeError):
    """Base class of the errors that stop a training run."""


class TrainingDiverged(TrainingError):  # noqa: N818 (the name the API promises)
    """The loss became NaN or infinite.

    Attributes:
      epoch: the 1-based epoch whose mean loss was not finite.
      loss: that loss value.
      learning_rate: the (peak) learning rate of a named optimizer, or None.
      last_good: the `TrainState` after the last finite epoch (the initial
        state if the first epoch diverged).
      history: the `EpochRecord`s of the finite epochs.
    """

    def __init__(
        self,
        epoch: int,
        loss: float,
        learning_rate: float | None,
        last_good: TrainState,
        history: Sequence[EpochRecord],
    ):
        self.epoch = epoch
        self.loss = loss
        self.learning_rate = learning_rate
        self.last_good = last_good
        self.history = list(history)
        super().__init__(
            f"training diverged in epoch {epoch}: the mean training loss is "
            f"{loss} (not finite), so the parameters overflowed. "
            + divergence_advice(learning_rate)
        )
