"""The exact engine: the optimum of softmax regression for many heads at once.

A head is one (training set, L2 strength) pair: a cross-validation fold at
one C, a probe's strength, a scikit-learn fit. `solve` finds every head's
exact optimum of the weighted objective

    sum_{i in set g} w_i CE_i / sum_{i in set g} w_i + (l2 / 2) ||W||^2

by preconditioned L-BFGS, every head sharing each pass over the rows, the
whole iteration loop one compiled program on the device. The faces call it:
`jaxsoft.linear_model`, `jaxsoft.train.solve_lbfgs`, `jaxsoft.probe.sweep`,
through the names below only (`score` scores a probe's heads on the rows
of their sets and on held-out rows in one pass; `check_l2`, `checked_weight`
and `default_num_classes` are the checks a face runs before a solve).

Modules, bottom up:

- `inputs`: the checks of what a caller passes; `SolveInputError`.
- `buckets`: the padded sizes that let similar problems share programs.
- `sparse_rows`: `scipy.sparse` rows, a second kind of rows for the passes.
- `passes`: rows on the mesh (in memory or streamed) and the passes over them.
- `placement`: where rows live, and the chunk sizes.
- `basis`: the change of variables that preconditions each head.
- `lbfgs`: one head's L-BFGS state machine.
- `solver`: every head's loop as one compiled program.
- `problem`: a solve's placed rows and basis, and runs of the solver on them.
- `batching`: heads solved a batch after another when their states do not
  fit together.
- `scoring`: every head's top-1 and top-5 hits, in one pass.
- `engine`: `solve`, the one orchestration of a solve.
"""

from jaxsoft.exact.engine import Solution, solve
from jaxsoft.exact.inputs import (
    SolveInputError,
    check_l2,
    checked_weight,
    default_num_classes,
    validate_features,
)
from jaxsoft.exact.lbfgs import GradNorm
from jaxsoft.exact.passes import Part, compute_dtype
from jaxsoft.exact.scoring import Scores, score, score_pass
from jaxsoft.exact.solver import Progress

__all__ = [
    "GradNorm",
    "Part",
    "Progress",
    "Scores",
    "Solution",
    "SolveInputError",
    "check_l2",
    "checked_weight",
    "compute_dtype",
    "default_num_classes",
    "score",
    "score_pass",
    "solve",
    "validate_features",
]
