"""The algorithms the command line can run, each behind the same run-folder contract.

An algorithm module provides a frozen config class with ``env`` and ``run`` sections and::

    train(cfg, run_dir, *, resume=False) -> dict   # the summary.json record
    evaluate(cfg, run_dir, *, episodes, video=None, stochastic=False) -> list[float]
        # greedy returns from the newest checkpoint; ``video`` (``evaluation.Video``) records
        # the episodes; ``stochastic`` plays the policy as it acts in training at that
        # checkpoint instead (its exploration on), which tells a policy that cannot act
        # greedily (a loop, a tie) from one that has learned nothing
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from dreamer.core.configtree import ConfigError


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    config_cls: type
    train: Callable[..., dict[str, Any]]
    evaluate: Callable[..., list[float]]


# name -> (module, config class name)
_REGISTRY = {
    "efficientzero": ("dreamer.loops.efficientzero", "Config"),
    "dqn": ("dreamer.loops.dqn", "DQNConfig"),
    "ppo": ("dreamer.loops.ppo", "PPOConfig"),
}

NAMES = tuple(_REGISTRY)


def get(name: str) -> Algorithm:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown algorithm {name!r}: choose one of {list(_REGISTRY)}.")
    module_name, cls_name = _REGISTRY[name]
    module = importlib.import_module(module_name)
    return Algorithm(name, getattr(module, cls_name), module.train, module.evaluate)
