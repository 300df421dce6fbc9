"""DQN family, functional core: targets, loss, learner update and action selection.

Q-learning with a target network (Mnih et al. 2015), double-DQN bootstrap actions
(van Hasselt et al. 2016), n-step returns computed by the replay, importance weights from
prioritised replay (Schaul et al. 2016) and DrQ random-shift augmentation (Kostrikov et al.
2021). The shell (``dqn.py``) steps environments, fills the replay and calls ``update``.
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

from dreamer.agents.baselines.dqn.config import DQNParams
from dreamer.agents.baselines.dqn.networks import QNetwork
from dreamer.core.shift import random_shift


@flax.struct.dataclass
class LearnerState:
    """Everything an update changes."""

    params: Any
    """Online Q-network parameters."""
    target_params: Any
    """Target-network parameters (copied from ``params`` by ``sync_target``)."""
    opt_state: Any
    """Adam state."""
    step: chex.Array
    """Updates made so far, int32 scalar."""
    rng: chex.PRNGKey
    """Key for augmentation; split on every update."""


@flax.struct.dataclass
class Batch:
    """n-step transitions: ``obs_t, a_t -> (sum of discounted rewards, obs_{t+n})``."""

    obs: chex.Array
    """``[B, *obs_shape]`` observations o_t."""
    action: chex.Array
    """``[B]`` int actions a_t."""
    reward: chex.Array
    """``[B]`` n-step returns sum_k gamma^k r_{t+k}."""
    discount: chex.Array
    """``[B]`` bootstrap discounts gamma^n (0 after termination)."""
    next_obs: chex.Array
    """``[B, *obs_shape]`` bootstrap observations o_{t+n}."""
    weight: chex.Array
    """``[B]`` importance weights (1 for uniform replay)."""


def double_q_target(
    q_tp1_target: chex.Array, q_tp1_select: chex.Array, r_t: chex.Array, discount_t: chex.Array
) -> chex.Array:
    """``r_t + discount_t * q_tp1_target[argmax q_tp1_select]``: ``[B, A], [B, A], [B], [B]``.

    Pass the online network's values as ``q_tp1_select`` for double DQN, the target
    network's own values for the classic max target.
    """
    chex.assert_rank([q_tp1_target, q_tp1_select, r_t, discount_t], [2, 2, 1, 1])
    best = jnp.argmax(q_tp1_select, axis=-1)
    bootstrap = jnp.take_along_axis(q_tp1_target, best[:, None], axis=-1)[:, 0]
    return r_t + discount_t * bootstrap


def huber(x: chex.Array, delta: float) -> chex.Array:
    """Huber loss: 0.5 x^2 for |x| <= delta, delta (|x| - 0.5 delta) beyond (elementwise)."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    return 0.5 * quadratic**2 + delta * (abs_x - quadratic)


def td_loss(
    q_t: chex.Array, a_t: chex.Array, target_t: chex.Array, weight_t: chex.Array, delta: float
) -> tuple[chex.Array, chex.Array]:
    """Importance-weighted mean Huber loss and the TD errors ``[B]``."""
    chex.assert_rank([q_t, a_t, target_t, weight_t], [2, 1, 1, 1])
    q_sa = jnp.take_along_axis(q_t, a_t[:, None].astype(jnp.int32), axis=-1)[:, 0]
    td = jax.lax.stop_gradient(target_t) - q_sa
    return jnp.mean(weight_t * huber(td, delta)), td


def linear_epsilon(p: DQNParams, env_steps: int) -> float:
    """Exploration epsilon after ``env_steps`` (linear from start to final)."""
    fraction = (env_steps - p.epsilon_decay_start) / p.epsilon_decay_steps
    fraction = min(max(fraction, 0.0), 1.0)
    return p.epsilon_start + fraction * (p.epsilon_final - p.epsilon_start)


def annealed_beta(p: DQNParams, env_steps: int, total_env_steps: int) -> float:
    """Importance-weight exponent, linear from ``priority_beta`` to 1 over the run."""
    fraction = min(env_steps / max(total_env_steps, 1), 1.0)
    return p.priority_beta + fraction * (1.0 - p.priority_beta)


@dataclasses.dataclass(frozen=True)
class Learner:
    """Jitted functions of a DQN learner (see ``make_learner``)."""

    init: Callable[[chex.PRNGKey, chex.Array], LearnerState]
    update: Callable[[LearnerState, Batch], tuple[LearnerState, dict[str, chex.Array]]]
    act: Callable[[Any, chex.Array, chex.PRNGKey, chex.Numeric], tuple[chex.Array, chex.Array]]
    q_values: Callable[[Any, chex.Array], chex.Array]

    @staticmethod
    def sync_target(state: LearnerState) -> LearnerState:
        """Copy the online parameters to the target network."""
        return state.replace(target_params=state.params)


def make_optimizer(p: DQNParams) -> optax.GradientTransformation:
    adam = optax.adam(p.lr, eps=p.adam_eps)
    if p.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(p.max_grad_norm), adam)
    return adam


def make_learner(p: DQNParams, network: QNetwork, *, augment: bool) -> Learner:
    """Close over the static settings and return the jitted learner functions.

    ``augment`` turns on DrQ random shifts (image stacks only; pad ``p.augment_pad``).
    """
    optimizer = make_optimizer(p)

    def init(rng: chex.PRNGKey, example_obs: chex.Array) -> LearnerState:
        init_rng, rng = jax.random.split(rng)
        params = network.init(init_rng, example_obs)
        return LearnerState(
            params=params,
            target_params=params,
            opt_state=optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            rng=rng,
        )

    def update(state: LearnerState, batch: Batch) -> tuple[LearnerState, dict[str, chex.Array]]:
        rng, obs_rng, next_rng = jax.random.split(state.rng, 3)
        obs, next_obs = batch.obs, batch.next_obs
        if augment:
            obs = random_shift(obs_rng, obs, p.augment_pad)
            next_obs = random_shift(next_rng, next_obs, p.augment_pad)
        q_tp1_target = network.apply(state.target_params, next_obs)
        q_tp1_select = network.apply(state.params, next_obs) if p.double else q_tp1_target
        target = double_q_target(q_tp1_target, q_tp1_select, batch.reward, batch.discount)

        def loss_fn(params: Any) -> tuple[chex.Array, tuple[chex.Array, chex.Array]]:
            q_t = network.apply(params, obs)
            loss, td = td_loss(q_t, batch.action, target, batch.weight, p.huber_delta)
            return loss, (td, q_t)

        (loss, (td, q_t)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        grad_norm = optax.tree.norm(grads)
        metrics = {
            "losses/td": loss,
            "losses/q_values": q_t.mean(),
            "charts/grad_norm": grad_norm,
            "td_abs": jnp.abs(td),
            "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm),
        }
        new_state = state.replace(
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            step=state.step + 1,
            rng=rng,
        )
        return new_state, metrics

    def act(params: Any, obs: chex.Array, key: chex.PRNGKey, epsilon: chex.Numeric):
        """Epsilon-greedy actions ``[N]`` for observations ``[N, ...]``, and the next key."""
        q = network.apply(params, obs)
        key, explore_key, action_key = jax.random.split(key, 3)
        explore = jax.random.uniform(explore_key, q.shape[:1]) < epsilon
        random_actions = jax.random.randint(action_key, q.shape[:1], 0, q.shape[-1])
        return jnp.where(explore, random_actions, jnp.argmax(q, axis=-1)), key

    return Learner(
        init=jax.jit(init),
        update=jax.jit(update),
        act=jax.jit(act),
        q_values=jax.jit(network.apply),
    )
