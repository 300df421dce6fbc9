"""Aggregates of published Atari 100k scores, from the reference table alone.

    python -m benchmarks.scores --published efficientzero
    python -m benchmarks.scores --published all --json

Published tables give one number per game, so each method is a single "run" per game (a
``[1, G]`` score matrix for rliable) and the aggregates are point values: mean, median,
per-game IQM and optimality gap of the human-normalised scores (``reference/SOURCES.md``
explains why per-game and rliable run-level IQMs differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks import published, stats


def published_hns(method: str, games: Sequence[str] = published.GAMES) -> dict[str, float]:
    """HNS of ``method`` per game (games without a published value are left out)."""
    table = published.load_reference()
    out = {}
    for game in games:
        i = table.index(game)
        score = table.methods[method][i]
        if np.isfinite(score):
            out[game] = float(stats.human_normalized(score, table.random[i], table.human[i]))
    return out


def published_scores(method: str, games: Sequence[str]) -> np.ndarray:
    """HNS of ``method`` on ``games`` as rliable's ``[1, G]`` matrix (NaN where unpublished)."""
    hns = published_hns(method, games)
    return np.array([[hns.get(g, np.nan) for g in games]])


def published_aggregates(method: str, games: Sequence[str] = published.GAMES) -> dict[str, Any]:
    """Point aggregates of one published column over ``games``.

    Returns ``{"method", "games", "mean", "median", "iqm", "optimality_gap", "superhuman"}``
    where ``iqm`` is the per-game IQM; aggregates are None and ``note`` explains when no value
    is published.
    """
    hns = published_hns(method, games)
    if not hns:
        return {
            "method": method,
            "games": 0,
            "mean": None,
            "median": None,
            "iqm": None,
            "optimality_gap": None,
            "superhuman": 0,
            "note": f"no published values for '{method}' in the reference table (the column is "
            "empty; see benchmarks/reference/SOURCES.md for why)",
        }
    scores = np.array([list(hns.values())])  # [1, G]
    return {
        "method": method,
        "games": len(hns),
        "mean": float(stats.AGGREGATES["mean"](scores)),
        "median": float(stats.AGGREGATES["median"](scores)),
        "iqm": float(stats.iqm_per_game(scores)),
        "optimality_gap": float(stats.AGGREGATES["optimality_gap"](scores)),
        "superhuman": int(sum(v > 1.0 for v in hns.values())),
    }


def format_line(agg: dict[str, Any]) -> str:
    """One human-readable line per method."""
    if agg["games"] == 0:
        return f"{agg['method']:18s} games=0   {agg['note']}"
    return (
        f"{agg['method']:18s} games={agg['games']:<3d} mean HNS={agg['mean']:.3f}  "
        f"median HNS={agg['median']:.3f}  IQM HNS (per-game)={agg['iqm']:.3f}  "
        f"optimality gap={agg['optimality_gap']:.3f}  superhuman={agg['superhuman']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scores", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--published",
        default="all",
        choices=("all", *published.METHODS),
        help="published column to aggregate, or 'all' (default)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)

    methods = published.METHODS if args.published == "all" else (args.published,)
    results = [published_aggregates(m) for m in methods]
    if args.json:
        print(json.dumps({r["method"]: r for r in results}, indent=2))
    else:
        print(f"Published Atari 100k scores ({published.SCORES_CSV.name}); HNS = human-normalised")
        for r in results:
            print(format_line(r))
        print(f"Sources: {published.SOURCES_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
