"""The thin PyTorch backend: SAM, USAM and StableSAM as a wrapper around any ``torch.optim`` optimizer.

Import it explicitly (``import samtheory.torch``); ``import samtheory`` never imports torch. Install the extra
with ``pip install "samtheory[torch]"``.

- :class:`SAMOptimizer`: the update rules of docs/theory.md §2 (``gd``, ``sam``, ``usam``, ``ssam``, ``susam``, options
  ``adaptive`` and ``truncate``), equal to :mod:`samtheory.methods` to float64 rounding (tests/test_torch_equivalence.py);
  DDP (both ascent modes), AMP, BatchNorm, clipping and torch.compile in tests/test_torch_training.py.
- :func:`frozen_running_stats`, :func:`asam_param_groups`: BatchNorm statistics once per step; ASAM's groups.
- :func:`top_hessian_eigenvalue` / :func:`hessian_vector_product`: sharpness by Hessian-vector products
  (Lanczos via :func:`scipy.sparse.linalg.eigsh`, or power iteration); :func:`hessian_trace` (Hutchinson) and
  :func:`hessian_spectral_density` (stochastic Lanczos quadrature).

The neural validation behind ``samtheory neural`` is an experiment of the repository (``experiments/neural.py``),
built on these two tools.
"""

from .hessian import hessian_spectral_density, hessian_trace, hessian_vector_product, top_hessian_eigenvalue
from .optimizer import METHOD_NAMES, SAMOptimizer, StepStats, asam_param_groups, frozen_running_stats

__all__ = ["SAMOptimizer", "StepStats", "METHOD_NAMES", "frozen_running_stats", "asam_param_groups",
           "hessian_vector_product", "top_hessian_eigenvalue", "hessian_trace", "hessian_spectral_density"]
