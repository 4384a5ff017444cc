"""Tests of jaxsoft's errors: one base class, errors that carry their data."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_python

import jaxsoft
from jaxsoft import cli, experiment, train
from jaxsoft.cli.flags import as_flags, config_flags
from jaxsoft.errors import JaxsoftError
from jaxsoft.experiment.config import Config, ConfigError
from jaxsoft.train.records import EpochRecord

# --------------------------------------------------------------- one base


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a jaxsoft module, by qualified name."""
    found = {}
    for info in pkgutil.walk_packages(jaxsoft.__path__, "jaxsoft."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_class_is_a_jaxsoft_error():
    classes = _exception_classes()
    # The roots the CLI used to list one by one are all found by the walk.
    assert {
        "jaxsoft.cli.main.UsageError",
        "jaxsoft.experiment.config.ConfigError",
        "jaxsoft.experiment.checkpoint.CheckpointError",
        "jaxsoft.data.errors.DatasetError",
        "jaxsoft.experiment.distributed.LaunchError",
        "jaxsoft.experiment.images.ImageError",
        "jaxsoft.exact.inputs.SolveInputError",
        "jaxsoft.experiment.run_folder.RunFolderError",
        "jaxsoft.train.errors.TrainingError",
        "jaxsoft.experiment.training_run.RunError",
    } <= classes.keys()
    # Errors are Exceptions; an interruption (a KeyboardInterrupt, such as
    # signals.RunInterrupted) is not an error and keeps its own base.
    errors = {n: c for n, c in classes.items() if issubclass(c, Exception)}
    interrupts = {n for n, c in classes.items() if n not in errors}
    assert all(issubclass(classes[n], KeyboardInterrupt) for n in interrupts)
    assert [n for n, c in errors.items() if not issubclass(c, JaxsoftError)] == []
    assert jaxsoft.JaxsoftError is JaxsoftError


def test_each_error_keeps_its_built_in_base():
    from jaxsoft import data, probe
    from jaxsoft.experiment import images

    assert issubclass(ConfigError, ValueError)
    assert issubclass(images.ImageError, ValueError)
    assert issubclass(probe.ProbeInputError, ValueError)
    assert issubclass(train.TrainingDiverged, RuntimeError)
    assert issubclass(data.UnknownDatasetError, ValueError)
    assert issubclass(data.DatasetUnavailableError, RuntimeError)
    assert issubclass(data.MissingDependencyError, ImportError)


def test_the_cli_catches_any_jaxsoft_error(tmp_path, monkeypatch, capsys):
    class NewMistakeError(JaxsoftError):
        """A user-facing error the CLI has never heard of."""

    def refuse(*args, **kwargs):
        raise NewMistakeError("the new mistake, said plainly.")

    monkeypatch.setattr(experiment, "train_and_evaluate", refuse)
    code = cli.main(["train", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err == "jaxsoft: error: the new mistake, said plainly.\n"


# --------------------------------------------------------------- ConfigError


@pytest.mark.parametrize(
    ("values", "field", "text"),
    [
        ({"epochs": 0}, "epochs", "epochs must be a positive integer, got 0."),
        ({"learning_rate": float("nan")}, "learning_rate", "finite number > 0"),
        ({"optimizer": "adamx"}, "optimizer", "unknown optimizer 'adamx'"),
        ({"schedule": "steps"}, "schedule", "unknown schedule 'steps'"),
        ({"seed": 2**63}, "seed", "in [0, 2**63)"),
        ({"dataset": " "}, "dataset", "non-empty name"),
        ({"epochs": 3, "l2": -1.0}, "l2", "l2 must be a finite number >= 0"),
    ],
)
def test_config_error_names_the_field_and_value(values, field, text):
    with pytest.raises(ConfigError) as info:
        Config(**values)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, JaxsoftError)
    assert (err.field, err.value) == (field, values[field])
    assert text in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, str(copy)) == (err.field, str(err))


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--epochs", "0"], "epochs", 0),
        (["--lr", "-1"], "learning_rate", -1.0),
        (["--learning-rate", "inf"], "learning_rate", float("inf")),
        (["--l2", "-2"], "l2", -2.0),
        (["--seed", "-3"], "seed", -3),
        (["--keep-checkpoints", "0"], "keep_checkpoints", 0),
        (["--eval-chunk-size", "0"], "eval_chunk_size", 0),
        (["--dataset", " "], "dataset", " "),
    ],
)
def test_the_cli_names_the_flag_of_the_bad_field(argv, field, value, tmp_path, capsys):
    code = cli.main(["train", "--out", str(tmp_path / "run"), *argv])
    stderr = capsys.readouterr().err
    with pytest.raises(ConfigError) as info:
        Config(**{field: value})
    flag = config_flags(field)[0]
    assert code == 2
    assert stderr == f"jaxsoft: error: {flag}: {info.value}\n"
    assert not (tmp_path / "run").exists()


