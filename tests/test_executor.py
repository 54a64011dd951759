"""Sweeps on an executor (issue 13, item 3): ``simulate``, ``regime_map``, ``critical_learning_rate`` and
``compare_regimes`` with ``executor=`` a ``ProcessPoolExecutor``, loky's executor or a Dask ``LocalCluster``
with 2 worker processes give results bit-identical to an in-process run.

Every comparison is exact (tolerance 0): each chunk is the same arithmetic on the same inputs in another
process, and that is the promise. The pools and the cluster start once per module and are shut down at its
end; the teardown checks that none of their processes is left behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import re
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

import samtheory as st
from samtheory import engine
from samtheory.datasets import make_least_squares, make_logistic_regression
from samtheory.stability import ClassificationRules, compare_regimes, critical_learning_rate, regime_map

ROOT = Path(__file__).resolve().parents[1]
QUADRATIC = st.Quadratic(np.geomspace(1.0, 100.0, 10), rotation=3)
LEAST_SQUARES = make_least_squares(60, 9, seed=1)
#: Few points and a short budget: the classification is the same code whatever the executor; only the
#: equality matters here.
RULES = ClassificationRules(steps=300, n_points=2, divergence_steps=200)


def _new_processes(before: set[int]) -> list[psutil.Process]:
    """Child processes started since ``before``, except multiprocessing's resource tracker (one per parent
    process, by design alive until the parent exits)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(scope="module")
