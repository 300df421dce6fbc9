"""PPO, functional core: GAE, the clipped losses and the jitted per-rollout update.

Proximal policy optimisation (Schulman et al. 2017) with generalised advantage estimation
(Schulman et al. 2016). One call of ``update`` takes a whole rollout ``[T, N]``, computes
advantages and returns, and runs ``epochs`` passes of shuffled minibatch Adam steps, all under
one ``jit``; the shell (``ppo.py``) steps the environments with ``act``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from dreamer.agents.baselines.ppo.config import PPOConfig
from dreamer.agents.baselines.ppo.networks import ActorCritic


@flax.struct.dataclass
class LearnerState:
    """Everything an update changes."""

    params: Any
    """Actor-critic parameters."""
    opt_state: Any
    """Adam moments (the learning rate is applied outside, from the schedule)."""
    step: chex.Array
    """Rollouts learned from so far (int32 scalar); drives the annealing schedules."""
    rng: chex.PRNGKey
    """Key for minibatch shuffling."""


@flax.struct.dataclass
class Rollout:
    """``T`` steps of ``N`` environments, as collected by the behaviour policy."""

    obs: chex.Array
    """``[T, N, *obs_shape]`` observations o_t."""
    action: chex.Array
    """``[T, N]`` actions a_t."""
    logp: chex.Array
    """``[T, N]`` log pi_old(a_t | o_t)."""
    value: chex.Array
    """``[T, N]`` V_old(o_t)."""
    reward: chex.Array
    """``[T, N]`` rewards r_t (plus gamma V(final obs) where a time limit cut the episode)."""
    done: chex.Array
    """``[T, N]`` 1.0 where the episode ended after step t (terminated or truncated)."""
    last_obs: chex.Array
    """``[N, *obs_shape]`` observations after the last step (bootstrap for GAE)."""


def gae(r_t: chex.Array, discount_t: chex.Array, lambda_: float, values: chex.Array) -> chex.Array:
    """Generalised advantage estimates of one sequence (Schulman et al. 2016, eq. 16).

    ``A_t = delta_t + discount_t lambda A_{t+1}``, ``delta_t = r_t + discount_t v_{t+1} - v_t``.

    Args:
      r_t, discount_t: ``[T]`` rewards and discounts (0 where the episode ended).
      lambda_: GAE lambda.
      values: ``[T + 1]`` state values, the last one the bootstrap.

    Returns:
      ``[T]`` advantages.
    """
    chex.assert_rank([r_t, discount_t, values], [1, 1, 1])
    chex.assert_equal_shape_prefix([r_t, discount_t, values[:-1]], 1)
    deltas = r_t + discount_t * values[1:] - values[:-1]

    def backward(advantage: chex.Array, inputs: tuple) -> tuple[chex.Array, chex.Array]:
        delta, discount = inputs
        advantage = delta + discount * lambda_ * advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(deltas[0]), (deltas, discount_t), reverse=True
    )
    return advantages


batched_gae = jax.vmap(gae, in_axes=(1, 1, None, 1), out_axes=1)
"""``gae`` over ``[T, N]`` rewards/discounts and ``[T + 1, N]`` values."""


def clipped_policy_loss(
    logp: chex.Array, logp_old: chex.Array, advantage: chex.Array, clip: chex.Numeric
) -> chex.Array:
    """``-E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)]`` with ``rho = pi / pi_old`` (eq. 7)."""
    chex.assert_equal_shape([logp, logp_old, advantage])
    ratio = jnp.exp(logp - logp_old)
    clipped = jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
    return -jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))


def value_loss(
    value: chex.Array,
    value_old: chex.Array,
    returns: chex.Array,
    clip: chex.Numeric,
    clip_value: bool,
) -> chex.Array:
    """``0.5 E[(V - R)^2]``; with ``clip_value`` the larger of that and the error of
    ``V_old + clip(V - V_old, -eps, eps)`` (the PPO2 value clip)."""
    chex.assert_equal_shape([value, value_old, returns])
    squared = (value - returns) ** 2
    if clip_value:
        clipped = value_old + jnp.clip(value - value_old, -clip, clip)
        squared = jnp.maximum(squared, (clipped - returns) ** 2)
    return 0.5 * jnp.mean(squared)


def normalize(x: chex.Array) -> chex.Array:
    return (x - x.mean()) / (x.std() + 1e-8)


def remaining_fraction(rollouts: chex.Numeric, rollout_size: int, total_env_steps: int):
    """1 - (env steps after ``rollouts`` rollouts) / budget, floored at 0 (SB3's progress)."""
    return jnp.maximum(0.0, 1.0 - rollouts * rollout_size / total_env_steps)


@dataclasses.dataclass(frozen=True)
class Learner:
    """Jitted functions of a PPO learner (see ``make_learner``)."""

    init: Callable[[chex.PRNGKey, chex.Array], LearnerState]
    update: Callable[[LearnerState, Rollout], tuple[LearnerState, dict[str, chex.Array]]]
    act: Callable[[Any, chex.Array, chex.PRNGKey], tuple[chex.Array, ...]]
    greedy: Callable[[Any, chex.Array], chex.Array]
    value: Callable[[Any, chex.Array], chex.Array]


def make_learner(cfg: PPOConfig, network: ActorCritic) -> Learner:
    """Close over the static settings and return the jitted learner functions."""
    p = cfg.ppo
    adam = optax.scale_by_adam(eps=p.adam_eps)
    optimizer = (
        optax.chain(optax.clip_by_global_norm(p.max_grad_norm), adam)
        if p.max_grad_norm > 0
        else adam
    )

    def init(rng: chex.PRNGKey, example_obs: chex.Array) -> LearnerState:
        init_rng, rng = jax.random.split(rng)
        params = network.init(init_rng, example_obs)
        return LearnerState(
            params=params,
            opt_state=optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            rng=rng,
        )

    def loss_fn(params: Any, batch: dict[str, chex.Array], clip: chex.Numeric):
        logits, value = network.apply(params, batch["obs"])
        log_probs = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(log_probs, batch["action"][:, None], axis=-1)[:, 0]
        advantage = batch["advantage"]
        if p.normalize_advantage:
            advantage = normalize(advantage)
        policy = clipped_policy_loss(logp, batch["logp"], advantage, clip)
        values = value_loss(value, batch["value"], batch["return"], clip, p.clip_value)
        entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
        loss = policy + p.vf_coef * values - p.ent_coef * entropy
        log_ratio = logp - batch["logp"]
        metrics = {
            "losses/policy": policy,
            "losses/value": values,
            "losses/entropy": entropy,
            "losses/approx_kl": jnp.mean(jnp.exp(log_ratio) - 1.0 - log_ratio),
            "losses/clipfrac": jnp.mean(jnp.abs(jnp.exp(log_ratio) - 1.0) > clip),
        }
        return loss, metrics

    def update(state: LearnerState, rollout: Rollout) -> tuple[LearnerState, dict]:
        rollouts = state.step + 1
        fraction = remaining_fraction(rollouts, cfg.rollout_size, cfg.run.env_steps)
        lr = p.lr * fraction if p.anneal_lr else jnp.asarray(p.lr)
        clip = p.clip * fraction if p.anneal_clip else jnp.asarray(p.clip)

        _, last_value = network.apply(state.params, rollout.last_obs)
        values = jnp.concatenate([rollout.value, last_value[None]], axis=0)
        advantage = batched_gae(
            rollout.reward, p.gamma * (1.0 - rollout.done), p.gae_lambda, values
        )
        data = {
            "obs": rollout.obs,
            "action": rollout.action.astype(jnp.int32),
            "logp": rollout.logp,
            "value": rollout.value,
            "advantage": advantage,
            "return": advantage + rollout.value,
        }
        data = jax.tree.map(lambda x: x.reshape(cfg.rollout_size, *x.shape[2:]), data)

        def minibatch_step(carry: tuple, index: chex.Array) -> tuple[tuple, dict]:
            params, opt_state = carry
            batch = jax.tree.map(lambda x: x[index], data)
            grads, metrics = jax.grad(loss_fn, has_aux=True)(params, batch, clip)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            updates = jax.tree.map(lambda u: -lr * u, updates)
            metrics["charts/grad_norm"] = optax.tree.norm(grads)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(carry: tuple, key: chex.PRNGKey) -> tuple[tuple, dict]:
            order = jax.random.permutation(key, cfg.rollout_size)
            minibatches = order.reshape(cfg.num_minibatches, p.minibatch_size)
            return jax.lax.scan(minibatch_step, carry, minibatches)

        rng, epoch_rng = jax.random.split(state.rng)
        (params, opt_state), metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(epoch_rng, p.epochs)
        )
        metrics = jax.tree.map(jnp.mean, metrics)
        returns = data["return"]
        explained = 1.0 - jnp.var(returns - data["value"]) / (jnp.var(returns) + 1e-8)
        metrics.update(
            {
                "charts/learning_rate": lr,
                "charts/clip_range": clip,
                "losses/explained_variance": explained,
                "finite": jnp.all(jnp.array([jnp.isfinite(v) for v in jax.tree.leaves(metrics)])),
            }
        )
        new_state = LearnerState(params=params, opt_state=opt_state, step=rollouts, rng=rng)
        return new_state, metrics

    def act(params: Any, obs: chex.Array, key: chex.PRNGKey):
        """Sampled actions ``[N]``, their log-probabilities ``[N]``, values ``[N]``, next key."""
        logits, value = network.apply(params, obs)
        key, sample_key = jax.random.split(key)
        action = jax.random.categorical(sample_key, logits)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
        return action, logp, value, key

    def greedy(params: Any, obs: chex.Array) -> chex.Array:
        return jnp.argmax(network.apply(params, obs)[0], axis=-1)

    def value(params: Any, obs: chex.Array) -> chex.Array:
        return network.apply(params, obs)[1]

    return Learner(
        init=jax.jit(init),
        update=jax.jit(update),
        act=jax.jit(act),
        greedy=jax.jit(greedy),
        value=jax.jit(value),
    )
