"""The ``jaxsoft`` command: argparse -> `Config` -> `jaxsoft.experiment`.

    jaxsoft train [--dataset digits] [--epochs N] [--optimizer adam] ...
    jaxsoft evaluate --checkpoint runs/digits
    jaxsoft predict --checkpoint runs/digits digit.png

This module holds no math and no pipeline: ``train``'s flags are derived from
the fields of `jaxsoft.experiment.Config` (their defaults and help text live
there), and each command calls one function of `jaxsoft.experiment`. Mistakes
in arguments or inputs print one line and exit with code 2; a diverged run
exits with code 1; an interrupted one with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from jaxsoft.cli.flags import (
    add_launch_flags,
    as_flags,
    config_flags,
    launch_from_args,
    parse_float,
    parse_int,
)
from jaxsoft.compile_cache import enable_default_cache
from jaxsoft.errors import JaxsoftError
from jaxsoft.experiment import signals
from jaxsoft.experiment.config import Config, ConfigError

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = signals.EXIT_INTERRUPTED


class UsageError(JaxsoftError):
    """A mistake in the command line or its inputs: message, exit code 2."""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting (so main returns)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\n{self.format_usage().strip()}")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `Config` field; its default stays None (= not given)."""
    from jaxsoft.train import OPTIMIZERS, SCHEDULES

    choices = {"optimizer": sorted(OPTIMIZERS), "schedule": SCHEDULES}
    parsers = {"int": parse_int, "float": parse_float}
    for field in dataclasses.fields(Config):
        default = field.default
        parser.add_argument(
            *config_flags(field.name),
            dest=field.name,
            type=parsers.get(str(field.type), str),
            choices=choices.get(field.name),
            metavar=None if field.name in choices else field.name.upper(),
            help=f"{field.metadata['help']} (default: {default})",
        )


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a model, writing checkpoints, metrics and plots",
        description="Train softmax regression. Writes into --out: checkpoints/, "
        "metrics.jsonl, curves.png, weights.png, confusion.png, summary.json.",
    )
    _add_config_flags(train)
    train.add_argument("--out", help="output folder (default: runs/DATASET)")
    add_launch_flags(train)
    mode = train.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue the run saved in --out"
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (deleted only once every input is valid)",
    )


def _add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="metrics and confusion matrix of a checkpoint on a split"
    )
    evaluate.add_argument("--checkpoint", required=True, help="a run's --out folder")
    evaluate.add_argument(
        "--dataset", help="dataset (default: the one the checkpoint was trained on)"
    )
    evaluate.add_argument(
        "--split", choices=("test", "train"), default="test", help="(default: test)"
    )
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")
    evaluate.add_argument("--data-dir", help="where tensorflow-datasets keeps data")
    evaluate.add_argument("--manual-dir", help="folder of manually downloaded files")


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser(
        "predict", help="the most probable classes of image files"
    )
    predict.add_argument("--checkpoint", required=True, help="a run's --out folder")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files")
    predict.add_argument(
        "--top", type=parse_int, default=3, help="classes to show (default: 3)"
    )
    predict.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="invert dark-on-light images to the datasets' light-on-dark "
        "(default: auto, by the border's brightness)",
    )


def _build_parser() -> argparse.ArgumentParser:
    from jaxsoft.cli import probe as probe_command

    parser = _ArgumentParser(
        prog="jaxsoft",
        description="Softmax regression in JAX: train, evaluate, predict.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for add in (_add_train, _add_evaluate, _add_predict, probe_command.add_parser):
        add(commands)
    return parser


def _check_folder_option(option: str, path: str | None, *, must_exist: bool) -> None:
    if path is None:
        return
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder.")
    if must_exist and not folder.is_dir():
        raise UsageError(f"{option} {path} does not exist.")


def _check_output_file(option: str, path: str) -> None:
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name.")
    if not target.parent.is_dir():
        raise UsageError(f"{option} {path}: the folder {target.parent} does not exist.")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"{option} {path}: the folder {target.parent} is read-only.")


