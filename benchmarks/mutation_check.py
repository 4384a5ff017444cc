"""Mutation check: does the test suite catch deliberate one-line faults?

Each fault is a one-line edit applied to a temporary COPY of ``jaxsoft/`` (the
real sources are never touched). The copy, with ``tests/`` and
``pyproject.toml``, is put first on ``PYTHONPATH`` and only the test files
relevant to the fault run (``pytest -x -q``). A fault is caught when those
tests fail. Prints a table fault -> caught / NOT CAUGHT; exits 1 if any fault
survives (or the unmutated copy fails its tests).

Usage: python benchmarks/mutation_check.py [fault-name ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    """One deliberate fault: replace ``old`` by ``new`` once in ``path``."""

    name: str
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files and -k selections


FAULTS = (
    Fault(
        "softmax temperature (logits / 2) in predict_proba",
        "jaxsoft/model.py",
        "return losses.softmax(logits(params, x))",
        "return losses.softmax(logits(params, x) / 2)",
        ("tests/test_model.py", "tests/test_train.py", "-k", "proba or top_k"),
    ),
    Fault(
        "bias dropped from the logits",
        "jaxsoft/model.py",
        "return x @ params.W + params.b",
        "return x @ params.W",
        ("tests/test_model.py", "-k", "logits or proba"),
    ),
    Fault(
        "top-4 counted as top-5 (top_k_accuracy uses k - 1)",
        "jaxsoft/metrics.py",
        "< k).astype(jnp.float32)",
        "< k - 1).astype(jnp.float32)",
        ("tests/test_metrics.py",),
    ),
    Fault(
        "train accuracy scaled by 0.98 in EpochRecord",
        "jaxsoft/train/minibatch.py",
        "train_accuracy=float(acc),",
        "train_accuracy=0.98 * float(acc),",
        ("tests/test_train.py", "-k", "fixed"),
    ),
    Fault(
        "off-by-one epoch count",
        "jaxsoft/train/minibatch.py",
        "epoch = state.epoch + 1\n",
        "epoch = state.epoch + 2\n",
        ("tests/test_train.py", "-k", "learns_and_records or fixed"),
    ),
    Fault(
        "ECE confidence bin off by one",
        "jaxsoft/metrics.py",
        "(confidence * num_bins).astype(jnp.int32), 0,",
        "(confidence * num_bins).astype(jnp.int32) + 1, 0,",
        ("tests/test_metrics.py", "-k", "spread_confidences"),
    ),
    Fault(
        "initial weights' std times sqrt(2)",
        "jaxsoft/model.py",
        "W=scale * standard.W)",
        "W=scale * 2**0.5 * standard.W)",
        ("tests/test_model.py", "-k", "init_params"),
    ),
    Fault(
        "top-k probabilities from unnormalised exp (jaxsoft predict)",
        "jaxsoft/model.py",
        "probabilities = predict_proba(params, x)",
        "probabilities = jnp.exp(logits(params, x))",
        ("tests/test_cli.py", "-k", "test_predict and not errors and not bomb"),
    ),
    Fault(
        "metrics.jsonl test metrics of the previous epoch's parameters",
        "jaxsoft/train/minibatch.py",
        "                params, self.test, self.mesh, chunk_size=",
        "                state.params, self.test, self.mesh, chunk_size=",
        ("tests/test_cli.py", "-k", "writes_everything"),
    ),
    Fault(
        "probe heads.csv val_top5 column holds train_top5",
        "jaxsoft/probe/report.py",
        'row["val_top5"] = float(res.val_top5[h])',
        'row["val_top5"] = float(res.train_top5[h])',
        ("tests/test_probe.py", "-k", "end_to_end"),
    ),
    Fault(
        "confusion plot transposed",
        "jaxsoft/plots.py",
        'ax.imshow(confusion, cmap="Blues")',
        'ax.imshow(confusion.T, cmap="Blues")',
        ("tests/test_plots.py", "-k", "plot_confusion"),
    ),
    Fault(
        "images shrunk by bilinear filtering, not area averaging",
        "jaxsoft/images.py",
        "resample = Image.Resampling.BOX if shrinking",
        "resample = Image.Resampling.BILINEAR if shrinking",
        ("tests/test_images.py",),
    ),
)

BASELINE = Fault("(no fault: the copy itself)", "", "", "", ())


def _copy_tree(destination: Path) -> None:
    """Copies jaxsoft/, tests/ and pyproject.toml into ``destination``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "jaxsoft", destination / "jaxsoft", ignore=ignore)
    shutil.copytree(ROOT / "tests", destination / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", destination / "pyproject.toml")


def _run_tests(copy: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Runs pytest on ``tests`` inside ``copy`` with the copy first on the path."""
    env = dict(os.environ, PYTHONPATH=f"{copy}{os.pathsep}{copy / 'tests'}")
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    check = (
        "import jaxsoft, sys; "
        f"sys.exit(0 if jaxsoft.__file__.startswith({str(copy)!r}) else 3)"
    )
    which = subprocess.run([sys.executable, "-c", check], env=env, cwd=copy)
    if which.returncode != 0:
        raise RuntimeError("the mutated copy of jaxsoft is not the one imported")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *tests], env=env, cwd=copy, capture_output=True, text=True
    )


def check(fault: Fault, baseline_tests: tuple[str, ...]) -> tuple[bool, float, str]:
    """(whether the tests failed, seconds, pytest's output tail) for one fault."""
    with tempfile.TemporaryDirectory(prefix="jaxsoft-mutant-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        if fault.path:
            target = copy / fault.path
            source = target.read_text()
            if source.count(fault.old) != 1:
                raise RuntimeError(
                    f"{fault.name}: {fault.old!r} occurs {source.count(fault.old)} "
                    f"times in {fault.path}, expected once; update the fault."
                )
            target.write_text(source.replace(fault.old, fault.new))
        start = time.perf_counter()
        result = _run_tests(copy, fault.tests or baseline_tests)
        tail = (result.stdout + result.stderr)[-1500:]
        return result.returncode != 0, time.perf_counter() - start, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faults", nargs="*", help="substrings of fault names")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the unmutated run"
    )
    args = parser.parse_args(argv)
    chosen = [
        f for f in FAULTS if not args.faults or any(s in f.name for s in args.faults)
    ]
    ok = True
    rows = []
    if not args.no_baseline:
        # The unmutated copy must pass every selection used below.
        for fault in chosen:
            failed, seconds, tail = check(BASELINE, fault.tests)
            if failed:
                ok = False
                print(tail, file=sys.stderr)
                rows.append((f"BASELINE FAILS: {' '.join(fault.tests)}", "", seconds))
    for fault in chosen:
        failed, seconds, _ = check(fault, ())
        ok &= failed
        rows.append((fault.name, "caught" if failed else "NOT CAUGHT", seconds))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'fault':<{width}}  {'result':<10}  seconds")
    for name, verdict, seconds in rows:
        print(f"{name:<{width}}  {verdict:<10}  {seconds:7.1f}")
    caught = sum(verdict == "caught" for _, verdict, _ in rows)
    print(f"{caught} of {len(chosen)} faults caught")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
