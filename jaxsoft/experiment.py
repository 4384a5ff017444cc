"""The whole experiment as library calls: train, evaluate, predict.

`train_and_evaluate(config, workdir)` does everything ``jaxsoft train`` does:
load the dataset (validated once, as a `jaxsoft.data.Dataset`), initialise or
resume, fit with periodic orbax checkpoints, write ``metrics.jsonl``, evaluate
the test split, draw the plots and write ``summary.json``. The CLI and the
notebooks only build a `Config` and call it; they hold no pipeline of their
own.

>>> from jaxsoft.experiment import Config, train_and_evaluate
>>> summary = train_and_evaluate(Config(epochs=2), "/tmp/run")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxsoft import checkpoint, model, validation
from jaxsoft.config import RUN_DEFINING, Config, flags
from jaxsoft.records import EpochRecord, Evaluation, TrainState
from jaxsoft.run_folder import RunFolder

__all__ = [
    "Config",
    "Prediction",
    "RunDivergedError",
    "RunError",
    "evaluate_checkpoint",
    "predict_files",
    "train_and_evaluate",
]

PathLike = str | os.PathLike[str]


class RunError(Exception):
    """A run cannot start as asked (an existing run, conflicting settings, ...)."""


class RunDivergedError(RunError):
    """Training diverged; the last good state is kept in the run's checkpoints.

    Attributes:
      epoch: the epoch that diverged.
      kept_epoch: the epoch of the checkpoint kept (0: none).
      kept_record: the `EpochRecord` of that epoch, or None.
    """

    def __init__(self, message: str, epoch: int, kept: EpochRecord | None):
        super().__init__(message)
        self.epoch = epoch
        self.kept_epoch = 0 if kept is None else kept.epoch
        self.kept_record = kept


def _resumed_config(config: Config, saved: Config, explicit: set[str]) -> Config:
    """The config of a resumed run: the saved one, with a longer run allowed.

    Args:
      config: what the caller asked for.
      saved: the run's config from its checkpoint.
      explicit: the fields the caller set on purpose (the CLI's given flags);
        those that define the run must equal the saved ones.
    """
    conflicts = [
        f"{flags(name)[0]} {getattr(config, name)} (the checkpoint has "
        f"{getattr(saved, name)})"
        for name in RUN_DEFINING
        if name in explicit and getattr(config, name) != getattr(saved, name)
    ]
    if conflicts:
        raise RunError(
            "resuming continues the run saved in the checkpoint with its own "
            "settings, but these differ: " + ", ".join(conflicts) + ". Drop "
            "them, or start a new run (--overwrite or another output folder)."
        )
    epochs = config.epochs if "epochs" in explicit else saved.epochs
    if epochs != saved.epochs and saved.schedule != "constant":
        raise RunError(
            f"--epochs {epochs} differs from the checkpoint's {saved.epochs}, but "
            f"its {saved.schedule!r} learning-rate schedule depends on the number "
            "of epochs; only a run with --schedule constant can be extended."
        )
    keep = {name: getattr(saved, name) for name in RUN_DEFINING}
    return dataclasses.replace(config, **keep, epochs=epochs)


def _check_new_or_resumed(
    folder: RunFolder, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """The saved checkpoint metadata when resuming; refuses to clobber a run."""
    if resume and overwrite:
        raise RunError("resume and overwrite exclude each other: choose one.")
    if resume:
        if not folder.has_checkpoints():
            raise RunError(
                f"there is no checkpoint in {folder.checkpoints} to resume; "
                "train without resuming first."
            )
        with checkpoint.Checkpointer(folder.checkpoints) as ckpt:
            if ckpt.latest_epoch() is None:
                raise RunError(
                    f"there is no complete checkpoint in {folder.checkpoints}."
                )
            return ckpt.restore_meta()
    if folder.has_checkpoints() and not overwrite:
        raise RunError(
            f"{folder.path} already holds a run's checkpoints. Resume it "
            "(--resume), replace it (--overwrite), or choose another output folder."
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
    from jaxsoft import data

    if saved is not None:
        expected = (saved["config"]["num_features"], saved["config"]["num_classes"])
        _check_shape(config.dataset, config.data_dir, expected)
    return data.load(
        config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir
    )


def train_and_evaluate(
    config: Config,
    workdir: PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    explicit: Sequence[str] | None = None,
    verbose: bool = True,
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
        longer run is allowed with a constant schedule).
      overwrite: replace the run in ``workdir``; the old one is deleted only
        once every input has been checked.
      explicit: with ``resume``, the config fields the caller set on purpose
        (they must agree with the saved run); default: every field that
        differs from `Config`'s defaults.
      verbose: print one line per epoch and a progress bar (on a terminal).

    Returns:
      The summary (also in ``summary.json``): dataset, config, epochs, test
      metrics (`Evaluation.to_dict`), training seconds.

    Raises:
      RunError: the folder holds a run and neither resume nor overwrite was
        asked, or the resumed run's settings or dataset do not match.
      RunDivergedError: the loss became NaN or infinite (the last good state is
        checkpointed; the error says how good it is).
      jaxsoft.run_folder.RunLockedError: another process writes there.
      jaxsoft.data.DatasetError, jaxsoft.checkpoint.CheckpointError: the
        dataset or the checkpoint cannot be read.
    """
    folder = RunFolder(workdir)
    with folder.lock():
        saved = _check_new_or_resumed(folder, resume, overwrite)
        if saved is not None:
            if explicit is None:
                explicit = _non_defaults(config)
            config = _resumed_config(
                config, Config.from_dict(saved["config"]), set(explicit)
            )
        dataset = _load_dataset(config, saved)
        if config.batch_size > len(dataset.x_train):
            raise RunError(
                f"batch_size {config.batch_size} is larger than the "
                f"{len(dataset.x_train)} training examples of {dataset.name!r}."
            )
        run = _Run(config, dataset, folder, verbose)
        state, history = run.start(saved is not None)
        result = run.fit(state, history)
        return run.finish(result)


def _non_defaults(config: Config) -> list[str]:
    defaults = Config()
    return [
        f.name
        for f in dataclasses.fields(Config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]


class _Run:
    """One training run's steps, in order: start, fit, finish."""

    def __init__(self, config: Config, dataset: Any, folder: RunFolder, verbose: bool):
        from jaxsoft import train

        self.config, self.dataset, self.folder = config, dataset, folder
        self.verbose = verbose
        init_key, self.shuffle_key = jax.random.split(jax.random.key(config.seed))
        self.initial_params = model.init_params(
            init_key, dataset.num_features, dataset.num_classes
        )
        steps = config.epochs * (len(dataset.x_train) // config.batch_size)
        self.optimizer = train.make_optimizer(
            config.optimizer,
            config.learning_rate,
            schedule=config.schedule,
            total_steps=steps,
        )
        self.meta = {
            **config.to_dict(),
            "num_features": dataset.num_features,
            "num_classes": dataset.num_classes,
            "image_shape": list(dataset.image_shape),
            "class_names": list(dataset.class_names),
        }

    def _print(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    def start(self, resuming: bool) -> tuple[TrainState, list[EpochRecord]]:
        """The initial or restored state and the history so far."""
        template = TrainState(
            self.initial_params,
            self.optimizer.init(self.initial_params),
            0,
            self.shuffle_key,
        )
        if resuming:
            with checkpoint.Checkpointer(self.folder.checkpoints) as ckpt:
                state, _ = ckpt.restore(template)
            history = self.folder.read_history(state.epoch)
            self._print(f"resuming after epoch {state.epoch}")
        else:
            self.folder.clear()  # --overwrite: every input is valid by now
            state, history = template, []
        self.folder.write_history(history)
        config = self.config
        self._print(
            f"jaxsoft: training on {self.dataset!r} with {config.optimizer} lr "
            f"{config.learning_rate:g} ({config.schedule}), batch "
            f"{config.batch_size}, {config.epochs} epochs, l2 {config.l2:g}, on "
            f"{jax.default_backend()}; writing to {self.folder.path}"
        )
        return state, history

    def fit(self, state: TrainState, history: list[EpochRecord]) -> Any:
        """Trains to ``config.epochs``, saving checkpoints and metrics."""
        from tqdm.auto import tqdm

        from jaxsoft import train

        config, ds = self.config, self.dataset
        saved_epochs = {state.epoch}
        progress = tqdm(
            total=config.epochs,
            initial=state.epoch,
            desc="train",
            unit="epoch",
            disable=None if self.verbose else True,
            file=sys.stderr,
        )

        def on_epoch_end(new_state: TrainState, record: EpochRecord) -> None:
            self.folder.append_record(record)
            if record.epoch % config.checkpoint_every == 0 or (
                record.epoch == config.epochs
            ):
                ckpt.save(new_state, self.meta)
                saved_epochs.add(record.epoch)
            progress.update(1)
            if self.verbose:
                progress.write(_metrics_line(record), file=sys.stdout)

        ckpt = checkpoint.Checkpointer(
            self.folder.checkpoints, max_to_keep=config.keep_checkpoints
        )
        try:
            return train.fit(
                self.initial_params,
                ds.x_train,
                ds.y_train,
                key=self.shuffle_key,
                optimizer=self.optimizer,
                l2=config.l2,
                batch_size=config.batch_size,
                epochs=config.epochs,
                x_test=ds.x_test,
                y_test=ds.y_test,
                state=state,
                history=history,
                on_epoch_end=on_epoch_end,
                eval_chunk_size=config.eval_chunk_size,
                check_input=False,  # a Dataset is valid by construction
            )
        except train.TrainingDiverged as err:
            raise self._diverged(err, ckpt, saved_epochs) from None
        finally:
            progress.close()
            ckpt.close()

    def _diverged(
        self, err: Any, ckpt: checkpoint.Checkpointer, saved_epochs: set[int]
    ) -> RunDivergedError:
        """Keeps the last good state as a checkpoint and says how good it is."""
        good = err.last_good
        if good.epoch > 0 and good.epoch not in saved_epochs:
            ckpt.save(good, self.meta)
        record = err.history[-1] if err.history else None
        if record is None:
            kept = "No epoch finished, so no checkpoint was kept."
        else:
            kept = (
                f"Kept the checkpoint of epoch {record.epoch}, the last good one, "
                f"in {self.folder.checkpoints}: test loss {record.test_loss:.4g}, "
                f"test accuracy {record.test_accuracy:.4f}."
            )
        return RunDivergedError(
            f"{err} {kept} Train again with a smaller --lr and --overwrite.",
            err.epoch,
            record,
        )

    def finish(self, result: Any) -> dict[str, Any]:
        """Evaluates the test split, draws the plots, writes the summary."""
        from jaxsoft import plots, train

        ds, out = self.dataset, self.folder.path
        final = train.evaluate(
            result.params,
            ds.x_test,
            ds.y_test,
            chunk_size=self.config.eval_chunk_size,
            check_input=False,
        )
        plots.plot_history(result.history, out / "curves.png")
        plots.plot_weights(
            result.params, ds.image_shape, ds.class_names, out / "weights.png"
        )
        plots.plot_confusion(
            final.confusion,
            ds.class_names,
            out / "confusion.png",
            title=f"{ds.name} test confusion matrix",
        )
        summary = {
            "dataset": ds.name,
            "config": self.meta,
            "epochs": result.state.epoch,
            "test": final.to_dict(),
            "train_seconds": sum(r.seconds for r in result.history),
        }
        self.folder.write_summary(summary)
        self._print(
            f"done: {result.state.epoch} epochs in {summary['train_seconds']:.1f}s; "
            f"test accuracy {final.accuracy:.4f}, loss {final.loss:.4f} on "
            f"{final.num_examples} examples"
        )
        self._print(
            f"wrote {self.folder.checkpoints}, metrics.jsonl, plots, summary.json"
        )
        return summary


def _metrics_line(record: EpochRecord) -> str:
    line = (
        f"epoch {record.epoch:4d}  train loss {record.train_loss:.4f} "
        f"acc {record.train_accuracy:.4f}"
    )
    if record.test_loss is not None:
        line += f"  test loss {record.test_loss:.4f} acc {record.test_accuracy:.4f}"
    return line + f"  {record.seconds:.2f}s"


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
      invert: "auto", "yes" or "no" (see `jaxsoft.images.load_images`).
      on_each: called with each `Prediction` as it is made.

    Returns:
      One `Prediction` per file.
    """
    from jaxsoft import images

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