def _config_from_args(args: argparse.Namespace) -> tuple[Config, list[str]]:
    """The `Config` of the given flags (others default) and their names."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if getattr(args, f.name) is not None
    }
    try:
        return Config(**given), sorted(given)
    except ConfigError as err:
        raise UsageError(
            f"{config_flags(err.field)[0]}: {as_flags(str(err))}"
        ) from None


def _command_train(args: argparse.Namespace) -> int:
    from jaxsoft import experiment

    config, explicit = _config_from_args(args)
    launch = launch_from_args(args)
    _check_folder_option("--data-dir", config.data_dir, must_exist=False)
    _check_folder_option("--manual-dir", config.manual_dir, must_exist=True)
    out = args.out or f"runs/{config.dataset}"
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file, not a folder.")
    try:
        experiment.train_and_evaluate(
            config,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            explicit=explicit,
            launch=launch,
        )
    except experiment.RunDivergedError as err:
        print(f"jaxsoft: error: {as_flags(str(err))}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    from jaxsoft import experiment
    from jaxsoft.cli.evaluation_table import format_evaluation

    if args.json:
        _check_output_file("--json", args.json)
    _check_folder_option("--data-dir", args.data_dir, must_exist=False)
    _check_folder_option("--manual-dir", args.manual_dir, must_exist=True)
    result, info = experiment.evaluate_checkpoint(
        args.checkpoint,
        dataset=args.dataset,
        split=args.split,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
    )
    print(f"checkpoint {args.checkpoint} on {info['dataset']} ({args.split} split)")
    print(format_evaluation(result, info["class_names"], args.split))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


def _command_predict(args: argparse.Namespace) -> int:
    from jaxsoft import experiment

    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}.")

    def show(prediction: experiment.Prediction) -> None:
        pairs = zip(prediction.classes, prediction.probabilities, strict=True)
        ranked = ", ".join(f"{name} ({p:.3f})" for name, p in pairs)
        print(f"{prediction.path}: {ranked}")

    experiment.predict_files(
        args.checkpoint, args.images, top=args.top, invert=args.invert, on_each=show
    )
    return 0


def _command_probe(args: argparse.Namespace) -> int:
    from jaxsoft.cli import probe as probe_command

    return probe_command.run(args)


def _quiet_libraries() -> None:
    import logging

    for name in ("absl", "orbax", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run() -> NoReturn:
    """The ``jaxsoft`` console script: `main`, then a quick exit.

    Once `main` has returned (every file closed, every checkpoint written),
    the exit handlers run and the process ends without tearing down each
    module and XLA's runtime one by one (`jaxsoft.experiment.signals.quick_exit`).
    """
    from jaxsoft.experiment.signals import quick_exit

    quick_exit(main())


def resume_command(argv: Sequence[str]) -> str:
    """The ``jaxsoft train`` command line ``argv`` (without the program name)
    that resumes its run: ``--overwrite`` dropped, ``--resume`` added."""
    kept = [a for a in argv if a != "--overwrite"]
    return shlex.join(["jaxsoft", *kept, *([] if "--resume" in kept else ["--resume"])])


def interrupted_message(
    out: str | os.PathLike[str], resume: str, how: str = "interrupted"
) -> str:
    """The one line an interrupted ``jaxsoft train`` prints: ``how`` it
    ended, the newest complete checkpoint in ``out`` and ``resume`` (the
    command that continues from it), or what ``resume`` does without one."""
    from jaxsoft.experiment.checkpoint import complete_epochs

    epochs = complete_epochs(Path(out) / "checkpoints")
    if epochs:
        return (
            f"jaxsoft: {how}; the checkpoint of epoch {epochs[-1]} is saved "
            f"in {Path(out) / 'checkpoints'}: `{resume}` continues from it."
        )
    if (Path(out) / "config.json").is_file():
        return (
            f"jaxsoft: {how} before the first checkpoint, so no epoch is "
            f"saved: `{resume}` starts the run again from epoch 1 with its settings."
        )
    return f"jaxsoft: {how} before training started; nothing was saved in {out}."


def _interrupted(
    args: argparse.Namespace, argv: Sequence[str], how: str = "interrupted"
) -> str:
    """The line of an interrupted command: for ``train``, what is saved and
    the command that resumes."""
    if args.command != "train":
        return f"jaxsoft: {how}."
    out = args.out or f"runs/{args.dataset or Config().dataset}"
    return interrupted_message(out, resume_command(argv), how)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``jaxsoft`` command line; returns the exit code.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      0 on success, 2 for a usage or input error (one line on stderr, no
      traceback), 1 when training diverged, 130 when interrupted.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print(f"jaxsoft: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    _quiet_libraries()
    # Keeps compiled programs on disk, so a second run skips compiling
    # ($JAXSOFT_CACHE_DIR; empty turns it off).
    enable_default_cache()
    commands = {
        "train": _command_train,
        "evaluate": _command_evaluate,
        "predict": _command_predict,
        "probe": _command_probe,
    }
    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        with signals.command_signals(lambda how: _interrupted(args, raw, how)):
            return commands[args.command](args)
    # A mistake in the arguments or inputs (any JaxsoftError), or a file the
    # user named that cannot be read or written: one line, no traceback.
    except (JaxsoftError, OSError) as err:
        print(f"jaxsoft: error: {as_flags(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # also SIGTERM, and a run stopped after an epoch
        print(_interrupted(args, raw), file=sys.stderr)
        return EXIT_INTERRUPTED
