"""Linear probes: every L2 strength of an exact softmax regression, at once.

>>> from jaxsoft import probe
>>> # res = probe.sweep(x_train, y_train, l2=[1e-6, 1e-4], x_val=x_val, y_val=y_val)

- `solve`: `jaxsoft.exact.solve`, the exact optimum of many heads
  (strengths x training sets), re-exported for the probe's users.
- `sweep` (`sweep`): the heads, their scores and the chosen one.
- `load_features` (`features`): arrays, ``.npz`` files, memory-mapped
  ``.npy`` pairs; `ProbeInputError` for bad inputs.
- `score` (`scoring`): accuracy and top-5 of every head on another split.
- `command`: the ``jaxsoft probe`` subcommand.
"""

from jaxsoft.exact import Progress, Solution, solve
from jaxsoft.probe.features import ProbeInputError, load_features
from jaxsoft.probe.scoring import score
from jaxsoft.probe.sweep import DEFAULT_L2, SweepResult, sweep

__all__ = [
    "DEFAULT_L2",
    "ProbeInputError",
    "Progress",
    "Solution",
    "SweepResult",
    "load_features",
    "score",
    "solve",
    "sweep",
]
