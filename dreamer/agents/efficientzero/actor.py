"""Batched action selection for N environments by search over the learned model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import numpy as np

from dreamer.agents.efficientzero.config import Config
from dreamer.agents.efficientzero.search import SearchOutput, make_search


def make_actor(cfg: Config, net: Any) -> Callable[..., SearchOutput]:
    """Jitted ``act(variables, rng, obs [N, ...], temperature, noise) -> SearchOutput``.

    ``temperature`` follows ``search.temperatures`` while training and is 0 (greedy) in
    evaluation; ``noise`` is 1 while training (Dirichlet / Gumbel exploration) and 0 in
    evaluation. Both are traced, so one compilation serves training and evaluation.
    """
    search = make_search(net, cfg.model, cfg.search, discount=cfg.replay.discount)

    def act(
        variables: Any, rng: chex.PRNGKey, obs: chex.Array, temperature: float, noise: float
    ) -> SearchOutput:
        return search(variables, rng, obs, temperature=temperature, noise=noise)

    return jax.jit(act)


def search_policy(
    act: Callable[..., SearchOutput],
    variables: Any,
    rng: chex.PRNGKey,
    *,
    temperature: float,
    noise: float,
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> actions`` by the search at a fixed ``temperature`` and ``noise``."""
    state = {"rng": rng}

    def policy(obs: np.ndarray) -> np.ndarray:
        state["rng"], sub = jax.random.split(state["rng"])
        return np.asarray(act(variables, sub, obs, temperature, noise).action)

    return policy


def greedy_policy(
    act: Callable[..., SearchOutput], variables: Any, rng: chex.PRNGKey
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> actions`` for evaluation: greedy search (temperature 0, no noise)."""
    return search_policy(act, variables, rng, temperature=0.0, noise=0.0)
