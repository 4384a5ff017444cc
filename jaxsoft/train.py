"""Training softmax regression: optax minibatch epochs, L-BFGS, evaluation.

Three entry points, all host-facing (they validate their inputs on the host
and raise a clear `ValueError` before anything is compiled):

- `fit`: minibatch training with any optax optimizer. The data goes to the
  device once; one epoch is one compiled call, a `jax.lax.scan` over
  minibatches drawn from a fresh permutation of the training set.
- `solve_lbfgs`: the exact minimiser of the L2-regularised objective
  (`jaxsoft.loss`) by full-batch `optax.lbfgs`, inside one compiled
  `jax.lax.while_loop`.
- `evaluate`: loss, accuracy, per-class accuracy and confusion matrix over
  every example, in fixed-size compiled chunks.

Nothing here is device-specific: the same code runs on CPU, GPU and TPU
(select one with ``JAX_PLATFORMS``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxsoft import losses, metrics, model
from jaxsoft import objective as objective_lib

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
    "evaluate",
    "fit",
    "make_optimizer",
    "solve_lbfgs",
    "top_k",
    "validate_data",
]

DEFAULT_EVAL_CHUNK = 4096


# --------------------------------------------------------------------------
# Errors, records and state.


class TrainingError(RuntimeError):
    """Base class of the errors that stop a training run."""


class TrainingDiverged(TrainingError):  # noqa: N818 (the name the API promises)
    """The loss became NaN or infinite.

    Attributes:
      epoch: the 1-based epoch whose mean loss was not finite.
      loss: that loss value.
      last_good: the `TrainState` after the last finite epoch (the initial
        state if the first epoch diverged).
      history: the `EpochRecord`s of the finite epochs.
    """

    def __init__(
        self,
        epoch: int,
        loss: float,
        learning_rate: Any,
        last_good: TrainState,
        history: list[EpochRecord],
    ):
        self.epoch = epoch
        self.loss = loss
        self.last_good = last_good
        self.history = history
        lr = (
            f"learning rate {learning_rate:g}"
            if isinstance(learning_rate, (int, float))
            else "the learning rate"
        )
        super().__init__(
            f"training diverged in epoch {epoch}: the mean training loss is "
            f"{loss} (not finite), so the parameters overflowed. The "
            f"{lr} is probably too large for this data: try a smaller one "
            "(e.g. 10x smaller), another optimizer (adam), or stronger L2. "
            f"The state after epoch {last_good.epoch} is the last good one."
        )


class TrainState(NamedTuple):
    """Everything needed to continue a run exactly.

    Attributes:
      params: the current `Params`.
      opt_state: the optimizer's state.
      epoch: the number of completed epochs (0 before training).
      key: the run's base PRNG key; epoch e (1-based) shuffles with
        ``jax.random.fold_in(key, e)``, so a resumed run draws the same
        permutations as an uninterrupted one.
    """

    params: model.Params
    opt_state: optax.OptState
    epoch: int
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One line of the training history.

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


class FitResult(NamedTuple):
    """What `fit` returns.

    Attributes:
      params: the trained `Params` (``state.params``).
      state: the final `TrainState` (to continue training).
      history: one `EpochRecord` per epoch, including those of a resumed
        run's earlier epochs when they were passed in.
    """

    params: model.Params
    state: TrainState
    history: list[EpochRecord]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Metrics over every example of a split.

    Attributes:
      loss: mean cross-entropy in nats (no L2 term).
      accuracy: fraction of examples classified correctly.
      per_class_accuracy: float array (q,): recall of each class (NaN for a
        class with no example).
      confusion: int array (q, q): ``confusion[i, j]`` counts examples of true
        class i predicted as j.
      num_examples: n.
    """

    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    num_examples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN per-class accuracies become None)."""
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "per_class_accuracy": [
                None if math.isnan(a) else float(a) for a in self.per_class_accuracy
            ],
            "confusion": self.confusion.tolist(),
            "num_examples": self.num_examples,
        }


class LbfgsInfo(NamedTuple):
    """Convergence report of `solve_lbfgs`.

    Attributes:
      iterations: L-BFGS iterations run.
      converged: whether ``||grad|| <= tol`` was reached within max_iter.
      objective: the final value of `jaxsoft.loss` (with the L2 term).
      grad_norm: the final gradient's Euclidean norm.
    """

    iterations: int
    converged: bool
    objective: float
    grad_norm: float


# --------------------------------------------------------------------------
# Host-side validation.


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}.")
    return int(value)


def _check_non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return float(value)


def validate_data(
    x: ArrayLike,
    y: ArrayLike,
    num_classes: int,
    *,
    num_features: int | None = None,
    split: str = "train",
) -> tuple[np.ndarray | jax.Array, np.ndarray | jax.Array]:
    """Checks a split on the host and returns it as (x float, y int32).

    Args:
      x: features of shape (n, d), floating (integers are converted to
        float32).
      y: integer class labels of shape (n,).
      num_classes: q; every label must lie in [0, q).
      num_features: d expected by the parameters, if known.
      split: the split's name, for the messages.

    Returns:
      ``(x, y)``: x floating of shape (n, d), y int32 of shape (n,). NumPy
      inputs stay NumPy arrays, JAX arrays stay on their device.

    Raises:
      ValueError: empty data, wrong ranks, mismatched lengths, wrong number of
        features, NaN or infinite features, non-integer labels or labels
        outside [0, num_classes).
    """
    x_host = np.asarray(x)
    y_host = np.asarray(y)
    if x_host.ndim != 2:
        raise ValueError(
            f"x_{split} must have shape (n, d), got shape {x_host.shape}. "
            "Flatten images first, e.g. x.reshape(len(x), -1)."
        )
    if y_host.ndim != 1:
        raise ValueError(
            f"y_{split} must be integer class labels of shape (n,), got shape "
            f"{y_host.shape}."
        )
    if len(x_host) != len(y_host):
        raise ValueError(
            f"x_{split} and y_{split} have different lengths: {len(x_host)} "
            f"examples but {len(y_host)} labels."
        )
    if len(x_host) == 0:
        raise ValueError(f"the {split} split is empty: there is nothing to use.")
    if num_features is not None and x_host.shape[1] != num_features:
        raise ValueError(
            f"x_{split} has {x_host.shape[1]} features but the parameters expect "
            f"d = {num_features}."
        )
    # jnp.issubdtype also knows ml_dtypes' bfloat16, which NumPy does not.
    is_float = jnp.issubdtype(x_host.dtype, jnp.floating)
    if not (
        is_float or np.issubdtype(x_host.dtype, np.integer) or x_host.dtype == np.bool_
    ):
        raise ValueError(f"x_{split} must be numeric, got dtype {x_host.dtype}.")
    if is_float:
        finite = np.isfinite(x_host)
        if not finite.all():
            bad = int(np.argwhere(~finite)[0][0])
            count = int((~finite.all(axis=1)).sum())
            raise ValueError(
                f"x_{split} contains NaN or infinite features ({count} "
                f"example(s), the first at index {bad}). Clean or drop them "
                "before training."
            )
    if not np.issubdtype(y_host.dtype, np.integer):
        raise ValueError(
            f"y_{split} must hold integer class indices, got dtype "
            f"{y_host.dtype}. Convert with y.astype(np.int32)."
        )
    low, high = int(y_host.min()), int(y_host.max())
    if low < 0 or high >= num_classes:
        bad_value = low if low < 0 else high
        raise ValueError(
            f"y_{split} has label {bad_value} outside [0, {num_classes}): labels "
            f"must be class indices 0..{num_classes - 1}."
        )
    if isinstance(x, jax.Array):
        x_out = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
        y_out = jnp.asarray(y, jnp.int32)
        return x_out, y_out
    x_out = x_host if is_float else x_host.astype(np.float32)
    return x_out, y_host.astype(np.int32)


# --------------------------------------------------------------------------
# Optimizers by name.

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: optax.adam(lr),
    "adamw": lambda lr: optax.adamw(lr),
    "adagrad": lambda lr: optax.adagrad(lr),
    "rmsprop": lambda lr: optax.rmsprop(lr),
    "adabelief": lambda lr: optax.adabelief(lr),
    "lion": lambda lr: optax.lion(lr),
}
"""Optimizer names accepted by `make_optimizer` (and the CLI's --optimizer)."""

SCHEDULES = ("constant", "cosine", "warmup-cosine", "linear")
"""Learning-rate schedule names accepted by `make_optimizer`."""


def make_schedule(
    name: str, learning_rate: float, total_steps: int
) -> float | optax.Schedule:
    """A learning-rate schedule by name over ``total_steps`` optimizer steps.

    Args:
      name: "constant" (the plain rate), "cosine" (cosine decay to 0),
        "warmup-cosine" (linear warm-up over the first 5% of the steps, then
        cosine decay to 0) or "linear" (linear decay to 0).
      learning_rate: the peak learning rate (> 0).
      total_steps: the run's number of optimizer steps.

    Returns:
      A float (constant) or an `optax.Schedule`.
    """
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}."
        )
    total_steps = _check_positive_int("total_steps", total_steps)
    if name == "constant":
        return learning_rate
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_steps)
    if name == "linear":
        return optax.linear_schedule(learning_rate, 0.0, total_steps)
    warmup = max(1, total_steps // 20)
    return optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup, max(total_steps, warmup + 1)
    )


