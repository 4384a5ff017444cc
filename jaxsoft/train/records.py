"""The records of a training run: its state, one line of history, an evaluation.

These types are shared by the trainer, the checkpoints, the plots and the
experiment runner; this module imports none of them, so that reading a
checkpoint or drawing a curve never pulls in the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxsoft import model

__all__ = ["EpochRecord", "Evaluation", "TrainState"]


class TrainState(NamedTuple):
    """Everything needed to continue a run exactly.

    Attributes:
      params: the current `Params`.
      opt_state: the optimizer's state (an optax pytree).
      epoch: the number of completed epochs (0 before training).
      key: the run's base PRNG key; epoch e (1-based) visits the examples in
        the order ``jaxsoft.train.epoch_permutation(key, e, n)``, so a resumed
        run draws the same permutations as an uninterrupted one.
    """

    params: model.Params
    opt_state: Any
    epoch: int
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One line of the training history (one line of ``metrics.jsonl``).

    Attributes:
      epoch: 1-based epoch number.
      train_loss: mean cross-entropy (nats, without the L2 term) over the
        epoch's minibatches, each with the parameters of its step.
      train_accuracy: mean minibatch accuracy over the epoch.
      test_loss: mean cross-entropy over the whole test set after the epoch,
        or None without test data.
      test_accuracy: accuracy over the whole test set, or None.
      seconds: wall-clock seconds of the epoch, evaluation included (the
        first epoch also includes compilation).
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> EpochRecord:
        """The inverse of `to_dict`."""
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Metrics over every example of a split.

    Attributes:
      loss: mean cross-entropy in nats (no L2 term).
      accuracy: fraction of examples classified correctly.
      top_k_accuracy: fraction whose label is among the ``top_k`` highest
        logits (ties count for the label), or None when q <= top_k.
      top_k: the k of ``top_k_accuracy``.
      calibration_error: expected calibration error (15 equal-width
        confidence bins), in [0, 1].
      per_class_accuracy: float array (q,): recall of each class (NaN for a
        class with no example).
      confusion: int array (q, q): ``confusion[i, j]`` counts examples of true
        class i predicted as j.
      num_examples: n.
    """

    loss: float
    accuracy: float
    top_k_accuracy: float | None
    top_k: int
    calibration_error: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    num_examples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN per-class accuracies become None)."""
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            f"top_{self.top_k}_accuracy": self.top_k_accuracy,
            "calibration_error": self.calibration_error,
            "per_class_accuracy": [
                None if math.isnan(a) else float(a) for a in self.per_class_accuracy
            ],
            "confusion": np.asarray(self.confusion).tolist(),
            "num_examples": self.num_examples,
        }
