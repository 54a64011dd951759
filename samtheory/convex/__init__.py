"""The convex side of samtheory, with CVXPY: exact optima and worst-case certificates (PEP).

- :mod:`samtheory.convex.optima`: x* and f* of least squares and logistic regression (``solve``,
  ``attach_optimum`` so that ``simulate``'s suboptimality and distance use them).
- :mod:`samtheory.convex.pep`: performance estimation, the exact worst case of GD, USAM or any fixed-step
  method over L-smooth (strongly) convex functions as a Gram-matrix SDP (docs/theory.md O8, O9).

The Hardt–Recht–Singer (algorithmic) stability code needs no CVXPY and lives in :mod:`samtheory.stability`.

Every solve records the solver's name and status; a status other than ``optimal`` raises
:class:`SolverError` (which carries the status) instead of returning a number.
"""

from . import optima, pep
from ._solver import SolverError

__all__ = ["optima", "pep", "SolverError"]
