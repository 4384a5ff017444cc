"""Checkpoints of a training run, written and read by orbax-checkpoint.

``directory/<epoch>/`` holds the orbax items ``params``, ``opt_state``, ``key``
and ``meta`` (JSON: format, epoch, run config, shape, dtype and SHA-256 of
every array, sealed by a SHA-256). Orbax writes to a temporary folder renamed
when complete: a killed save leaves the previous checkpoint intact. The
history of a run lives in its ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from jaxsoft import model, sharding
from jaxsoft.data._digest import array_record
from jaxsoft.errors import JaxsoftError
from jaxsoft.experiment import signals
from jaxsoft.train.records import TrainState

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Checkpointer",
    "CorruptCheckpointError",
    "complete_epochs",
    "find_checkpoint_dir",
    "load_params",
]

FORMAT_VERSION = 2
_T = TypeVar("_T")
# Checkpointers with a save that may be pending, kept alive until closed (a
# dropped one must still finish its write when Python exits).
_UNFINISHED: set[Checkpointer] = set()


class CheckpointError(JaxsoftError):
    """A checkpoint is missing, unreadable, or incompatible with this run."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files are damaged (checksum mismatch, unreadable array);
    ``path`` is the checkpoint's folder."""

    path: Path


def _corrupt(where: Path, what: str) -> CorruptCheckpointError:
    err = CorruptCheckpointError(
        f"the checkpoint {where} is corrupt: {what}. Delete that folder to fall "
        "back to an earlier checkpoint, or train afresh."
    )
    err.path = where  # type: ignore[attr-defined]
    return err


def _ocp() -> Any:
    """orbax.checkpoint, imported on first use (it is slow to import)."""
    import orbax.checkpoint as ocp

    if not getattr(_ocp, "ready", False):
        _ocp.ready = True  # type: ignore[attr-defined]
        # Orbax warns on every save of a PRNG key (not stored in OCDBT).
        logging.getLogger("absl").addFilter(
            lambda record: "Skipping merge of OCDBT" not in str(record.msg)
        )
        # At exit, finish pending saves before concurrent.futures refuses new
        # work ("cannot schedule new futures after interpreter shutdown").
        signals.finish_at_thread_shutdown(
            lambda: [c.close() for c in list(_UNFINISHED)]
        )
    return ocp


def _named_leaves(tree: Any) -> dict[str, Any]:
    """Every leaf by its path: ``{"opt_state/0/mu/W": leaf, ...}``."""
    pairs = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): a for p, a in pairs}


def _spec(shape: Any, dtype: Any) -> str:
    return f"{tuple(shape)} {np.dtype(dtype).name}"


def _seal(meta: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


@contextlib.contextmanager
def _orbax_errors(action: str) -> Iterator[None]:
    """Raises a one-line `CheckpointError` for an error of orbax (without
    TensorStore's specs)."""
    try:
        yield
    except Exception as err:
        text = " ".join(str(err).split())
        for internals in (" [tensorstore_spec", " See full TensorStore"):
            text = text.split(internals)[0]
        message = f"{action} failed ({type(err).__name__}: {text[:200]})."
        raise CheckpointError(message) from err


def _key_data(key: Any) -> jax.Array:
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return jax.random.key_data(key) if typed else jax.numpy.asarray(key)


def _abstract(tree: Any) -> Any:
    """Shapes and dtypes of ``tree``'s leaves, on their shardings or device 0."""
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=_sharding(a)),
        tree,
    )


def _sharding(array: Any) -> jax.sharding.Sharding:
    found = getattr(array, "sharding", None)
    return found or jax.sharding.SingleDeviceSharding(jax.devices()[0])


