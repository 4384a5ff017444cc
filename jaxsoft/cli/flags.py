"""The command line's flags: the one place that knows their names.

The library's messages name the library's arguments, in backticks
(`` `overwrite=True` ``, `` `epochs=5` ``, `` `process_id` ``); `as_flags`
rewrites them into the flags a user of the ``jaxsoft`` command typed
(``--overwrite``, ``--epochs 5``, ``--process-id``). ``train``'s flags are
derived from the fields of `jaxsoft.experiment.Config`; the flags of a
multi-process launch from `jaxsoft.experiment.distributed.Launch`.
"""

from __future__ import annotations

import argparse
import dataclasses
import re

from jaxsoft.experiment.config import Config
from jaxsoft.experiment.distributed import Launch

__all__ = [
    "add_launch_flags",
    "as_flags",
    "config_flags",
    "launch_from_args",
    "parse_float",
    "parse_int",
]

ALIASES: dict[str, tuple[str, ...]] = {"learning_rate": ("--lr", "--learning-rate")}
"""`Config` fields whose flags are not simply ``--field-name``."""

RUN_ARGUMENTS: dict[str, str] = {
    "workdir": "--out",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "coordinator_address": "--coordinator-address",
    "num_processes": "--num-processes",
    "process_id": "--process-id",
    "timeout_s": "--launch-timeout",
}
"""Arguments of `jaxsoft.experiment`'s calls -> the flags that set them."""


def parse_int(text: str) -> int:
    """argparse type: an integer, or a usage error that says what was given."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def parse_float(text: str) -> float:
    """argparse type: a number, or a usage error that says what was given."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def config_flags(name: str) -> tuple[str, ...]:
    """The flags of `Config` field ``name``, e.g. ("--lr", "--learning-rate")."""
    return ALIASES.get(name, ("--" + name.replace("_", "-"),))


def _flag(name: str) -> str | None:
    if name in RUN_ARGUMENTS:
        return RUN_ARGUMENTS[name]
    if name in {f.name for f in dataclasses.fields(Config)}:
        return config_flags(name)[0]
    return None


def _rewrite(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(3)
    flag = _flag(name)
    if flag is None:
        return match.group(0)
    if value is None or value == "True":
        return f"`{flag}`"
    return f"`{flag} {value.strip(chr(39))}`"


def as_flags(message: str) -> str:
    """``message`` with the library's arguments in backticks as flags:
    `` `overwrite=True` `` -> `` `--overwrite` ``, `` `epochs=5` `` ->
    `` `--epochs 5` ``, `` `workdir` `` -> `` `--out` ``. Other text is kept."""
    return re.sub(r"`([a-z_]+)(=([^`]*))?`", _rewrite, message)


def add_launch_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of a `Launch` (``--coordinator-address`` ...) to
    ``parser``: one definition for every command that runs in several
    processes (``jaxsoft train``, ``jaxsoft probe``); `launch_from_args`
    reads them."""
    processes = parser.add_argument_group(
        "several processes (one per host; see jaxsoft.experiment.distributed)"
    )
    processes.add_argument(
        RUN_ARGUMENTS["coordinator_address"],
        dest="coordinator_address",
        help="HOST:PORT of process 0 (all processes)",
    )
    processes.add_argument(
        RUN_ARGUMENTS["num_processes"],
        dest="num_processes",
        type=parse_int,
        help="how many processes take part",
    )
    processes.add_argument(
        RUN_ARGUMENTS["process_id"],
        dest="process_id",
        type=parse_int,
        help="this process's index, 0 .. N-1",
    )
    processes.add_argument(
        RUN_ARGUMENTS["timeout_s"],
        dest="timeout_s",
        type=parse_int,
        default=Launch.timeout_s,
        help=f"seconds to wait for the other processes (default: {Launch.timeout_s})",
    )


def launch_from_args(args: argparse.Namespace) -> Launch:
    """The `Launch` of the flags that `add_launch_flags` added."""
    return Launch(
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
        timeout_s=args.timeout_s,
    )
