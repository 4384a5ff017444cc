"""The whole experiment as three library calls: train, evaluate, predict.

`train_and_evaluate(config, workdir)` does everything ``jaxsoft train`` does:
load the dataset (validated once, as a `jaxsoft.data.Dataset`), initialise or
resume, fit with periodic orbax checkpoints, write ``metrics.jsonl``, evaluate
the test split, draw the plots and write ``summary.json``. The CLI and the
notebooks only build a `Config` and call it; they hold no pipeline of their
own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxsoft import model, sharding, validation
from jaxsoft.experiment import checkpoint, distributed
from jaxsoft.experiment.config import RUN_DEFINING, Config
from jaxsoft.experiment.distributed import Launch
from jaxsoft.experiment.run_folder import RunFolder
from jaxsoft.experiment.training_run import RunDivergedError, RunError, TrainingRun
from jaxsoft.train.records import Evaluation

__all__ = [
    "Config",
    "Launch",
    "Prediction",
    "RunDivergedError",
    "RunError",
    "evaluate_checkpoint",
    "predict_files",
    "train_and_evaluate",
]

PathLike = str | os.PathLike[str]


def _resumed_config(config: Config, saved: Config, explicit: set[str]) -> Config:
    """The config of a resumed run: the saved one, with a longer run allowed.

    Args:
      config: what the caller asked for.
      saved: the run's config from its checkpoint.
      explicit: the fields the caller set on purpose (the CLI's given flags);
        those that define the run must equal the saved ones.
    """
    conflicts = [
        f"`{name}={getattr(config, name)!r}` (the checkpoint has "
        f"{getattr(saved, name)!r})"
        for name in RUN_DEFINING
        if name in explicit and getattr(config, name) != getattr(saved, name)
    ]
    if conflicts:
        raise RunError(
            "resuming continues the run saved in the checkpoint with its own "
            "settings, but these differ: " + ", ".join(conflicts) + ". Drop "
            "them, or start a new run (`overwrite=True` or another `workdir`)."
        )
    epochs = config.epochs if "epochs" in explicit else saved.epochs
    if epochs != saved.epochs and saved.schedule != "constant":
        raise RunError(
            f"`epochs={epochs}` differs from the checkpoint's {saved.epochs}, but "
            f"its {saved.schedule!r} learning-rate schedule depends on the number "
            "of epochs; only a run with `schedule='constant'` can be extended."
        )
    keep = {name: getattr(saved, name) for name in RUN_DEFINING}
    return dataclasses.replace(config, **keep, epochs=epochs)


def _check_new_or_resumed(
    folder: RunFolder, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """When resuming, the saved run's ``{"epoch": e, "config": ...}``: the
    newest intact checkpoint's metadata, or, before the first complete one,
    ``config.json`` with epoch 0 (the run starts again). Refuses to clobber a
    run."""
    if resume and overwrite:
        raise RunError(
            "`resume=True` and `overwrite=True` exclude each other: choose one."
        )
    if resume:
        if folder.has_checkpoints():
            with checkpoint.Checkpointer(folder.checkpoints) as ckpt:
                if ckpt.latest_epoch() is not None:
                    return ckpt.newest_intact(ckpt.restore_meta)[0]
        stored = folder.read_config()
        if stored is None:
            instead = (
                "start afresh with `overwrite=True`"
                if folder.has_checkpoints()
                else "train without `resume=True`"
            )
            raise RunError(
                f"there is no checkpoint to resume from in {folder.checkpoints} "
                f"(none complete) and no saved settings ({folder.config}); "
                f"{instead}."
            )
        return {"epoch": 0, "config": stored}
    if folder.has_checkpoints() and not overwrite:
        raise RunError(
            f"{folder.path} already holds a run's checkpoints. Resume it "
            "(`resume=True`), replace it (`overwrite=True`), or choose another "
            "`workdir`."
        )
    return None


def _check_shape(name: str, data_dir: Any, expected: tuple[int, int]) -> None:
    """Refuses a dataset of another shape before loading (or preparing) it."""
    from jaxsoft import data

    info = data.describe(name, data_dir=data_dir)
    if (info.num_features, info.num_classes) != expected:
        raise RunError(
            f"the checkpoint was trained on {expected[0]} features and "
            f"{expected[1]} classes, but dataset {name!r} has "
            f"{info.num_features} and {info.num_classes}."
        )


def _load_dataset(config: Config, saved: dict[str, Any] | None) -> Any:
    """The dataset; with several processes, process 0 prepares it first."""
    from jaxsoft import data

    if saved is not None:
        expected = (saved["config"]["num_features"], saved["config"]["num_classes"])
        _check_shape(config.dataset, config.data_dir, expected)
    writer = distributed.is_writer()
    if not writer:
        distributed.barrier("jaxsoft: dataset prepared")
    dataset = data.load(
        config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir
    )
    if writer:
        distributed.barrier("jaxsoft: dataset prepared")
    return dataset


def train_and_evaluate(
    config: Config,
    workdir: PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    explicit: Sequence[str] | None = None,
    verbose: bool = True,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """Runs a whole training experiment into ``workdir``.

    Writes ``checkpoints/`` (orbax, every ``config.checkpoint_every`` epochs
    and after the last), ``metrics.jsonl`` (one line per epoch),
    ``curves.png``, ``weights.png``, ``confusion.png`` and ``summary.json``.
    Holds the folder's lock throughout, so a second run into the same folder
    fails at once instead of corrupting this one.

    Args:
      config: the run's settings.
      workdir: the run folder.
      resume: continue the run saved in ``workdir`` (its settings win; a
        longer run is allowed with a constant schedule), from its newest
        intact checkpoint (damaged newer ones are moved to
        ``damaged-checkpoints/``), or from epoch 1 with its saved settings
        when it was stopped before its first complete checkpoint.
      overwrite: replace the run in ``workdir``; the old one is deleted only
        once every input has been checked.
      explicit: with ``resume``, the config fields the caller set on purpose
        (they must agree with the saved run); default: every field that
        differs from `Config`'s defaults.
      verbose: print one line per epoch and a progress bar (on a terminal).
      launch: how this process joins a multi-process run
        (`jaxsoft.experiment.distributed.Launch`); None for one process. Every process
        calls this function with the same arguments; process 0 writes the
        files, all of them compute and checkpoint.

    Returns:
      The summary (also in ``summary.json``): dataset, config, epochs, test
      metrics (`Evaluation.to_dict`), training seconds.

    Raises:
      RunError: the folder holds a run and neither resume nor overwrite was
        asked, or the resumed run's settings or dataset do not match.
      jaxsoft.experiment.signals.RunInterrupted: (a KeyboardInterrupt) the
        first SIGINT or SIGTERM stopped the run after an epoch, whose
        checkpoint is saved.
      RunDivergedError: the loss became NaN or infinite (the last good state is
        checkpointed; the error says how good it is).
      jaxsoft.experiment.run_folder.RunLockedError: another process writes there.
      jaxsoft.data.DatasetError, jaxsoft.experiment.checkpoint.CheckpointError: the
        dataset or the checkpoint cannot be read.
    """
    distributed.initialize(launch or Launch())
    folder = RunFolder(workdir)
    writer = distributed.is_writer()  # process 0 writes; all compute
    with folder.lock() if writer else contextlib.nullcontext():
        saved = _check_new_or_resumed(folder, resume, overwrite)
        if saved is not None and saved["epoch"] == 0 and writer and verbose:
            print(
                f"jaxsoft: no complete checkpoint in {folder.checkpoints}: starting "
                "the run again from epoch 1 with its saved settings",
                flush=True,
            )
        if saved is not None:
            if explicit is None:
                explicit = _non_defaults(config)
            config = _resumed_config(
                config, Config.from_dict(saved["config"]), set(explicit)
            )
        dataset = _load_dataset(config, saved)
        if config.batch_size > len(dataset.x_train):
            raise RunError(
                f"`batch_size={config.batch_size}` is larger than the "
                f"{len(dataset.x_train)} training examples of {dataset.name!r}."
            )
        try:
            sharding.check_batch_size(config.batch_size, sharding.resolve_mesh())
        except ValueError as err:
            raise RunError(str(err)) from None
        distributed.barrier("jaxsoft: every process checked its inputs")
        run = TrainingRun(config, dataset, folder, verbose, writer=writer)
        state, history = run.start(saved is not None and saved["epoch"] > 0)
        result = run.fit(state, history)
        return run.finish(result)


def _non_defaults(config: Config) -> list[str]:
    defaults = Config()
    return [
        f.name
        for f in dataclasses.fields(Config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]


# --------------------------------------------------------------------------
# evaluate and predict from a checkpoint


def evaluate_checkpoint(
    checkpoint_path: PathLike,
    *,
    dataset: str | None = None,
    split: str = "test",
    data_dir: PathLike | None = None,
    manual_dir: PathLike | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """The metrics of a saved model on a split of a dataset.

    Args:
      checkpoint_path: a run folder or its ``checkpoints/`` folder.
      dataset: the dataset to evaluate on (default: the one trained on).
      split: "test" or "train".
      data_dir, manual_dir: as for `jaxsoft.data.load`.

    Returns:
      ``(evaluation, info)``; info has ``dataset``, ``split``,
      ``class_names`` and ``epoch``.

    Raises:
      RunError: the dataset's shape does not match the checkpoint's.
    """
    from jaxsoft import data, train

    if split not in ("test", "train"):
        raise RunError(f"split must be 'test' or 'train', got {split!r}.")
    params, meta = checkpoint.load_params(checkpoint_path)
    name = dataset or meta["config"]["dataset"]
    _check_shape(name, data_dir, tuple(params.W.shape))
    ds = data.load(name, data_dir=data_dir, manual_dir=manual_dir)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    result = train.evaluate(params, x, y, check_input=False)
    info = {
        "dataset": name,
        "split": split,
        "class_names": list(ds.class_names),
        "epoch": meta["epoch"],
    }
    return result, info


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The most probable classes of one image file.

    Attributes:
      path: the file.
      classes: class names, most probable first.
      probabilities: their probabilities.
    """

    path: str
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]


