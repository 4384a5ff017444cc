"""The padded sizes that let similar problems share compiled programs.

Rows, chunks of rows and sparse blocks' non-zeros are padded (with weight 0,
or empty entries) up to one of a few sizes per octave, so that problems of
nearby sizes (cross-validation folds, repeated fits, similar datasets) reuse
the programs compiled for the first.
"""

from __future__ import annotations

__all__ = ["bucket"]


def bucket(count: int, per_octave: int = 16) -> int:
    """``count`` rounded up to one of ``per_octave`` sizes (a power of two)
    in each octave (2^(b-1), 2^b]: at most 1/per_octave more; counts up to
    2 per_octave are kept.

    Rows, and chunks of rows, are padded to these sizes (with weight 0), so
    that problems of nearby sizes share compiled programs.
    """
    step = 1 << max(0, (count - 1).bit_length() - per_octave.bit_length())
    return -(-count // step) * step