def executors():
    """name -> executor: a 2-process spawn ProcessPoolExecutor (fork is unsafe next to the cluster's threads),
    a 1-process loky executor, and a 2-process Dask LocalCluster's executor. All are shut down at the end (also
    when starting one fails), and no process of theirs may remain."""
    import dask
    import loky
    from distributed import Client, LocalCluster

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(
                concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")))
            loky_pool = stack.enter_context(loky.ProcessPoolExecutor(1))
            # Start the pools' workers now, while the cluster starts: each spawned process imports samtheory.
            warm = [executor.submit(engine._available_cores) for executor in (pool, pool, loky_pool)]
            # As the README advises: without Dask's MALLOC_TRIM_THRESHOLD_ the workers run the engine ~4× faster.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = stack.enter_context(LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                                           dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            concurrent.futures.wait(warm)
            yield {"process": pool, "loky": loky_pool, "dask": client.get_executor()}
    finally:
        _, alive = psutil.wait_procs(_new_processes(before), timeout=20)
        for process in alive:  # fail, but leave nothing running
            process.kill()
        assert not alive, f"processes left behind: {alive}"


def _assert_identical(a, b, where="result"):
    """Every field, recursively, bit for bit (NaN equal to NaN); problems the same object or equal values."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for field in dataclasses.fields(a):
            _assert_identical(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_identical(u, v, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    elif isinstance(a, st.Problem):
        assert a is b, where
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, where


#: (problem, method, eta, rho, simulate's other arguments): a batch with converging, bounded and diverging rows.
SWEEPS = {
    "quadratic_eigenbasis": (QUADRATIC, "ssam", np.geomspace(1e-3, 0.05, 24)[:, None], np.geomspace(0.01, 1, 10),
                             {"steps": 300}),
    "quadratic_dense_history": (QUADRATIC, "usam", np.geomspace(1e-3, 0.03, 12)[:, None], np.array([0.0, 0.05, 0.3]),
                                {"steps": 200, "basis": "dense", "record_every": 10, "record_iterates": True,
                                 "momentum": 0.5, "schedule": "cosine:200", "chunk_size": 5}),
    "least_squares_minibatch_history": (
        LEAST_SQUARES, "sam", np.geomspace(1e-3, 1.0, 10)[:, None, None], np.array([0.0, 0.1])[:, None],
        {"steps": 150, "batch_size": 6, "seed": np.arange(3), "record_every": 25, "chunk_size": 4}),
}


@pytest.mark.parametrize("kind, case", [(kind, case) for kind in ("process", "dask") for case in sorted(SWEEPS)]
                         + [("loky", "least_squares_minibatch_history")])
def test_simulate_on_an_executor_is_bit_identical(executors, kind, case):
    problem, method, eta, rho, options = SWEEPS[case]
    reference = st.simulate(problem, method, eta, rho, **options)
    assert len(np.unique(reference.status)) >= 2, "the batch should mix statuses"
    on_executor = st.simulate(problem, method, eta, rho, executor=executors[kind], **options)
    _assert_identical(reference, on_executor)


#: Every option of simulate once, through the task path (a thread pool runs the same tasks and merge, unpickled).
OPTIONS = [
    (QUADRATIC, "ssam", {"adaptive": True, "adaptive_eta": 0.01, "truncate": True, "basis": "dense"}),
    (QUADRATIC, "susam", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3, "decoupled_weight_decay": 1e-3,
                          "schedule": "step:20:0.5", "record_every": 7, "record_iterates": True}),
    (LEAST_SQUARES, "ssam", {"ascent_groups": 2, "batch_size": 10, "seed": np.arange(4)[:, None], "record_every": 9}),
    (make_logistic_regression(50, 6, l2=1e-2, seed=2), "sam", {"batch_size": 5, "record_every": 10}),
    (st.Saddle(2.0, 1.0, 0.5), "usam", {"record_every": 5, "x0": [0.3, 0.2]}),
]


@pytest.mark.parametrize("problem, method, options", OPTIONS, ids=[f"{m}-{i}" for i, (_, m, _) in enumerate(OPTIONS)])
def test_every_option_through_the_task_path_is_bit_identical(problem, method, options):
    eta = np.geomspace(0.05, 3.0, 9) / (problem.beta or 2.0)
    reference = st.simulate(problem, method, eta, 0.05, steps=40, **options)  # diverged rows where the problem can
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        _assert_identical(reference, st.simulate(problem, method, eta, 0.05, steps=40, chunk_size=2, executor=pool,
                                                 **options))


def test_a_thread_executor_is_bit_identical_and_takes_unpicklable_rules():
    """A lambda rule cannot be pickled for a process pool but runs on threads, explicit or default."""
    sam = st.methods.resolve_method("sam").rule
    rule = lambda x, gradient, eta, rho, **options: sam(x, gradient, eta, rho, **options)  # noqa: E731
    eta, rho = np.geomspace(1e-3, 0.05, 16), 0.1
    reference = st.simulate(QUADRATIC, "sam", eta, rho, steps=100, basis="dense", backend="numpy")  # as the rule runs
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for executor in (None, pool):
            result = st.simulate(QUADRATIC, rule, eta, rho, steps=100, executor=executor, chunk_size=3)
            for field in ("x", "loss", "grad_norm", "status", "diverged_at"):
                np.testing.assert_array_equal(getattr(result, field), getattr(reference, field), strict=True)


def test_an_unpicklable_rule_or_problem_is_named(executors):
    sam = st.methods.resolve_method("sam").rule
    rule = lambda x, gradient, eta, rho, **options: sam(x, gradient, eta, rho, **options)  # noqa: E731
    with pytest.raises(ValueError, match=r"^method: the update rule '<lambda>' cannot be pickled.*ProcessPoolExecutor"):
        st.simulate(QUADRATIC, rule, 0.01, 0.1, steps=5, executor=executors["process"])
    locked = st.Quadratic([1.0, 2.0], rotation=1)
    locked.lock = threading.Lock()  # no serializer takes a lock, not even Dask's cloudpickle
    for kind in ("process", "dask"):
        with pytest.raises(ValueError, match=r"^problem Quadratic cannot be pickled"):
            st.simulate(locked, "sam", 0.01, 0.1, steps=5, basis="dense", executor=executors[kind])


def failing_rule(x, gradient, eta, rho, **options):
    """A rule that fails at once (module level: a process pool can pickle it)."""
    raise KeyError("boom")


def test_an_error_in_a_task_reaches_the_caller_named(executors):
    with pytest.raises(RuntimeError, match=r"^update rule 'failing_rule' raised KeyError at step 0: 'boom'"):
        st.simulate(QUADRATIC, failing_rule, np.full(6, 0.01), 0.1, steps=5, chunk_size=2,
                    executor=executors["process"])


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_regime_functions_on_an_executor_are_bit_identical(executors, kind):
    executor = executors[kind]
    eta, rho = np.geomspace(1e-3, 0.04, 8), np.array([0.0, 0.05, 0.5])
    _assert_identical(regime_map(QUADRATIC, "ssam", eta, rho, rules=RULES),
                      regime_map(QUADRATIC, "ssam", eta, rho, rules=RULES, executor=executor))
    for edge in ("nondivergent", "converged"):
        _assert_identical(critical_learning_rate(QUADRATIC, "sam", rho, edge=edge, rtol=1e-2, rules=RULES),
                          critical_learning_rate(QUADRATIC, "sam", rho, edge=edge, rtol=1e-2, rules=RULES,
                                                 executor=executor))


def test_compare_regimes_on_an_executor_is_bit_identical(executors):
    rows = compare_regimes(QUADRATIC, ["susam"], (0.05,), rtol=1e-2, rules=RULES)
    _assert_identical(rows, compare_regimes(QUADRATIC, ["susam"], (0.05,), rtol=1e-2, rules=RULES,
                                            executor=executors["process"]))


@pytest.mark.parametrize("bad", ["dask", 2, concurrent.futures.ProcessPoolExecutor, object()])
def test_executor_must_be_an_executor(bad):
    for call in (lambda: st.simulate(QUADRATIC, "sam", 0.01, 0.1, steps=5, executor=bad),
                 lambda: regime_map(QUADRATIC, "sam", 0.01, 0.1, rules=RULES, executor=bad),
                 lambda: critical_learning_rate(QUADRATIC, "sam", 0.1, rules=RULES, executor=bad),
                 lambda: compare_regimes(QUADRATIC, ["sam"], (0.1,), rules=RULES, executor=bad)):
        with pytest.raises(ValueError, match=r"^executor must be None or a concurrent\.futures\.Executor"):
            call()


def test_task_outputs_are_merged_generically():
    """Every array attribute of a task's outputs lands at its rows, along the axis that has them (fields added to
    the engine's outputs later travel without code changes); a raised flag stays raised."""
    rows = np.array([1, 4])
    full = engine._Outputs(5, 3, 4, 2, with_distance=True, with_iterates=True)
    part = engine._Outputs(2, 3, 4, 2, with_distance=True, with_iterates=True)
    full.new_field, part.new_field = np.full(5, -1), np.array([7, 8])  # e.g. a per-row step index
    full.new_flag, part.new_flag = False, True
    for name, value in vars(part).items():
        if isinstance(value, np.ndarray) and value.dtype == np.float64 and name != "record_steps":
            value[...] = np.arange(value.size).reshape(value.shape)
    engine._merge(full, rows, vars(part))
    np.testing.assert_array_equal(full.new_field, [-1, 7, -1, -1, 8])
    np.testing.assert_array_equal(full.x[rows], part.x)
    np.testing.assert_array_equal(full.h_x[:, rows], part.h_x)
    np.testing.assert_array_equal(full.h_loss[:, rows], part.h_loss)
    np.testing.assert_array_equal(full.record_steps, [0, 2, 4])
    assert full.new_flag is True


def test_readme_cluster_examples_run():
    """The README's "Sweeps on a cluster" examples run as written (the Slurm one is documentation only: it needs
    dask-jobqueue and a Slurm cluster)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- section: cluster -->")[1].split("<!-- end section: cluster -->")[0]
    blocks = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    runnable = [block for block in blocks if "SLURMCluster" not in block]
    assert len(runnable) >= 1 and len(blocks) > len(runnable)
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    namespace = {}
    for block in runnable:
        exec(compile(block, "README.md", "exec"), namespace)
    _, alive = psutil.wait_procs(_new_processes(before), timeout=20)
    assert not alive, f"the README's examples left processes behind: {alive}"