def predict_files(
    checkpoint_path: PathLike,
    image_paths: Sequence[PathLike],
    *,
    top: int = 3,
    invert: str = "auto",
    on_each: Callable[[Prediction], None] | None = None,
) -> list[Prediction]:
    """The ``top`` most probable classes of image files under a saved model.

    Args:
      checkpoint_path: a run folder or its ``checkpoints/`` folder.
      image_paths: PNG/JPEG/... files; resized and scaled like the data.
      top: how many classes per image.
      invert: "auto", "yes" or "no" (see `jaxsoft.experiment.images.load_images`).
      on_each: called with each `Prediction` as it is made.

    Returns:
      One `Prediction` per file.
    """
    from jaxsoft.experiment import images

    top = validation.positive_int("top", top)
    params, meta = checkpoint.load_params(checkpoint_path)
    config = meta["config"]
    x = images.load_images(image_paths, config["image_shape"], invert=invert)
    classes, probabilities = jax.device_get(model.top_k(params, x, top))
    names = config["class_names"]
    predictions = []
    for path, row_classes, row_probs in zip(
        image_paths, classes, probabilities, strict=True
    ):
        prediction = Prediction(
            path=str(Path(path)),
            classes=tuple(names[c] for c in row_classes),
            probabilities=tuple(float(p) for p in row_probs),
        )
        predictions.append(prediction)
        if on_each is not None:
            on_each(prediction)
    return predictions
