"""samtheory: a theory-verification toolkit for sharpness-aware minimization (SAM, USAM, StableSAM).

The NumPy engine runs the update rules of ``docs/theory.md`` (``gd``, ``sam``, ``usam``, ``ssam``, ``susam``) on
whole grids of (η, ρ, seed) at once. See the README for the tour.
"""

from . import stability, theory
from .engine import simulate
from .methods import (
    BUILTIN_METHODS, METHODS, MethodSpec, Step, gd, register_method, resolve_method, sam, sharpness_aware_method, ssam, susam, usam,
)
from .problems import (LeastSquares, LogisticRegression, NoisyQuadratic, Problem, Quadratic, Saddle,
                       ScalarFactorization, SmoothConvexInterpolant)
from .result import BOUNDED, CONVERGED, DIVERGED, STATUS_NAMES, History, SimulationResult, Threshold

__version__ = "0.1.0"

__all__ = [
    "simulate", "stability", "theory", "METHODS", "BUILTIN_METHODS", "MethodSpec", "Step", "resolve_method", "register_method",
    "sharpness_aware_method", "gd", "sam", "usam", "ssam", "susam", "Threshold",
    "Problem", "Quadratic", "LeastSquares", "LogisticRegression", "Saddle", "ScalarFactorization", "SmoothConvexInterpolant",
    "NoisyQuadratic",
    "SimulationResult", "History", "CONVERGED", "BOUNDED", "DIVERGED", "STATUS_NAMES", "__version__",
]
