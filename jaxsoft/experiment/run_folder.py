"""The folder of a training run: its lock, its history file and its summary.

A run folder holds ``config.json`` (the run's settings, written before its
first epoch, so a run stopped before its first checkpoint can be resumed),
``checkpoints/`` (orbax), ``metrics.jsonl`` (one JSON line per epoch: the
run's only history), ``curves.png``, ``weights.png``, ``confusion.png``,
``summary.json`` and ``.lock`` (and ``damaged-checkpoints/``, where a resume
set aside damaged checkpoints). One process at a time may
write into it: `RunFolder.lock` takes an exclusive OS lock (``flock``), which
the kernel releases when the process dies, so a lock left by a killed run is
taken over without any clean-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jaxsoft.errors import JaxsoftError
from jaxsoft.train.records import EpochRecord

__all__ = ["RunFolder", "RunFolderError", "RunLockedError"]

OUTPUTS = ("metrics.jsonl", "curves.png", "weights.png", "confusion.png")
SUMMARY = "summary.json"
CONFIG = "config.json"
DAMAGED = "damaged-checkpoints"
LOCK = ".lock"


class RunFolderError(JaxsoftError):
    """The run folder cannot be used as asked (a file, unwritable, ...)."""


class RunLockedError(RunFolderError):
    """Another process is writing into the run folder."""


def _try_lock(handle: Any) -> bool:
    """Takes an exclusive, non-blocking lock on an open file; False if held."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class RunFolder:
    """Paths and files of one run folder.

    Args:
      path: the folder (created by `lock` when missing).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        """The orbax checkpoint folder."""
        return self.path / "checkpoints"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: one `EpochRecord` per line."""
        return self.path / "metrics.jsonl"

    @property
    def config(self) -> Path:
        """``config.json``: the run's settings (a checkpoint's ``config``)."""
        return self.path / CONFIG

    @property
    def summary(self) -> Path:
        """``summary.json``."""
        return self.path / SUMMARY

    def check_usable(self) -> None:
        """Raises `RunFolderError` if the folder cannot be created or written."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a folder.")
        parent = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        if not parent.is_dir():
            raise RunFolderError(f"{path} cannot be created: {parent} is a file.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunFolderError(f"{path} cannot be written: {parent} is read-only.")

    def has_checkpoints(self) -> bool:
        """Whether ``checkpoints/`` exists (complete or not)."""
        return self.checkpoints.exists()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the run folder's exclusive lock (creating the folder).

        Raises:
          RunLockedError: another live process holds it; names its pid.
        """
        self.check_usable()
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK
        with lock_path.open("a+") as handle:
            if not _try_lock(handle):
                handle.seek(0)
                pid = handle.read().strip() or "unknown"
                raise RunLockedError(
                    f"{self.path} is in use by another jaxsoft train (pid {pid}); "
                    "wait for it to finish, or choose another output folder."
                )
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                if created and {p.name for p in self.path.iterdir()} == {LOCK}:
                    # Nothing was written: leave no empty folder behind.
                    lock_path.unlink()
                    self.path.rmdir()

    def clear(self) -> None:
        """Deletes a previous run's checkpoints and outputs (for ``overwrite=True``)."""
        for folder in (self.checkpoints, self.path / DAMAGED):
            if folder.exists():
                shutil.rmtree(folder)
        for name in (*OUTPUTS, SUMMARY, CONFIG):
            (self.path / name).unlink(missing_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        """Writes ``config.json`` (atomically)."""
        temporary = self.config.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(config, indent=2) + "\n")
        temporary.replace(self.config)

    def read_config(self) -> dict[str, Any] | None:
        """The settings in ``config.json``, or None if it is absent or torn."""
        try:
            config = json.loads(self.config.read_text())
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None

    def set_aside(self, checkpoint: Path) -> Path:
        """Moves a damaged checkpoint folder into ``damaged-checkpoints/``
        (out of the way of the run, kept for inspection); its new path."""
        target = self.path / DAMAGED / checkpoint.name
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(exist_ok=True)
        checkpoint.replace(target)
        return target

    def read_history(self, epochs: int) -> list[EpochRecord]:
        """The records of epochs 1..``epochs`` from ``metrics.jsonl``.

        Lines after epoch ``epochs`` (epochs run after the last checkpoint)
        and a last line cut short by a killed process are ignored.
        """
        if not self.metrics.exists():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                record = EpochRecord.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                break  # a torn last line
            if record.epoch > epochs:
                break
            records.append(record)
        return records

    def write_history(self, records: Sequence[EpochRecord]) -> None:
        """Replaces ``metrics.jsonl`` with ``records`` (atomically)."""
        temporary = self.metrics.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(_line(r) for r in records))
        temporary.replace(self.metrics)

    def append_record(self, record: EpochRecord) -> None:
        """Appends one epoch's line to ``metrics.jsonl``."""
        with self.metrics.open("a") as f:
            f.write(_line(record))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Writes ``summary.json`` (atomically)."""
        temporary = self.summary.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
        temporary.replace(self.summary)


def _line(record: EpochRecord) -> str:
    return json.dumps(record.to_dict()) + "\n"
