"""Training softmax regression: optax minibatch epochs, L-BFGS, evaluation.

Three entry points, all host-facing (they validate their inputs on the host,
through `jaxsoft.validation`, before anything is compiled):

- `fit` (`minibatch`): minibatch training with any optax optimizer; one epoch
  is one compiled `jax.lax.scan` over a fresh permutation of the data.
- `solve_lbfgs` (`lbfgs`): the exact minimiser of `jaxsoft.loss` by
  full-batch `optax.lbfgs` inside one compiled `jax.lax.while_loop`.
- `evaluate` (`evaluation`): loss, accuracy, top-5 accuracy, calibration and
  confusion over every example, in one compiled pass over fixed-size chunks.

Optimizers and schedules by name live in `optimizers`; the errors in
`errors`; the state and records in `jaxsoft.train.records`. Nothing here is
device-specific: the same code runs on CPU, GPU and TPU.
"""

from jaxsoft.train.errors import TrainingDiverged, TrainingError
from jaxsoft.train.evaluation import evaluate
from jaxsoft.train.lbfgs import LbfgsInfo, solve_lbfgs
from jaxsoft.train.minibatch import (
    FitResult,
    epoch_permutation,
    fit,
    initial_state,
    total_steps,
)
from jaxsoft.train.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    make_optimizer,
    make_schedule,
)
from jaxsoft.train.records import EpochRecord, Evaluation, TrainState

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "EpochRecord",
    "Evaluation",
    "FitResult",
    "LbfgsInfo",
    "TrainState",
    "TrainingDiverged",
    "TrainingError",
    "epoch_permutation",
    "evaluate",
    "fit",
    "initial_state",
    "make_optimizer",
    "make_schedule",
    "solve_lbfgs",
    "total_steps",
]