class Checkpointer:
    """Saves and restores the `TrainState` of a run, one checkpoint per epoch,
    in ``directory`` (created on first save), keeping the ``max_to_keep``
    latest. With ``async_save``, `save` returns once the arrays are copied and
    orbax writes them in the background; `wait_until_finished` and `close`
    (or leaving the ``with`` block) wait for the write."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_to_keep: int = 3,
        async_save: bool = True,
    ):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} is a file, not a directory.")
        ocp = _ocp()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._closed = False

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Waits for a pending save, then releases orbax's threads. Raises
        `CheckpointError` if that save failed, unless an exception (e.g.
        KeyboardInterrupt) propagates or Python exits: it hides no error."""
        if self._closed:
            return
        self._closed = True
        exiting = sys.is_finalizing() or not threading.main_thread().is_alive()
        quiet = exiting or sys.exc_info()[0] is not None
        try:
            self.wait_until_finished()
        except CheckpointError:
            if not quiet:
                raise
        finally:
            _UNFINISHED.discard(self)
            with contextlib.suppress(Exception):
                self._manager.close()

    def wait_until_finished(self) -> None:
        """Blocks until the pending save, if any, is written."""
        with _orbax_errors(f"writing a checkpoint into {self.directory}"):
            self._manager.wait_until_finished()

    def epochs(self) -> list[int]:
        """The epochs of the complete checkpoints, ascending."""
        return complete_epochs(self.directory)

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or None."""
        return max(self.epochs(), default=None)

    def save(self, state: TrainState, config: dict[str, Any]) -> None:
        """Saves ``state`` (as epoch ``state.epoch``) and the run's JSON
        ``config``, atomically. With ``async_save`` it returns once the arrays
        are copied; a failed write raises from the next call. Raises
        ValueError for non-finite params, TypeError for a non-JSON config."""
        ocp = _ocp()
        arrays = {"params": state.params, "opt_state": state.opt_state}
        named = _named_leaves({**arrays, "key": _key_data(state.key)})
        hosts = {name: sharding.to_host(array) for name, array in named.items()}
        if not all(
            np.isfinite(a).all() for n, a in hosts.items() if n[:7] == "params/"
        ):
            raise ValueError("refusing to checkpoint parameters with NaN or inf.")
        meta = {
            "format": FORMAT_VERSION,
            "epoch": int(state.epoch),
            "config": config,
            "arrays": {name: array_record(host) for name, host in hosts.items()},
        }
        meta = json.loads(json.dumps(meta))  # as JSON will give it back
        items = {
            "params": ocp.args.StandardSave(state.params),
            "opt_state": ocp.args.StandardSave(state.opt_state),
            "key": ocp.args.JaxRandomKeySave(jax.numpy.asarray(state.key)),
            "meta": ocp.args.JsonSave({**meta, "sha256": _seal(meta)}),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        _UNFINISHED.add(self)
        with _orbax_errors(f"saving epoch {state.epoch} into {self.directory}"):
            args = ocp.args.Composite(**items)
            self._manager.save(int(state.epoch), args=args, force=True)

    def _resolve(self, epoch: int | None) -> int:
        epochs = self.epochs()
        if not epochs:
            raise CheckpointError(f"no checkpoint found in {self.directory}.")
        if epoch is not None and epoch not in epochs:
            raise CheckpointError(
                f"there is no checkpoint of epoch {epoch} in {self.directory} "
                f"(it holds epochs {', '.join(map(str, epochs))})."
            )
        return epochs[-1] if epoch is None else epoch

    def _read(self, epoch: int, **items: Any) -> Any:
        """Orbax's restore of ``items``; any failure means damaged files."""
        ocp = _ocp()
        try:
            with signals.draining_event_loops():
                return self._manager.restore(epoch, args=ocp.args.Composite(**items))
        except Exception as err:
            what = f"its {', '.join(items)} cannot be read ({type(err).__name__})"
            raise _corrupt(self.directory / str(epoch), what) from None

    def restore_meta(self, epoch: int | None = None) -> dict[str, Any]:
        """The metadata of a checkpoint (the latest when ``epoch`` is None):
        ``format``, ``epoch``, ``config`` (the run's), ``arrays`` (shape,
        dtype and SHA-256 of each) and ``sha256`` (of the rest)."""
        epoch = self._resolve(epoch)
        where = self.directory / str(epoch)
        meta = self._read(epoch, meta=_ocp().args.JsonRestore())["meta"]
        if not isinstance(meta, dict):
            raise _corrupt(where, "its metadata is not a JSON object")
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(
                f"the checkpoint {where} has format {meta.get('format')!r}, but "
                f"this jaxsoft reads format {FORMAT_VERSION}: train afresh."
            )
        if meta.get("sha256") != _seal(meta):
            raise _corrupt(where, "its metadata does not match its checksum")
        return meta

    def restore_params(
        self, epoch: int | None = None
    ) -> tuple[model.Params, dict[str, Any]]:
        """The `Params` and the metadata of a checkpoint (latest when None)."""
        epoch = self._resolve(epoch)
        meta = self.restore_meta(epoch)
        saved = [meta["arrays"][f"params/{name}"] for name in model.Params._fields]
        abstract = model.Params(
            *(jax.ShapeDtypeStruct(r["shape"], r["dtype"]) for r in saved)
        )
        restore = _ocp().args.StandardRestore(_abstract(abstract))
        params = self._read(epoch, params=restore)["params"]
        _verify(self.directory / str(epoch), meta["arrays"], {"params": params})
        return params, meta

    def restore(
        self, template: TrainState, epoch: int | None = None
    ) -> tuple[TrainState, dict[str, Any]]:
        """``(state, meta)`` of a checkpoint (the latest when ``epoch`` is
        None), bit for bit. ``template`` (e.g. the run's initial state, or its
        `jax.ShapeDtypeStruct`s; its key may be None) gives the shapes, dtypes,
        tree structure and shardings. Raises `CheckpointError` for a checkpoint
        of another dataset, model or optimizer, `CorruptCheckpointError` for
        damaged files."""
        epoch = self._resolve(epoch)
        meta = self.restore_meta(epoch)
        where = self.directory / str(epoch)
        _check_compatible(where, meta["arrays"], template)
        ocp = _ocp()
        key_args = ocp.ArrayRestoreArgs(sharding=_sharding(template.key))
        restored = self._read(
            epoch,
            params=ocp.args.StandardRestore(_abstract(template.params)),
            opt_state=ocp.args.StandardRestore(_abstract(template.opt_state)),
            key=ocp.args.JaxRandomKeyRestore(key_args),
        )
        params, opt_state, key = (restored[k] for k in ("params", "opt_state", "key"))
        arrays = {"params": params, "opt_state": opt_state, "key": _key_data(key)}
        _verify(where, meta["arrays"], arrays)
        return TrainState(params, opt_state, meta["epoch"], key), meta

    def newest_intact(
        self, read: Callable[[int], _T]
    ) -> tuple[_T, list[CorruptCheckpointError]]:
        """``read(epoch)`` of the newest checkpoint it reads without a
        `CorruptCheckpointError`, and the errors of the newer, damaged ones
        (newest first), e.g. ``ckpt.newest_intact(ckpt.restore_meta)``.
        Raises the newest one's error when none is intact, `CheckpointError`
        when there is none."""
        damaged: list[CorruptCheckpointError] = []
        for epoch in reversed(self.epochs()):
            try:
                return read(epoch), damaged
            except CorruptCheckpointError as err:
                damaged.append(err)
        if damaged:
            raise damaged[0]
        raise CheckpointError(f"no checkpoint found in {self.directory}.")