@functools.lru_cache(maxsize=32)
def _cached_optimizer(
    name: str, learning_rate: float, schedule: str, total_steps: int
) -> optax.GradientTransformation:
    return OPTIMIZERS[name](make_schedule(schedule, learning_rate, total_steps))


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    schedule: str = "constant",
    total_steps: int = 1,
) -> optax.GradientTransformation:
    """An optax optimizer by name, with an optional learning-rate schedule.

    Args:
      name: one of `OPTIMIZERS` (sgd, momentum, nesterov, adam, adamw,
        adagrad, rmsprop, adabelief, lion).
      learning_rate: the (peak) learning rate, > 0.
      schedule: one of `SCHEDULES`.
      total_steps: optimizer steps in the whole run (for the schedule).

    Returns:
      An `optax.GradientTransformation` (the same object for the same
      arguments, so repeated runs reuse their compiled code).

    Example:
      >>> import jaxsoft.train as jt
      >>> opt = jt.make_optimizer("adam", 1e-2, schedule="cosine", total_steps=100)
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}."
        )
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float, np.number))
        or not math.isfinite(learning_rate)
        or learning_rate <= 0
    ):
        raise ValueError(
            f"learning_rate must be a finite number > 0, got {learning_rate!r}."
        )
    if schedule not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}."
        )
    total_steps = _check_positive_int("total_steps", total_steps)
    # The same settings give the same object, so `fit` reuses its compiled epoch.
    return _cached_optimizer(name, float(learning_rate), schedule, total_steps)


# --------------------------------------------------------------------------
# Minibatch training.


def _minibatch_objective(
    params: model.Params, x: jax.Array, y: jax.Array, l2: float
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """`jaxsoft.loss` on one batch, with (cross-entropy, accuracy) as aux."""
    # js.loss for the objective; the logits again for the aux metrics (XLA
    # computes the shared matrix product once).
    objective = objective_lib.loss(params, x, y, l2)
    o = model.logits(params, x)
    mean_ce = jnp.mean(losses.cross_entropy(o, y))
    return objective, (mean_ce, metrics.accuracy(o, y))


@functools.lru_cache(maxsize=8)
def _make_epoch_fn(
    optimizer: optax.GradientTransformation, batch_size: int
) -> Callable[..., tuple[Any, ...]]:
    """The compiled epoch: (params, opt_state, key, x, y, l2) -> new state."""
    grad_fn = jax.value_and_grad(_minibatch_objective, has_aux=True)

    def epoch(
        params: model.Params,
        opt_state: optax.OptState,
        key: jax.Array,
        x: jax.Array,
        y: jax.Array,
        l2: jax.Array,
    ) -> tuple[model.Params, optax.OptState, jax.Array, jax.Array, jax.Array]:
        n = x.shape[0]
        num_batches = n // batch_size
        permutation = jax.random.permutation(key, n)

        def step(
            carry: tuple[model.Params, optax.OptState], i: jax.Array
        ) -> tuple[tuple[model.Params, optax.OptState], tuple[jax.Array, ...]]:
            params, opt_state = carry
            index = jax.lax.dynamic_slice_in_dim(
                permutation, i * batch_size, batch_size
            )
            x_batch = jnp.take(x, index, axis=0)
            y_batch = jnp.take(y, index, axis=0)
            (objective, (mean_ce, acc)), grads = grad_fn(params, x_batch, y_batch, l2)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (objective, mean_ce, acc)

        (params, opt_state), (objectives, ces, accs) = jax.lax.scan(
            step, (params, opt_state), jnp.arange(num_batches)
        )
        return params, opt_state, jnp.mean(objectives), jnp.mean(ces), jnp.mean(accs)

    return jax.jit(epoch)


def _epoch_key(key: jax.Array, epoch: int) -> jax.Array:
    """The shuffling key of 1-based ``epoch``."""
    return jax.random.fold_in(key, epoch)


def fit(
    params: model.Params,
    x_train: ArrayLike,
    y_train: ArrayLike,
    *,
    key: jax.Array,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 1e-2,
    schedule: str = "constant",
    l2: float = 0.0,
    batch_size: int = 128,
    epochs: int = 10,
    x_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    state: TrainState | None = None,
    history: Sequence[EpochRecord] = (),
    on_epoch_end: Callable[[TrainState, EpochRecord], None] | None = None,
    eval_chunk_size: int = DEFAULT_EVAL_CHUNK,
) -> FitResult:
    """Minibatch training of softmax regression with an optax optimizer.

    Minimises ``jaxsoft.loss(params, x, y, l2)`` (mean cross-entropy plus
    ``(l2 / 2) ||W||^2``). The training data goes to the device once. Each
    epoch is one compiled call: a `jax.lax.scan` over ``n // batch_size``
    minibatches, each gathered by index from a fresh permutation drawn with
    ``jax.random.fold_in(key, epoch)``; a step is `jax.value_and_grad` ->
    ``optimizer.update`` -> `optax.apply_updates`.

    The last partial batch: an epoch takes ``n // batch_size`` full batches,
    so the ``n % batch_size`` examples at the end of the permutation are not
    trained on in that epoch. The permutation is new each epoch, so which
    examples sit out changes every epoch and none is left out for long.
    Evaluation (the test metrics, `evaluate`) always uses every example.

    Divergence: after each epoch the mean training objective comes to the
    host (one scalar); if it is NaN or infinite, `TrainingDiverged` is raised
    and ``on_epoch_end`` is not called for that epoch, so a checkpoint saved
    by it stays the last good one.

    Args:
      params: initial `Params` (ignored when ``state`` is given).
      x_train: features of shape (n, d).
      y_train: integer labels of shape (n,) in [0, q), q = params.num_classes.
      key: the run's PRNG key (reproducible shuffling).
      optimizer: an optimizer name (see `OPTIMIZERS`) or any
        `optax.GradientTransformation` (then ``learning_rate`` and
        ``schedule`` are ignored).
      learning_rate: the (peak) learning rate for a named optimizer.
      schedule: a `SCHEDULES` name, over the run's total steps.
      l2: L2 strength on W (>= 0).
      batch_size: examples per step, 1 <= batch_size <= n.
      epochs: the total number of epochs of the run (>= 1).
      x_test: optional test features (m, d), evaluated after each epoch.
      y_test: optional test labels (m,).
      state: a `TrainState` to continue from (e.g. restored from a
        checkpoint); training runs epochs ``state.epoch + 1 .. epochs``.
      history: the records of the epochs already done (when resuming).
      on_epoch_end: called as ``on_epoch_end(state, record)`` after each good
        epoch (checkpointing, progress display).
      eval_chunk_size: examples per compiled evaluation chunk.

    Returns:
      A `FitResult` (params, final state, history).

    Raises:
      ValueError: invalid data or hyperparameters (before any compilation).
      TrainingDiverged: the loss became NaN or infinite.

    Example:
      >>> import jax, numpy as np
      >>> import jaxsoft as js
      >>> from jaxsoft.train import fit
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(64, 3)).astype(np.float32)
      >>> y = (x[:, 0] > 0).astype(np.int32)
      >>> params = js.init_params(jax.random.key(0), 3, 2)
      >>> result = fit(params, x, y, key=jax.random.key(1), batch_size=16, epochs=5)
      >>> len(result.history), result.history[-1].train_accuracy > 0.8
      (5, True)
    """
    if state is not None:
        params = state.params
    if not isinstance(params, model.Params):
        raise ValueError(
            f"params must be jaxsoft.Params(W, b), got {type(params).__name__}."
        )
    num_features, num_classes = params.W.shape[0], params.W.shape[1]
    x_train, y_train = validate_data(
        x_train, y_train, num_classes, num_features=num_features, split="train"
    )
    has_test = x_test is not None or y_test is not None
    if has_test:
        if x_test is None or y_test is None:
            raise ValueError("pass both x_test and y_test, or neither.")
        x_test, y_test = validate_data(
            x_test, y_test, num_classes, num_features=num_features, split="test"
        )
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    eval_chunk_size = _check_positive_int("eval_chunk_size", eval_chunk_size)
    l2 = _check_non_negative("l2", l2)
    n = len(x_train)
    if batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {n} training examples; "
            f"use a batch size of at most {n}."
        )
    steps_per_epoch = n // batch_size
    if isinstance(optimizer, str):
        optimizer_fn = make_optimizer(
            optimizer,
            learning_rate,
            schedule=schedule,
            total_steps=epochs * steps_per_epoch,
        )
        lr_for_message: Any = learning_rate
    elif isinstance(optimizer, optax.GradientTransformation):
        optimizer_fn = optimizer
        lr_for_message = None
    else:
        raise ValueError(
            "optimizer must be a name or an optax.GradientTransformation, got "
            f"{type(optimizer).__name__}."
        )
    if state is None:
        state = TrainState(params, optimizer_fn.init(params), 0, key)
    elif not 0 <= state.epoch <= epochs:
        raise ValueError(
            f"the state has {state.epoch} epochs done but the run has only "
            f"{epochs}; pass epochs >= {state.epoch}."
        )

    device_x, device_y = jax.device_put((x_train, y_train))
    if has_test:
        device_x_test, device_y_test = jax.device_put((x_test, y_test))
    epoch_fn = _make_epoch_fn(optimizer_fn, batch_size)
    l2_array = jnp.asarray(l2, jnp.float32)
    history = list(history)

    while state.epoch < epochs:
        epoch = state.epoch + 1
        start = time.perf_counter()
        new_params, new_opt_state, objective, mean_ce, acc = epoch_fn(
            state.params,
            state.opt_state,
            _epoch_key(state.key, epoch),
            device_x,
            device_y,
            l2_array,
        )
        objective = float(objective)
        if not math.isfinite(objective):
            raise TrainingDiverged(epoch, objective, lr_for_message, state, history)
        new_state = TrainState(new_params, new_opt_state, epoch, state.key)
        test_loss = test_accuracy = None
        if has_test:
            test_metrics = _evaluate_device(
                new_params, device_x_test, device_y_test, eval_chunk_size
            )
            test_loss, test_accuracy = test_metrics.loss, test_metrics.accuracy
        record = EpochRecord(
            epoch=epoch,
            train_loss=float(mean_ce),
            train_accuracy=float(acc),
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            seconds=time.perf_counter() - start,
        )
        history.append(record)
        state = new_state
        if on_epoch_end is not None:
            on_epoch_end(state, record)
    return FitResult(state.params, state, history)


# --------------------------------------------------------------------------
# Evaluation.


@jax.jit
def _accumulate_chunk(
    totals: tuple[jax.Array, jax.Array],
    params: model.Params,
    x: jax.Array,
    y: jax.Array,
    num_valid: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Adds one padded chunk's (loss sum, confusion counts) to ``totals``.

    Rows at index >= num_valid are padding and count for nothing.
    """
    loss_sum, confusion = totals
    o = model.logits(params, x)
    valid = jnp.arange(x.shape[0]) < num_valid
    per_example = losses.cross_entropy(o, y)
    loss_sum = loss_sum + jnp.sum(jnp.where(valid, per_example, 0.0))
    predicted = jnp.argmax(o, axis=-1)
    confusion = confusion.at[y, predicted].add(valid.astype(confusion.dtype))
    return loss_sum, confusion


