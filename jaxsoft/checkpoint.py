"""Checkpoints of a training run with orbax-checkpoint.

One checkpoint per epoch, in ``directory/<epoch>/``, written atomically by
`orbax.checkpoint.CheckpointManager` (into a temporary folder that is renamed
when complete, so a process killed mid-save leaves the previous checkpoint
intact). Each holds three items:

- ``params``: {"W": (d, q), "b": (q,)} (a plain dict: orbax stores dicts).
- ``opt_state``: the optimizer state's leaves, {"000": ..., "001": ...}; the
  tree structure comes back from ``optimizer.init(params)`` on restore.
- ``meta``: JSON: format version, epoch, PRNG key data, the run's
  configuration, the history so far, and the shapes and dtypes of every
  stored array (checked before any array is read, so an incompatible
  checkpoint gives a clear `CheckpointError`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsoft import model
from jaxsoft.train import EpochRecord, TrainState

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Checkpointer",
    "Restored",
    "load_params",
]

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt, or incompatible with this run."""


class Restored(NamedTuple):
    """A restored checkpoint.

    Attributes:
      state: the `TrainState` (params, optimizer state, epoch, key).
      config: the run's configuration as saved.
      history: the `EpochRecord`s up to this checkpoint.
    """

    state: TrainState
    config: dict[str, Any]
    history: list[EpochRecord]


def _spec(array: Any) -> list[Any]:
    return [list(np.shape(array)), str(np.asarray(array).dtype)]


def _key_to_json(key: jax.Array) -> dict[str, Any]:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        data = np.asarray(jax.random.key_data(key))
        return {"typed": True, "impl": impl, "data": data.tolist()}
    return {"typed": False, "data": np.asarray(key).tolist()}


def _key_from_json(record: dict[str, Any]) -> jax.Array:
    data = np.asarray(record["data"], dtype=np.uint32)
    if record["typed"]:
        return jax.random.wrap_key_data(data, impl=record["impl"])
    return jnp.asarray(data)


def _ocp() -> Any:
    import orbax.checkpoint as ocp  # slow to import: only when needed

    return ocp