def _check_compatible(where: Path, saved: dict[str, Any], template: TrainState) -> None:
    """One-line errors for a checkpoint of another dataset, model or optimizer."""
    for part, other in (("params", "dataset or model"), ("opt_state", "optimizer")):
        named = _named_leaves(getattr(template, part))
        want = {n: _spec(np.shape(a), a.dtype) for n, a in named.items()}
        have = {
            name.split("/", 1)[1]: _spec(r["shape"], r["dtype"])
            for name, r in saved.items()
            if name.startswith(part + "/")
        }
        if have != want:
            shown = [", ".join(f"{n} {s}" for n, s in d.items()) for d in (have, want)]
            raise CheckpointError(
                f"the checkpoint {where} is incompatible with this run: its {part} "
                f"is [{shown[0]}], but this run's is [{shown[1]}] (another {other})."
            )


def _verify(where: Path, saved: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Every restored array against its saved checksum; finite parameters."""
    for name, array in _named_leaves(arrays).items():
        host = sharding.to_host(array)
        if name not in saved or saved[name]["sha256"] != array_record(host)["sha256"]:
            raise _corrupt(where, f"its array {name} does not match its checksum")
        if name.startswith("params/") and not np.isfinite(host).all():
            raise _corrupt(where, f"its {name} holds NaN or inf")


def complete_epochs(directory: str | os.PathLike[str]) -> list[int]:
    """The epochs of the complete checkpoints in ``directory``, ascending: the
    folders named by an epoch alone (orbax writes a save into a temporary
    folder and renames it when done). Reads folder names only, so it needs
    neither orbax nor a `Checkpointer`."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(
        int(c.name) for c in folder.iterdir() if c.name.isdigit() and c.is_dir()
    )


def find_checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of ``path``: a run's folder (``workdir``) or its
    checkpoints/ folder; `CheckpointError` if neither holds a checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist.")
    for candidate in (path / "checkpoints", path):
        if complete_epochs(candidate):
            return candidate
    raise CheckpointError(
        f"no checkpoint found in {path} (expected a training run's folder, "
        "or its checkpoints/ folder)."
    )


def load_params(path: str | os.PathLike[str]) -> tuple[model.Params, dict[str, Any]]:
    """The `Params` and metadata of the latest checkpoint under ``path`` (a
    run's folder or its checkpoints/ folder); ``meta["config"]`` is the
    run's configuration, ``meta["epoch"]`` the checkpoint's epoch."""
    with Checkpointer(find_checkpoint_dir(path), async_save=False) as checkpointer:
        return checkpointer.restore_params()
