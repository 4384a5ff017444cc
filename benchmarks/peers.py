"""jaxsoft against its peers on MNIST: time to test accuracy, side by side.

Prints one table (issue 12) and, as its last line, the ratios the issue's
goals name. Contenders, each in its own fresh process (this script run with
``--contender NAME``):

- ``sklearn``: scikit-learn ``LogisticRegression(solver="lbfgs",
  C=1/(l2 n))``, full batch, to its optimum; its objective is `jaxsoft.loss`
  of its coef/intercept in float64.
- ``pytorch``: ``nn.Linear`` + ``CrossEntropyLoss`` + Adam 1e-3, a shuffling
  ``DataLoader`` of batch 128, on the CPU.
- ``tutorial-jax``: the tutorial way: a Python loop over a jitted optax step
  (adam 1e-3), NumPy batches of 128 shuffled on the host.
- ``jaxsoft``: `jaxsoft.train.fit` with the same recipe (adam 1e-3,
  constant schedule, batch 128, l2 0).
- ``jaxsoft-warm``: the same, in a process whose compiled programs come from
  `jaxsoft.enable_compilation_cache`'s folder, filled by a first, untimed
  process (what a second run of a script or of ``jaxsoft train`` gets).
- ``jaxsoft-defaults``: `jaxsoft.train.fit` with the CLI's defaults
  (`jaxsoft.experiment.Config`), its schedule over all of Config's epochs.
- ``solve_lbfgs``: `jaxsoft.train.solve_lbfgs` on scikit-learn's objective:
  the time to reach it within relative 1e-4 (the iterations needed are found
  by a first, untimed process; a second, fresh one is timed).

The minibatch contenders evaluate the test set after each epoch and stop at
the target accuracy (or after ``--max-epochs``). Times start with the data in
memory as NumPy arrays and the framework imported (its import is the
``import s`` column) and include compilation. ``s/epoch`` is the median
epoch (test evaluation included) after the first, which compiles.

Run:  python benchmarks/peers.py [--small] [--contenders jaxsoft tutorial-jax]
      [--mnist-dir ../shared/data/mnist] [--data-dir DIR]
      [--dataset mnist|digits|synthetic]
(PyTorch: ``pip install torch==2.13.0`` takes the CPU build on these
machines; a bare ``pip install torch`` downloads a multi-GB CUDA build.)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "PEERS-RESULT "
LBFGS_RELATIVE_GAP = 1e-4
CONTENDERS = (
    "sklearn",
    "pytorch",
    "tutorial-jax",
    "jaxsoft",
    "jaxsoft-warm",
    "jaxsoft-defaults",
    "solve_lbfgs",
)
# Contender -> (the module it needs, how to install it).
REQUIREMENTS = {
    "sklearn": ("sklearn", "pip install scikit-learn"),
    "pytorch": (
        "torch",
        "pip install torch==2.13.0 (the CPU build; a bare `pip install torch` "
        "downloads a multi-GB CUDA build)",
    ),
}
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every contender process is told (passed as JSON)."""

    data: str  # folder of x_train.npy, y_train.npy, x_test.npy, y_test.npy
    target: float  # test accuracy to reach
    max_epochs: int
    batch_size: int = 128
    learning_rate: float = 1e-3
    l2: float = 1e-4  # of the full-batch (scikit-learn, solve_lbfgs) objective
    max_iter: int = 1000  # of the full-batch solvers
    lbfgs_target: float | None = None  # objective solve_lbfgs must reach
    lbfgs_iterations: int | None = None  # set for the timed solve_lbfgs run
    cache_dir: str | None = None  # jaxsoft-warm's compilation cache


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_arrays(folder: str) -> Arrays:
    """(x_train, y_train, x_test, y_test) saved by `prepare_data`."""
    names = ("x_train", "y_train", "x_test", "y_test")
    return tuple(np.load(Path(folder) / f"{name}.npy") for name in names)


# ---------------------------------------------------------------- contenders


def _timed_import(names: tuple[str, ...]) -> float:
    """Seconds to import ``names`` (the contender's framework)."""
    start = time.perf_counter()
    for name in names:
        importlib.import_module(name)
    return time.perf_counter() - start


