"""The compiled fast path of :func:`samtheory.simulate`: fused Numba kernels for the built-in rules.

One kernel call advances a chunk's live rows over a segment of steps, a block of rows at a time: the block's
state lives in (d, block) arrays with the batch axis innermost (contiguous), and each step is a few fused passes
over it (gradient and its norm, ascent point, ascent gradient and its norm, update with the base optimizer).
Per row it does the NumPy path's arithmetic in the same order (:mod:`samtheory.methods`, the engine's
``_BaseOptimizer``), so the two agree to rounding: they differ only in the summation order of norms and of
matrix products (BLAS). Every promise of the engine holds: a row's arithmetic depends on that row alone (no
reduction across rows, no threads inside a kernel: the engine's chunks run on its worker threads, the kernels
release the GIL), so the result is independent of chunk_size and workers; divergence is detected at the same
step as NumPy's and the row frozen the same way; a finished row leaves its block (compaction), so no work is
spent on it; nothing warns (Numba does not raise floating-point warnings, and the NumPy parts run under the
engine's ``errstate``).

Minibatches are drawn in Python by the NumPy path's own Generator calls, step by step, and handed to the kernel;
the recorded history, the final values (loss, gradient norm, distance) and the statuses are computed by the
engine's own NumPy code from the kernel's iterates.

Numba is imported lazily, on the first compiled run; its on-disk cache (``cache=True``) is used when the package
directory is writable, else the kernels are compiled once per process (Numba falls back by itself; the cache
directory can be moved with ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import functools

import numpy as np

from .methods import BUILTIN_METHODS, METHODS, Step
from .problems import LeastSquares, LogisticRegression, Quadratic

__all__ = ["plan", "available", "Plan"]

_BLOCK_ELEMENTS = 1 << 13  # numbers per state array of a block: 64 KiB, so a block's ~8 arrays stay in L2
_SEGMENT = 1024  # steps per kernel call when minibatch indices must be drawn for each step
_QUADRATIC, _DENSE, _LEAST_SQUARES, _LOGISTIC = 0, 1, 2, 3


@functools.cache
def available() -> str:
    """"" if Numba can be imported, else why not (the reason ``backend="compiled"`` reports)."""
    try:
        import numba  # noqa: F401
    except Exception as error:  # pragma: no cover - depends on the installation
        return f"Numba is not installed or fails to import ({type(error).__name__}: {error}); pip install numba"
    return ""


def _unsupported(spec, inner, ascent_groups, independent=False) -> str:
    """Why the compiled path does not apply ("" where it does)."""
    if not any(spec.rule is METHODS[name].rule for name in BUILTIN_METHODS):
        return f"method {spec.name!r} is not a built-in rule (user rules run on the NumPy path)"
    if ascent_groups > 1:
        return "ascent_groups > 1 (m-sharpness) runs on the NumPy path"
    if independent:
        return "minibatch='independent' (a second minibatch per step) runs on the NumPy path"
    if type(inner) not in (Quadratic, LeastSquares, LogisticRegression):
        return (f"problem {type(inner).__name__} has no compiled gradient (only Quadratic, LeastSquares and "
                "LogisticRegression)")
    return available()


def plan(backend: str, spec, inner, *, ascent_groups: int, independent: bool = False):
    """The :class:`Plan` that runs ``spec`` on ``inner`` (the problem in the engine's coordinates) compiled, or
    None for the NumPy path: ``backend="numpy"``, or ``"auto"`` where the compiled path does not apply;
    ``"compiled"`` where it does not apply raises ``ValueError`` saying why.

    Parameters
    ----------
    backend : {"auto", "numpy", "compiled"}
        The requested backend.
    spec : MethodSpec
        The method.
    inner : Problem
        The problem as simulated (a Quadratic's eigenbasis form where the engine uses it).
    ascent_groups : int
        m-sharpness groups.
    independent : bool, optional
        Independent minibatches for the two gradients of a step (default False).

    Returns
    -------
    Plan or None
    """
    if backend == "numpy":
        return None
    reason = _unsupported(spec, inner, ascent_groups, independent)
    if reason:
        if backend == "compiled":
            raise ValueError(f"backend='compiled' does not apply: {reason}")
        return None
    return Plan(spec, inner)


class Plan:
    """A compiled run of one built-in method on one problem; :meth:`run_chunk` replaces the engine's NumPy loop."""

    def __init__(self, spec, inner):
        self.ascent = bool(spec.ascent)
        self.normalize = bool(spec.normalized)
        self.renormalize = bool(spec.renormalized)
        self.kind, self.matrix, self.vector, self.center, self.l2 = _problem_data(inner)
        self.centered = bool(np.any(self.center))

    def run_chunk(self, problem, guarded, rows, x, eta, rho, seed, steps, batch_size, divergence_factor, options,
                  out, ascent_groups=1, base=None, factors=None, tol=None, early_stop=False):
        """The engine's ``_run_chunk`` contract (same arguments, same writes to ``out``), compiled."""
        from . import engine  # the engine imports this module lazily; its helpers are shared, not repeated
        kernel = _kernel()
        x = np.asfortranarray(x)
        full_gradient = guarded.oracle(None)
        grad_norm0, threshold = engine._start(out, rows, full_gradient, x, divergence_factor)
        n, d = x.shape
        state = np.zeros(n, dtype=np.int8)  # 0 running, 1 diverged, 2 stopped (early_stop)
        diverged_at = np.full(n, -1, dtype=np.int64)
        converged_at = np.full(n, -1, dtype=np.int64)
        X = np.ascontiguousarray(x.T)  # (d, n): the batch axis innermost
        previous = X.copy()
        velocity = np.zeros((d, n)) if base is not None else np.zeros((1, 1))
        column = lambda value: np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (n,)))  # noqa: E731
        eta_rows, rho_rows = column(eta), column(rho)
        if base is not None:
            momentum, weight_decay, decoupled = column(base.momentum), column(base.weight_decay), column(base.decoupled)
            origin = np.zeros(d) if base.origin is None else np.ascontiguousarray(base.origin.reshape(-1))
            has_origin, nesterov = base.origin is not None, bool(base.nesterov)
        else:
            momentum = weight_decay = decoupled = np.zeros(n)
            origin, has_origin, nesterov = np.zeros(1), False, False
        converge = np.full(n, -np.inf) if tol is None else tol * grad_norm0
        factors_all = np.ones(steps) if factors is None else np.ascontiguousarray(factors, dtype=np.float64)
        sampler = np.random.default_rng([seed, engine._MINIBATCH_STREAM]) if batch_size else None
        full_batch = np.arange(problem.n_samples or 1, dtype=np.int64)[None, :]
        record_every = out.record_every
        segment = record_every or (_SEGMENT if sampler is not None else steps)
        record_norm, record_ascent, record_gamma = np.empty(n), np.empty(n), np.empty(n)
        block = max(8, min(n, _BLOCK_ELEMENTS // max(d, 1)))
        adaptive, adaptive_eta = bool(options.get("adaptive")), float(options.get("adaptive_eta", 0.0))
        truncate = bool(options.get("truncate"))
        t = 0
        while t < steps:
            live = np.flatnonzero(state == 0)
            if not live.size:
                break
            stop = min(steps, t + segment)
            if sampler is None:
                batches = full_batch
            else:
                batches = np.stack([sampler.choice(problem.n_samples, size=batch_size, replace=False)
                                    for _ in range(t, stop)]).astype(np.int64)
            record = bool(record_every) and t % record_every == 0
            snapshot = X[:, live].T if record else None  # x_t of the rows recorded at step t, (B, d) F-ordered
            kernel(self.kind, self.matrix, self.vector, self.center, self.centered, self.l2, batches,
                   sampler is None, self.ascent, self.normalize, self.renormalize, adaptive, adaptive_eta, truncate,
                   X, previous, velocity, state, diverged_at, converged_at, live, eta_rows, rho_rows, momentum,
                   weight_decay, decoupled, origin, has_origin, nesterov, base is not None, threshold, converge,
                   factors_all, t, stop, bool(early_stop), record, record_norm, record_ascent, record_gamma, block)
            if record:
                gamma = record_gamma[live] if self.renormalize else None
                step = Step(snapshot, record_norm[live], record_ascent[live], gamma)
                out.record(t // record_every, rows[live], problem, snapshot, step.grad_norm, step)
            t = stop
        stopped = state == 2
        frozen = state == 1
        out.x[rows[stopped | frozen]] = X[:, stopped | frozen].T
        out.diverged_at[rows[frozen]] = diverged_at[frozen]
        out.converged_at[rows] = np.where(converged_at >= 0, converged_at, out.converged_at[rows])
        live = np.flatnonzero(state == 0)
        engine._finish_chunk(problem, full_gradient, out, rows, rows[live], X[:, live].T, previous[:, live].T,
                             threshold[live], grad_norm0[live], tol, steps)


def _problem_data(inner):
    """(kind, matrix, vector, center, l2) of a supported problem, as the kernel reads them."""
    empty = np.zeros((1, 1))
    if isinstance(inner, Quadratic):
        center = np.ascontiguousarray(inner.center, dtype=np.float64)
        if inner.eigenvectors is None:
            return _QUADRATIC, empty, np.ascontiguousarray(inner.eigenvalues), center, 0.0
        return _DENSE, np.ascontiguousarray(inner.hessian_matrix), np.zeros(1), center, 0.0
    features = np.ascontiguousarray(inner.features, dtype=np.float64)
    targets = np.ascontiguousarray(inner.targets, dtype=np.float64)
    if isinstance(inner, LeastSquares):
        return _LEAST_SQUARES, features, targets, np.zeros(1), 0.0
    return _LOGISTIC, features, targets, np.zeros(1), float(inner.l2)


@functools.cache
def _kernel():
    """The compiled kernel (:mod:`samtheory._kernels`, which imports Numba), on first use."""
    from ._kernels import kernel
    return kernel
