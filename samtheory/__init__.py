"""samtheory: a theory-verification toolkit for sharpness-aware minimization (SAM, USAM, StableSAM).

The NumPy engine runs the update rules of ``THEORY.md`` (``gd``, ``sam``, ``usam``, ``ssam``, ``susam``) on
whole grids of (η, ρ, seed) at once. See the README for the tour.
"""

from . import stability
from .engine import simulate
from .methods import METHODS, Step, get_method, gd, sam, ssam, susam, usam
from .problems import LeastSquares, LogisticRegression, Problem, Quadratic, Saddle, ScalarFactorization
from .result import BOUNDED, CONVERGED, DIVERGED, STATUS_NAMES, History, SimulationResult

__version__ = "0.1.0"

__all__ = [
    "simulate", "stability", "METHODS", "Step", "get_method", "gd", "sam", "usam", "ssam", "susam",
    "Problem", "Quadratic", "LeastSquares", "LogisticRegression", "Saddle", "ScalarFactorization",
    "SimulationResult", "History", "CONVERGED", "BOUNDED", "DIVERGED", "STATUS_NAMES", "__version__",
]
