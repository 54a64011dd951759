"""samtheory figures: regenerate the theory figures (experiments/fig_<name>.py of the clone) as PNG and PDF."""

from __future__ import annotations

HELP = "regenerate the theory figures (PNG + PDF) from experiments/, reusing cached numbers when unchanged"


def add_arguments(parser):
    parser.add_argument("names", nargs="*", metavar="NAME", help="figures to make (default: all; see --list)")
    parser.add_argument("--quick", action="store_true",
                        help="reduced grids (CI smoke test); written to experiments/cache/quick-figures/ unless --out")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: the repository's figures/); its cache goes to DIR/cache/")
    parser.add_argument("--force", action="store_true", help="recompute even when a cache with these parameters exists")
    parser.add_argument("--list", action="store_true", help="list the figures with one line each and exit")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="the samtheory clone whose experiments/ and figures/ are used (default: the one the "
                             "working directory is in)")


def run(args) -> int:
    import sys
    from pathlib import Path

    from tqdm.auto import tqdm

    from .. import figures as _figures
    from .._paths import check_output_folder

    directory = _figures.experiments_dir(args.root)
    names = _figures.figure_names(directory)
    if args.list:
        width = max(map(len, names), default=0)
        for name in names:
            print(f"{name.ljust(width)}  {_figures.load(name, directory).DESCRIPTION}")
        return 0
    selected = [name.replace("-", "_") for name in args.names] or names
    for name in selected:
        _figures.load(name, directory)  # an unknown name fails before anything runs
    # Every output path is checked before any figure is computed, so that a bad one loses no work.
    flag = "--out" if args.out is not None else "the figure folder"
    out_dir = Path(args.out) if args.out is not None else _figures.default_out_dir(args.quick, args.root)
    cache_dir = out_dir / "cache" if args.out is not None else _figures.default_cache_dir(args.root)
    check_output_folder(flag, out_dir, folders=["cache"] if args.out is not None else [],
                        files=[f"{name}.{suffix}" for name in selected for suffix in ("png", "pdf")])
    check_output_folder(f"{flag} (its cache)", cache_dir,
                        files=[_figures.cache_path(cache_dir, name, args.quick).name for name in selected])
    bar = tqdm(selected, desc="figures", unit="figure", disable=None, file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        result = _figures.run_figure(name, quick=args.quick, out_dir=out_dir, cache_dir=cache_dir, force=args.force,
                                     directory=directory)
        origin = f"computed in {result.compute_seconds:.1f} s" if result.computed else \
            f"cached (computed in {result.compute_seconds:.1f} s)"
        bar.write(f"{name}: {', '.join(str(p) for p in result.paths)}  [{origin}, plotted in "
                  f"{result.plot_seconds:.1f} s]", file=sys.stdout)
    return 0