class Checkpointer:
    """Saves and restores the `TrainState` of a run, one checkpoint per epoch.

    Args:
      directory: the folder of the checkpoints (created on first save).
      max_to_keep: how many of the latest checkpoints to keep.

    Example:
      >>> ckpt = Checkpointer("/tmp/run/checkpoints")  # doctest: +SKIP
      >>> ckpt.save(state, config, history)  # doctest: +SKIP
      >>> restored = ckpt.restore(template_state)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} is a file, not a directory.")
        ocp = _ocp()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            create=False,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or None."""
        self._manager.reload()
        return self._manager.latest_step()

    def save(
        self,
        state: TrainState,
        config: dict[str, Any],
        history: list[EpochRecord],
    ) -> None:
        """Writes the checkpoint of ``state.epoch`` (atomically).

        Args:
          state: the `TrainState` after the epoch.
          config: the run's configuration (JSON-serialisable).
          history: the records of epochs 1..state.epoch.
        """
        ocp = _ocp()
        params = {"W": state.params.W, "b": state.params.b}
        opt_leaves = {
            f"{i:03d}": leaf for i, leaf in enumerate(jax.tree.leaves(state.opt_state))
        }
        meta = {
            "format": FORMAT_VERSION,
            "epoch": int(state.epoch),
            "key": _key_to_json(state.key),
            "config": config,
            "history": [record.to_dict() for record in history],
            "params_spec": {name: _spec(a) for name, a in params.items()},
            "opt_state_spec": [_spec(a) for a in opt_leaves.values()],
        }
        json.dumps(meta)  # fail here, not half-way through a save
        self.directory.mkdir(parents=True, exist_ok=True)
        items = {
            "params": ocp.args.StandardSave(params),
            "meta": ocp.args.JsonSave(meta),
        }
        if opt_leaves:  # plain SGD has no state, and orbax refuses empty items
            items["opt_state"] = ocp.args.StandardSave(opt_leaves)
        self._manager.save(
            int(state.epoch), args=ocp.args.Composite(**items), force=True
        )
        self._manager.wait_until_finished()

    def _epoch_or_latest(self, epoch: int | None) -> int:
        if epoch is not None:
            return epoch
        latest = self.latest_epoch()
        if latest is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}.")
        return latest

    def restore_meta(self, epoch: int | None = None) -> dict[str, Any]:
        """The JSON metadata (config, history, specs) of a checkpoint.

        Args:
          epoch: which checkpoint; the latest when None.
        """
        epoch = self._epoch_or_latest(epoch)
        ocp = _ocp()
        try:
            restored = self._manager.restore(
                epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
            meta = restored.meta
        except Exception as err:
            raise CheckpointError(
                f"the checkpoint {self.directory / str(epoch)} cannot be read "
                f"(corrupt or not a jaxsoft checkpoint): {_short(err)}"
            ) from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise CheckpointError(
                f"the checkpoint {self.directory / str(epoch)} has format "
                f"{found!r}, but this jaxsoft reads format {FORMAT_VERSION}."
            )
        return meta

    def _restore_arrays(self, epoch: int, item: str, specs: dict[str, Any]) -> Any:
        ocp = _ocp()
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = {
            name: jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=sharding)
            for name, (shape, dtype) in specs.items()
        }
        try:
            restored = self._manager.restore(
                epoch,
                args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)}),
            )
            arrays = restored[item]
            for name, array in arrays.items():
                if array.shape != abstract[name].shape:
                    raise ValueError(f"{name} has shape {array.shape}")
        except Exception as err:
            raise CheckpointError(
                f"the checkpoint {self.directory / str(epoch)} is corrupt: its "
                f"{item} cannot be read ({_short(err)}). Delete it to fall back "
                "to an earlier one, or train from scratch."
            ) from err
        return arrays

    def restore_params(
        self, epoch: int | None = None
    ) -> tuple[model.Params, dict[str, Any]]:
        """The `Params` and the metadata of a checkpoint (latest when None)."""
        epoch = self._epoch_or_latest(epoch)
        meta = self.restore_meta(epoch)
        arrays = self._restore_arrays(epoch, "params", meta["params_spec"])
        return model.Params(W=arrays["W"], b=arrays["b"]), meta

    def restore(self, template: TrainState, epoch: int | None = None) -> Restored:
        """Restores the full `TrainState` of a checkpoint.

        Args:
          template: a state of the run to continue (e.g. the initial one):
            its params and optimizer state give the expected shapes, dtypes
            and the optimizer state's tree structure.
          epoch: which checkpoint; the latest when None.

        Returns:
          A `Restored` (state, config, history).

        Raises:
          CheckpointError: no checkpoint, an unreadable one, or one whose
            arrays do not match the template (another dataset, model or
            optimizer).
        """
        epoch = self._epoch_or_latest(epoch)
        meta = self.restore_meta(epoch)
        where = self.directory / str(epoch)
        expected_params = {
            "W": _spec(template.params.W),
            "b": _spec(template.params.b),
        }
        if meta["params_spec"] != expected_params:
            raise CheckpointError(
                f"the checkpoint {where} is incompatible with this run: it holds "
                f"W {_describe(meta['params_spec']['W'])} and b "
                f"{_describe(meta['params_spec']['b'])}, but this run needs W "
                f"{_describe(expected_params['W'])} and b "
                f"{_describe(expected_params['b'])} (another dataset or model)."
            )
        template_leaves, treedef = jax.tree.flatten(template.opt_state)
        expected_opt = [_spec(a) for a in template_leaves]
        if meta["opt_state_spec"] != expected_opt:
            raise CheckpointError(
                f"the checkpoint {where} is incompatible with this run: its "
                f"optimizer state has {len(meta['opt_state_spec'])} arrays "
                f"{[tuple(s) for s, _ in meta['opt_state_spec']]}, but this run's "
                f"optimizer has {len(expected_opt)} "
                f"{[tuple(s) for s, _ in expected_opt]} (another optimizer)."
            )
        params = self._restore_arrays(epoch, "params", meta["params_spec"])
        opt_specs = {f"{i:03d}": spec for i, spec in enumerate(meta["opt_state_spec"])}
        opt_arrays = (
            self._restore_arrays(epoch, "opt_state", opt_specs) if opt_specs else {}
        )
        opt_state = jax.tree.unflatten(treedef, [opt_arrays[k] for k in opt_specs])
        try:
            key = _key_from_json(meta["key"])
            history = [EpochRecord.from_dict(r) for r in meta["history"]]
        except Exception as err:
            raise CheckpointError(
                f"the checkpoint {where} has corrupt metadata: {_short(err)}"
            ) from err
        state = TrainState(
            params=model.Params(W=params["W"], b=params["b"]),
            opt_state=opt_state,
            epoch=int(meta["epoch"]),
            key=key,
        )
        return Restored(state, meta["config"], history)


def _describe(spec: list[Any]) -> str:
    shape, dtype = spec
    return f"{tuple(shape)} {dtype}"


def _short(err: BaseException, limit: int = 300) -> str:
    """A one-line, bounded description of a library's exception."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def find_checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder for ``path``: a run's --out folder or the folder
    of checkpoints itself.

    Raises:
      CheckpointError: neither holds a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist.")
    for candidate in (path / "checkpoints", path):
        if candidate.is_dir() and any(
            child.is_dir() and child.name.isdigit() for child in candidate.iterdir()
        ):
            return candidate
    raise CheckpointError(
        f"no checkpoint found in {path} (expected a training run's --out folder, "
        "or its checkpoints/ folder)."
    )


def load_params(
    path: str | os.PathLike[str],
) -> tuple[model.Params, dict[str, Any]]:
    """The parameters and the metadata of the latest checkpoint under ``path``.

    Args:
      path: a training run's output folder or its ``checkpoints/`` folder.

    Returns:
      ``(params, meta)``; ``meta["config"]`` is the run's configuration and
      ``meta["epoch"]`` the checkpoint's epoch.
    """
    with Checkpointer(find_checkpoint_dir(path)) as checkpointer:
        return checkpointer.restore_params()
