"""Registry of presets: ``get(algo, name)`` returns a frozen config.

Each preset module exports ``PRESETS = {algo: {name: function}}``; presets are plain Python
functions so a reproduction script can call one and change a field with
``dataclasses.replace``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from dreamer.core.configtree import ConfigError

_MODULES = ("experiments.efficientzero", "experiments.baselines")


def registry() -> dict[str, dict[str, Callable[[], Any]]]:
    out: dict[str, dict[str, Callable[[], Any]]] = {}
    for name in _MODULES:
        module = importlib.import_module(name)
        for algo, presets in module.PRESETS.items():
            out.setdefault(algo, {}).update(presets)
    return out


def get(algo: str, name: str) -> Any:
    presets = registry()
    if algo not in presets:
        raise ConfigError(f"no presets for algorithm {algo!r}; known: {sorted(presets)}.")
    if name not in presets[algo]:
        close = difflib.get_close_matches(name, presets[algo], n=3)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown preset {name!r} for --algo {algo}.{hint} Available: {sorted(presets[algo])}."
        )
    return presets[algo][name]()
