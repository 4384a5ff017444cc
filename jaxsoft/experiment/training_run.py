"""The steps of one training run (`jaxsoft.experiment.train_and_evaluate`).

start (initial or restored state, history from ``metrics.jsonl``) -> fit
(checkpoints every k epochs and at the end, one ``metrics.jsonl`` line per
epoch, progress; the first SIGINT or SIGTERM stops it after the epoch in
progress, once that epoch's checkpoint is saved: `jaxsoft.experiment.signals`) -> finish
(test evaluation, plots, ``summary.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jax

from jaxsoft import model, sharding
from jaxsoft.errors import JaxsoftError
from jaxsoft.experiment import checkpoint, distributed
from jaxsoft.experiment.config import Config
from jaxsoft.experiment.run_folder import RunFolder
from jaxsoft.experiment.signals import RunInterrupted, StopRequests
from jaxsoft.train.errors import divergence_advice
from jaxsoft.train.records import EpochRecord, TrainState

__all__ = ["RunDivergedError", "RunError", "TrainingRun"]


class RunError(JaxsoftError):
    """A run cannot start as asked (an existing run, conflicting settings, ...)."""


class RunDivergedError(RunError):
    """Training diverged; the last good state is kept in the run's checkpoints.

    The error carries what happened; ``str(err)`` says it in one line, with
    the advice (`jaxsoft.train.errors.divergence_advice`).

    Attributes:
      epoch: the 1-based epoch that diverged.
      loss: that epoch's mean training loss (NaN or infinite).
      learning_rate: the run's (peak) learning rate.
      optimizer: the run's optimizer name.
      schedule: the run's learning-rate schedule name.
      kept_epoch: the epoch of the checkpoint kept (0: none).
      kept_record: the `EpochRecord` of that epoch, or None.
      checkpoints: the run's checkpoint folder.
    """

    def __init__(
        self,
        epoch: int,
        loss: float,
        *,
        learning_rate: float,
        optimizer: str,
        schedule: str,
        kept: EpochRecord | None,
        checkpoints: Path,
    ):
        self.epoch = epoch
        self.loss = loss
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.schedule = schedule
        self.kept_epoch = 0 if kept is None else kept.epoch
        self.kept_record = kept
        self.checkpoints = checkpoints
        kept_text = "No epoch finished, so no checkpoint was kept."
        if kept is not None:
            kept_text = (
                f"Kept the checkpoint of epoch {kept.epoch}, the last good one, in "
                f"{checkpoints}: test loss {kept.test_loss:.4g}, test accuracy "
                f"{kept.test_accuracy:.4f}."
            )
        super().__init__(
            f"training diverged in epoch {epoch}: the mean training loss is "
            f"{loss} (not finite), with {optimizer} at learning rate "
            f"{learning_rate:g} ({schedule} schedule). {kept_text} "
            + divergence_advice(learning_rate)
            + " Then train again with `overwrite=True`."
        )


class TrainingRun:
    """One training run's steps, in order: start, fit, finish."""

    def __init__(
        self,
        config: Config,
        dataset: Any,
        folder: RunFolder,
        verbose: bool,
        *,
        writer: bool = True,
    ):
        from jaxsoft import train

        self.config, self.dataset, self.folder = config, dataset, folder
        self.writer = writer  # this process writes the run's files
        self.verbose = verbose and writer
        self.mesh = sharding.resolve_mesh()
        init_key, self.shuffle_key = jax.random.split(jax.random.key(config.seed))
        self.initial_params = model.init_params(
            init_key, dataset.num_features, dataset.num_classes
        )
        steps = train.total_steps(
            config.epochs, len(dataset.x_train), config.batch_size
        )
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
        from jaxsoft import train

        # fit's own start, replicated on the mesh: a fresh run trains from it
        # and a resumed one restores its checkpoint into its layout.
        template = train.initial_state(
            self.initial_params, self.shuffle_key, self.optimizer, self.mesh
        )
        if resuming:
            state = self._restore(template)
            history = self.folder.read_history(state.epoch)
            self._print(f"resuming after epoch {state.epoch}")
        else:
            if self.writer:
                self.folder.clear()  # overwrite=True: every input is valid by now
                self.folder.write_config(self.meta)
            state, history = template, []
        if self.writer:
            self.folder.write_history(history)
        distributed.barrier("jaxsoft: run folder ready")
        config = self.config
        self._print(
            f"jaxsoft: training on {self.dataset!r} with {config.optimizer} lr "
            f"{config.learning_rate:g} ({config.schedule}), batch "
            f"{config.batch_size}, {config.epochs} epochs, l2 {config.l2:g}, on "
            f"{jax.device_count()} {jax.default_backend()} device(s) in "
            f"{jax.process_count()} process(es); writing to {self.folder.path}"
        )
        return state, history

    def _restore(self, template: TrainState) -> TrainState:
        """The newest intact checkpoint's state; damaged newer ones are set
        aside (saying so), once every process has restored."""
        with checkpoint.Checkpointer(self.folder.checkpoints) as ckpt:
            (state, _), damaged = ckpt.newest_intact(
                lambda epoch: ckpt.restore(template, epoch)
            )
        distributed.barrier("jaxsoft: checkpoint restored")
        if self.writer:
            for err in damaged:
                moved = self.folder.set_aside(err.path)
                print(
                    f"jaxsoft: the checkpoint of epoch {err.path.name} is damaged "
                    f"(moved to {moved}); resuming from epoch {state.epoch}, the "
                    "newest intact one.",
                    file=sys.stderr,
                    flush=True,
                )
        return state

    def fit(self, state: TrainState, history: list[EpochRecord]) -> Any:
        """Trains to ``config.epochs``, saving checkpoints and metrics."""
        from jaxsoft import train

        config, ds = self.config, self.dataset
        saved_epochs = {state.epoch}
        progress = self._progress_bar(state.epoch)

        def on_epoch_end(new_state: TrainState, record: EpochRecord) -> None:
            if self.writer:
                self.folder.append_record(record)
            if record.epoch % config.checkpoint_every == 0 or (
                record.epoch == config.epochs
            ):
                ckpt.save(new_state, self.meta)
                saved_epochs.add(record.epoch)
            progress.update(1)
            if self.verbose:
                progress.write(_metrics_line(record), file=sys.stdout)
            if stop.agreed():  # every process stops after the same epoch
                if record.epoch not in saved_epochs:
                    ckpt.save(new_state, self.meta)
                ckpt.wait_until_finished()
                raise RunInterrupted(record.epoch, stop.requested)

        ckpt = checkpoint.Checkpointer(
            self.folder.checkpoints, max_to_keep=config.keep_checkpoints
        )
        stop = StopRequests().install()
        try:
            result = train.fit(
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
                mesh=self.mesh,
            )
        except train.TrainingDiverged as err:
            raise self._diverged(err, ckpt, saved_epochs) from None
        finally:
            progress.close()
            try:
                ckpt.close()
            finally:
                stop.uninstall()  # a notebook gets its own handlers back
        if stop.agreed():  # asked while the last checkpoint was written
            raise RunInterrupted(result.state.epoch, stop.requested)
        return result

    def _progress_bar(self, done: int) -> Any:
        """The epochs' progress bar on stderr (a terminal only; none if quiet)."""
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.epochs,
            initial=done,
            desc="train",
            unit="epoch",
            disable=None if self.verbose else True,
            file=sys.stderr,
        )

    def _diverged(
        self, err: Any, ckpt: checkpoint.Checkpointer, saved_epochs: set[int]
    ) -> RunDivergedError:
        """Keeps the last good state as a checkpoint; the error says which."""
        good = err.last_good
        if good.epoch > 0 and good.epoch not in saved_epochs:
            ckpt.save(good, self.meta)
        config = self.config
        return RunDivergedError(
            err.epoch,
            err.loss,
            # fit was given the optax transformation, so only the run knows it
            learning_rate=config.learning_rate,
            optimizer=config.optimizer,
            schedule=config.schedule,
            kept=err.history[-1] if err.history else None,
            checkpoints=self.folder.checkpoints,
        )

    def finish(self, result: Any) -> dict[str, Any]:
        """Evaluates the test split, draws the plots, writes the summary."""
        from jaxsoft import train
        from jaxsoft.experiment import plots

        ds, out = self.dataset, self.folder.path
        final = train.evaluate(
            result.params,
            ds.x_test,
            ds.y_test,
            chunk_size=self.config.eval_chunk_size,
            check_input=False,
            mesh=self.mesh,
        )
        summary = {
            "dataset": ds.name,
            "config": self.meta,
            "epochs": result.state.epoch,
            "test": final.to_dict(),
            "train_seconds": sum(r.seconds for r in result.history),
        }
        if not self.writer:
            return summary
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
