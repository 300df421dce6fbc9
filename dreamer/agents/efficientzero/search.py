"""The mctx adapter: root and recurrent functions over the learned model, and the policies.

The tree's embedding carries what EfficientZero's C++ tree keeps per node: the latent, the
value-prefix LSTM state, the node's own value prefix and its depth. Inside ``recurrent_fn``
the predicted value prefix becomes a per-step reward,

    r(s, a) = P(child) - P(s)      with P(s) taken as 0 when depth(s) % lstm_horizon == 0,

and the LSTM state of a child at depth ``d`` is reset to zero when ``d % lstm_horizon == 0``,
exactly as in training (``dreamer.losses``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import mctx

from dreamer.agents.efficientzero.config import ModelConfig, SearchConfig
from dreamer.agents.efficientzero.transforms import support_to_scalar

Variables = Any  # flax variables {"params": ..., "batch_stats": ...}


@chex.dataclass(frozen=True)
class Embedding:
    """Per-node state of the search tree (batched ``[B, ...]``)."""

    latent: chex.Array  # [B, *latent_shape]
    lstm_c: chex.Array  # [B, lstm_hidden]
    lstm_h: chex.Array  # [B, lstm_hidden]
    prefix: chex.Array  # [B] value prefix of this node
    depth: chex.Array  # [B] int32, 0 at the root


@chex.dataclass(frozen=True)
class SearchOutput:
    """What acting and reanalysis need from one batched search."""

    action: chex.Array  # [B] int32 chosen action
    policy: chex.Array  # [B, A] search policy (visit distribution / Gumbel improved policy)
    root_value: chex.Array  # [B] value estimate of the root after search
    predicted_value: chex.Array  # [B] the network's value of the root before search


def qtransform_by_tree_min_max(
    tree: mctx.Tree, node_index: chex.Numeric, *, value_delta_max: float = 0.01
) -> chex.Array:
    """EfficientZero's Q normalisation: min-max over every visited edge of the whole tree.

    Unvisited children get the parent's mean Q (as EfficientZero's tree); the result is
    clipped to [0, 1]. The denominator is at least ``value_delta_max`` once the tree holds
    two different Q-values. (EfficientZero keeps running extremes of backed-up values; the
    extremes of the current Q-values used here coincide with them at every visited edge.)
    ``tree`` is unbatched, as mctx passes it.
    """
    all_q = tree.children_rewards + tree.children_discounts * tree.children_values  # [N, A]
    visited_all = tree.children_visits > 0
    lo = jnp.min(jnp.where(visited_all, all_q, jnp.inf))
    hi = jnp.max(jnp.where(visited_all, all_q, -jnp.inf))
    q = tree.qvalues(node_index)
    visits = tree.children_visits[node_index]
    visited = visits > 0
    q_sum = jnp.sum(jnp.where(visited, q, 0.0))
    n = jnp.sum(visited)
    is_root = node_index == tree.ROOT_INDEX
    mean_q = jnp.where(
        is_root,
        q_sum / jnp.maximum(n, 1),
        (tree.node_values[node_index] + q_sum) / (n + 1),
    )
    score = jnp.where(visited, q, mean_q)
    delta = hi - lo
    normalized = jnp.where(delta > 0, (score - lo) / jnp.maximum(delta, value_delta_max), score)
    return jnp.clip(normalized, 0.0, 1.0)


def _qtransform(name: str) -> Callable[..., chex.Array]:
    return {
        "tree_min_max": qtransform_by_tree_min_max,
        "parent_siblings": mctx.qtransform_by_parent_and_siblings,
        "completed_mix": mctx.qtransform_completed_by_mix_value,
    }[name]


def mix_prior(logits: chex.Array, prior_mix: float) -> chex.Array:
    """Logits of ``(1 - prior_mix) * softmax(logits) + prior_mix / A`` (identity at 0)."""
    if prior_mix == 0:
        return logits
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.log((1.0 - prior_mix) * probs + prior_mix / logits.shape[-1])


def make_model_fns(net: Any, model: ModelConfig, discount: float, prior_mix: float = 0.0):
    """``(root_fn, recurrent_fn)`` for mctx over the network in inference mode; the prior is
    mixed with the uniform distribution by ``prior_mix`` (``mix_prior``)."""

    def root_fn(variables: Variables, obs: chex.Array) -> mctx.RootFnOutput:
        return latent_root_fn(variables, net.apply(variables, obs, method="represent"))

    def latent_root_fn(variables: Variables, latent: chex.Array) -> mctx.RootFnOutput:
        """A root at a latent state (an encoded observation, or an imagined state)."""
        policy_logits, value_logits = net.apply(variables, latent, method="predict")
        batch = latent.shape[0]
        c, h = net.apply(variables, batch, method="initial_lstm")
        emb = Embedding(
            latent=latent,
            lstm_c=c,
            lstm_h=h,
            prefix=jnp.zeros(batch),
            depth=jnp.zeros(batch, jnp.int32),
        )
        value = support_to_scalar(value_logits, model.value_support)
        prior = mix_prior(policy_logits, prior_mix)
        return mctx.RootFnOutput(prior_logits=prior, value=value, embedding=emb)

    def recurrent_fn(
        variables: Variables, rng: chex.PRNGKey, action: chex.Array, emb: Embedding
    ) -> tuple[mctx.RecurrentFnOutput, Embedding]:
        del rng
        latent, (c, h), prefix_logits = net.apply(
            variables, emb.latent, (emb.lstm_c, emb.lstm_h), action, method="dynamics"
        )
        policy_logits, value_logits = net.apply(variables, latent, method="predict")
        prefix = support_to_scalar(prefix_logits, model.reward_support)
        parent_prefix = jnp.where(emb.depth % model.lstm_horizon == 0, 0.0, emb.prefix)
        depth = emb.depth + 1
        reset = (depth % model.lstm_horizon == 0)[:, None]
        out = mctx.RecurrentFnOutput(
            reward=prefix - parent_prefix,
            discount=jnp.full_like(prefix, discount),
            prior_logits=mix_prior(policy_logits, prior_mix),
            value=support_to_scalar(value_logits, model.value_support),
        )
        nxt = Embedding(
            latent=latent,
            lstm_c=jnp.where(reset, 0.0, c),
            lstm_h=jnp.where(reset, 0.0, h),
            prefix=prefix,
            depth=depth,
        )
        return out, nxt

    root_fn.at_latent = latent_root_fn
    return root_fn, recurrent_fn


def make_search(
    net: Any,
    model: ModelConfig,
    search: SearchConfig,
    *,
    discount: float,
    num_simulations: int | None = None,
) -> Callable[..., SearchOutput]:
    """Build ``search(variables, rng, obs, *, temperature, noise, invalid_actions=None)``.

    ``search.at_latent(variables, rng, latent, *, temperature, noise)`` runs the same search
    from latent roots ``[B, *latent_shape]`` instead of observations (dreaming).
    ``temperature`` (scalar) sharpens the visit distribution the action is drawn from (0 is
    greedy); ``noise`` (scalar in [0, 1]) scales exploration noise: the Dirichlet fraction for
    pUCT, the Gumbel scale for Gumbel MuZero. Both may be traced values. ``invalid_actions``
    is ``[B, A]`` bool (True = not allowed) or None. Pure and jittable; the caller jits.
    """
    root_fn, recurrent_fn = make_model_fns(net, model, discount, search.prior_mix)
    sims = num_simulations or search.num_simulations

    def from_root(
        variables: Variables,
        rng: chex.PRNGKey,
        root: mctx.RootFnOutput,
        temperature: chex.Numeric,
        noise: chex.Numeric,
        invalid_actions: chex.Array | None,
    ) -> SearchOutput:
        if search.policy == "muzero":
            policy = functools.partial(
                mctx.muzero_policy,
                qtransform=_qtransform(search.qtransform),
                dirichlet_fraction=search.dirichlet_fraction * noise,
                dirichlet_alpha=search.dirichlet_alpha,
                pb_c_init=search.pb_c_init,
                pb_c_base=search.pb_c_base,
                temperature=temperature,
            )
        else:  # Gumbel needs completed Q-values: tree_min_max maps to completed_mix
            name = "completed_mix" if search.qtransform == "tree_min_max" else search.qtransform
            policy = functools.partial(
                mctx.gumbel_muzero_policy,
                qtransform=_qtransform(name),
                max_num_considered_actions=search.max_num_considered_actions,
                gumbel_scale=search.gumbel_scale * noise,
            )
        out = policy(variables, rng, root, recurrent_fn, sims, invalid_actions=invalid_actions)
        return SearchOutput(
            action=out.action.astype(jnp.int32),
            policy=out.action_weights,
            root_value=out.search_tree.summary().value,
            predicted_value=root.value,
        )

    def run(
        variables: Variables,
        rng: chex.PRNGKey,
        obs: chex.Array,
        *,
        temperature: chex.Numeric,
        noise: chex.Numeric,
        invalid_actions: chex.Array | None = None,
    ) -> SearchOutput:
        root = root_fn(variables, obs)
        return from_root(variables, rng, root, temperature, noise, invalid_actions)

    def at_latent(
        variables: Variables,
        rng: chex.PRNGKey,
        latent: chex.Array,
        *,
        temperature: chex.Numeric,
        noise: chex.Numeric,
    ) -> SearchOutput:
        root = root_fn.at_latent(variables, latent)
        return from_root(variables, rng, root, temperature, noise, None)

    run.at_latent = at_latent
    return run


def temperature_at(search: SearchConfig, progress: float) -> float:
    """Visit-count temperature at ``progress`` = env steps / budget (EfficientZero schedule)."""
    index = sum(progress >= m for m in search.temperature_milestones)
    return search.temperatures[index]


__all__ = [
    "Embedding",
    "SearchOutput",
    "make_model_fns",
    "mix_prior",
    "make_search",
    "qtransform_by_tree_min_max",
    "temperature_at",
]
