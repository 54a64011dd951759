"""Figure registry and cache behind ``samtheory figures``.

Each figure is a script ``experiments/fig_<name>.py`` of the clone the command runs in (found from the working
directory or ``--root``: :mod:`samtheory.repository`) exposing

- ``DESCRIPTION``: one line on what the figure shows (``samtheory figures --list``);
- ``QUICK`` and ``FULL``: JSON-serializable parameter dicts (reduced grids for CI, the committed figure);
- ``FIGSIZE``: ``(width, height)`` in inches (the PNG is :func:`samtheory.plotting.pixel_size` of it);
- ``compute(params) -> dict of arrays``: all the numerics;
- ``plot(data, out_dir) -> list of paths``: reads only ``data`` (a :class:`FigureData`), writes ``<name>.png``
  and ``<name>.pdf`` with :func:`samtheory.plotting.save`;
- optionally ``ORDER`` (an integer: position in the default run and in ``--list``).

``compute`` runs once per parameter set: its arrays go to ``<cache_dir>/<name>-<quick|full>.npz`` together with
the parameters, the samtheory version and a fingerprint of the sources (the package and the script) that made
them, and a rerun with the same parameters and unchanged code replots from the cache.

Reproducibility: :func:`run_figure` computes and plots in a fresh Python process whose environment is
:func:`numeric_environment` (one thread per numeric library, the same CPU kernels on every x86-64 CPU with
AVX2), so a fresh clone on another machine makes the same bytes. The cache also records that environment and is
reused only under the same one. Every file (cache, PNG, PDF) is written to a temporary name in its folder and
renamed over the old one (:func:`replacing`), so an interrupted run leaves the previous files intact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from . import repository
from ._paths import replacing

PREFIX = "fig_"
_REQUIRED = ("DESCRIPTION", "QUICK", "FULL", "FIGSIZE", "compute", "plot")
_META = ("__params__", "__version__", "__source__", "__environment__", "__seconds__")

#: One thread for each numeric library: torch splits its reductions over its OpenMP threads (a training run's
#: last bits follow the thread count), and BLAS may split its work likewise.
_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: The AVX2 kernels of every numeric library that picks its kernels for the CPU at run time: OpenBLAS
#: (DYNAMIC_ARCH: SkylakeX, Haswell, Zen, ... round differently), torch's ATen, MKL and oneDNN. NumPy's SIMD
#: loops above AVX2 are switched off through NPY_DISABLE_CPU_FEATURES (see numeric_environment).
_AVX2_KERNELS = {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2"}
_ENVIRONMENT_KEYS = (*_THREADS, *_AVX2_KERNELS, "NPY_DISABLE_CPU_FEATURES")


def experiments_dir(root=None) -> Path:
    """The figure scripts' folder, ``experiments/`` of the clone the command runs in (or of ``root``): see
    :func:`samtheory.repository.find_root`; a one-line ``ValueError`` outside a clone."""
    return repository.experiments_dir(root)


def default_out_dir(quick: bool, root=None) -> Path:
    """``figures/`` of the clone for the committed figures; quick figures go to its git-ignored cache folder."""
    folder = repository.find_root(root)
    return folder / "experiments" / "cache" / "quick-figures" if quick else folder / "figures"


def default_cache_dir(root=None) -> Path:
    """``experiments/cache/`` of the clone."""
    return repository.find_root(root) / "experiments" / "cache"


def figure_names(directory: Path | None = None) -> list[str]:
    """Names of the figures in ``experiments/`` (``fig_<name>.py``), in their ``ORDER``."""
    modules = {name: load(name, directory) for name in _scan(directory)}
    return sorted(modules, key=lambda n: (getattr(modules[n], "ORDER", 1000), n))


def _scan(directory):
    directory = experiments_dir() if directory is None else Path(directory)
    return [p.stem[len(PREFIX):] for p in sorted(directory.glob(f"{PREFIX}*.py"))]


def load(name: str, directory: Path | None = None) -> ModuleType:
    """The module of figure ``name`` (loaded once per file), checked for the attributes the pipeline needs.

    ``name`` must be one of the registered names, those of the ``fig_<name>.py`` files in the figure folder:
    a name is looked up in that list, never turned into a path, so nothing outside the folder is imported.
    """
    directory = experiments_dir() if directory is None else Path(directory)
    known = _scan(directory)
    key = name.replace("-", "_") if isinstance(name, str) else name
    if key not in known:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise ValueError(f"unknown figure {shown}; known figures: {', '.join(known) or 'none'}")
    module = repository.load_file(directory / f"{PREFIX}{key}.py", f"{PREFIX}{key}")
    missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"figure script {PREFIX}{key}.py lacks {', '.join(missing)}")
    module.NAME = key
    return module


class FigureData(dict):
    """The cached arrays of one figure, with the ``params`` and samtheory ``version`` that made them."""

    def __init__(self, arrays, params: dict, version: str, seconds: float):
        super().__init__(arrays)
        self.params = params
        self.version = version
        self.seconds = seconds


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def cache_path(cache_dir, name: str, quick: bool) -> Path:
    return Path(cache_dir) / f"{name}-{'quick' if quick else 'full'}.npz"


@functools.lru_cache(maxsize=1)
def _package_fingerprint() -> str:
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def source_fingerprint(script: Path | None = None) -> str:
    """SHA-256 over the package's Python sources and the figure script: any code change invalidates a cache."""
    digest = hashlib.sha256(_package_fingerprint().encode())
    if script is not None:
        digest.update(Path(script).read_bytes())
    return digest.hexdigest()[:16]


