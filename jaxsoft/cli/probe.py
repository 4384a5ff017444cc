"""The ``jaxsoft probe`` subcommand: feature files in, every head and the chosen out.

    jaxsoft probe --train TRAIN.npz --val VAL.npz [--test TEST.npz]
                  [--l2 1e-6 1e-5 ...] --out DIR

A split is an ``.npz`` file holding ``x`` and ``y`` (and optionally
``sample_weight`` (n,), the rows' weights), or two ``.npy`` files
(features, labels; memory-mapped), or a sparse features file
(``scipy.sparse.save_npz``) and a ``.npy`` of labels. Without ``--val`` the
strength is chosen by k-fold cross-validation on the training split. `run` raises
`ProbeInputError` (a ValueError, one line) for bad inputs; the CLI maps it
to exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jaxsoft.cli.flags import add_launch_flags, launch_from_args
from jaxsoft.exact import Progress
from jaxsoft.experiment import distributed, signals
from jaxsoft.probe import report
from jaxsoft.probe.features import (
    ProbeInputError,
    load_features,
    load_sample_weight,
    validate_features,
)
from jaxsoft.probe.scoring import score
from jaxsoft.probe.sweep import DEFAULT_L2, SweepResult, sweep

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Adds ``probe`` to an argparse ``add_subparsers()`` object."""
    parser = subparsers.add_parser(
        "probe",
        help="linear probe: every L2 strength at once, chosen on validation",
        description=(
            "Fits an exact softmax regression for every L2 strength on saved "
            "features and keeps the one with the best validation accuracy."
        ),
    )
    split = (
        "an .npz file with x and y (and optionally sample_weight, one weight "
        ">= 0 per row), or X.npy Y.npy, or X.npz Y.npy with sparse X "
        "(scipy.sparse.save_npz)"
    )
    parser.add_argument("--train", nargs="+", required=True, metavar="FILE", help=split)
    parser.add_argument(
        "--val",
        nargs="+",
        metavar="FILE",
        help=f"{split}; without it, the strength is chosen by cross-validation",
    )
    parser.add_argument("--test", nargs="+", metavar="FILE", help=split)
    parser.add_argument(
        "--l2",
        nargs="*",
        type=float,
        metavar="L2",
        help="strengths, each > 0 (default: 8 on a log grid from 1e-6 to 1e-1)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--folds", type=int, default=5, help="CV folds without --val")
    parser.add_argument(
        "--refit", action="store_true", help="refit the chosen head on train + val"
    )
    parser.add_argument("--rtol", type=float, default=1e-7, help="objective tolerance")
    parser.add_argument("--max-iter", type=int, default=1000, dest="max_iter")
    parser.add_argument(
        "--max-device-bytes",
        type=int,
        dest="max_device_bytes",
        help="stream features larger than this through the device",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_launch_flags(parser)


def _load(paths: list[str] | None, split: str) -> tuple[Any, Any] | None:
    if paths is None:
        return None
    if len(paths) > 2:
        raise ProbeInputError(
            f"--{split} takes an .npz file or two .npy files (or a sparse X.npz "
            f"and Y.npy), got {len(paths)} paths."
        )
    return load_features(paths[0] if len(paths) == 1 else tuple(paths), split=split)


def _weight(paths: list[str] | None) -> np.ndarray | None:
    """The ``sample_weight`` array of a split given as one ``.npz``, or None."""
    return load_sample_weight(paths[0]) if paths and len(paths) == 1 else None


def _check_classes(train: tuple[Any, Any], val: tuple[Any, Any] | None) -> None:
    """Refuses a one-class training split and validation classes unseen in it."""
    labels = np.asarray(train[1])
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
        return  # sweep says what is wrong with the labels
    seen = np.unique(labels)
    if seen.size < 2:
        raise ProbeInputError(
            f"the training split has one class ({seen[0]}); a probe needs "
            "examples of at least two classes in y_train."
        )
    if val is None:
        return
    val_labels = np.asarray(val[1])
    if val_labels.ndim != 1 or val_labels.dtype.kind not in "iu":
        return
    unseen = np.setdiff1d(np.unique(val_labels), seen)
    if unseen.size:
        raise ProbeInputError(
            f"class {unseen[0]} is in y_val but missing from the training "
            f"split (classes missing from training: {unseen.tolist()}); add "
            "training examples of it or drop it from the validation split."
        )


def _check_test(train: tuple[Any, Any], test: tuple[Any, Any] | None):
    """Validates the test split against the training one before any solve."""
    if test is None:
        return None
    x, y = train
    width = x.shape[1] if getattr(x, "ndim", 0) == 2 else None
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
        return test  # the training split is bad: sweep says how
    q = max(2, int(labels.max()) + 1)
    return validate_features(*test, num_classes=q, num_features=width, split="test")


def _progress_bar(quiet: bool):
    """A tqdm bar over finished heads on a terminal's stderr.

    Off a terminal (a log file, a pipe) there is no bar: one line per
    finished head instead, so logs hold no carriage-return fragments.
    """
    if quiet:
        return None, lambda: None
    if not sys.stderr.isatty():
        done = [0]

        def log(p: Progress) -> None:
            finished = p.total - p.running
            if finished > done[0]:
                done[0] = finished
                print(
                    f"probe: {finished}/{p.total} heads done ({p.passes} passes)",
                    file=sys.stderr,
                )

        return log, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(desc="probe", unit="head", file=sys.stderr, leave=False)

    def show(p: Progress) -> None:
        bar.total = p.total
        bar.n = p.total - p.running
        bar.set_postfix(passes=p.passes, refresh=False)
        bar.refresh()

    return show, bar.close


def _print_table(res: SweepResult, table: list[dict[str, Any]], out: Path) -> None:
    keys = [k for k in table[0] if k not in ("chosen",)]
    print("  ".join(f"{k:>14}" for k in keys))
    for row in table:
        cells = [
            f"{v:>14.6g}" if isinstance(v, float) else f"{v!s:>14}"
            for v in (row[k] for k in keys)
        ]
        print("  ".join(cells) + ("  <- chosen" if row["chosen"] else ""))
    print(
        f"chosen l2 = {res.l2[res.best]:g} by {res.selection} (accuracy "
        f"{res.val_accuracy[res.best]:.4f}); wrote {', '.join(report.FILES)} "
        f"to {out}"
    )


INTERRUPTED = signals.EXIT_INTERRUPTED


def run(args: argparse.Namespace) -> int:
    """Runs the probe described by parsed ``args``; returns the exit code.

    0 when done; 130 after Ctrl-C, before anything is written (a probe has
    no checkpoints to resume from).
    """
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("jaxsoft: probe interrupted; nothing was written", file=sys.stderr)
        return INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    distributed.initialize(launch_from_args(args))
    train = _load(args.train, "train")
    val = _load(args.val, "val")
    _check_classes(train, val)
    test = _check_test(train, _load(args.test, "test"))
    l2 = DEFAULT_L2 if args.l2 is None else args.l2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ProbeInputError(f"--out {out} exists and is not a folder.")
    show, close = _progress_bar(args.quiet)
    try:
        res = sweep(
            *train,
            l2,
            x_val=None if val is None else val[0],
            y_val=None if val is None else val[1],
            folds=args.folds,
            refit=args.refit,
            rtol=args.rtol,
            max_iter=args.max_iter,
            max_device_bytes=args.max_device_bytes,
            progress=show,
            sample_weight=_weight(args.train),
            val_sample_weight=None if val is None else _weight(args.val),
        )
    finally:
        close()
    scores = None
    if test is not None:
        scores = score(
            res.heads,
            *test,
            max_device_bytes=args.max_device_bytes,
            check=False,
            sample_weight=_weight(args.test),
        )
    if not distributed.is_writer():
        return 0  # process 0 alone writes the output folder
    try:
        report.write_outputs(res, out, scores)
    except OSError as err:
        raise ProbeInputError(f"cannot write to --out {out}: {err}") from None
    _print_table(res, report.head_table(res, scores), out)
    return 0