def _pad_rows(a: Any, rows: int) -> Any:
    """Pads the leading axis of a NumPy or JAX array with zeros to ``rows``."""
    pad = [(0, rows - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    return jnp.pad(a, pad) if isinstance(a, jax.Array) else np.pad(a, pad)


def _evaluate_device(
    params: model.Params, x: Any, y: Any, chunk_size: int
) -> Evaluation:
    """`evaluate` without validation: fixed-size chunks, the last padded."""
    n, q = x.shape[0], params.W.shape[1]
    totals = (jnp.zeros((), jnp.float32), jnp.zeros((q, q), jnp.int32))
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        x_chunk, y_chunk = x[start:stop], y[start:stop]
        if stop - start < chunk_size:
            x_chunk = _pad_rows(x_chunk, chunk_size)
            y_chunk = _pad_rows(y_chunk, chunk_size)
        totals = _accumulate_chunk(
            totals, params, x_chunk, y_chunk, jnp.asarray(stop - start, jnp.int32)
        )
    loss_sum, confusion = jax.device_get(totals)
    confusion = np.asarray(confusion)
    counts = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, np.diag(confusion) / counts, np.nan)
    return Evaluation(
        loss=float(loss_sum) / n,
        accuracy=float(np.trace(confusion)) / n,
        per_class_accuracy=per_class.astype(np.float64),
        confusion=confusion,
        num_examples=n,
    )


def evaluate(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int = DEFAULT_EVAL_CHUNK,
) -> Evaluation:
    """Loss, accuracy, per-class accuracy and confusion over every example.

    The examples go through one compiled function in chunks of
    ``chunk_size`` rows (the last chunk is padded and masked), so memory
    stays bounded and every size reuses the same compiled code; the result
    equals the unchunked computation.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      chunk_size: rows per chunk (>= 1).

    Returns:
      An `Evaluation`.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> import jaxsoft as js
      >>> from jaxsoft.train import evaluate
      >>> params = js.Params(W=jnp.eye(2), b=jnp.zeros(2))
      >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
      >>> result = evaluate(params, x, np.array([0, 1, 1]), chunk_size=2)
      >>> round(result.accuracy, 4), result.confusion.tolist()
      (0.6667, [[1, 0], [1, 1]])
    """
    if not isinstance(params, model.Params):
        raise ValueError(
            f"params must be jaxsoft.Params(W, b), got {type(params).__name__}."
        )
    chunk_size = _check_positive_int("chunk_size", chunk_size)
    x, y = validate_data(
        x, y, params.W.shape[1], num_features=params.W.shape[0], split="eval"
    )
    return _evaluate_device(params, x, y, chunk_size)


def top_k(
    params: model.Params, x: ArrayLike, k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable classes of each example and their probabilities.

    Args:
      params: `Params` with W (d, q) and b (q,).
      x: features of shape (n, d).
      k: how many classes (clipped to q).

    Returns:
      ``(classes, probabilities)``, both of shape (n, min(k, q)), most
      probable first.
    """
    k = min(_check_positive_int("k", k), params.W.shape[1])
    probabilities = model.predict_proba(params, jnp.asarray(x))
    top_probabilities, classes = jax.lax.top_k(probabilities, k)
    return np.asarray(classes), np.asarray(top_probabilities)


# --------------------------------------------------------------------------
# Full-batch L-BFGS.


@functools.lru_cache(maxsize=8)
def _make_lbfgs_solver(
    memory_size: int,
) -> Callable[..., tuple[model.Params, jax.Array, jax.Array, jax.Array]]:
    optimizer = optax.lbfgs(memory_size=memory_size)

    def solve(
        params: model.Params,
        x: jax.Array,
        y: jax.Array,
        l2: jax.Array,
        tol: jax.Array,
        max_iter: jax.Array,
    ) -> tuple[model.Params, jax.Array, jax.Array, jax.Array]:
        def objective(p: model.Params) -> jax.Array:
            return objective_lib.loss(p, x, y, l2)

        value_and_grad = optax.value_and_grad_from_state(objective)

        def grad_norm(state: optax.OptState) -> jax.Array:
            return optax.tree.norm(optax.tree.get(state, "grad"))

        def step(carry: tuple[model.Params, optax.OptState]) -> tuple[Any, Any]:
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=objective
            )
            return optax.apply_updates(params, updates), state

        def keep_going(carry: tuple[model.Params, optax.OptState]) -> jax.Array:
            _, state = carry
            count = optax.tree.get(state, "count")
            return (count == 0) | ((count < max_iter) & (grad_norm(state) > tol))

        params, state = jax.lax.while_loop(
            keep_going, step, (params, optimizer.init(params))
        )
        return (
            params,
            optax.tree.get(state, "count"),
            optax.tree.get(state, "value"),
            grad_norm(state),
        )

    return jax.jit(solve)


def solve_lbfgs(
    params: model.Params,
    x: ArrayLike,
    y: ArrayLike,
    *,
    l2: float = 0.0,
    tol: float = 1e-5,
    max_iter: int = 1000,
    memory_size: int = 10,
) -> tuple[model.Params, LbfgsInfo]:
    """The minimiser of ``jaxsoft.loss(params, x, y, l2)`` by full-batch L-BFGS.

    Runs `optax.lbfgs` (zoom line search) inside one compiled
    `jax.lax.while_loop` until the gradient norm is at most ``tol`` or
    ``max_iter`` iterations are done. With l2 > 0 the objective is strictly
    convex and this is its unique optimum: the same as scikit-learn's
    ``LogisticRegression(solver="lbfgs", C=1 / (l2 * n))`` (which minimises
    the same function scaled by C * n). With l2 = 0 on separable data the
    optimum is at infinity and the solver stops at max_iter.

    Args:
      params: the starting point (e.g. ``init_params(key, d, q, scale=0.0)``).
      x: features of shape (n, d).
      y: integer labels of shape (n,) in [0, q).
      l2: L2 strength on W (>= 0).
      tol: stop when ``||grad||_2 <= tol``. In float32 the gradient's rounding
        noise is about 1e-7 times its terms, so tolerances far below 1e-6
        may never be reached.
      max_iter: the most iterations.
      memory_size: L-BFGS history length.

    Returns:
      ``(params, info)`` with `LbfgsInfo` (iterations, converged, objective,
      grad_norm).
    """
    if not isinstance(params, model.Params):
        raise ValueError(
            f"params must be jaxsoft.Params(W, b), got {type(params).__name__}."
        )
    x, y = validate_data(
        x, y, params.W.shape[1], num_features=params.W.shape[0], split="train"
    )
    l2 = _check_non_negative("l2", l2)
    tol = _check_non_negative("tol", tol)
    max_iter = _check_positive_int("max_iter", max_iter)
    memory_size = _check_positive_int("memory_size", memory_size)
    solver = _make_lbfgs_solver(memory_size)
    dtype = params.W.dtype
    params, iterations, value, norm = solver(
        params,
        jnp.asarray(x, dtype),
        jnp.asarray(y),
        jnp.asarray(l2, dtype),
        jnp.asarray(tol, dtype),
        jnp.asarray(max_iter, jnp.int32),
    )
    norm = float(norm)
    info = LbfgsInfo(
        iterations=int(iterations),
        converged=bool(norm <= tol),
        objective=float(value),
        grad_norm=norm,
    )
    return params, info
