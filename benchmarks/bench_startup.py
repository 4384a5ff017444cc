"""`jaxsoft train` on prepared digits, end to end, against a bare JAX process.

Times whole processes (start to exit, plots written), the median of
``--repeats`` each:

- bare: ``python -c "import jax; one op"``, the floor of any JAX program;
- cold: ``python -m jaxsoft train`` with an empty compilation cache;
- warm: the same with the cache a first run filled (the common case: every
  run after the first on a machine).

The last line is the issue's ratio: warm / bare (goal <= 3x).

    python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = "import jax, jax.numpy as jnp; (jnp.zeros(3) + 1).block_until_ready()"


def _seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    # Cold means cold: not JAX's own cache, if the environment names one.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    with tempfile.TemporaryDirectory(prefix="jaxsoft-startup-") as folder:
        root = Path(folder)
        train = [sys.executable, "-m", "jaxsoft", "train", "--overwrite"]
        train += ["--data-dir", str(root / "tfds"), "--out", str(root / "run")]
        # Prepare digits first (untimed): the figure is for a prepared dataset.
        prepare = "import sys, jaxsoft.data; jaxsoft.data.load(data_dir=sys.argv[1])"
        _seconds([sys.executable, "-c", prepare, str(root / "tfds")], env)
        bare = [
            _seconds([sys.executable, "-c", BARE], env) for _ in range(args.repeats)
        ]
        cold = []
        for i in range(args.repeats):
            cache = {**env, "JAXSOFT_CACHE_DIR": str(root / f"cold-{i}")}
            cold.append(_seconds(train, cache))
        # The last cold run filled its cache: the warm runs load from it.
        warm = [_seconds(train, cache) for _ in range(args.repeats)]
    bare_s, cold_s, warm_s = map(statistics.median, (bare, cold, warm))
    print(f"median of {args.repeats} processes each, on {os.cpu_count()} CPU cores")
    for name, seconds in (
        ("bare import jax + one op", bare_s),
        ("jaxsoft train, cold compile cache", cold_s),
        ("jaxsoft train, warm compile cache", warm_s),
    ):
        print(f"{name:36} {seconds:6.2f} s")
    print(
        f"jaxsoft train / bare: cold {cold_s / bare_s:.1f}x, "
        f"warm {warm_s / bare_s:.1f}x (goal <= 3x)"
    )


if __name__ == "__main__":
    main()
