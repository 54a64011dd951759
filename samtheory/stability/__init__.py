r"""Stability regimes: analytic learning-rate thresholds (docs/theory.md O1–O5) beside measured ones.

Analytic (the closed forms of :mod:`samtheory.theory`, re-exported here, vectorized over η, ρ and spectra):

- GD (O1): stable iff η < 2/λ_max — :func:`gd_critical_learning_rate`.
- USAM (O2): η_c = 2/(λ_max(1 + ρλ_max)) — :func:`usam_critical_learning_rate`; its inverse, the largest
  stable sharpness λ*(η, ρ) = (√(1 + 8ρ/η) − 1)/(2ρ) — :func:`usam_max_stable_sharpness`.
- SAM (O3): bounded for η < 2/λ_max, 2-cycle ±a·u_1 with a = ηρλ_1/(2 − ηλ_1) — :func:`sam_cycle_amplitude`;
  the gradient-norm-dependent edge — :func:`sam_edge`.
- StableSAM (O4): bounds on the renormalization factor γ — :func:`renormalization_bounds`; in one dimension
  ``ssam``/``susam`` are GD. :func:`analytic_critical_learning_rate` gives each method's threshold as a
  :class:`~samtheory.result.Threshold`, the type every threshold of samtheory has.

Numerical linearization: :func:`jacobian` of the one-step map and :func:`spectral_radius` at a fixed point or
(SAM) at the 2-cycle.

Measured, with the rules of :class:`ClassificationRules`: :func:`regime_map` (status over an (η, ρ) grid in one
vectorized run), :func:`critical_learning_rate` (vectorized bisection over η for all ρ at once, the
non-divergent or the converged-only edge) and :func:`compare_regimes` (the table of the README).

Rates: :func:`asymptotic_rate` predicts the contraction of ‖g‖ per step (for ``susam``: GD's rate floored at
USAM's best rate, derived here and confirmed by the tests) and :func:`measured_rate` measures it.

Algorithmic (uniform) stability, Hardt, Recht & Singer 2016 (O10), without CVXPY: :func:`analytic_expansivity`,
:func:`spectral_expansivity` and :func:`expansivity` of one-step maps; :func:`stability_experiment` on data sets
that differ in one example (:func:`synthetic_split`, :func:`breast_cancer_split`). The SDP certificate of
expansivity over all smooth convex functions is in :mod:`samtheory.convex.pep`.

Stochastic regimes (O16) on realizable least squares with minibatches: :func:`mean_square_critical_learning_rate`
(exact η_ms, by enumeration, moment formulas or matrix-free), :func:`lyapunov_exponent` and
:func:`lyapunov_critical_learning_rate` (η_as with a confidence interval), :func:`stochastic_critical_learning_rate`
(the engine over seeds, any method) and :func:`gamma_distribution` (StableSAM's γ under noise).
"""

from ..result import Threshold
from ..theory import (
    GammaBounds, analytic_expansivity, asymptotic_rate, gd_critical_learning_rate, renormalization_bounds,
    sam_cycle_amplitude, sam_edge, usam_critical_learning_rate, usam_max_stable_sharpness,
)
from ._analytic import EDGES, analytic_critical_learning_rate
from ._algorithmic import (
    DATASETS, Expansivity, ExpansivityWitness, StabilityResult, StabilitySplit, breast_cancer_split, expansivity,
    spectral_expansivity, stability_experiment, synthetic_split, usam_expansivity_witness,
)
from ._linear import jacobian, spectral_radius
from ._measured import (
    ClassificationRules, MeasuredThreshold, RegimeMap, compare_regimes, critical_learning_rate, initial_points,
    measured_rate, regime_map,
)
from ._stochastic import (
    MEAN_SQUARE_ALGORITHMS, MINIBATCH_MODES, GammaDistribution, LyapunovEstimate, StochasticThreshold,
    full_batch_critical_learning_rate, gamma_distribution, lyapunov_critical_learning_rate, lyapunov_exponent,
    mean_square_critical_learning_rate, mean_square_spectral_radius, stochastic_critical_learning_rate,
)

__all__ = [
    "gd_critical_learning_rate", "usam_critical_learning_rate", "usam_max_stable_sharpness", "sam_cycle_amplitude",
    "sam_edge", "renormalization_bounds", "GammaBounds", "Threshold", "analytic_critical_learning_rate",
    "asymptotic_rate", "jacobian", "spectral_radius", "ClassificationRules", "initial_points", "RegimeMap",
    "regime_map", "MeasuredThreshold", "critical_learning_rate", "compare_regimes", "measured_rate", "EDGES",
    "Expansivity", "analytic_expansivity", "spectral_expansivity", "expansivity", "StabilitySplit", "synthetic_split",
    "breast_cancer_split", "StabilityResult", "stability_experiment", "DATASETS",
    "ExpansivityWitness", "usam_expansivity_witness",
    "MEAN_SQUARE_ALGORITHMS", "MINIBATCH_MODES", "GammaDistribution", "LyapunovEstimate", "StochasticThreshold",
    "full_batch_critical_learning_rate", "gamma_distribution", "lyapunov_critical_learning_rate",
    "lyapunov_exponent", "mean_square_critical_learning_rate", "mean_square_spectral_radius",
    "stochastic_critical_learning_rate",
]
