"""Published Atari 100k scores: the reference table, game names and ALE ids.

The table (``reference/atari100k_scores.csv``) holds, for each of the 26 Atari 100k games,
the random and human reference scores and the published raw scores of several methods after
100k agent steps. ``reference/SOURCES.md`` says where every column comes from. Both files are
copies kept inside the package, so nothing here reads outside it at run time.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from pathlib import Path

import numpy as np

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
SCORES_CSV = REFERENCE_DIR / "atari100k_scores.csv"
SOURCES_MD = REFERENCE_DIR / "SOURCES.md"

METHODS = ("efficientzero", "efficient_zero_v2", "bbf", "spr", "der", "dreamerv3", "muzero")
"""Published methods (columns of the table), in the table's order."""

GAMES = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
    "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
    "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "RoadRunner", "Seaquest", "UpNDown",
)  # fmt: skip
"""The 26 games of the Atari 100k benchmark, in the conventional (alphabetical) order."""


@dataclasses.dataclass(frozen=True)
class ReferenceTable:
    """The published table, one entry per game in ``GAMES`` order."""

    games: tuple[str, ...]
    """Game names, ``[G]``."""
    random: np.ndarray
    """Random-policy reference scores, ``[G]``."""
    human: np.ndarray
    """Human reference scores, ``[G]``."""
    methods: dict[str, np.ndarray]
    """Published raw score per method, ``[G]`` each; NaN where the table has no value."""

    def index(self, game: str) -> int:
        """Position of ``game`` (canonical name) in the table."""
        return self.games.index(game)


@functools.cache
def load_reference(path: str | Path = SCORES_CSV) -> ReferenceTable:
    """Reads the reference CSV; empty cells become NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    games = tuple(r["game"] for r in rows)
    if games != GAMES:
        raise ValueError(f"{path}: expected the 26 Atari 100k games in order, got {games}")

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r[name].strip() else np.nan for r in rows])

    methods = {m: column(m) for m in METHODS}
    return ReferenceTable(games, column("random"), column("human"), methods)


def ale_id(game: str) -> str:
    """gymnasium id of an Atari 100k game: ``Pong`` -> ``ALE/Pong-v5``."""
    return f"ALE/{canonical_game(game)}-v5"


def game_from_ale_id(env_id: str) -> str:
    """Inverse of ``ale_id``: ``ALE/Pong-v5`` -> ``Pong``."""
    if not (env_id.startswith("ALE/") and env_id.endswith("-v5")):
        raise ValueError(f"{env_id!r} is not an ALE v5 id such as 'ALE/Pong-v5'")
    return canonical_game(env_id[len("ALE/") : -len("-v5")])


def canonical_game(name: str) -> str:
    """Canonical game name from any capitalisation, or from an ALE id (``alE/pong-v5``)."""
    key = name.strip()
    if key.upper().startswith("ALE/") and key.lower().endswith("-v5"):
        key = key[4:-3]
    by_lower = {g.lower(): g for g in GAMES}
    try:
        return by_lower[key.lower()]
    except KeyError:
        raise ValueError(
            f"unknown Atari 100k game {name!r}; choose from: {', '.join(GAMES)}"
        ) from None


def parse_games(spec: str) -> tuple[str, ...]:
    """``all`` or a comma-separated list of names / ALE ids -> canonical names, table order."""
    if spec.strip().lower() == "all":
        return GAMES
    wanted = {canonical_game(part) for part in spec.split(",") if part.strip()}
    if not wanted:
        raise ValueError("no games given; use 'all' or names such as 'Pong,Breakout'")
    return tuple(g for g in GAMES if g in wanted)
