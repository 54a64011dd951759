"""The vectorized NumPy engine: one call runs a whole batch of (η, ρ, seed) configurations."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pickle

import numpy as np

from . import _validation as check
from .methods import Step, _row_norm, resolve_method
from .problems import as_problem, Problem, Quadratic
from .schedules import schedule_factors
from .result import BOUNDED, CONVERGED, DIVERGED, History, SimulationResult

__all__ = ["simulate"]

# Rows of a batch simulated together: about 2^17 numbers per array amortizes NumPy's per-call overhead while a
# step's temporaries still fit in cache (measured best between 2^15 and 2^18 at d = 10 and d = 100).
_CHUNK_ELEMENTS = 1 << 17
_MINIBATCH_STREAM = 0x5A4D  # second word of the minibatch generator's seed; x0 uses the seed alone
_NOISE_STREAM = 0x4E4F  # second word of a noisy problem's generator seed (noisy_gradient_oracle)


def simulate(problem: Problem, method, eta, rho=0.0, *, steps: int, seed=0, x0=None, adaptive: bool = False,
             adaptive_eta: float = 0.0, ascent_groups: int = 1,
             truncate: bool = False, batch_size: int | None = None, record_every: int = 0, record_iterates: bool = False, tol: float = 1e-6,
             divergence_factor: float = 1e6, basis: str = "auto", chunk_size: int | None = None,
             workers: int | None = None, progress: bool = False, momentum=0.0, nesterov: bool = False,
             weight_decay=0.0, decoupled_weight_decay=0.0, schedule=None, minibatch: str = "shared",
             early_stop: bool = False, backend: str = "auto", executor=None) -> SimulationResult:
    r"""Run ``steps`` updates of ``method`` on ``problem`` for every configuration of a batch.

    ``eta``, ``rho`` and ``seed`` broadcast against each other; their broadcast shape is the batch shape S of
    every field of the result (e.g. ``eta[:, None]`` and ``rho[None, :]`` give an (η, ρ) grid). ``x0`` is
    None (a draw of ``problem.initial_point(seed)`` per configuration), a point of shape ``(d,)``, or an array
    of shape ``S + (d,)``. ``seed`` also fixes the minibatch sequence when ``batch_size`` is set; rows that
    share a seed share their minibatches (common random numbers), and both gradients of a step use one
    minibatch (``minibatch="independent"``: the step's first gradient call, the ascent gradient g(x) of the
    built-in rules, sees one minibatch and later calls, g(y), a second one drawn after it). A problem with a
    ``noisy_gradient_oracle(batch, rng)`` method (:class:`~samtheory.problems.NoisyQuadratic`) gets a
    generator seeded by (seed, a noise stream) and makes each step's oracle from it, so its noise follows the
    seed like minibatches do.

    Status (see :mod:`samtheory.result`): a configuration is *diverged* at the first step t where ‖g(x_t)‖ is
    not finite or exceeds ``divergence_factor · max(‖g(x_0)‖, 1)``; it is then frozen at x_t (removed from
    the working batch). Otherwise it is *converged* if ‖g(x_T)‖ ≤ ``tol · ‖g(x_0)‖`` (full gradient), else
    *bounded*. ``converged_at`` is the first step t ∈ {0, …, T} at which ‖g(x_t)‖ ≤ ``tol · ‖g(x_0)‖``, with
    ‖g(x_t)‖ the norm the step from x_t computes (the full gradient, except with ``batch_size``: the step's
    minibatch gradient for t < T, the full one at T), −1 if never; it is recorded whether or not the run goes on
    (a run may meet the tolerance and diverge or stay bounded later). With ``early_stop=True`` a configuration
    stops at its ``converged_at`` step: its final x is x_t, its status *converged*, its ``loss`` and
    ``grad_norm`` those at x_t (no work is spent on it after t). Without it, T steps are always taken. With
    ``record_every = k > 0`` the result carries a :class:`~samtheory.result.History` at steps
    0, k, 2k, ..., T (with the iterates themselves if ``record_iterates``).

    ``basis``: ``"eigen"`` simulates a :class:`~samtheory.problems.Quadratic` in its eigenbasis (O(d) per
    step, exact for rotation-equivariant rules, docs/theory.md O7), ``"dense"`` uses H itself, ``"auto"`` picks
    the eigenbasis for built-in non-adaptive rules.

    Base optimizer (docs/theory.md O15), applied to the rule's (renormalized) step as PyTorch's SGD does:
    with d = γ g(y) the rule's descent gradient, coupled weight decay w gives d ← d + w x, heavy ball
    v ← βv + d (v₀ = 0, dampening 0), x ← x − η_t v, or with ``nesterov`` x ← x − η_t(d + βv); decoupled
    (AdamW-style) weight decay w_d multiplies x by 1 − η_t w_d first. ``momentum``, ``weight_decay`` and
    ``decoupled_weight_decay`` broadcast with ``eta`` like ``rho``; the velocity lives in the batch and is
    dropped with a diverged row. With β = 0 and w = w_d = 0 the iterates are the plain rule's, bit for bit.
    ``schedule`` scales the learning rate per step, η_t = η · s(t) (:mod:`samtheory.schedules`).

    The batch runs in chunks of ``chunk_size`` rows (default: about 2^17 numbers per array, to stay in cache)
    on ``workers`` threads (default: every available core; NumPy releases the GIL in its loops). Chunks are
    independent, so the result does not depend on either: same inputs, same result, bit for bit. A user
    rule or problem must then be thread-safe (pure functions are); pass ``workers=1`` otherwise.

    ``executor``: any :class:`concurrent.futures.Executor` instead of the threads — a ``ProcessPoolExecutor``,
    loky's, or a Dask cluster's ``distributed.Client(...).get_executor()``. Each chunk is then an independent
    task that ships its rows' inputs (and the problem and rule, pickled once per call) and returns its rows'
    outputs; the result is bit-identical to the in-process one. A process or cluster executor must be able to
    pickle the rule and the problem (``ValueError`` naming them otherwise: a lambda or nested function cannot
    go to a ``ProcessPoolExecutor``; Dask and loky use cloudpickle, which can). With an executor, ``workers``
    only shapes the default chunking (at least ``workers`` chunks; default: the executor's worker count where
    it tells, else this machine's cores).

    Determinism: each configuration's arithmetic depends on its own (η, ρ, seed, x0) alone, so its row of the
    result is bit-identical whatever the rest of the batch, its position in it, ``chunk_size`` or ``workers``
    (a one-configuration call included). The built-in problems compute their matrix products row by row for
    this, through one BLAS call shape; a user problem keeps the guarantee if its gradient treats rows
    independently in the same way (one BLAS product over the whole batch does not).

    Errors: bad arguments raise ``ValueError`` naming the argument (for a value of the wrong type, an error
    that is both a ``TypeError`` and a ``ValueError``). A rule or problem that raises is reported as a ``RuntimeError`` naming it (the original error
    chained); one that returns something of the wrong type, shape or dtype, or a rule that reports a NaN
    ‖g(x)‖ where the problem's gradient there is finite, raises ``TypeError``/``ValueError`` naming it.
    Overflow is divergence, never a warning: a configuration whose gradient is not finite at x0 is diverged
    at step 0, one whose loss is no longer finite at step T (it grew past float64's range while ‖g‖ stayed
    under the threshold) is diverged at step T.

    Before any work, a batch whose estimated memory exceeds 8 GiB (or the environment variable
    ``SAMTHEORY_MAX_MEMORY``, e.g. ``64G``), or more than 10**12 steps, raises ``ValueError``
    (:mod:`samtheory._limits`).

    Parameters
    ----------
    problem : Problem
        A :class:`~samtheory.problems.Problem` (``ValueError`` for anything else).
    method : str, MethodSpec or callable
        A registered method name (``"gd"``, ``"sam"``, ``"usam"``, ``"ssam"``, ``"susam"``, ...), a
        :class:`~samtheory.methods.MethodSpec` or a user rule ``rule(x, grad, eta, rho, **options) -> Step``.
    eta : array_like
        Learning rate(s), finite and > 0; broadcasts with ``rho`` and ``seed``.
    rho : array_like, optional
        Radius (radii) ρ, finite and >= 0 (default 0; ignored by ``gd``).
    steps : int
        Number of updates T, >= 1.
    seed : int or array_like of int, optional
        Non-negative seed(s) of the initial point (when ``x0`` is None) and of the minibatches (default 0).
    x0 : None or array_like, optional
        Initial point(s): None, shape ``(d,)`` or broadcastable to ``S + (d,)``; finite.
    adaptive : bool, optional
        ASAM's scale-invariant ascent T = |x| (docs/theory.md §2); default False. Not with ``basis="eigen"``.
    adaptive_eta : float, optional
        η_ASAM >= 0 of the official ASAM code: T = |x| + η_ASAM with ``adaptive`` (default 0: T = |x|).
    ascent_groups : int, optional
        m-sharpness, k >= 1 (default 1): the step's minibatch (or, without ``batch_size``, the whole finite
        sum, in k contiguous blocks) is split into k equal groups; each takes the method's step with its own
        gradients, and the k descent steps are averaged (the ``ascent_mode="per_replica"`` of the torch
        optimizer on k replicas). Needs a finite-sum problem whose size divides by k.
    truncate : bool, optional
        Truncate the renormalization factor to min(1, γ) (StableSAM methods only); default False.
    batch_size : int or None, optional
        Minibatch size, 1 <= ``batch_size`` <= ``problem.n_samples``, sampled without replacement each step;
        None (default) uses the full gradient. Only for finite-sum problems.
    record_every : int, optional
        Record a :class:`~samtheory.result.History` every ``record_every`` steps; 0 (default) records none.
    record_iterates : bool, optional
        Also record the iterates in the history (needs ``record_every >= 1``); default False.
    tol : float, optional
        Relative gradient-norm tolerance of *converged*, > 0 (default 1e-6).
    divergence_factor : float, optional
        A run diverges once ‖g(x_t)‖ > ``divergence_factor · max(‖g(x_0)‖, 1)``; must be > 1 (default 1e6).
    basis : {"auto", "eigen", "dense"}, optional
        Coordinates in which a :class:`~samtheory.problems.Quadratic` is simulated (default ``"auto"``);
        ``"eigen"`` needs a Quadratic.
    chunk_size : int or None, optional
        Rows per chunk, >= 1; None (default) chooses about 2^17 numbers per array and a chunk per worker.
    workers : int or None, optional
        Number of threads, >= 1; None (default) uses every available core.
    progress : bool, optional
        Show a tqdm progress bar over the chunks (default False).
    momentum : array_like, optional
        Heavy-ball momentum β ∈ [0, 1) (default 0), PyTorch's SGD ``momentum`` with dampening 0.
    nesterov : bool, optional
        Nesterov's variant, step d + βv (PyTorch's ``nesterov=True``; default False).
    weight_decay : array_like, optional
        Coupled weight decay w >= 0, d ← d + w x after the renormalization (PyTorch's SGD ``weight_decay``).
    decoupled_weight_decay : array_like, optional
        Decoupled weight decay w_d >= 0: x ← (1 − η_t w_d) x before the step (AdamW style; default 0).
    schedule : None, str or callable, optional
        Learning-rate schedule s(t): None (constant), ``"NAME[:params]"`` or a callable; see
        :func:`samtheory.schedules.schedule_factors`.
    minibatch : {"shared", "independent"}, optional
        With ``batch_size``: both gradients of a step on one minibatch (default) or the second gradient call on
        an independent minibatch (docs/theory.md O16).
    early_stop : bool, optional
        Stop each configuration at its ``converged_at`` step (default False). Needs the full gradient (not with
        ``batch_size``, whose criterion is noisy) and no history (not with ``record_every > 0``).
    backend : {"auto", "numpy", "compiled"}, optional
        ``"numpy"``: the vectorized NumPy reference; ``"compiled"``: fused Numba kernels
        (:mod:`samtheory._compiled`), for the built-in rules on Quadratic, LeastSquares and LogisticRegression
        (``ValueError`` saying why where they do not apply); ``"auto"`` (default): compiled where it applies
        and Numba is installed, NumPy otherwise. User rules always run on NumPy.
    executor : None or concurrent.futures.Executor, optional
        Runs the chunks as tasks (see above); None (default) uses ``workers`` threads of this process.

    Returns
    -------
    SimulationResult
        Every field over the batch shape S (see :class:`~samtheory.result.SimulationResult`).
    """
    from ._limits import check_simulate
    check_simulate(problem, eta, rho, seed, steps=steps, record_every=record_every, record_iterates=record_iterates,
                   batch_size=batch_size, chunk_size=chunk_size, workers=workers)
    problem = as_problem("problem", problem)
    spec = resolve_method(method)
    name, rule = spec.name, spec.rule
    steps = check.as_positive_int("steps", steps)
    eta = check.as_float_array("eta", eta, positive=True)
    rho = check.as_float_array("rho", rho, nonnegative=True)
    seed = check.as_seed_array("seed", seed)
    record_every = check.as_positive_int("record_every", record_every, minimum=0)
    tol = check.as_scalar("tol", tol, positive=True)
    divergence_factor = check.as_divergence_factor("divergence_factor", divergence_factor)
    check.choice("basis", basis, ("auto", "eigen", "dense"))
    adaptive = check.as_bool("adaptive", adaptive)
    adaptive_eta = check.as_scalar("adaptive_eta", adaptive_eta, nonnegative=True)
    ascent_groups = check.as_positive_int("ascent_groups", ascent_groups)
    truncate = check.as_bool("truncate", truncate)
    record_iterates = check.as_bool("record_iterates", record_iterates)
    progress = check.as_bool("progress", progress)
    if record_iterates and not record_every:
        raise ValueError("record_iterates=True needs record_every >= 1, got record_every=0")
    early_stop = check.as_bool("early_stop", early_stop)
    check.choice("backend", backend, ("auto", "numpy", "compiled"))
    if early_stop and batch_size is not None:
        raise ValueError(f"early_stop=True needs the full gradient (its criterion would be noisy), got batch_size={batch_size}")
    if early_stop and record_every:
        raise ValueError(f"early_stop=True records no history, got record_every={record_every}")
    momentum = check.as_float_array("momentum", momentum, nonnegative=True)
    if not np.all(momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {check._show(momentum)}")
    nesterov = check.as_bool("nesterov", nesterov)
    weight_decay = check.as_float_array("weight_decay", weight_decay, nonnegative=True)
    decoupled_weight_decay = check.as_float_array("decoupled_weight_decay", decoupled_weight_decay, nonnegative=True)
    factors = schedule_factors(schedule, steps)
    check.choice("minibatch", minibatch, ("shared", "independent"))
    noisy = callable(getattr(problem, "noisy_gradient_oracle", None))
    eta, rho, seed, momentum, weight_decay, decoupled_weight_decay = check.broadcast(
        ("eta", "rho", "seed", "momentum", "weight_decay", "decoupled_weight_decay"),
        eta, rho, seed, momentum, weight_decay, decoupled_weight_decay)
    shape, d = eta.shape, problem.dim
    n_rows = int(np.prod(shape, dtype=np.int64))
    if n_rows == 0:
        raise ValueError(f"the batch is empty: eta, rho and seed broadcast to shape {shape}")
    if batch_size is not None:
        if problem.n_samples is None:
            raise ValueError(f"batch_size must be None for {type(problem).__name__}, which is not a finite sum "
                             "(the problem has no n_samples)")
        batch_size = check.as_positive_int("batch_size", batch_size)
        if batch_size > problem.n_samples:
            raise ValueError(f"batch_size must be <= n_samples = {problem.n_samples}, got {batch_size}")
    if ascent_groups > 1:
        if problem.n_samples is None:
            raise ValueError(f"ascent_groups > 1 needs a finite-sum problem, got {type(problem).__name__}")
        size = problem.n_samples if batch_size is None else batch_size
        if size % ascent_groups:
            raise ValueError(f"ascent_groups must divide the batch ({size} samples), got {ascent_groups}")
    if chunk_size is not None:
        chunk_size = check.as_positive_int("chunk_size", chunk_size)
    executor = _check_executor(executor)
    if workers is not None:
        workers = check.as_positive_int("workers", workers)
    else:
        workers = _available_cores() if executor is None else _executor_workers(executor)

    seeds = seed.ravel()
    start = _initial_points(problem, x0, shape, seeds)

    inner, to_inner, from_inner = problem, None, None
    if isinstance(problem, Quadratic):
        use_eigen = basis == "eigen" or (basis == "auto" and spec.rotation_equivariant and not adaptive)
        if use_eigen and adaptive:
            raise ValueError("basis='eigen' is exact only for rotation-equivariant rules; adaptive=True is not")
        if use_eigen:
            inner, to_inner, from_inner = problem.eigenbasis()
            start = to_inner(start)
    elif basis == "eigen":
        raise ValueError(f"basis='eigen' needs a Quadratic problem, got {type(problem).__name__}")

    options = {"adaptive": bool(adaptive), "truncate": bool(truncate)}
    if adaptive_eta:
        options["adaptive_eta"] = adaptive_eta
    if record_every:
        options["diagnostics"] = True
    check.check_rule_signature("method", name, rule, options)
    with np.errstate(all="ignore"):  # only whether a distance is known; x0 may be huge
        with_distance = inner.distance(start[:1]) is not None
    from . import _compiled
    kernel = _compiled.plan(backend, spec, inner, ascent_groups=ascent_groups,
                            independent=minibatch == "independent" and batch_size is not None)
    out = _Outputs(n_rows, d, steps, record_every, with_distance=with_distance, with_iterates=record_iterates)
    if chunk_size is None:  # about _CHUNK_ELEMENTS numbers per array, and work for every worker
        chunk_size = max(64, _CHUNK_ELEMENTS // d)
        chunk_size = max(1, min(chunk_size, -(-n_rows // workers)))
    groups = ([np.flatnonzero(seeds == s) for s in np.unique(seeds)] if batch_size or noisy
              else [np.arange(n_rows)])
    chunks = [rows[i:i + chunk_size] for rows in groups for i in range(0, rows.size, chunk_size)]

    base = None
    if momentum.any() or weight_decay.any() or decoupled_weight_decay.any():
        base = _BaseOptimizer(momentum.reshape(-1, 1), nesterov, weight_decay.reshape(-1, 1),
                              decoupled_weight_decay.reshape(-1, 1))
        if to_inner is not None:
            origin = to_inner(np.zeros((1, d)))
            base.origin = origin if np.any(origin) else None
    constant = bool(np.all(factors == 1.0))

    fixed = {"steps": steps, "batch_size": batch_size, "divergence_factor": divergence_factor, "options": options,
             "ascent_groups": ascent_groups, "factors": None if constant else factors,
             "independent": minibatch == "independent", "noisy": noisy,
             "tol": tol, "early_stop": early_stop, "kernel": kernel}

    def inputs(rows):  # a chunk's own inputs
        return (rows, start[rows], eta.reshape(-1, 1)[rows], rho.reshape(-1, 1)[rows], int(seeds[rows[0]]),
                None if base is None else base.take(rows))

    if executor is not None:
        _run_tasks(executor, (rule, inner, (name, type(problem).__name__, fixed)), chunks, inputs, out, progress, name)
    else:
        workers = min(workers, len(chunks))
        with concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
            run = lambda rows: _chunk(rule, inner, name, type(problem).__name__, *inputs(rows), out, fixed)  # noqa: E731
            finished = map(run, chunks) if pool is None else pool.map(run, chunks)
            for _ in _progress(finished, progress, len(chunks), name):
                pass
    final_x = out.x if from_inner is None else from_inner(out.x)
    converged = out.grad_norm <= tol * out.grad_norm0
    if early_stop:  # a stopped row met the tolerance at x_t, its final iterate
        converged |= out.converged_at >= 0
    status = np.where(out.diverged_at >= 0, DIVERGED, np.where(converged, CONVERGED, BOUNDED))
    return SimulationResult(
        method=name, problem=problem, steps=steps, eta=eta.copy(), rho=rho.copy(), seed=seed.copy(),
        x=final_x.reshape(shape + (d,)), loss=out.loss.reshape(shape), grad_norm=out.grad_norm.reshape(shape),
        distance=None if out.distance is None else out.distance.reshape(shape),
        status=status.reshape(shape), diverged_at=out.diverged_at.reshape(shape), tol=tol,
        converged_at=out.converged_at.reshape(shape),
        history=out.history(shape, from_inner), options={**options, "batch_size": batch_size, "basis": basis,
                                             "divergence_factor": divergence_factor,
                                             "ascent_groups": ascent_groups,
                                             "momentum": momentum.copy(), "nesterov": nesterov,
                                             "weight_decay": weight_decay.copy(),
                                             "decoupled_weight_decay": decoupled_weight_decay.copy(),
                                             "schedule": None if constant else factors,
                                             "minibatch": minibatch, "early_stop": early_stop,
                                             "backend": "numpy" if kernel is None else "compiled"},
    )


def _chunk(rule, inner, name, label, rows, x, eta, rho, seed, base, out, fixed):
    """Run one chunk of rows into ``out`` (the only call of :func:`_run_chunk`: threads and tasks share it)."""
    guarded = _Guarded(rule, name, inner, inner)
    guarded.label = label  # the user's problem's name, not its eigenbasis form's
    with np.errstate(all="ignore"):  # thread-local: entered in each worker
        _run_chunk(inner, guarded, rows, x, eta, rho, seed, out=out, base=base, **fixed)


def _chunk_task(shared, settings, inputs):
    """One chunk as an independent task of an executor (module level, so that a process executor can pickle
    it): a fresh :class:`_Outputs` for its k rows, renumbered 0..k−1, and its attributes as a dict.

    ``shared`` is (rule, problem, rest), each pickled by the parent for a process executor (bytes) or the
    objects themselves for threads; ``settings`` the arguments of _Outputs after the row count."""
    rule, inner, (name, label, fixed) = (pickle.loads(item) if isinstance(item, bytes) else item for item in shared)
    rows = inputs[0]
    out = _Outputs(rows.size, *settings)
    _chunk(rule, inner, name, label, np.arange(rows.size), *inputs[1:], out, fixed)
    return vars(out)


def _run_tasks(executor, shared, chunks, inputs, out, progress, name):
    """Submit every chunk to ``executor`` and copy each task's outputs into ``out`` as it completes."""
    shared = _pickled(executor, shared, name)
    futures = {executor.submit(_chunk_task, shared, out.settings, inputs(rows)): rows for rows in chunks}
    try:
        for future in _progress(concurrent.futures.as_completed(futures), progress, len(chunks), name):
            _merge(out, futures[future], future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _merge(out, rows, chunk: dict):
    """Copy a task's outputs (its rows numbered 0..k−1) into ``out`` at ``rows``, generically: every array
    attribute along its row axis (the one axis whose length differs, or all of it when the chunk is the whole
    batch); a flag (bool) that any chunk raised is raised. Other attributes are the call's settings."""
    n_rows = out.x.shape[0]
    for key, value in chunk.items():
        target = getattr(out, key, None)
        if isinstance(value, np.ndarray) and isinstance(target, np.ndarray):
            axes = [axis for axis, (m, k) in enumerate(zip(target.shape, value.shape)) if m != k]
            if len(axes) == 1 and target.ndim == value.ndim and value.shape[axes[0]] == rows.size:
                target[(slice(None),) * axes[0] + (rows,)] = value
            elif not axes and target.shape == value.shape:
                if rows.size == n_rows:  # the whole batch in one chunk (rows are 0..n−1), or a setting
                    target[...] = value
            else:
                raise AssertionError(f"task output {key} of shape {value.shape} does not fit {target.shape}")
        elif isinstance(value, bool) and value and target is False:
            setattr(out, key, True)


def _pickled(executor, shared, name):
    """``shared`` pickled item by item as ``executor`` will need it (nothing for threads), or ``ValueError``
    naming what cannot be pickled."""
    # Python 3.14's InterpreterPoolExecutor is a ThreadPoolExecutor that pickles its tasks with pickle
    interpreters = getattr(concurrent.futures, "InterpreterPoolExecutor", ())
    if isinstance(executor, concurrent.futures.ThreadPoolExecutor) and not isinstance(executor, interpreters):
        return shared
    serializer = pickle
    if not isinstance(executor, (concurrent.futures.ProcessPoolExecutor, interpreters)):
        with contextlib.suppress(ImportError):  # Dask and loky serialize functions with cloudpickle
            import cloudpickle as serializer
    items = []
    for item, what in zip(shared, (f"method: the update rule {name!r}", f"problem {type(shared[1]).__name__}",
                                   "the simulation's settings")):
        try:
            items.append(serializer.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as error:
            raise ValueError(f"{what} cannot be pickled ({type(error).__name__}: {error}), so it cannot run on "
                             f"executor {type(executor).__name__}, which runs each chunk in another process; "
                             "define it at module level (not a lambda or nested function), or use executor=None "
                             "or a ThreadPoolExecutor") from error
    return tuple(items)


def _check_executor(executor):
    if executor is not None and not isinstance(executor, concurrent.futures.Executor):
        raise check.InputTypeError(
            "executor must be None or a concurrent.futures.Executor (e.g. ProcessPoolExecutor(), "
            f"distributed.Client(...).get_executor()), got {type(executor).__name__} {executor!r:.60}")
    return executor


def _executor_workers(executor) -> int:
    """How many tasks ``executor`` runs at once, where it tells (concurrent.futures and loky pools, Dask's
    ClientExecutor); this machine's cores otherwise."""
    count = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if count is None and client is not None:
        with contextlib.suppress(Exception):
            count = sum(client.nthreads().values())
    return count if isinstance(count, int) and count >= 1 else _available_cores()


def _progress(finished, progress, total, name):
    if not progress:
        return finished
    from tqdm.auto import tqdm
    return tqdm(finished, total=total, desc=f"simulate {name}", unit="chunk", leave=False)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _initial_points(problem, x0, shape, seeds) -> np.ndarray:
    d = problem.dim
    if x0 is None:
        unique, inverse = np.unique(seeds, return_inverse=True)
        label = type(problem).__name__
        points = np.stack([check.as_vector(f"{label}.initial_point({int(s)})", problem.initial_point(int(s)), size=d,
                                           match="the problem")
                           for s in unique])
        return points[inverse.ravel()]
    x0 = check.as_float_array("x0", x0)
    if x0.shape == (d,):
        return np.broadcast_to(x0, (len(seeds), d)).copy()
    try:
        if x0.ndim == 0 or x0.shape[-1] != d:  # a number is not a point: never spread over the coordinates
            raise ValueError
        return np.broadcast_to(x0, shape + (d,)).reshape(-1, d).copy()
    except ValueError:
        raise ValueError(f"x0 must have shape ({d},) or {shape + (d,)} (the problem's dimension is {d}), "
                         f"got {x0.shape}") from None


def check_step(step, x: np.ndarray, where: str) -> Step:
    """``step`` if it is what an update rule must return for the batch ``x`` (a :class:`Step` of float64 arrays:
    ``x`` of the batch's shape, ``grad_norm`` and the optional fields of shape ``(B,)``); otherwise
    ``TypeError``/``ValueError`` naming ``where`` (the rule)."""
    if not isinstance(step, Step) or step.grad_norm is None:
        raise check.InputTypeError(f"{where} must return a samtheory.methods.Step with grad_norm, got {step!r:.80}")
    rows = x.shape[0]
    for field, value, shape in (("x", step.x, x.shape), ("grad_norm", step.grad_norm, (rows,)),
                                ("ascent_grad_norm", step.ascent_grad_norm, (rows,)), ("gamma", step.gamma, (rows,))):
        if value is None and field in ("ascent_grad_norm", "gamma"):
            continue
        if not isinstance(value, np.ndarray) or value.dtype != np.float64:
            what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise check.InputTypeError(f"{where} returned Step.{field} of {what}; it must be a float64 array of "
                                       f"shape {shape}")
        if value.shape != shape:
            raise ValueError(f"{where} returned Step.{field} of shape {value.shape}; it must have shape {shape} "
                             "(one row per configuration)")
    return step


class _Guarded:
    """The update rule and the problem's gradient oracles as the engine calls them: their output is checked
    (type, shape, dtype) and an error they raise is reported naming them."""

    def __init__(self, rule, name, problem, user_problem):
        self.rule, self.name, self.problem = rule, name, problem
        self.label = type(user_problem).__name__
        self._problem_errors = []  # raised by the problem through the rule: reported once, naming the problem

    def oracle(self, batch=None, second=None, noise=None):
        """The checked oracle of ``batch``; with ``second``, the first call uses ``batch`` and later calls
        ``second`` (independent minibatches); with ``noise`` (a generator), the problem's noisy oracle."""
        if second is not None:
            oracles, calls = (self.oracle(batch), self.oracle(second)), [0]

            def two_batches(X):
                calls[0] += 1
                return oracles[min(calls[0] - 1, 1)](X)

            return two_batches
        try:
            raw = (self.problem.gradient_oracle(batch) if noise is None
                   else self.problem.noisy_gradient_oracle(batch, noise))
        except Exception as error:
            raise RuntimeError(f"problem {self.label}'s gradient_oracle raised {type(error).__name__}: {error}") from error

        def gradient(X):
            try:
                G = raw(X)
            except Exception as error:
                failure = RuntimeError(f"problem {self.label}'s gradient raised {type(error).__name__}: {error}")
                self._problem_errors.append(failure)
                raise failure from error
            if not isinstance(G, np.ndarray) or G.dtype != np.float64:
                what = f"dtype {G.dtype}" if isinstance(G, np.ndarray) else type(G).__name__
                failure = check.InputTypeError(f"problem {self.label}'s gradient must return a float64 array, "
                                               f"got {what}")
            elif G.shape != X.shape:
                failure = ValueError(f"problem {self.label}'s gradient must return an array of the shape of its input "
                                     f"{X.shape}, got shape {G.shape}")
            else:
                # Batch-contiguous, as the engine keeps its arrays: the rules' row norms then round one way only.
                return np.asfortranarray(G)
            self._problem_errors.append(failure)
            raise failure

        return gradient

    def step(self, x, gradient, eta, rho, options, t) -> Step:
        try:
            step = self.rule(x, gradient, eta, rho, **options)
        except Exception as error:
            if any(error is failure for failure in self._problem_errors):
                raise
            raise RuntimeError(f"update rule {self.name!r} raised {type(error).__name__} at step {t}: {error}") from error
        check_step(step, x, f"update rule {self.name!r} (step {t})")
        return step

    def check_nan_norms(self, step, x, gradient, bad, t):
        """A NaN ‖g(x)‖ reported where the problem's gradient at x is finite is the rule's error, not divergence."""
        suspect = bad & np.isnan(step.grad_norm)
        if suspect.any():
            finite = np.isfinite(x[suspect]).all(axis=1)
            if finite.any():
                norms = _row_norm(gradient(np.asfortranarray(x[suspect][finite])))
                if np.isfinite(norms).any():
                    value = norms[np.isfinite(norms)][0]
                    raise ValueError(f"update rule {self.name!r} returned grad_norm NaN at step {t} at a finite x "
                                     f"where the problem's ‖g(x)‖ = {value:.6g}")


class _Outputs:
    """Per-row outputs, filled chunk by chunk."""

    def __init__(self, n_rows, d, steps, record_every, with_distance, with_iterates):
        self.settings = (d, steps, record_every, with_distance, with_iterates)  # for a task's own _Outputs
        self.x = np.empty((n_rows, d))
        self.loss = np.empty(n_rows)
        self.grad_norm = np.empty(n_rows)
        self.grad_norm0 = np.empty(n_rows)
        self.distance = np.empty(n_rows) if with_distance else None
        self.diverged_at = np.full(n_rows, -1, dtype=np.int64)
        self.converged_at = np.full(n_rows, -1, dtype=np.int64)
        self.record_every = record_every
        if record_every:
            self.record_steps = np.arange(0, steps + 1, record_every)
            slots = (self.record_steps.size, n_rows)
            self.h_loss, self.h_grad_norm, self.h_gamma = np.full(slots, np.nan), np.full(slots, np.nan), np.full(slots, np.nan)
            self.h_ratio = np.full(slots, np.nan)
            self.h_distance = np.full(slots, np.nan) if with_distance else None
            self.h_x = np.full(slots + (d,), np.nan) if with_iterates else None
            self.has_ratio = False

    def record(self, slot, rows, problem, x, grad_norm, step: Step | None):
        # NaN marks "not recorded" (see _forward_fill): an overflowed value is stored as inf.
        self.h_loss[slot, rows] = _not_nan(problem._loss(x, None))
        self.h_grad_norm[slot, rows] = _not_nan(grad_norm)
        if self.h_x is not None:
            self.h_x[slot, rows] = x
        if self.h_distance is not None:
            self.h_distance[slot, rows] = _not_nan(problem.distance(x))
        if step is not None:
            self.h_gamma[slot, rows] = 1.0 if step.gamma is None else _not_nan(step.gamma)
            if step.ascent_grad_norm is not None:
                self.has_ratio = True
                self.h_ratio[slot, rows] = _not_nan(np.divide(step.ascent_grad_norm, step.grad_norm,
                                                              out=np.ones_like(step.grad_norm),
                                                              where=step.grad_norm > 0))

    def history(self, shape, from_inner=None):
        if not self.record_every:
            return None
        fields = [self.h_loss, self.h_grad_norm, self.h_gamma, self.h_ratio, self.h_distance, self.h_x]
        for values in fields:
            if values is not None:
                _forward_fill(values)
        # After divergence, the frozen state's values.
        frozen = (self.diverged_at >= 0)[None, :] & (self.record_steps[:, None] > self.diverged_at[None, :])
        for values, final in ((self.h_loss, self.loss), (self.h_grad_norm, self.grad_norm), (self.h_distance, self.distance)):
            if values is not None:
                np.copyto(values, np.broadcast_to(final, values.shape), where=frozen)
        iterates = None
        if self.h_x is not None:
            np.copyto(self.h_x, np.broadcast_to(self.x, self.h_x.shape), where=frozen[..., None])
            iterates = self.h_x if from_inner is None else from_inner(self.h_x)
            iterates = iterates.reshape((iterates.shape[0],) + shape + (iterates.shape[-1],))
        reshape = lambda a: None if a is None else a.reshape((a.shape[0],) + shape)  # noqa: E731
        return History(steps=self.record_steps, loss=reshape(self.h_loss), grad_norm=reshape(self.h_grad_norm),
                       gamma=reshape(self.h_gamma), ascent_ratio=reshape(self.h_ratio) if self.has_ratio else None,
                       distance=reshape(self.h_distance), x=iterates)


def _forward_fill(values):
    """Replace NaN entries along axis 0 by the last recorded value (records are NaN only past a freeze)."""
    for slot in range(1, values.shape[0]):
        missing = np.isnan(values[slot])
        values[slot, missing] = values[slot - 1, missing]


def _grouped_step(problem, guarded, x, batch, groups, eta, rho, options, t) -> Step:
    """m-sharpness: the rule's step on each of ``groups`` equal parts of ``batch``, the descents averaged."""
    parts = np.split(np.arange(problem.n_samples) if batch is None else batch, groups)
    steps = [guarded.step(x, guarded.oracle(part), eta, rho, options, t) for part in parts]
    new_x = np.mean([step.x for step in steps], axis=0)
    grad_norm = _row_norm(guarded.oracle(batch)(x))  # ‖g(x)‖ of the whole batch, for divergence
    fields = [None if steps[0][i] is None else np.mean([step[i] for step in steps], axis=0) for i in (2, 3)]
    return Step(new_x, grad_norm, *fields)


class _BaseOptimizer:
    """Per-row hyperparameters of the base optimizer, shape (B, 1), and its velocity in the units of a step.

    The velocity is kept as u = η_t v (the rule returns the step η_t γ g(y), not γ g(y)), so that with β = 0
    and w = w_d = 0 the new iterate is the rule's own, bit for bit: x⁺ = rule(x) − (the base optimizer's extra).
    Under a schedule u is rescaled by η_t/η_{t−1} before the update, as torch applies lr_t to its whole buffer.
    """

    def __init__(self, momentum, nesterov, weight_decay, decoupled_weight_decay, velocity=None, origin=None):
        self.momentum, self.nesterov, self.origin = momentum, nesterov, origin
        self.weight_decay, self.decoupled = weight_decay, decoupled_weight_decay
        self.velocity = velocity

    def take(self, keep):
        return _BaseOptimizer(*(_take(a, keep) for a in (self.momentum,)), self.nesterov,
                              *(_take(a, keep) for a in (self.weight_decay, self.decoupled)),
                              None if self.velocity is None else self.velocity[keep], self.origin)

    def update(self, x, step_x, eta_t, ratio):
        """The new iterates from x, the rule's iterates ``step_x`` = x − η_t d, η_t and η_t/η_{t−1}."""
        # Weight decay pulls towards the original coordinates' 0, which the eigenbasis may have moved.
        position = x if self.origin is None else x - self.origin
        extra = eta_t * self.weight_decay * position  # η_t w x
        if self.velocity is None:
            self.velocity = np.zeros_like(x, order="F")
        carried = (self.momentum * ratio) * self.velocity
        self.velocity = carried + (x - step_x) + extra  # u = β r u + η_t (d + w x)
        extra = extra + self.momentum * self.velocity if self.nesterov else carried + extra
        # Keep the batch-contiguous layout: row norms round differently over C-ordered rows (methods._row_norm).
        return np.asfortranarray(step_x - extra - (eta_t * self.decoupled) * position)


def _run_chunk(problem, guarded, rows, x, eta, rho, seed, steps, batch_size, divergence_factor, options, out,
               ascent_groups=1, base=None, factors=None, independent=False, noisy=False, tol=None, early_stop=False,
               kernel=None):
    """Simulate the chunk ``rows`` and write its rows of ``out``; ``kernel`` (a :class:`samtheory._compiled.Plan`)
    runs it through the compiled path instead of the NumPy one."""
    if kernel is not None:
        return kernel.run_chunk(problem, guarded, rows, x, eta, rho, seed, steps, batch_size, divergence_factor,
                                options, out, ascent_groups, base, factors, tol, early_stop)
    # Batch-contiguous (Fortran) layout: NumPy broadcasts per-row scalars and per-coordinate constants
    # several times faster over a contiguous batch axis than over a short last axis.
    x = np.asfortranarray(x)
    full_gradient = guarded.oracle(None)
    grad_norm0, threshold = _start(out, rows, full_gradient, x, divergence_factor)
    sampler = np.random.default_rng([seed, _MINIBATCH_STREAM]) if batch_size else None
    noise = np.random.default_rng([seed, _NOISE_STREAM]) if noisy else None
    second = None
    record_every = out.record_every
    alive, previous = rows, x
    grad_norm0_alive = grad_norm0
    for t in range(steps):
        batch = None if sampler is None else sampler.choice(problem.n_samples, size=batch_size, replace=False)
        if independent and batch is not None:
            second = sampler.choice(problem.n_samples, size=batch_size, replace=False)
        gradient = (full_gradient if batch is None and noise is None
                    else guarded.oracle(batch, second, noise))
        eta_t = eta if factors is None else eta * factors[t]
        if ascent_groups > 1:
            step = _grouped_step(problem, guarded, x, batch, ascent_groups, eta_t, rho, options, t)
        else:
            step = guarded.step(x, gradient, eta_t, rho, options, t)
        if record_every and t % record_every == 0:
            out.record(t // record_every, alive, problem, x, step.grad_norm, step)
        new_x = step.x
        if base is not None:
            ratio = 1.0 if (factors is None or t == 0) else factors[t] / factors[t - 1]
            new_x = base.update(x, step.x, eta_t, ratio)
        bad = ~(step.grad_norm <= threshold)
        done = bad  # rows leaving the working batch: diverged, or stopped at x_t (early_stop)
        if tol is not None:
            met = (step.grad_norm <= tol * grad_norm0_alive) & ~bad
            if met.any():
                out.converged_at[alive[met & (out.converged_at[alive] < 0)]] = t
                if early_stop:
                    out.x[alive[met]] = x[met]
                    done = bad | met
        if done.any():
            if bad.any():
                guarded.check_nan_norms(step, x, gradient, bad, t)
                _freeze(out, alive[bad], x[bad], previous[bad], t)
            keep = ~done
            grad_norm0_alive = grad_norm0_alive[keep]
            alive, threshold, eta, rho = alive[keep], threshold[keep], _take(eta, keep), _take(rho, keep)
            if base is not None:
                base = base.take(keep)
            previous, x = x[keep], np.asfortranarray(new_x[keep])
            if alive.size == 0:
                break
        else:
            previous, x = x, new_x
    _finish_chunk(problem, full_gradient, out, rows, alive, x, previous, threshold, grad_norm0_alive, tol, steps)


def _start(out, rows, full_gradient, x, divergence_factor):
    """‖g(x_0)‖ of a chunk's rows (written to ``out``) and their divergence thresholds."""
    grad_norm0 = _row_norm(full_gradient(x))
    out.grad_norm0[rows] = grad_norm0
    # Capped at the largest float, so that an infinite ‖g‖ always passes it; NaN (never passed: diverged at
    # step 0) where ‖g(x_0)‖ itself is not finite.
    threshold = np.minimum(divergence_factor * np.maximum(grad_norm0, 1.0), np.finfo(np.float64).max)
    threshold[~np.isfinite(grad_norm0)] = np.nan
    return grad_norm0, threshold


def _finish_chunk(problem, full_gradient, out, rows, alive, x, previous, threshold, grad_norm0, tol, steps):
    """After the last step: the rows ``alive`` at x_T (batch-contiguous ``x``, ``previous`` = x_{T−1}, their
    ``threshold`` and ‖g(x_0)‖) are checked, recorded and frozen where needed; then the final values of every row
    of the chunk are written to ``out``."""
    record_every = out.record_every
    out.x[alive] = x
    grad_norm = _row_norm(full_gradient(x))
    if record_every and steps % record_every == 0:
        out.record(steps // record_every, alive, problem, x, grad_norm, None)
    late = ~(grad_norm <= threshold)
    if late.any():
        _freeze(out, alive[late], x[late], previous[late], steps)
    if tol is not None:
        _converged_at_end(out, alive, grad_norm <= tol * grad_norm0, late, steps)
    # Final values of every row of the chunk, frozen ones included, in the batch-contiguous layout of the steps
    # (a row's norm then rounds the same way in a chunk of one row as in a larger one).
    finals = np.asfortranarray(out.x[rows])
    loss = _not_nan(problem._loss(finals, None))
    out.loss[rows] = loss
    out.grad_norm[rows] = _not_nan(_row_norm(full_gradient(finals)))
    if out.distance is not None:
        out.distance[rows] = _not_nan(problem.distance(finals))
    # A finite gradient under the threshold but a loss past float64's range (e.g. from a huge x0): diverged at T.
    overflowed = ~np.isfinite(loss) & (out.diverged_at[rows] < 0)
    out.diverged_at[rows[overflowed]] = steps


def _converged_at_end(out, alive, met, late, steps):
    """``converged_at = T`` for the rows ``alive`` at the end that meet the tolerance at x_T and have none yet."""
    first = met & ~late & (out.converged_at[alive] < 0)
    out.converged_at[alive[first]] = steps


def _not_nan(values):
    """A frozen (diverged) iterate is finite, but its loss or gradient may overflow, and inf − inf or a norm
    of inf entries is NaN: report such a value as inf, so no NaN reaches a result field."""
    return np.where(np.isnan(values), np.inf, values)


def _freeze(out, rows, x, previous, step):
    """Freeze diverged rows at their last iterate, or the one before where that one is no longer finite."""
    finite = np.isfinite(x).all(axis=1)
    out.x[rows] = np.where(finite[:, None], x, previous)
    out.diverged_at[rows] = step


def _take(value, keep):
    return value[keep] if np.ndim(value) else value
