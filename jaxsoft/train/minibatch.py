"""`fit`: minibatch training with optax, one compiled `lax.scan` per epoch."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxsoft import compiling, metrics, model, objective, sharding, validation, weights
from jaxsoft.train import evaluation
from jaxsoft.train.errors import TrainingDiverged
from jaxsoft.train.optimizers import init_state, make_optimizer
from jaxsoft.train.records import EpochRecord, TrainState

__all__ = ["FitResult", "epoch_permutation", "fit", "initial_state", "total_steps"]


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


def _batch_objective(
    params: model.Params,
    x: jax.Array,
    y: jax.Array,
    l2: jax.Array,
    w: jax.Array | None,
    weight_sum: jax.Array | None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """`jaxsoft.loss` of one batch, with its (cross-entropy, accuracy) as aux.

    Unweighted (``w`` None): the batch means. Weighted: ``w`` (B,) are the
    batch's sample weights and ``weight_sum`` is ``B * sum(w) / n`` over the
    whole split (see `fit`). The aux cross-entropy is the same objective with
    ``l2 = 0``; XLA computes the batch's logits once for all three.
    """
    value = objective.loss(params, x, y, l2, sample_weight=w, weight_sum=weight_sum)
    cross_entropy = objective.loss(params, x, y, sample_weight=w, weight_sum=weight_sum)
    o = model.logits(params, x)
    if w is None:
        return value, (cross_entropy, metrics.accuracy(o, y))
    hits = (jnp.argmax(o, axis=-1) == y).astype(w.dtype)
    return value, (cross_entropy, jnp.sum(w * hits) / weight_sum)


@functools.lru_cache(maxsize=8)
def _make_epoch_fn(
    optimizer: optax.GradientTransformation, batch_size: int, mesh: Mesh
) -> Callable[..., tuple[Any, ...]]:
    """The compiled epoch: (params, opt_state, order, x, y, w, l2, weight_sum)
    -> (params, opt_state, mean objective, mean cross-entropy, mean accuracy).

    ``x`` and ``y`` are rows sharded on the mesh's "data" axis (the first
    ``num_examples`` real, the rest padding); params, optimizer state and
    ``order`` (the epoch's permutation of the real rows, `epoch_permutation`)
    are replicated. Step i gathers rows ``order[i B : (i + 1) B]`` and lays
    them out over "data", so every device computes the gradient of its part
    of the batch and XLA sums them. ``w`` is None (unweighted) or the sample
    weights laid out like ``y``; ``weight_sum`` is then `fit`'s normaliser.
    """
    grad_fn = jax.value_and_grad(_batch_objective, has_aux=True)
    batch_layout = sharding.data_sharding(mesh)

    def epoch(
        params: model.Params,
        opt_state: optax.OptState,
        order: jax.Array,
        x: jax.Array,
        y: jax.Array,
        w: jax.Array | None,
        l2: jax.Array,
        weight_sum: jax.Array | None,
    ) -> tuple[model.Params, optax.OptState, jax.Array, jax.Array, jax.Array]:
        def step(
            carry: tuple[model.Params, optax.OptState], i: jax.Array
        ) -> tuple[tuple[model.Params, optax.OptState], tuple[jax.Array, ...]]:
            params, opt_state = carry
            index = jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
            rows = (x, y) if w is None else (x, y, w)
            batch = jax.lax.with_sharding_constraint(
                tuple(jnp.take(a, index, axis=0) for a in rows), batch_layout
            )
            w_batch = None if w is None else batch[2]
            (value, (mean_ce, acc)), grads = grad_fn(
                params, batch[0], batch[1], l2, w_batch, weight_sum
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (value, mean_ce, acc)

        (params, opt_state), (objectives, ces, accs) = jax.lax.scan(
            step, (params, opt_state), jnp.arange(order.shape[0] // batch_size)
        )
        return params, opt_state, jnp.mean(objectives), jnp.mean(ces), jnp.mean(accs)

    return jax.jit(epoch, compiler_options=compiling.compiler_options(mesh))


def _key_words(key: jax.Array) -> list[int]:
    """A PRNG key's raw data (typed or legacy uint32 key) as Python ints."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key, np.uint32).ravel().tolist()


def epoch_permutation(key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
    """The order in which 1-based ``epoch`` visits the examples.

    A permutation of ``range(num_examples)`` drawn on the host by NumPy,
    seeded by the run key's data and the epoch number: reproducible from the
    key, new each epoch, the same in every process, and cheaper than a
    device shuffle (no sort to compile or run).

    Returns:
      int32 array of shape (num_examples,).
    """
    seed = np.random.SeedSequence([*_key_words(key), int(epoch)])
    return np.random.default_rng(seed).permutation(num_examples).astype(np.int32)


def total_steps(epochs: int, num_examples: int, batch_size: int) -> int:
    """The optimizer steps of a run: ``epochs * (num_examples // batch_size)``
    (an epoch takes full batches only; a schedule spans these steps)."""
    return epochs * (num_examples // batch_size)


def initial_state(
    params: model.Params,
    key: jax.Array,
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
) -> TrainState:
    """The `TrainState` of epoch 0, replicated on ``mesh`` (None: every device).

    The one start of a run: `fit` begins here when no state is given, and a
    resumed run restores its checkpoint into this state's layout.

    Args:
      params: the initial `Params`.
      key: the run's PRNG key (shuffling).
      optimizer: the run's optax transformation (`make_optimizer` with
        `total_steps`).
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None.
    """
    mesh = sharding.resolve_mesh(mesh)
    params = sharding.replicate(params, mesh)
    return TrainState(
        params,
        sharding.replicate(init_state(optimizer, params), mesh),
        0,
        sharding.replicate(key, mesh),
    )


def _resolve_optimizer(
    optimizer: str | optax.GradientTransformation,
    learning_rate: float,
    schedule: str,
    steps: int,
) -> tuple[optax.GradientTransformation, float | None]:
    """(the optax transformation, the learning rate to name in messages)."""
    if isinstance(optimizer, str):
        transformation = make_optimizer(
            optimizer, learning_rate, schedule=schedule, total_steps=steps
        )
        return transformation, float(learning_rate)
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, None
    raise TypeError(
        "optimizer must be a name or an optax.GradientTransformation, got "
        f"{type(optimizer).__name__}."
    )


def _checked_splits(
    params: model.Params,
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike | None,
    y_test: ArrayLike | None,
) -> tuple[Any, Any, tuple[Any, Any] | None]:
    """The training split and the optional test split, validated."""
    d, q = params.num_features, params.num_classes
    x_train, y_train = validation.validate_split(
        x_train, y_train, num_classes=q, num_features=d, split="train"
    )
    if (x_test is None) != (y_test is None):
        raise ValueError("pass both x_test and y_test, or neither.")
    if x_test is None:
        return x_train, y_train, None
    test = validation.validate_split(
        x_test, y_test, num_classes=q, num_features=d, split="test"
    )
    return x_train, y_train, test


def fit(
    params: model.Params,
    x_train: ArrayLike,
    y_train: ArrayLike,
    *,
    key: jax.Array,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 0.005,
    schedule: str = "cosine",
    l2: float = 1e-4,
    batch_size: int = 32,
    epochs: int = 50,
    x_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    state: TrainState | None = None,
    history: Sequence[EpochRecord] = (),
    on_epoch_end: Callable[[TrainState, EpochRecord], None] | None = None,
    eval_chunk_size: int = evaluation.EVAL_CHUNK_SIZE,
    check_input: bool = True,
    mesh: Mesh | None = None,
    sample_weight: ArrayLike | None = None,
) -> FitResult:
    """Minibatch training of softmax regression with an optax optimizer.

    Minimises ``jaxsoft.loss(params, x, y, l2, sample_weight=sample_weight)``
    (the weighted mean cross-entropy plus ``(l2 / 2) ||W||^2``). The
    training data goes to the device once. Each epoch is one compiled call:
    a `jax.lax.scan` over ``n // batch_size``
    minibatches, each gathered by index from a fresh permutation of the
    examples (`epoch_permutation` of ``key`` and the epoch, drawn on the
    host); a step is `jax.value_and_grad` -> ``optimizer.update`` ->
    `optax.apply_updates`. The hyperparameter defaults are defined here;
    `jaxsoft.experiment.Config` (``jaxsoft train``) reads them from this signature.

    Sample weights: batch b of B rows minimises
    ``sum_{i in b} w_i CE_i / (B * sum(w) / n) + (l2 / 2) ||W||^2``, the
    split's normalisation, not the batch's own ``sum_{i in b} w_i``. A batch is
    a uniform draw of B rows, so its weighted sum has expectation
    ``B * sum_i w_i CE_i / n``: this normaliser makes every step's gradient an
    unbiased estimate of the gradient of the weighted full-batch objective,
    so the iterates go to its optimum (scikit-learn's). Dividing by the batch's
    own weight would be a ratio of two random sums, biased towards batches
    that happen to weigh little, and 0/0 for a batch of zero weights. With
    ``batch_size = n`` both are exactly the weighted objective. The records'
    train loss and accuracy are weighted alike; the test split is not weighted.

    The last partial batch: an epoch takes ``n // batch_size`` full batches,
    so the ``n % batch_size`` examples at the end of the permutation sit out
    that epoch; the permutation is new each epoch, so which ones changes.
    Evaluation (the test metrics, `evaluate`) always uses every example.

    Devices: the examples are sharded over the "data" axis of ``mesh``
    (default: every device of the default backend) and the parameters
    replicated, so each step's batch is split over the devices and its
    gradient summed by XLA. The global ``batch_size`` means what it means on
    one device, and the result equals the one-device run with the same key up
    to float summation order. It must be a multiple of the number of
    devices on "data" (a ValueError names both otherwise).

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
      check_input: validate the data (`jaxsoft.validation.validate_split`).
        Pass False only for splits already validated, e.g. those of a
        `jaxsoft.data.Dataset`.
      mesh: a `jax.sharding.Mesh` with a "data" axis, or None for every
        device. Inputs may be NumPy arrays (placed on the mesh once) or
        `jax.Array`s, already sharded or not.
      sample_weight: optional weights (n,) of the training examples, each
        finite and >= 0, not all 0 (`jaxsoft.weights.check_sample_weight`);
        None weighs every example 1. Integer weights equal repeated rows.

    Returns:
      A `FitResult` (params, final state, history).

    Raises:
      ValueError, TypeError: invalid data or hyperparameters (before any
        compilation).
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
    params = validation.check_params(state.params if state is not None else params)
    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size)
    eval_chunk_size = validation.positive_int("eval_chunk_size", eval_chunk_size)
    l2 = validation.non_negative_float("l2", l2)
    if check_input:
        x_train, y_train, test = _checked_splits(
            params, x_train, y_train, x_test, y_test
        )
    else:
        test = None if x_test is None else (x_test, y_test)
    n = x_train.shape[0]
    if batch_size > n:
        raise ValueError(
            f"`batch_size={batch_size}` is larger than the {n} training examples; "
            f"use a batch size of at most {n}."
        )
    sample_weight = weights.check_sample_weight(sample_weight, n)
    mesh = sharding.resolve_mesh(mesh)
    sharding.check_batch_size(batch_size, mesh)
    transformation, rate = _resolve_optimizer(
        optimizer, learning_rate, schedule, total_steps(epochs, n, batch_size)
    )
    if state is None:
        state = initial_state(params, key, transformation, mesh)
    elif not 0 <= state.epoch <= epochs:
        raise ValueError(
            f"the state has {state.epoch} epochs done but the run has only "
            f"{epochs}; pass epochs >= {state.epoch}."
        )
    state = state._replace(
        params=sharding.replicate(state.params, mesh),
        opt_state=sharding.replicate(state.opt_state, mesh),
    )
    train = sharding.place_split(x_train, y_train, mesh)
    run = _EpochRunner(
        _make_epoch_fn(transformation, batch_size, mesh),
        train,
        None if test is None else sharding.place_split(*test, mesh),
        mesh,
        np.float32(l2),
        eval_chunk_size,
        _placed_weights(sample_weight, train, batch_size, params, mesh),
    )
    history = list(history)
    while state.epoch < epochs:
        new_state, record = run(state)
        if record is None:
            raise TrainingDiverged(state.epoch + 1, new_state, rate, state, history)
        history.append(record)
        state = new_state
        if on_epoch_end is not None:
            on_epoch_end(state, record)
    return FitResult(state.params, state, history)


def _placed_weights(
    sample_weight: Any,
    train: sharding.ShardedSplit,
    batch_size: int,
    params: model.Params,
    mesh: Mesh,
) -> tuple[jax.Array, jax.Array] | tuple[None, None]:
    """(the weights laid out like ``train.y``, padding 0; `fit`'s normaliser
    ``B * sum(w) / n``, replicated); (None, None) without weights."""
    w = evaluation.place_weights(sample_weight, train, params, mesh)
    if w is None:
        return None, None
    total = float(np.sum(np.asarray(jax.device_get(sample_weight), np.float64)))
    weight_sum = np.asarray(batch_size * total / train.num_examples, w.dtype)
    return w, sharding.replicate(weight_sum, mesh)


class _EpochRunner:
    """Runs one epoch on mesh-resident data, then the test evaluation."""

    def __init__(
        self,
        epoch_fn: Callable[..., tuple[Any, ...]],
        train: sharding.ShardedSplit,
        test: sharding.ShardedSplit | None,
        mesh: Mesh,
        l2: np.float32,
        eval_chunk_size: int,
        train_weights: tuple[jax.Array, jax.Array] | tuple[None, None],
    ):
        self.epoch_fn, self.train, self.test, self.mesh = epoch_fn, train, test, mesh
        self.l2, self.eval_chunk_size = l2, eval_chunk_size
        self.w, self.weight_sum = train_weights

    def __call__(self, state: TrainState) -> tuple[Any, EpochRecord | None]:
        """(new state, its record), or (the non-finite loss, None) on divergence."""
        epoch = state.epoch + 1
        start = time.perf_counter()
        order = epoch_permutation(state.key, epoch, self.train.num_examples)
        params, opt_state, objective, mean_ce, acc = self.epoch_fn(
            state.params,
            state.opt_state,
            sharding.replicate(order, self.mesh),
            self.train.x,
            self.train.y,
            self.w,
            self.l2,
            self.weight_sum,
        )
        objective = float(objective)
        if not math.isfinite(objective):
            return objective, None
        test_loss = test_accuracy = None
        if self.test is not None:
            test_loss, test_accuracy = evaluation.loss_and_accuracy_sharded(
                params, self.test, self.mesh, chunk_size=self.eval_chunk_size
            )
        record = EpochRecord(
            epoch=epoch,
            train_loss=float(mean_ce),
            train_accuracy=float(acc),
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            seconds=time.perf_counter() - start,
        )
        return TrainState(params, opt_state, epoch, state.key), record
