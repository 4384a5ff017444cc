"""Scaling of `jaxsoft.train.fit` over devices and processes.

Prints seconds per epoch of `fit` and of one full-batch value-and-gradient of
`jaxsoft.loss` on MNIST-shaped synthetic data (60,000 x 784, 10 classes) for
1, 2, 4 and 8 devices, and for 1 process against 2 processes on localhost
(`jax.distributed`, one device each). Each configuration runs in its own
process. On a CPU the devices are simulated
(``--xla_force_host_platform_device_count``): they share the machine's
cores, so the figures show the cost of the sharded program (collectives,
padding, layout), not a speed-up; on a multi-GPU or TPU host the same script
shows the real scaling.

Run:  python benchmarks/bench_scaling.py [--rows 60000] [--epochs 3] [--devices 1,2,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> None:
    """Measures one configuration; prints one JSON line."""
    import statistics

    import jax
    import numpy as np

    import jaxsoft as js
    from jaxsoft import sharding, train
    from jaxsoft.experiment import distributed

    if args.num_processes > 1:
        distributed.initialize(
            distributed.Launch(
                f"127.0.0.1:{args.port}", args.num_processes, args.process_id, 60
            )
        )
    rng = np.random.default_rng(0)
    x = rng.random((args.rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.rows).astype(np.int32)
    params = js.init_params(jax.random.key(0), 784, 10)
    result = train.fit(
        params,
        x,
        y,
        key=jax.random.key(1),
        batch_size=args.batch_size,
        epochs=args.epochs + 1,
        schedule="constant",
        learning_rate=1e-3,
    )
    epoch = statistics.median(r.seconds for r in result.history[1:])
    mesh = sharding.resolve_mesh()
    split = sharding.place_split(x, y, mesh)
    replicated = sharding.replicate(params, mesh)
    value_and_grad = jax.jit(jax.value_and_grad(js.loss))
    jax.block_until_ready(value_and_grad(replicated, split.x, split.y))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(value_and_grad(replicated, split.x, split.y))
        times.append(time.perf_counter() - start)
    if jax.process_index() == 0:
        print(
            json.dumps(
                {
                    "devices": jax.device_count(),
                    "processes": jax.process_count(),
                    "epoch": epoch,
                    "gradient": statistics.median(times),
                }
            ),
            flush=True,
        )


def _run(extra: list[str], devices: int, processes: int = 1) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    command = [sys.executable, __file__, "--child", *extra]
    if processes == 1:
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        outputs = [out]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        launched = [
            subprocess.Popen(
                [
                    *command,
                    "--num-processes",
                    str(processes),
                    "--port",
                    port,
                    *("--process-id", str(i)),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
        outputs = []
        for p in launched:
            stdout, stderr = p.communicate(timeout=600)
            outputs.append(
                subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
            )
    for out in outputs:
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
    lines = [line for line in outputs[0].stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--devices",
        default="1,2,4,8",
        help="device counts of one process, comma-separated (1 comes first; "
        "the two-process run follows them)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    try:
        counts = sorted({int(n) for n in args.devices.split(",")} | {1})
    except ValueError:
        parser.error(f"--devices takes counts such as 1,2,4,8, not {args.devices!r}")
    if counts[0] < 1:
        parser.error(f"--devices counts must be at least 1, not {args.devices!r}")
    extra = ["--rows", str(args.rows), "--epochs", str(args.epochs)]
    extra += ["--batch-size", str(args.batch_size)]
    print(
        f"fit, batch {args.batch_size}, {args.rows} x 784 float32, 10 classes; "
        f"{os.cpu_count()} CPU cores"
    )
    header = (
        f"{'devices':>8} {'processes':>10} {'s/epoch':>9} {'vs 1':>6} "
        f"{'full-batch grad s':>18} {'vs 1':>6}"
    )
    print(header)
    print("-" * len(header))
    base = None
    for devices, processes in [*((n, 1) for n in counts), (1, 2)]:
        row = _run(extra, devices, processes)
        base = base or row
        print(
            f"{row['devices']:>8} {row['processes']:>10} {row['epoch']:>9.4f} "
            f"{row['epoch'] / base['epoch']:>6.2f} {row['gradient']:>18.4f} "
            f"{row['gradient'] / base['gradient']:>6.2f}",
            flush=True,
        )
    print(
        "\nOn a CPU the devices (and the 2 processes) share the same cores: a "
        "ratio above 1 is the\ncost of the sharded program, not a slowdown a "
        "real multi-device machine would see."
    )


if __name__ == "__main__":
    main()