def _numpy_simd() -> tuple[dict, tuple]:
    """NumPy's CPU features and the SIMD targets its loops dispatch to at run time."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    return dict(getattr(umath, "__cpu_features__", {})), tuple(getattr(umath, "__cpu_dispatch__", ()))


def numeric_environment() -> dict[str, str]:
    """The environment variables under which :func:`run_figure` computes and plots a figure.

    NumPy, OpenBLAS and torch choose their kernels for the CPU they run on, and the kernels round differently
    (measured: switching OpenBLAS from its SkylakeX to its Haswell kernels moves PEP worst cases by 5e-8
    relative; NumPy's AVX-512 loops move two pixels of a PNG while plotting; torch's AVX-512 and AVX2 kernels
    take a training run apart). Threads likewise: torch's reductions follow the thread count.
    This environment fixes one thread per library and, on an x86-64 CPU with AVX2 and FMA, the AVX2 kernels of
    every library (NumPy's dispatch targets above AVX2 off), so every such CPU runs the same instructions.
    Elsewhere (ARM, older x86) only the threads are fixed.

    Returns
    -------
    dict
        Variable name to value, set over the caller's environment.
    """
    environment = dict(_THREADS)
    features, dispatch = _numpy_simd()
    if features.get("AVX2") and features.get("FMA3"):
        environment.update(_AVX2_KERNELS)
        above_avx2 = [target for target in dispatch if target.startswith("AVX512") or target == "X86_V4"]
        if above_avx2:
            environment["NPY_DISABLE_CPU_FEATURES"] = " ".join(above_avx2)
    return environment


def _current_environment() -> str:
    """The values of the variables :func:`numeric_environment` sets, as this process has them (cache key)."""
    return _canonical({key: os.environ.get(key, "") for key in _ENVIRONMENT_KEYS})


def read_cache(path: Path, params: dict, source: str = "") -> FigureData | None:
    """The cached data if ``path`` holds arrays made with exactly ``params`` by this samtheory version, these
    sources (``source``, from :func:`source_fingerprint`) and this process's :func:`numeric_environment`
    variables."""
    from samtheory import __version__

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if (str(stored["__version__"]) != __version__ or str(stored["__params__"]) != _canonical(params)
                    or str(stored["__source__"]) != source
                    or str(stored["__environment__"]) != _current_environment()):
                return None
            arrays = {key: stored[key] for key in stored.files if key not in _META}
            seconds = float(stored["__seconds__"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):  # damaged or foreign file
        return None
    return FigureData(arrays, params, __version__, seconds)


def write_cache(path: Path, params: dict, arrays: dict, seconds: float, source: str = "") -> FigureData:
    from samtheory import __version__

    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    for key, value in arrays.items():
        if key in _META or value.dtype == object:
            raise ValueError(f"compute() returned {key!r} that cannot be cached (reserved name or object array)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as (partial,):  # an interrupted run leaves no half-written cache
        np.savez_compressed(partial, __params__=np.asarray(_canonical(params)), __version__=np.asarray(__version__),
                            __source__=np.asarray(source), __environment__=np.asarray(_current_environment()),
                            __seconds__=np.asarray(seconds), **arrays)
    return FigureData(arrays, params, __version__, seconds)


@dataclass
class FigureRun:
    name: str
    paths: list
    computed: bool
    compute_seconds: float
    plot_seconds: float


def run_figure(name: str, *, quick: bool = False, out_dir=None, cache_dir=None, force: bool = False,
               directory: Path | None = None, isolated: bool = True) -> FigureRun:
    """Compute (or read from the cache) and plot one figure; see the module docstring.

    Parameters
    ----------
    name : str
        A registered figure (:func:`figure_names`).
    quick : bool
        The script's ``QUICK`` parameters instead of ``FULL``.
    out_dir, cache_dir : path-like, optional
        Where the PNG and PDF and the cache go (defaults: :func:`default_out_dir`, :func:`default_cache_dir`).
    force : bool
        Recompute even when the cache matches.
    directory : path-like, optional
        The folder of the figure scripts (default: :func:`experiments_dir`).
    isolated : bool
        Run in a fresh Python process under :func:`numeric_environment` (unless this process already has
        it); False runs here, under whatever threads and kernels this process has.

    Returns
    -------
    FigureRun
        The paths written, whether the numbers were computed, and the compute and plot times.
    """
    from . import plotting

    module = load(name, directory)
    out_dir = default_out_dir(quick) if out_dir is None else Path(out_dir)
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if isolated:
        environment = numeric_environment()
        if any(os.environ.get(key) != value for key, value in environment.items()):
            return _run_in_worker(module, environment, quick=quick, out_dir=out_dir, cache_dir=cache_dir,
                                  force=force)
    params = json.loads(json.dumps(module.QUICK if quick else module.FULL))  # tuples -> lists, as cached
    path = cache_path(cache_dir, module.NAME, quick)
    source = source_fingerprint(module.__file__)
    data = None if force else read_cache(path, params, source)
    computed = data is None
    if computed:
        start = time.perf_counter()
        arrays = module.compute(params)
        data = write_cache(path, params, arrays, time.perf_counter() - start, source)
    start = time.perf_counter()
    with plotting.style():
        paths = module.plot(data, out_dir)
    return FigureRun(module.NAME, [Path(p) for p in paths], computed, data.seconds, time.perf_counter() - start)


#: Exceptions a worker hands back as themselves (bad input, a missing optional dependency); others become a
#: RuntimeError naming the figure, after the worker has printed their traceback.
_RERAISED = {"ValueError": ValueError, "TypeError": TypeError, "ImportError": ImportError}


def _warning_filters() -> list:
    """This process's warning filters on built-in categories (e.g. a test run's ``error::RuntimeWarning``), in
    a form the worker can install: a RuntimeWarning in a figure stays an error under the test suite."""
    import builtins
    import warnings

    def text(pattern):  # a compiled pattern, a plain string or None
        return "" if pattern is None else getattr(pattern, "pattern", pattern)

    return [[action, text(message), category.__name__, text(module), lineno]
            for action, message, category, module, lineno in warnings.filters
            if getattr(builtins, category.__name__, None) is category]


def _install_warning_filters(filters) -> None:
    import builtins
    import warnings

    for action, message, category, module, lineno in reversed(filters):  # the first filter wins: add it last
        warnings.filterwarnings(action, message, getattr(builtins, category), module, lineno)


def _run_in_worker(module, environment: dict, **options) -> FigureRun:
    """:func:`run_figure` in a fresh ``python`` under ``environment``, importing this very samtheory."""
    request = {"name": module.NAME, "directory": str(Path(module.__file__).parent), "warnings": _warning_filters(),
               **{key: str(Path(value).absolute()) if key.endswith("_dir") else value for key, value in options.items()}}
    env = {**os.environ, **environment}
    env.pop("NPY_ENABLE_CPU_FEATURES", None)  # would contradict NPY_DISABLE_CPU_FEATURES
    package_parent = str(Path(__file__).resolve().parents[1])
    code = f"import sys; sys.path.insert(0, {package_parent!r}); from samtheory.figures import _worker; _worker()"
    with tempfile.TemporaryDirectory(prefix="samtheory-figure-") as scratch:
        request["reply"] = str(Path(scratch) / "reply.json")
        with subprocess.Popen([sys.executable, "-c", code, json.dumps(request)], env=env) as worker:
            try:
                worker.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the worker too: let it remove its partial files
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                raise
        reply_path = Path(request["reply"])
        reply = json.loads(reply_path.read_text()) if reply_path.is_file() else None
    if reply is None:
        if worker.returncode == 130:
            raise KeyboardInterrupt
        raise RuntimeError(f"figure {module.NAME}: its worker process ended with status {worker.returncode} "
                           "and no result")
    if "error" in reply:
        kind, message = reply["error"]
        if kind in _RERAISED:
            raise _RERAISED[kind](message)
        raise RuntimeError(f"figure {module.NAME} failed in its worker process: {kind}: {message}")
    return FigureRun(module.NAME, [Path(p) for p in reply["paths"]], reply["computed"], reply["compute_seconds"],
                     reply["plot_seconds"])


def _worker() -> None:
    """The worker of :func:`_run_in_worker`: one :func:`run_figure` here, its outcome as JSON in a file."""
    request = json.loads(sys.argv[1])
    reply_path = Path(request.pop("reply"))
    name, directory = request.pop("name"), request.pop("directory")
    _install_warning_filters(request.pop("warnings"))
    try:
        run = run_figure(name, directory=Path(directory), isolated=False, **request)
        reply = {"paths": [str(p) for p in run.paths], "computed": run.computed,
                 "compute_seconds": run.compute_seconds, "plot_seconds": run.plot_seconds}
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it
        kind = next((k for k, t in _RERAISED.items() if isinstance(error, t)), type(error).__name__)
        if kind not in _RERAISED:
            traceback.print_exc()
        reply = {"error": [kind, str(error)]}
    reply_path.write_text(json.dumps(reply))


def progress(iterable, desc: str, **kwargs):
    """A tqdm progress bar for a long sweep inside ``compute`` (silent when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=None, **kwargs)