class CompileClock:
    """Wall seconds JAX spends tracing, lowering and compiling after `start`
    (overlapping spans merged)."""

    def __init__(self) -> None:
        import jax

        self.spans: list[tuple[float, float]] = []
        self.since = float("inf")
        jax.monitoring.register_event_time_span_listener(self._record)

    def _record(self, event: str, start: float, end: float, **_: Any) -> None:
        if event in COMPILE_EVENTS:
            self.spans.append((start, end))

    def start(self) -> None:
        """Counts from now on (JAX's spans are in `time.time`)."""
        self.since = time.time()

    def seconds(self) -> float:
        total, reach = 0.0, self.since
        for start, end in sorted(self.spans):
            start = max(start, reach)
            if end > start:
                total += end - start
                reach = end
        return total


def _epochs_result(
    accuracies: list[float],
    elapsed: list[float],
    epoch_seconds: list[float],
    target: float,
) -> dict[str, Any]:
    """The common report of a minibatch contender from its per-epoch figures."""
    reached = next((i for i, a in enumerate(accuracies) if a >= target), None)
    last = len(accuracies) - 1 if reached is None else reached
    return {
        "reached": reached is not None,
        "seconds": elapsed[last],
        "epochs": last + 1,
        "accuracy": accuracies[last],
        # After the first epoch, which compiles; None when only one ran.
        "epoch_seconds": statistics.median(epoch_seconds[1:])
        if len(epoch_seconds) > 1
        else None,
        "first_epoch": epoch_seconds[0],
        "setup": elapsed[0] - epoch_seconds[0],
    }


def _epochs_until_target(
    s: Settings, start: float, epoch: Callable[[], float]
) -> dict[str, Any]:
    """Runs ``epoch()`` (one epoch, then its test accuracy) until the target
    or ``s.max_epochs``; the report of `_epochs_result`, timed from ``start``."""
    accuracies: list[float] = []
    elapsed: list[float] = []
    epoch_seconds: list[float] = []
    for _ in range(s.max_epochs):
        epoch_start = time.perf_counter()
        accuracies.append(epoch())
        now = time.perf_counter()
        epoch_seconds.append(now - epoch_start)
        elapsed.append(now - start)
        if accuracies[-1] >= s.target:
            break
    return _epochs_result(accuracies, elapsed, epoch_seconds, s.target)


def objective64(
    W: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float
) -> float:
    """`jaxsoft.loss` of (W, b) in float64."""
    import jax

    import jaxsoft as js

    with jax.enable_x64(True):
        params = js.Params(np.asarray(W, np.float64), np.asarray(b, np.float64))
        return float(js.loss(params, x.astype(np.float64), y, l2))


