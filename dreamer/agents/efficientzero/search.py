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


def _tree_bounds(tree: mctx.Tree) -> tuple[chex.Array, chex.Array]:
    """Min and max of the Q-values of every visited edge of the (unbatched) tree; ``+inf`` and
    ``-inf`` while no edge is visited."""
    all_q = tree.children_rewards + tree.children_discounts * tree.children_values  # [N, A]
    visited = tree.children_visits > 0
    lo = jnp.min(jnp.where(visited, all_q, jnp.inf))
    hi = jnp.max(jnp.where(visited, all_q, -jnp.inf))
    return lo, hi


def qtransform_by_tree_min_max(
    tree: mctx.Tree, node_index: chex.Numeric, *, value_delta_max: float = 0.01
) -> chex.Array:
    """EfficientZero's Q normalisation for pUCT: min-max over every visited edge of the tree.

    Unvisited children get the node's mean Q, ``(V(s) + sum of visited Q) / (n + 1)`` at an
    interior node and the mean of the visited Qs at the root; the result is clipped to [0, 1].
    The denominator is at least ``value_delta_max`` once the tree holds two different Q-values
    (EfficientZero's ``CMinMaxStats``). Two deliberate differences from EfficientZero's C++
    tree: it keeps running extremes of backed-up values, which coincide with the extremes of
    the current edge Qs used here; and its interior mean Q starts from the *parent's* mean Q,
    a value of another state, where this uses the node's own value V(s).
    ``tree`` is unbatched, as mctx passes it.
    """
    lo, hi = _tree_bounds(tree)
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


def mixed_value(
    raw_value: chex.Numeric, q: chex.Array, visits: chex.Array, prior: chex.Array
) -> chex.Array:
    """Danihelka et al. (2022), eq. 33: ``(v + sum_b N(b) * sum_{visited a} pi(a) q(a) /
    sum_{visited a} pi(a)) / (1 + sum_b N(b))`` for the network's value ``v`` and ``[A]``
    Q-values, visit counts and prior probabilities; ``v`` itself when nothing is visited."""
    visited = visits > 0
    prior = jnp.maximum(prior, jnp.finfo(prior.dtype).tiny)
    visited_prior = jnp.sum(jnp.where(visited, prior, 0.0))
    weighted_q = jnp.sum(jnp.where(visited, prior * q, 0.0)) / jnp.where(
        visited_prior > 0, visited_prior, 1.0
    )
    total = jnp.sum(visits)
    return (raw_value + total * weighted_q) / (total + 1)


def qtransform_gumbel_by_tree_min_max(
    tree: mctx.Tree,
    node_index: chex.Numeric,
    *,
    value_delta_max: float = 0.01,
    c_visit: float = 50.0,
    c_scale: float = 0.1,
) -> chex.Array:
    """Gumbel MuZero's completed Q, normalised over the whole tree (EfficientZero-V2).

        sigma(q_a) = (c_visit + max_b N(b)) * c_scale * clip((q_a - lo) / max(hi - lo, delta))

    ``q_a`` is the visited Q of action a, or for an unvisited action the mixed value of
    Danihelka et al. (2022), Appendix D (mctx's); ``lo``, ``hi`` are the extremes of the Q-values
    of every visited edge of the tree (the node's own completed Q-values while none is
    visited) and ``delta`` is ``value_delta_max``. The floor on the spread is what keeps a
    target near the prior when the Q-values differ by noise: normalising each node by its own
    min and max (mctx's ``qtransform_completed_by_mix_value``) stretches any gap, however
    small, to the full scale. Returns ``[A]`` for the unbatched ``tree`` mctx passes.
    """
    q = tree.qvalues(node_index)
    visits = tree.children_visits[node_index]
    prior = jax.nn.softmax(tree.children_prior_logits[node_index])
    mixed = mixed_value(tree.raw_values[node_index], q, visits, prior)
    completed = jnp.where(visits > 0, q, mixed)
    lo, hi = _tree_bounds(tree)
    none_visited = lo > hi
    lo = jnp.where(none_visited, jnp.min(completed), lo)
    hi = jnp.where(none_visited, jnp.max(completed), hi)
    normalized = jnp.clip((completed - lo) / jnp.maximum(hi - lo, value_delta_max), 0.0, 1.0)
    return (c_visit + jnp.max(visits)) * c_scale * normalized


def _qtransform(search: SearchConfig) -> Callable[..., chex.Array]:
    """The Q transform of ``search``: ``tree_min_max`` is the pUCT form for ``muzero`` and the
    completed, scaled form for ``gumbel``, both over the whole tree with the spread floored."""
    if search.qtransform == "parent_siblings":
        return mctx.qtransform_by_parent_and_siblings
    if search.qtransform == "completed_mix":
        return functools.partial(
            mctx.qtransform_completed_by_mix_value,
            maxvisit_init=search.c_visit,
            value_scale=search.c_scale,
        )
    if search.policy == "gumbel":
        return functools.partial(
            qtransform_gumbel_by_tree_min_max,
            value_delta_max=search.value_delta_max,
            c_visit=search.c_visit,
            c_scale=search.c_scale,
        )
    return functools.partial(qtransform_by_tree_min_max, value_delta_max=search.value_delta_max)


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
                qtransform=_qtransform(search),
                dirichlet_fraction=search.dirichlet_fraction * noise,
                dirichlet_alpha=search.dirichlet_alpha,
                pb_c_init=search.pb_c_init,
                pb_c_base=search.pb_c_base,
                temperature=temperature,
            )
        else:
            policy = functools.partial(
                mctx.gumbel_muzero_policy,
                qtransform=_qtransform(search),
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
    "mixed_value",
    "make_search",
    "qtransform_by_tree_min_max",
    "qtransform_gumbel_by_tree_min_max",
    "temperature_at",
]
