"""The errors that stop a training run."""

from __future__ import annotations

from collections.abc import Sequence

from jaxsoft.errors import JaxsoftError
from jaxsoft.records import EpochRecord, TrainState

__all__ = ["TrainingDiverged", "TrainingError"]


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
        rate = (
            "the learning rate"
            if learning_rate is None
            else f"the learning rate {learning_rate:g}"
        )
        super().__init__(
            f"training diverged in epoch {epoch}: the mean training loss is "
            f"{loss} (not finite), so the parameters overflowed. {rate[0].upper()}"
            f"{rate[1:]} is probably too large for this data: try a smaller one "
            "(e.g. 10x smaller), another optimizer (adam), or stronger L2."
        )
