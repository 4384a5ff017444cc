"""optax optimizers and learning-rate schedules by name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxsoft import validation

__all__ = ["OPTIMIZERS", "SCHEDULES", "init_state", "make_optimizer", "make_schedule"]

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
"""Optimizer names accepted by `make_optimizer` (and by `Config.optimizer`)."""

SCHEDULES = ("constant", "cosine", "warmup-cosine", "linear")
"""Learning-rate schedule names accepted by `make_optimizer`."""


def check_optimizer_name(name: str) -> str:
    """``name`` if it is one of `OPTIMIZERS` (ValueError listing them if not)."""
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}."
        )
    return name


def check_schedule_name(name: str) -> str:
    """``name`` if it is one of `SCHEDULES` (ValueError listing them if not)."""
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}."
        )
    return name


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
    check_schedule_name(name)
    total_steps = validation.positive_int("total_steps", total_steps)
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
      >>> from jaxsoft.train import make_optimizer
      >>> opt = make_optimizer("adam", 1e-2, schedule="cosine", total_steps=100)
    """
    check_optimizer_name(name)
    learning_rate = validation.positive_float("learning_rate", learning_rate)
    check_schedule_name(schedule)
    total_steps = validation.positive_int("total_steps", total_steps)
    # The same settings give the same object, so `fit` reuses its compiled epoch.
    return _cached_optimizer(name, learning_rate, schedule, total_steps)


@functools.lru_cache(maxsize=8)
def _compiled_init(optimizer: optax.GradientTransformation) -> Callable[..., Any]:
    return jax.jit(optimizer.init)


def init_state(optimizer: optax.GradientTransformation, params: Any) -> Any:
    """``optimizer.init(params)`` as one compiled program (cached per
    optimizer), not one small program per ``zeros_like`` of the state."""
    return _compiled_init(optimizer)(params)
