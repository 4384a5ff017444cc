"""The evaluation report as text: the table ``jaxsoft evaluate`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_evaluation"]


def format_evaluation(result: Any, class_names: Sequence[str], split: str) -> str:
    """The text ``jaxsoft evaluate`` prints: metrics, per-class accuracy, confusion.

    Args:
      result: an `EvaluationResult` (confusion (q, q), per-class accuracy (q,)).
      class_names: the q class names, in label order.
      split: the split's name, for the first line.
    """
    lines = [
        f"{split}: {result.num_examples} examples  loss {result.loss:.4f}  "
        f"accuracy {result.accuracy:.4f}"
        + (
            ""
            if result.top_k_accuracy is None
            else f"  top-{result.top_k} {result.top_k_accuracy:.4f}"
        )
        + f"  calibration error {result.calibration_error:.4f}",
        "per-class accuracy:",
    ]
    for name, acc in zip(class_names, result.per_class_accuracy, strict=True):
        lines.append(f"  {name!s:>12}  {acc:.4f}")
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    names = [str(c) for c in class_names]
    confusion = result.confusion
    width = max(5, *(len(n) for n in names), len(str(int(confusion.max()))) + 1)
    lines.append(" " * width + " " + " ".join(n[:width].rjust(width) for n in names))
    for name, row in zip(names, confusion, strict=True):
        cells = " ".join(str(int(v)).rjust(width) for v in row)
        lines.append(f"{name[:width].rjust(width)} {cells}")
    return "\n".join(lines)
