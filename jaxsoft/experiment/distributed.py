"""Several processes (hosts) training one model, through `jax.distributed`.

Every process makes the same calls with its own `Launch` (the same
``coordinator_address`` and ``num_processes``, its own ``process_id``);
together their devices form one mesh, and the trainer's arrays span all of
them. Process 0 writes the run's files (``metrics.jsonl``, plots, summary);
every process takes part in computing and checkpointing. On a cluster that
JAX detects (SLURM, a Cloud TPU pod, ...) the three may be omitted. On CPUs
the collectives run over gloo. The command line's flags for a `Launch` are in
`jaxsoft.cli.flags`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time

import jax
import numpy as np

from jaxsoft import validation
from jaxsoft.errors import JaxsoftError

__all__ = [
    "Launch",
    "LaunchError",
    "barrier",
    "initialize",
    "is_writer",
    "process_count",
]

CLUSTER_VARIABLES = ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "OMPI_COMM_WORLD_SIZE")


class LaunchError(JaxsoftError):
    """The processes could not be started or joined together."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """How this process joins a multi-process run.

    Attributes:
      coordinator_address: ``HOST:PORT`` of process 0's coordinator, or None.
      num_processes: how many processes take part (>= 1), or None.
      process_id: this process's index in [0, num_processes), or None.
      timeout_s: seconds to wait for the other processes to join, and for a
        silent process before it is declared dead.
    """

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    timeout_s: int = 60

    def __post_init__(self) -> None:
        given = [
            v is not None
            for v in (self.coordinator_address, self.num_processes, self.process_id)
        ]
        if any(given) and not all(given):
            raise LaunchError(
                "give all three of `coordinator_address`, `num_processes` and "
                "`process_id` (or none, on a cluster that JAX detects)."
            )
        validation.positive_int("timeout_s", self.timeout_s)
        if not all(given):
            return
        host, _, port = str(self.coordinator_address).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise LaunchError(
                f"`coordinator_address` must be HOST:PORT, got "
                f"{self.coordinator_address!r}."
            )
        count = validation.positive_int("num_processes", self.num_processes)
        index = validation.non_negative_int("process_id", self.process_id)
        if index >= count:
            raise LaunchError(
                f"`process_id={index}` is out of range for "
                f"`num_processes={count}`: use 0 .. {count - 1}."
            )

    @property
    def requested(self) -> bool:
        """Whether the flags ask for several processes (or a detected cluster)."""
        if self.num_processes is not None:
            return self.num_processes > 1
        return any(name in os.environ for name in CLUSTER_VARIABLES)


def _check_coordinator(launch: Launch) -> None:
    """Fails in Python, with advice, where XLA would abort the process.

    Process 0 must be able to bind the coordinator's port; the others wait
    (up to the timeout) until it accepts connections.
    """
    host, _, port = str(launch.coordinator_address).rpartition(":")
    address = (host.strip("[]"), int(port))
    if launch.process_id == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", address[1]))
            except OSError as err:
                raise LaunchError(
                    f"process 0 cannot listen on port {address[1]} for "
                    f"`coordinator_address={launch.coordinator_address!r}`: {err}. "
                    "Choose a free port (the same for every process)."
                ) from None
        return
    deadline = time.monotonic() + launch.timeout_s
    while True:
        try:
            with socket.create_connection(address, timeout=1.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"process {launch.process_id}: no coordinator answered at "
                    f"{launch.coordinator_address} within {launch.timeout_s} s "
                    f"({err}). Start process 0 with the same "
                    "`coordinator_address` (its host and a free port), or raise "
                    "`timeout_s`."
                ) from None
            time.sleep(0.2)


def initialize(launch: Launch) -> None:
    """Joins this process to the others (`jax.distributed.initialize`).

    Does nothing for a single process. Must run before JAX computes anything.

    Raises:
      LaunchError: the coordinator did not answer within ``timeout_s``, its
        port is taken, or the processes disagree on their number.
    """
    if not launch.requested:
        return
    if launch.coordinator_address is not None:
        _check_coordinator(launch)
    try:
        jax.distributed.initialize(
            coordinator_address=launch.coordinator_address,
            num_processes=launch.num_processes,
            process_id=launch.process_id,
            initialization_timeout=launch.timeout_s,
            heartbeat_timeout_seconds=launch.timeout_s,
            shutdown_timeout_seconds=launch.timeout_s,
        )
    except Exception as err:  # XLA raises plain RuntimeError/XlaRuntimeError
        text = " ".join(str(err).split())[:300]
        raise LaunchError(
            f"process {launch.process_id} of {launch.num_processes} could not join "
            f"the coordinator at {launch.coordinator_address}: {text}. Check that "
            "every process was started with the same `coordinator_address` and "
            "`num_processes`."
        ) from None
    if launch.num_processes is not None:
        _check_agreement(launch.num_processes)


def _check_agreement(num_processes: int) -> None:
    """Every process must have been told the same number of processes."""
    from jax.experimental import multihost_utils

    told = np.asarray(multihost_utils.process_allgather(np.int32(num_processes)))
    if (told != jax.process_count()).any():
        raise LaunchError(
            "the processes were started with different `num_processes` "
            f"({', '.join(str(int(n)) for n in told)}, one per process); "
            f"{jax.process_count()} joined. Start each with the same value."
        )


def process_count() -> int:
    """How many processes share the run (1 without `jax.distributed`)."""
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process gets here (nothing to do for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
