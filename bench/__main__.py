"""``python -m bench [--only submit,dispatch,...] [--out PATH]`` (``make bench``).

A full run writes ``bench/results/latest.json``; a run of some workloads writes
``bench/results/partial.json`` and a quick run ``bench/results/quick.json``, so that neither
replaces the last full run's figures.

``BENCH_QUICK=1`` runs every workload briefly, once; see ``bench.config`` for the other
``BENCH_*`` settings.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.config import from_environment
from bench.procs import ROOT
from bench.runner import ALL, run_benchmark

RESULTS = ROOT / "bench" / "results"


def default_out(only: set[str] | None, *, quick: bool) -> Path:
    """Where the result document goes when ``--out`` is not given."""
    if quick:
        return RESULTS / "quick.json"
    return RESULTS / ("partial.json" if only else "latest.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated workloads among {', '.join(ALL)}")
    parser.add_argument(
        "--out",
        type=Path,
        help=(
            "where the result document goes (default: latest.json; partial.json with --only,"
            " quick.json with BENCH_QUICK=1)"
        ),
    )
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",")} if args.only else None
    if only and not only <= set(ALL):
        parser.error(f"unknown workloads: {', '.join(sorted(only - set(ALL)))}")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    config = from_environment()
    out = args.out if args.out is not None else default_out(only, quick=config.quick)
    return run_benchmark(config, out=out, only=only)


if __name__ == "__main__":
    raise SystemExit(main())
