"""Times `jaxsoft.data.load`: the first call (prepare + decode), a later call
that decodes the prepared files (no decoded copy), and later calls that read
the decoded copy (the common case).

    .venv/bin/python benchmarks/data_load.py [--mnist-dir ../shared/data/mnist]

Each dataset is prepared into a fresh temporary data dir, so the first call
includes TFDS's preparation (for mnist from the original files, offline).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from jaxsoft import data
from jaxsoft.data import _decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[1].parent / "shared/data/mnist"
    parser.add_argument("--mnist-dir", type=Path, default=default)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cases = [("digits", None)]
    if args.mnist_dir.is_dir():
        cases.append(("mnist", args.mnist_dir))
    rows = []
    for name, manual_dir in cases:
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            ds = data.load(name, data_dir=root, manual_dir=manual_dir)
            first = time.perf_counter() - start
            (copy,) = Path(root).glob(f"{name}/*/{_decoded.FOLDER}")
            shutil.rmtree(copy)
            start = time.perf_counter()
            data.load(name, data_dir=root, download=False)
            decode = time.perf_counter() - start
            loads = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                data.load(name, data_dir=root, download=False)
                loads.append(time.perf_counter() - start)
        n = len(ds.y_train) + len(ds.y_test)
        rows.append((name, n, first, decode, min(loads), max(loads)))
    print(
        f"{'dataset':8} {'examples':>8} {'prepare+load s':>15} "
        f"{'decode s':>9} {'load s (min-max)':>17}"
    )
    for name, n, first, decode, lo, hi in rows:
        print(f"{name:8} {n:8,d} {first:15.1f} {decode:9.2f} {lo:8.2f}-{hi:<8.2f}")


if __name__ == "__main__":
    main()