def test_the_cli_takes_the_field_from_the_error_not_its_text(
    tmp_path, monkeypatch, capsys
):
    def refuse(config: Config) -> None:
        raise ConfigError("a message that starts with no field name", "batch_size", 7)

    monkeypatch.setattr(Config, "__post_init__", refuse)
    code = cli.main(["train", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err == (
        "jaxsoft: error: --batch-size: a message that starts with no field name\n"
    )


def test_config_defaults_are_the_functions_defaults():
    from jaxsoft.experiment import checkpoint

    fit = inspect.signature(train.fit).parameters
    config = Config()
    for name in ("epochs", "batch_size", "optimizer", "learning_rate", "schedule"):
        assert getattr(config, name) == fit[name].default, name
    assert (config.l2, config.eval_chunk_size) == (
        fit["l2"].default,
        fit["eval_chunk_size"].default,
    )
    keep = inspect.signature(checkpoint.Checkpointer).parameters["max_to_keep"]
    assert config.keep_checkpoints == keep.default


def test_the_library_does_not_import_the_run():
    """The library (the math, exact/, train/, probe/, linear_model, data/,
    sharding) never imports the run (experiment/) or the command line (cli/):
    the arrows point down."""
    code = textwrap.dedent(
        """
        import sys
        import jaxsoft, jaxsoft.exact, jaxsoft.train, jaxsoft.probe
        import jaxsoft.linear_model, jaxsoft.data, jaxsoft.sharding
        print(sorted(m for m in sys.modules
                     if m.startswith(("jaxsoft.experiment", "jaxsoft.cli"))))
        import jaxsoft.experiment
        print("jaxsoft.cli" in sys.modules)
        """
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "False"]


# --------------------------------------------------------------- divergence


def test_training_diverged_carries_the_rate_the_epoch_and_the_loss():
    x = np.full((20, 4), 1e3, np.float32)
    y = np.arange(20, dtype=np.int32) % 2
    params = jaxsoft.init_params(jax.random.key(0), 4, 2)
    with pytest.raises(train.TrainingDiverged) as info:
        train.fit(
            params,
            x,
            y,
            key=jax.random.key(0),
            optimizer="sgd",
            learning_rate=1e30,
            batch_size=10,
            epochs=3,
        )
    err = info.value
    assert isinstance(err, JaxsoftError)
    assert err.learning_rate == 1e30 and not np.isfinite(err.loss)
    assert err.epoch == err.last_good.epoch + 1 == len(err.history) + 1


def _diverged(kept: EpochRecord | None) -> experiment.RunDivergedError:
    return experiment.RunDivergedError(
        4,
        float("nan"),
        learning_rate=0.5,
        optimizer="sgd",
        schedule="constant",
        kept=kept,
        checkpoints=Path("runs/x/checkpoints"),
    )


def test_run_diverged_error_carries_its_data():
    record = EpochRecord(3, 0.25, 0.9, 0.3125, 0.875, 1.0)
    err = _diverged(record)
    assert isinstance(err, experiment.RunError) and isinstance(err, JaxsoftError)
    assert (err.epoch, err.learning_rate, err.optimizer, err.schedule) == (
        4,
        0.5,
        "sgd",
        "constant",
    )
    assert np.isnan(err.loss)
    assert (err.kept_epoch, err.kept_record) == (3, record)
    assert err.checkpoints == Path("runs/x/checkpoints")
    assert _diverged(None).kept_epoch == 0


def test_the_divergence_advice_names_arguments_and_the_cli_names_flags():
    record = EpochRecord(3, 0.25, 0.9, 0.3125, 0.875, 1.0)
    folder = Path("runs/x/checkpoints")
    message = str(_diverged(record))
    assert message == (
        "training diverged in epoch 4: the mean training loss is nan (not "
        "finite), with sgd at learning rate 0.5 (constant schedule). Kept the "
        f"checkpoint of epoch 3, the last good one, in {folder}: test loss "
        "0.3125, test accuracy 0.8750. The learning rate 0.5 is probably too "
        "large for this data: try a smaller one (e.g. `learning_rate=0.05`), "
        "another optimizer (adam), or a stronger L2. Then train again with "
        "`overwrite=True`."
    )
    assert "--" not in message
    assert as_flags(message).endswith(
        "try a smaller one (e.g. `--lr 0.05`), another optimizer (adam), or a "
        "stronger L2. Then train again with `--overwrite`."
    )
    assert "No epoch finished, so no checkpoint was kept." in str(_diverged(None))


def test_library_messages_name_arguments_the_cli_names_flags(tmp_path):
    with pytest.raises(experiment.LaunchError) as info:
        experiment.Launch(coordinator_address="host:1", num_processes=2)
    assert "--" not in str(info.value)
    assert as_flags(str(info.value)) == (
        "give all three of `--coordinator-address`, `--num-processes` and "
        "`--process-id` (or none, on a cluster that JAX detects)."
    )
    assert as_flags("`epochs=5`, `workdir`, `unknown=1`") == (
        "`--epochs 5`, `--out`, `unknown=1`"
    )
