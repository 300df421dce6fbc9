"""Dreaming: policy targets at imagined states, from searches inside the learned model.

For ``M`` real replayed states (observation stacks ``[M, *obs]``) the target network
imagines ``H = dream.horizon`` steps:

    s_0 = h(o),   a_j ~ softmax(p(s_j)) (temperature 1),   s_{j+1}, c_{j+1} = g(s_j, c_j, a_j)

with the value-prefix LSTM state ``c`` reset every ``model.lstm_horizon`` steps, as in
training and search. At every imagined latent ``s_1 .. s_H`` a search of
``dream.simulations`` simulations (the same mctx adapter as acting and reanalysis, rooted at
the latent: the agent's own search kind, or Gumbel MuZero with ``dream.search="gumbel"``)
gives an improved policy ``pi_j`` (mctx's ``action_weights``) and a root value ``q_j``.

Model error is controlled three ways: the horizon is at most the unroll length the dynamics
are trained to (``Config`` checks it), dreaming starts only after ``dream.start`` of the
update budget, and an imagined state gives no target when the network's own value there
and the search's value disagree,

    d_j = |v(s_j) - q_j| / (1 + |q_j|) > dream.max_disagreement,

since the search value is a k-step model-plus-value estimate: where the model's rewards and
the value head do not agree with each other, the state is off the data the model knows.

The loss replays the same actions through the *online* representation and dynamics with
their outputs under ``stop_gradient`` (no gradient reaches them from dreams) and trains only
the prediction head: ``dream.policy_weight * CE(pi_j, p(s_j))`` weighted by the kept states,
plus, when ``dream.value_weight > 0``, a value loss toward ``q_j``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

from dreamer.agents.efficientzero.config import Config
from dreamer.agents.efficientzero.search import make_search
from dreamer.agents.efficientzero.transforms import scalar_to_support


@chex.dataclass(frozen=True)
class DreamTargets:
    """Targets at ``N`` imagined rollouts of ``H`` steps."""

    actions: chex.Array  # [N, H] int32, a_0 .. a_{H-1}
    policies: chex.Array  # [N, H, A] improved policy at s_1 .. s_H
    values: chex.Array  # [N, H] search root value at s_1 .. s_H
    weights: chex.Array  # [N, H] 1 where the state gives a target, else 0
    disagreement: chex.Array  # [N, H] d_j


@dataclasses.dataclass(frozen=True)
class Dreaming:
    """``imagine(target_variables, rng, obs) -> DreamTargets`` and
    ``loss(apply, variables, obs, targets) -> (loss [N], metrics)``; ``starts`` real states
    per update (0 when dreaming is off)."""

    imagine: Callable[..., DreamTargets]
    loss: Callable[..., tuple[chex.Array, dict]]
    starts: int


def dream_starts(cfg: Config) -> int:
    """Real states each update imagines from: ``ceil(ratio * batch_size / horizon)``."""
    if cfg.dream.ratio <= 0:
        return 0
    return math.ceil(cfg.dream.ratio * cfg.replay.batch_size / cfg.dream.horizon)


def make_dreaming(cfg: Config, net: Any) -> Dreaming:
    d, model = cfg.dream, cfg.model
    search_cfg = dataclasses.replace(cfg.search, policy="gumbel", num_simulations=d.simulations)
    search = make_search(net, model, search_cfg, discount=cfg.replay.discount)

    def unroll(variables: Any, latent: chex.Array, actions_or_key: Any, sample: bool):
        """Latents ``s_1..s_H`` ``[H, N, ...]`` and the actions taken ``[N, H]``."""
        n = latent.shape[0]
        lstm = net.apply(variables, n, method="initial_lstm")
        latents, actions = [], []
        for j in range(d.horizon):
            if sample:
                key = jax.random.fold_in(actions_or_key, j)
                logits, _ = net.apply(variables, latent, method="predict")
                action = jax.random.categorical(key, logits.astype(jnp.float32)).astype(jnp.int32)
            else:
                action = actions_or_key[:, j]
            # The value prefix is not used here: the LSTM state is only carried along (the
            # next latent does not depend on it), so it needs no reset at lstm_horizon.
            latent, lstm, _ = net.apply(variables, latent, lstm, action, method="dynamics")
            latents.append(latent)
            actions.append(action)
        return latents, jnp.stack(actions, axis=1)

    def imagine(variables: Any, rng: chex.PRNGKey, obs: chex.Array) -> DreamTargets:
        act_key, search_key = jax.random.split(rng)
        latent = net.apply(variables, obs, method="represent")
        latents, actions = unroll(variables, latent, act_key, sample=True)
        n, h = actions.shape
        flat = jnp.concatenate(latents, axis=0)  # [H * N, ...], step-major
        out = search.at_latent(variables, search_key, flat, temperature=1.0, noise=1.0)
        to_nh = lambda x: jnp.swapaxes(x.reshape((h, n) + x.shape[1:]), 0, 1)  # noqa: E731
        values, predicted = to_nh(out.root_value), to_nh(out.predicted_value)
        disagreement = jnp.abs(predicted - values) / (1.0 + jnp.abs(values))
        return DreamTargets(
            actions=actions,
            policies=to_nh(out.policy),
            values=values,
            weights=(disagreement <= d.max_disagreement).astype(jnp.float32),
            disagreement=disagreement,
        )

    def loss(apply: Callable[..., Any], variables: Any, obs: chex.Array, tgt: DreamTargets):
        """Per-rollout dream loss ``[N]``. ``apply(method, *args)`` runs the online network
        with gradients; ``variables`` are the online variables, used without gradients for
        the representation and dynamics."""
        fixed = jax.lax.stop_gradient(variables)
        latent = net.apply(fixed, obs, method="represent")
        latents, _ = unroll(fixed, latent, tgt.actions, sample=False)
        predicted = [apply("predict", jax.lax.stop_gradient(s)) for s in latents]
        policy_logits = jnp.stack([p for p, _ in predicted], axis=1)  # [N, H, A]
        w = tgt.weights
        policy_ce = -jnp.sum(tgt.policies * jax.nn.log_softmax(policy_logits, -1), -1)
        policy_loss = (policy_ce * w).sum(1)
        per_rollout = d.policy_weight * policy_loss
        if d.value_weight > 0:
            value_logits = jnp.stack([v for _, v in predicted], axis=1)  # [N, H, bins]
            v_target = scalar_to_support(tgt.values, model.value_support)
            value_ce = -jnp.sum(v_target * jax.nn.log_softmax(value_logits, -1), -1)
            per_rollout = per_rollout + d.value_weight * (value_ce * w).sum(1)
        metrics = {
            "losses/dream_policy": policy_loss.mean(),
            "charts/dream_kept": w.mean(),
            "charts/dream_disagreement": tgt.disagreement.mean(),
        }
        return per_rollout, metrics

    return Dreaming(imagine=imagine, loss=loss, starts=dream_starts(cfg))


def dream_metric_names() -> tuple[str, ...]:
    """The dream metrics the learner reports (zero while an update does not dream)."""
    return (
        "losses/dream_policy",
        "charts/dream_kept",
        "charts/dream_disagreement",
        "charts/dream_active",
    )


__all__ = [
    "DreamTargets",
    "Dreaming",
    "dream_metric_names",
    "dream_starts",
    "make_dreaming",
]
