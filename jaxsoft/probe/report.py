"""What a probe run writes: the table of heads, the chosen head, the plot.

- ``heads.csv`` and ``heads.json``: one row per head (l2, objective,
  iterations, converged, passes, train/val/test accuracy, top-5 where
  q > 5, chosen); the JSON adds how the head was chosen.
- ``head.npz``: the chosen head, ``W`` (d, q), ``b`` (q,), ``l2``; load it
  with ``np.load`` and predict with ``jaxsoft.predict(Params(W, b), x)``.
- ``val_accuracy.png``: validation accuracy against l2 (log axis).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxsoft.probe.sweep import SweepResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FILES", "head_table", "plot_accuracy", "write_outputs"]

FILES = ("heads.csv", "heads.json", "head.npz", "val_accuracy.png")


def head_table(
    res: SweepResult, test: tuple[np.ndarray, np.ndarray] | None = None
) -> list[dict[str, Any]]:
    """One dict per head, in the order of ``res.l2``.

    Args:
      res: the sweep.
      test: ``(accuracy, top5)`` of every head on a test split, or None.
    """
    top5 = res.heads.W.shape[-1] > 5
    rows = []
    for h, l2 in enumerate(res.l2):
        row: dict[str, Any] = {
            "l2": float(l2),
            "objective": float(res.objective[h]),
            "iterations": int(res.iterations[h]),
            "converged": bool(res.converged[h]),
            "passes": int(res.passes[h]),
            "train_accuracy": float(res.train_accuracy[h]),
            "val_accuracy": float(res.val_accuracy[h]),
        }
        if test is not None:
            row["test_accuracy"] = float(test[0][h])
        if top5:
            row["train_top5"] = float(res.train_top5[h])
            row["val_top5"] = float(res.val_top5[h])
            if test is not None:
                row["test_top5"] = float(test[1][h])
        row["chosen"] = h == res.best
        rows.append(row)
    return rows


def plot_accuracy(
    res: SweepResult,
    test_accuracy: np.ndarray | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Validation (and train, test) accuracy against l2; the chosen head marked."""
    from matplotlib.figure import Figure

    order = np.argsort(res.l2, kind="stable")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    val_label = "validation" if res.selection == "validation" else res.selection
    curves = [("train", res.train_accuracy), (val_label, res.val_accuracy)]
    if test_accuracy is not None:
        curves.append(("test", test_accuracy))
    for label, values in curves:
        ax.plot(res.l2[order], np.asarray(values)[order], marker="o", label=label)
    ax.axvline(res.l2[res.best], color="grey", linestyle="--", label="chosen")
    ax.set_xscale("log")
    ax.set_xlabel("L2 strength")
    ax.set_ylabel("accuracy")
    ax.legend()
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def _finite(value: Any) -> Any:
    """JSON has no NaN: None instead."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_outputs(
    res: SweepResult, out: Path, test: tuple[np.ndarray, np.ndarray] | None = None
) -> list[Path]:
    """Writes the table (CSV, JSON), the chosen head (.npz) and the plot."""
    out.mkdir(parents=True, exist_ok=True)
    table = head_table(res, test)
    with open(out / "heads.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    summary = {
        "selection": res.selection,
        "best": res.best,
        "l2": float(res.l2[res.best]),
        "refit_objective": res.refit_objective,
        "heads": [{k: _finite(v) for k, v in row.items()} for row in table],
    }
    (out / "heads.json").write_text(json.dumps(summary, indent=2) + "\n")
    np.savez(
        out / "head.npz",
        W=np.asarray(res.params.W),
        b=np.asarray(res.params.b),
        l2=np.float64(res.l2[res.best]),
    )
    plot_accuracy(res, None if test is None else test[0], out / "val_accuracy.png")
    return [out / name for name in FILES]