def run_sklearn(s: Settings) -> dict[str, Any]:
    """scikit-learn's full-batch L-BFGS to its optimum."""
    import warnings

    import_seconds = _timed_import(("sklearn.linear_model",))
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y, x_test, y_test = load_arrays(s.data)
    start = time.perf_counter()
    model = LogisticRegression(
        solver="lbfgs", C=1 / (s.l2 * len(y)), max_iter=s.max_iter
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    seconds = time.perf_counter() - start
    accuracy = float(model.score(x_test, y_test))
    return {
        "reached": accuracy >= s.target,
        "seconds": seconds,
        "accuracy": accuracy,
        "import": import_seconds,
        "iterations": int(np.max(model.n_iter_)),
        "converged": not any(w.category is ConvergenceWarning for w in caught),
        "objective": objective64(model.coef_.T, model.intercept_, x, y, s.l2),
    }


def run_pytorch(s: Settings) -> dict[str, Any]:
    """PyTorch on the CPU: nn.Linear + CrossEntropyLoss + Adam, a DataLoader."""
    import_seconds = _timed_import(("torch",))
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    x, y, x_test, y_test = load_arrays(s.data)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = nn.Linear(x.shape[1], int(y.max()) + 1)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
    train = TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
    loader = DataLoader(train, batch_size=s.batch_size, shuffle=True)
    x_test_t, y_test_t = torch.from_numpy(x_test), torch.from_numpy(y_test).long()

    def epoch() -> float:
        for x_batch, y_batch in loader:
            optimizer.zero_grad()
            loss_fn(model(x_batch), y_batch).backward()
            optimizer.step()
        with torch.no_grad():
            predicted = model(x_test_t).argmax(dim=1)
            return float((predicted == y_test_t).float().mean())

    result = _epochs_until_target(s, start, epoch)
    return {**result, "import": import_seconds, "threads": torch.get_num_threads()}


def run_tutorial_jax(s: Settings) -> dict[str, Any]:
    """The tutorial way: a Python loop over a jitted optax step, host batches."""
    import_seconds = _timed_import(("jax", "optax"))
    import jax
    import jax.numpy as jnp
    import optax

    clock = CompileClock()
    x, y, x_test, y_test = load_arrays(s.data)
    clock.start()
    start = time.perf_counter()
    d, q = x.shape[1], int(y.max()) + 1
    params = {
        "W": 0.01 * jax.random.normal(jax.random.key(0), (d, q)),
        "b": jnp.zeros(q),
    }
    optimizer = optax.adam(s.learning_rate)
    opt_state = optimizer.init(params)

    def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = x @ params["W"] + params["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params: dict, opt_state: Any, x: jax.Array, y: jax.Array) -> Any:
        grads = jax.grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def accuracy(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(jnp.argmax(x @ params["W"] + params["b"], axis=1) == y)

    x_test_dev, y_test_dev = jax.device_put((x_test, y_test))
    rng = np.random.default_rng(0)
    steps = len(y) // s.batch_size

    def epoch() -> float:
        nonlocal params, opt_state
        permutation = rng.permutation(len(y))
        for i in range(steps):
            index = permutation[i * s.batch_size : (i + 1) * s.batch_size]
            params, opt_state = step(params, opt_state, x[index], y[index])
        return float(accuracy(params, x_test_dev, y_test_dev))

    result = _epochs_until_target(s, start, epoch)
    return {**result, "import": import_seconds, "compile": clock.seconds()}


class _StopFitError(Exception):
    """Raised from `fit`'s on_epoch_end to stop training at the target."""


def _run_fit(
    s: Settings, make_recipe: Callable[[], tuple[dict[str, Any], int]]
) -> dict[str, Any]:
    """`jaxsoft.train.fit` with ``make_recipe()``'s (fit's keywords, seed)
    until the target or max_epochs (with ``s.cache_dir``'s compiled programs
    when it is set)."""
    import_seconds = _timed_import(("jaxsoft", "jaxsoft.train"))
    import jax

    import jaxsoft as js
    from jaxsoft import train

    if s.cache_dir is not None:
        js.enable_compilation_cache(s.cache_dir)

    clock = CompileClock()
    x, y, x_test, y_test = load_arrays(s.data)
    accuracies: list[float] = []
    elapsed: list[float] = []
    epoch_seconds: list[float] = []

    def on_epoch_end(state: Any, record: Any) -> None:
        elapsed.append(time.perf_counter() - start)
        accuracies.append(record.test_accuracy)
        epoch_seconds.append(record.seconds)
        if record.test_accuracy >= s.target or len(accuracies) >= s.max_epochs:
            raise _StopFitError

    recipe, seed = make_recipe()
    clock.start()
    start = time.perf_counter()
    # As jaxsoft.experiment does: one key for the initial params, one to shuffle.
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    params = js.init_params(init_key, x.shape[1], int(y.max()) + 1)
    with contextlib.suppress(_StopFitError):
        train.fit(
            params,
            x,
            y,
            key=shuffle_key,
            x_test=x_test,
            y_test=y_test,
            on_epoch_end=on_epoch_end,
            **recipe,
        )
    result = _epochs_result(accuracies, elapsed, epoch_seconds, s.target)
    return {**result, "import": import_seconds, "compile": clock.seconds()}


def run_jaxsoft(s: Settings) -> dict[str, Any]:
    """`jaxsoft.train.fit` with the peers' recipe (adam 1e-3, batch 128, l2 0);
    for jaxsoft-warm, with the compilation cache a first process filled."""

    def recipe() -> tuple[dict[str, Any], int]:
        return {
            "optimizer": "adam",
            "learning_rate": s.learning_rate,
            "schedule": "constant",
            "batch_size": s.batch_size,
            "l2": 0.0,
            "epochs": s.max_epochs,
        }, 0

    return _run_fit(s, recipe)


def run_jaxsoft_defaults(s: Settings) -> dict[str, Any]:
    """`jaxsoft.train.fit` with the CLI's defaults (the schedule spans all epochs)."""

    def recipe() -> tuple[dict[str, Any], int]:
        from jaxsoft.experiment import Config

        c = Config()
        return {
            "optimizer": c.optimizer,
            "learning_rate": c.learning_rate,
            "schedule": c.schedule,
            "batch_size": c.batch_size,
            "l2": c.l2,
            "epochs": c.epochs,
            "eval_chunk_size": c.eval_chunk_size,
        }, c.seed

    return _run_fit(s, recipe)


def _lbfgs_setup(s: Settings) -> tuple[Callable[..., Any], Arrays]:
    """(solve(**kw) -> (params, info) from zero parameters, the arrays)."""
    import jax

    import jaxsoft as js
    from jaxsoft import train

    arrays = load_arrays(s.data)
    x, y = arrays[0], arrays[1]
    zeros = js.init_params(jax.random.key(0), x.shape[1], int(y.max()) + 1, scale=0.0)

    def solve(**kwargs: Any) -> Any:
        return train.solve_lbfgs(zeros, x, y, l2=s.l2, **kwargs)

    return solve, arrays


def search_lbfgs(s: Settings) -> dict[str, Any]:
    """Untimed: the fewest iterations (within 5%) that reach ``lbfgs_target``.

    The solver is deterministic, so ``max_iter=k`` runs the first k iterations
    of the same path: doubling, then bisection.
    """
    solve, (x, y, _, _) = _lbfgs_setup(s)

    def reaches(k: int) -> bool:
        params, _ = solve(tol=0.0, max_iter=k)
        value = objective64(params.W, params.b, x, y, s.l2)
        return value <= s.lbfgs_target  # False for NaN

    lo, hi = 0, 16
    while not reaches(hi):
        if hi >= s.max_iter:
            return {"iterations": None}
        lo, hi = hi, min(2 * hi, s.max_iter)
    while hi - lo > max(1, hi // 20):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return {"iterations": hi}


def run_solve_lbfgs(s: Settings) -> dict[str, Any]:
    """Timed `solve_lbfgs`: ``lbfgs_iterations`` of them, or to its default tol."""
    import_seconds = _timed_import(("jaxsoft", "jaxsoft.train"))
    import jax

    import jaxsoft as js

    clock = CompileClock()
    solve, (x, y, x_test, y_test) = _lbfgs_setup(s)
    clock.start()
    start = time.perf_counter()
    if s.lbfgs_iterations is None:
        params, info = solve(max_iter=s.max_iter)
    else:
        params, info = solve(tol=0.0, max_iter=s.lbfgs_iterations)
    seconds = time.perf_counter() - start
    compile_seconds = clock.seconds()
    value = objective64(params.W, params.b, x, y, s.l2)
    logits = x_test @ np.asarray(params.W) + np.asarray(params.b)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    # One compiled full-batch value and gradient, for scale.
    value_and_grad = jax.jit(jax.value_and_grad(js.loss))
    x_dev, y_dev = jax.device_put((x, y))
    jax.block_until_ready(value_and_grad(params, x_dev, y_dev, s.l2))
    gradient_times = []
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(value_and_grad(params, x_dev, y_dev, s.l2))
        gradient_times.append(time.perf_counter() - t)
    target = s.lbfgs_target
    return {
        "reached": target is not None and value <= target,
        "seconds": seconds,
        "accuracy": accuracy,
        "import": import_seconds,
        "compile": compile_seconds,
        "iterations": info.iterations,
        "evaluations": info.evaluations,
        "objective": value,
        "gradient_seconds": statistics.median(gradient_times),
    }


CHILDREN: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "sklearn": run_sklearn,
    "pytorch": run_pytorch,
    "tutorial-jax": run_tutorial_jax,
    "jaxsoft": run_jaxsoft,
    "jaxsoft-warm": run_jaxsoft,
    "jaxsoft-defaults": run_jaxsoft_defaults,
    "solve_lbfgs": run_solve_lbfgs,
    "solve_lbfgs-search": search_lbfgs,
}


# ------------------------------------------------------------------- parent


def prepare_data(args: argparse.Namespace, folder: Path) -> str:
    """Loads the dataset, trims it for --small, saves it to ``folder``.

    Returns a one-line description (shape and load time).
    """
    start = time.perf_counter()
    if args.dataset == "synthetic":
        arrays = _synthetic(args.train_rows or 6000, args.test_rows or 1000)
        source = "synthetic MNIST-shaped blobs"
    else:
        from jaxsoft import data

        manual_dir = args.mnist_dir if args.dataset == "mnist" else None
        ds = data.load(args.dataset, data_dir=args.data_dir, manual_dir=manual_dir)
        arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
        source = f"{args.dataset} via jaxsoft.data.load"
    seconds = time.perf_counter() - start
    x, y, x_test, y_test = arrays
    if args.train_rows:  # the first rows: MNIST's are already shuffled
        x, y = x[: args.train_rows], y[: args.train_rows]
    if args.test_rows:
        x_test, y_test = x_test[: args.test_rows], y_test[: args.test_rows]
    for name, array in zip(
        ("x_train", "y_train", "x_test", "y_test"), (x, y, x_test, y_test), strict=True
    ):
        np.save(folder / f"{name}.npy", np.ascontiguousarray(array))
    return (
        f"{source}: {x.shape[0]:,} x {x.shape[1]} {x.dtype} train, "
        f"{x_test.shape[0]:,} test, {int(y.max()) + 1} classes "
        f"(loaded in {seconds:.1f} s)"
    )


def _synthetic(n: int, m: int, d: int = 784, q: int = 10) -> Arrays:
    """Gaussian blobs in [0, 1]^d around random class centres (noisy enough
    that one epoch is not perfect)."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.3, 0.7, (q, d))

    def split(size: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, q, size).astype(np.int32)
        x = centres[y] + rng.normal(0.0, 0.5, (size, d))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    return (*split(n), *split(m))


def run_child(
    name: str, settings: Settings, timeout: float
) -> tuple[dict[str, Any] | None, str]:
    """Runs contender ``name`` in a fresh process: (its result, an error line)."""
    command = [sys.executable, __file__, "--contender", name]
    command += ["--settings", json.dumps(dataclasses.asdict(settings))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    # Compiling is part of the figures: no cache but ``settings.cache_dir``.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    try:
        out = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in out.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :]), ""
    lines = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
    return None, f"failed (exit {out.returncode}): {lines[-1][:200]}"


@dataclasses.dataclass
class Row:
    """One line of the table."""

    contender: str
    recipe: str
    time: str = "-"
    epoch: str = "-"
    imports: str = "-"
    note: str = ""


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.3f}"


def _fmt_time(result: dict[str, Any]) -> str:
    if result["reached"]:
        return f"{result['seconds']:.1f} s (epoch {result['epochs']})"
    return (
        f"not reached in {result['epochs']} epochs "
        f"({result['accuracy']:.4f}, {result['seconds']:.1f} s)"
    )


def minibatch_row(contender: str, recipe: str, result: dict[str, Any]) -> Row:
    """A table row for a minibatch contender."""
    notes = [
        f"before epoch 1 {result['setup']:.2f} s",
        f"first epoch {result['first_epoch']:.2f} s",
    ]
    if "compile" in result:
        notes.append(f"compile {result['compile']:.2f} s")
    if result["reached"]:
        notes.append(f"test accuracy {result['accuracy']:.4f}")
    if "threads" in result:
        notes.append(f"{result['threads']} threads")
    return Row(
        contender,
        recipe,
        _fmt_time(result),
        "-"
        if result["epoch_seconds"] is None
        else _fmt_seconds(result["epoch_seconds"]),
        f"{result['import']:.1f}",
        "; ".join(notes),
    )


def print_table(rows: list[Row], target: float) -> None:
    """The rows as a Markdown table."""
    header = Row(
        "contender",
        "recipe",
        f"time to {100 * target:.1f}% test accuracy",
        "s/epoch",
        "import s",
        "note",
    )
    cells = [dataclasses.astuple(r) for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]

    def line(cols: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
            + " |"
        )

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells[1:]:
        print(line(c))


def ratio_line(results: dict[str, dict[str, Any]]) -> str:
    """The issue's goals as measured: peer time / jaxsoft time (higher is better)."""

    def seconds(name: str) -> float | None:
        result = results.get(name)
        return result["seconds"] if result and result["reached"] else None

    def ratio(peer: str, ours: str, goal: float) -> str:
        a, b = seconds(peer), seconds(ours)
        value = "n/a" if a is None or b is None else f"{a / b:.2f}x"
        return f"{value} (goal >= {goal:g}x)"

    def cold_warm(peer: str, goal: float) -> str:
        a, cold, warm = seconds(peer), seconds("jaxsoft"), seconds("jaxsoft-warm")
        value = "n/a" if a is None or cold is None else f"{a / cold:.2f}x"
        if a is not None and warm is not None:
            value += f" ({a / warm:.2f}x with the compile cache warm)"
        return f"{value} (goal >= {goal:g}x)"

    return (
        "ratios, peer time / jaxsoft time: to the target accuracy, jaxsoft vs "
        f"PyTorch {cold_warm('pytorch', 3)}, vs scikit-learn "
        f"{cold_warm('sklearn', 20)}, vs tutorial JAX "
        f"{cold_warm('tutorial-jax', 1.5)}; to scikit-learn's objective, "
        f"solve_lbfgs vs scikit-learn {ratio('sklearn', 'solve_lbfgs', 3)}"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main_parent(args: argparse.Namespace) -> None:
    """Runs the chosen contenders one after another and prints the table."""
    from jaxsoft.experiment import Config

    c = Config()
    print(
        f"machine: {os.cpu_count()} CPU cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start; jax {_version('jax')}, "
        f"torch {_version('torch')}, scikit-learn {_version('scikit-learn')}, "
        f"optax {_version('optax')}",
        flush=True,
    )
    recipes = {
        "sklearn": f"LogisticRegression(lbfgs, C=1/(l2 n)), l2 {args.l2:g}, full batch",
        "pytorch": "nn.Linear + CrossEntropyLoss + Adam 1e-3, DataLoader batch 128",
        "tutorial-jax": "Python loop, jitted optax adam 1e-3 step, NumPy batches 128",
        "jaxsoft": "fit: adam 1e-3, constant, batch 128, l2 0",
        "jaxsoft-warm": "the same, its compiled programs in the disk cache",
        "jaxsoft-defaults": (
            f"fit: CLI defaults ({c.optimizer} {c.learning_rate:g}, {c.schedule} "
            f"over {c.epochs} epochs, batch {c.batch_size}, l2 {c.l2:g})"
        ),
        "solve_lbfgs": f"solve_lbfgs, l2 {args.l2:g}, full batch",
    }
    with tempfile.TemporaryDirectory(prefix="jaxsoft-peers-") as folder:
        print(f"data: {prepare_data(args, Path(folder))}", flush=True)
        print(
            f"each contender in a fresh process; stop at {100 * args.target:.1f}% "
            f"test accuracy or after {args.max_epochs} epochs; times include "
            "compilation, not the import\n",
            flush=True,
        )
        settings = Settings(
            data=folder, target=args.target, max_epochs=args.max_epochs, l2=args.l2
        )
        rows, results = [], {}
        for name in [n for n in CONTENDERS if n in args.contenders]:
            module, install = REQUIREMENTS.get(name, (None, ""))
            if module and importlib.util.find_spec(module) is None:
                rows.append(
                    Row(name, recipes[name], note=f"skipped, not installed: {install}")
                )
                continue
            if name == "solve_lbfgs":
                row, result = lbfgs_row(settings, results.get("sklearn"), args.timeout)
                row.recipe = recipes[name]
            elif name == "jaxsoft-warm":
                row, result = warm_row(settings, recipes[name], args.timeout)
            else:
                result, error = run_child(name, settings, args.timeout)
                row = contender_row(name, recipes[name], result, error)
            rows.append(row)
            if result is not None:
                results[name] = result
            print(f"  done: {name} ({row.time})", file=sys.stderr, flush=True)
    print_table(rows, args.target)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print(ratio_line(results))


def contender_row(
    name: str, recipe: str, result: dict[str, Any] | None, error: str
) -> Row:
    """The table row of a contender other than solve_lbfgs."""
    if result is None:
        return Row(name, recipe, note=error)
    if name != "sklearn":
        return minibatch_row(name, recipe, result)
    converged = "" if result["converged"] else ", not converged"
    return Row(
        name,
        recipe,
        f"{result['seconds']:.1f} s (to its optimum, {result['accuracy']:.4f})",
        "-",
        f"{result['import']:.1f}",
        f"objective {result['objective']:.5f}; "
        f"{result['iterations']} iterations{converged}",
    )


def warm_row(settings: Settings, recipe: str, timeout: float) -> tuple[Row, Any]:
    """jaxsoft with a warm compilation cache: a first process (untimed) fills
    ``jaxsoft.enable_compilation_cache``'s folder, a second is timed."""
    with tempfile.TemporaryDirectory(prefix="jaxsoft-xla-") as cache:
        settings = dataclasses.replace(settings, cache_dir=cache)
        _, error = run_child("jaxsoft-warm", settings, timeout)
        result, error = (
            (None, error) if error else run_child("jaxsoft-warm", settings, timeout)
        )
    return contender_row("jaxsoft-warm", recipe, result, error), result


def lbfgs_row(
    settings: Settings, sklearn: dict[str, Any] | None, timeout: float
) -> tuple[Row, dict[str, Any] | None]:
    """Finds the iterations solve_lbfgs needs for scikit-learn's objective
    (untimed), then times them in a fresh process."""
    name = "solve_lbfgs"
    if sklearn is None:
        result, error = run_child(name, settings, timeout)
        prefix = "scikit-learn not run: to tol 1e-5"
    else:
        target = sklearn["objective"] * (1 + LBFGS_RELATIVE_GAP)
        settings = dataclasses.replace(settings, lbfgs_target=target)
        found, error = run_child("solve_lbfgs-search", settings, timeout)
        if found is None:
            return Row(name, "", note=error), None
        if found["iterations"] is None:
            return Row(
                name,
                "",
                note=f"not within relative {LBFGS_RELATIVE_GAP:g} of scikit-learn's "
                f"objective in {settings.max_iter} iterations",
            ), None
        settings = dataclasses.replace(settings, lbfgs_iterations=found["iterations"])
        result, error = run_child(name, settings, timeout)
        prefix = f"to within {LBFGS_RELATIVE_GAP:g} of scikit-learn's objective"
    if result is None:
        return Row(name, "", note=error), None
    run = result["seconds"] - result["compile"]
    per_iteration = run / max(result["iterations"], 1)
    time_cell = (
        f"{result['seconds']:.1f} s ({result['iterations']} iterations; "
        f"compile {result['compile']:.1f} s)"
    )
    if not result["reached"] and sklearn is not None:
        time_cell = "not reached: " + time_cell
    note = (
        f"{prefix}; objective {result['objective']:.5f}, test accuracy "
        f"{result['accuracy']:.4f}; "
        f"{result['evaluations'] / max(result['iterations'], 1):.2f} line-search "
        f"evaluations per iteration; {1000 * per_iteration:.0f} ms per iteration "
        f"against {1000 * result['gradient_seconds']:.0f} ms per full-batch gradient"
    )
    return Row(name, "", time_cell, "-", f"{result['import']:.1f}", note), result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("JAXSOFT_SHARED_DIR", ROOT.parent / "shared"))
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=shared / "data" / "mnist",
        help="folder of MNIST's four IDX .gz files (default $JAXSOFT_SHARED_DIR/"
        "data/mnist, i.e. <repo>/../shared/data/mnist)",
    )
    parser.add_argument(
        "--data-dir", help="where tensorflow-datasets prepares the dataset"
    )
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=("mnist", "digits", "synthetic"),
        help="mnist (the benchmark), digits or synthetic (for quick checks)",
    )
    parser.add_argument(
        "--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS)
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="a quick run: 6,000 training rows, 1,000 test, 3 epochs, target 85%%",
    )
    parser.add_argument("--target", type=float, help="test accuracy (default 0.92)")
    parser.add_argument("--max-epochs", type=int, help="epochs at most (default 10)")
    parser.add_argument("--train-rows", type=int, help="use the first rows only")
    parser.add_argument("--test-rows", type=int, help="use the first rows only")
    parser.add_argument("--l2", type=float, default=1e-4, help="full-batch L2")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per contender process"
    )
    parser.add_argument("--contender", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    small = {"train_rows": 6000, "test_rows": 1000, "max_epochs": 3, "target": 0.85}
    full = {"train_rows": None, "test_rows": None, "max_epochs": 10, "target": 0.92}
    for key, value in (small if args.small else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse_args()
    if args.contender:
        settings = Settings(**json.loads(args.settings))
        result = CHILDREN[args.contender](settings)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    else:
        main_parent(args)


if __name__ == "__main__":
    main()
