"""EfficientZero learner: targets, losses and one jitted ``update(state, batch)``.

    loss = E_B[ w_IS * ( sum_{k=0..K} c_v CE(z_k, v_k) + c_p CE(pi_k, p_k)
                         + sum_{k=1..K} c_r CE(P_k, prefix_k) + c_c (-cos(pred_k, proj'_k)) ) ]

with categorical value / prefix supports over h(x), gradients of the recurrent steps scaled
by 1/K and of the latent by ``model.dynamics_grad_scale`` at each dynamics step (MuZero App.
G; EfficientZero Sec. 4). ``proj'_k`` is the stop-gradient projection of the representation
of the real observation o_{t+k} (SimSiam-style temporal consistency).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from dreamer import targets as T
from dreamer.config import Config, OptimConfig
from dreamer.networks import scale_gradient
from dreamer.replay import Batch
from dreamer.search import make_search
from dreamer.transforms import scalar_to_support, support_to_scalar


@flax.struct.dataclass
class LearnerState:
    params: Any
    batch_stats: Any
    target_params: Any
    target_batch_stats: Any
    opt_state: Any
    step: chex.Array  # [] int32 updates made
    rng: chex.PRNGKey

    @property
    def variables(self) -> dict[str, Any]:
        return {"params": self.params, "batch_stats": self.batch_stats}

    @property
    def target_variables(self) -> dict[str, Any]:
        return {"params": self.target_params, "batch_stats": self.target_batch_stats}


def learning_rate_schedule(cfg: OptimConfig, total_updates: int) -> optax.Schedule:
    """Linear warm-up, then step decay (EfficientZero), cosine, or constant."""

    def schedule(step: chex.Numeric) -> chex.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = jnp.minimum(1.0, (step + 1) / max(cfg.warmup_updates, 1))
        after = jnp.maximum(step - cfg.warmup_updates, 0.0)
        if cfg.decay == "step":
            factor = cfg.decay_rate ** jnp.floor(after / cfg.decay_updates)
        elif cfg.decay == "cosine":
            span = max(total_updates - cfg.warmup_updates, 1)
            factor = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(after / span, 1.0)))
        else:
            factor = 1.0
        return cfg.learning_rate * warm * factor

    return schedule


def make_optimizer(cfg: OptimConfig, total_updates: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(cfg, total_updates)
    if cfg.optimizer == "sgd":
        core = optax.sgd(schedule, momentum=cfg.momentum)
    else:
        core = optax.adam(schedule)
    return optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm),
        optax.add_decayed_weights(cfg.weight_decay),
        core,
    )


def cross_entropy(target_probs: chex.Array, logits: chex.Array) -> chex.Array:
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def negative_cosine(a: chex.Array, b: chex.Array) -> chex.Array:
    a = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-8)
    b = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-8)
    return -jnp.sum(a * b, axis=-1)


def make_learner(
    cfg: Config, net: Any, *, frame_stack: int
) -> tuple[Callable[..., LearnerState], Callable[[LearnerState, Batch], tuple[LearnerState, dict]]]:
    """``init(rng, example_obs) -> LearnerState`` and jitted ``update(state, batch)``."""
    model, rcfg, ocfg = cfg.model, cfg.replay, cfg.optim
    K, S = rcfg.unroll_steps, frame_stack
    optimizer = make_optimizer(ocfg, cfg.total_updates)
    reanalyze = make_search(
        net,
        model,
        cfg.search,
        discount=rcfg.discount,
        num_simulations=rcfg.reanalyze_simulations or None,
    )
    num_reanalyze = int(round(rcfg.reanalyze_fraction * rcfg.batch_size))

    def init(rng: chex.PRNGKey, example_obs: chex.Array) -> LearnerState:
        init_rng, rng = jax.random.split(rng)
        action = jnp.zeros(example_obs.shape[:1], jnp.int32)
        variables = net.init(init_rng, example_obs, action)
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        return LearnerState(
            params=params,
            batch_stats=batch_stats,
            target_params=params,
            target_batch_stats=batch_stats,
            opt_state=optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            rng=rng,
        )

    def obs_at(batch: Batch, k: chex.Array) -> chex.Array:
        """Observations at offsets ``k`` ``[B, M]`` -> ``[B * M, *obs]``."""
        return T.stack_at(batch.frames, k, S)

    def compute_targets(state: LearnerState, batch: Batch, rng: chex.PRNGKey) -> dict:
        tv = state.target_variables
        b_k, bootstrapped = T.bootstrap_offsets(
            batch.last_offset, batch.terminal, batch.td_steps, K
        )
        boot_obs = obs_at(batch, b_k)
        latent = net.apply(tv, boot_obs, method="represent")
        _, v_logits = net.apply(tv, latent, method="predict")
        v_boot = support_to_scalar(v_logits, model.value_support).reshape(b_k.shape)
        values = T.n_step_values(batch.rewards, v_boot, b_k, bootstrapped, rcfg.discount)
        prefixes = T.value_prefix_targets(batch.rewards, K, model.lstm_horizon)
        mask = T.step_masks(batch.last_offset, batch.terminal, K)
        policies = batch.policies
        if num_reanalyze > 0:
            sub = jax.tree.map(lambda x: x[:num_reanalyze], batch)
            ks = jnp.broadcast_to(jnp.arange(K + 1), (num_reanalyze, K + 1))
            out = reanalyze(tv, rng, obs_at(sub, ks), temperature=1.0, noise=1.0)
            fresh = out.policy.reshape(num_reanalyze, K + 1, -1)
            fresh = fresh * mask[:num_reanalyze, :, None]
            policies = policies.at[:num_reanalyze].set(fresh)
        return dict(values=values, prefixes=prefixes, policies=policies, mask=mask)

    def loss_fn(params: Any, batch_stats: Any, batch: Batch, tgt: dict) -> tuple:
        stats = {"batch_stats": batch_stats}

        def apply(method: str, *args: Any, **kwargs: Any) -> Any:
            out, updates = net.apply(
                {"params": params, **stats},
                *args,
                train=True,
                method=method,
                mutable=["batch_stats"],
                **kwargs,
            )
            stats.update(updates)
            return out

        obs0 = T.stack_at(batch.frames, jnp.zeros(batch.frames.shape[0], jnp.int32), S)
        latent = apply("represent", obs0)
        policy_logits, value_logits = apply("predict", latent)
        lstm = net.apply({"params": params}, obs0.shape[0], method="initial_lstm")
        values, policies, prefixes, preds = [value_logits], [policy_logits], [], []
        for k in range(1, K + 1):
            latent, lstm, prefix_logits = apply("dynamics", latent, lstm, batch.actions[:, k - 1])
            latent = scale_gradient(latent, model.dynamics_grad_scale)
            if k % model.lstm_horizon == 0:
                lstm = jax.tree.map(jnp.zeros_like, lstm)
            policy_logits, value_logits = apply("predict", latent)
            scale = lambda x: scale_gradient(x, 1.0 / K)  # noqa: B023
            values.append(scale(value_logits))
            policies.append(scale(policy_logits))
            prefixes.append(scale(prefix_logits))
            preds.append(scale(apply("project", latent, predictor=True)))

        mask = tgt["mask"].astype(jnp.float32)  # [B, K+1]
        ks = jnp.broadcast_to(jnp.arange(1, K + 1), (obs0.shape[0], K))
        next_latent = apply("represent", obs_at(batch, ks))
        target_proj = jax.lax.stop_gradient(apply("project", next_latent, predictor=False))
        target_proj = target_proj.reshape(obs0.shape[0], K, -1)

        value_logits = jnp.stack(values, axis=1)  # [B, K+1, V]
        v_target = scalar_to_support(tgt["values"], model.value_support)
        value_loss = cross_entropy(v_target, value_logits).sum(1)
        policy_loss = (cross_entropy(tgt["policies"], jnp.stack(policies, 1)) * mask).sum(1)
        p_target = scalar_to_support(tgt["prefixes"], model.reward_support)
        reward_loss = cross_entropy(p_target, jnp.stack(prefixes, axis=1)).sum(1)
        consistency = negative_cosine(jnp.stack(preds, axis=1), target_proj)
        consistency_loss = (consistency * mask[:, 1:]).sum(1)

        per_example = (
            ocfg.value_weight * value_loss
            + ocfg.policy_weight * policy_loss
            + ocfg.reward_weight * reward_loss
            + ocfg.consistency_weight * consistency_loss
        )
        loss = jnp.mean(batch.weights * per_example)
        value0 = support_to_scalar(value_logits[:, 0], model.value_support)
        priorities = jnp.abs(value0 - tgt["values"][:, 0]) + rcfg.priority_eps
        metrics = {
            "loss": loss,
            "loss/value": value_loss.mean(),
            "loss/policy": policy_loss.mean(),
            "loss/reward": reward_loss.mean(),
            "loss/consistency": consistency_loss.mean(),
            "value_mean": value0.mean(),
            "target_value_mean": tgt["values"][:, 0].mean(),
        }
        return loss, (stats["batch_stats"], metrics, priorities)

    def update(state: LearnerState, batch: Batch) -> tuple[LearnerState, dict]:
        rng, target_rng = jax.random.split(state.rng)
        tgt = compute_targets(state, batch, target_rng)
        grad_fn = jax.grad(loss_fn, has_aux=True)
        grads, (batch_stats, metrics, priorities) = grad_fn(
            state.params, state.batch_stats, batch, tgt
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        sync = step % ocfg.target_update_every == 0
        pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(sync, n, o), new, old)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
        new = LearnerState(
            params=params,
            batch_stats=batch_stats,
            target_params=pick(params, state.target_params),
            target_batch_stats=pick(batch_stats, state.target_batch_stats),
            opt_state=opt_state,
            step=step,
            rng=rng,
        )
        # A non-finite step is not applied: the state stays the last good one.
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = dict(
            metrics,
            grad_norm=grad_norm,
            learning_rate=learning_rate_schedule(ocfg, cfg.total_updates)(state.step),
            finite=finite,
            priorities=priorities,
        )
        return new, metrics

    return init, jax.jit(update)
