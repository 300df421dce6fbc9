"""EfficientZero learner: targets, losses, the update, and the target cache.

    loss = E_B[ w_IS * ( sum_{k=0..K} c_v CE(z_k, v_k) + c_p CE(pi_k, p_k)
                         + sum_{k=1..K} c_r CE(P_k, prefix_k) + c_c (-cos(pred_k, proj'_k)) ) ]

with categorical value / prefix supports over h(x). The 1/K gradient scale applies to the
whole loss (``optim.unroll_scale="loss"``, the EfficientZero code) or to the heads of the
unrolled steps only (``"heads"``, the MuZero pseudocode); the latent's gradient is scaled by
``model.dynamics_grad_scale`` at each dynamics step (MuZero App. G; EfficientZero Sec. 4).
``proj'_k`` is the stop-gradient projection of the representation of the real observation
o_{t+k} (SimSiam-style temporal consistency). Image inputs are augmented (``augment``) at
step 0 and for the consistency targets, as in EfficientZero.

Targets come from the target network. With ``replay.reanalyze_mode="cached"`` its values and
reanalysed policies are computed once per target period for every stored state
(``refresh``) and gathered by the replay's ``sample``; with ``"per_batch"`` they are computed
for each sampled batch. The value target is the n-step return, the root value of the target
network's search (``replay.value_target="search"``), or EfficientZero-V2's mix of the two
(``"mixed"``); the cache keeps the searches' root values next to the values for it. ``learn``
runs ``count`` updates in one jitted call, sampling included, and returns the sums of their
metrics (the shell fetches them once per log row).
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

from dreamer.agents.efficientzero import targets as T
from dreamer.agents.efficientzero.augment import augment
from dreamer.agents.efficientzero.config import Config, OptimConfig
from dreamer.agents.efficientzero.dreaming import DreamTargets, dream_metric_names, make_dreaming
from dreamer.agents.efficientzero.networks import scale_gradient
from dreamer.agents.efficientzero.replay import Batch, Replay, ReplayState
from dreamer.agents.efficientzero.search import make_search
from dreamer.agents.efficientzero.transforms import scalar_to_support, support_to_scalar


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


@dataclasses.dataclass(frozen=True)
class Learner:
    """The learner's pure functions (jit them, or call them inside a jitted loop).

    - ``init(rng, example_obs) -> LearnerState``
    - ``targets(state, batch, rng) -> dict``: value, value-prefix and policy targets and the
      step mask of a batch (``[B, K+1]``, ``[B, K]``, ``[B, K+1, A]``, ``[B, K+1]``).
    - ``update(state, batch) -> (state, metrics)``: one update on a sampled batch.
    - ``learn(state, replay_state, count) -> (state, replay_state, sums)``: ``count`` updates,
      each sampling its batch and writing back its priorities; ``sums`` adds up the scalar
      metrics of the applied (finite) updates and counts ``"updates"``, ``"finite_updates"``.
    - ``refresh(state, replay_state, chunk) -> replay_state``: the target cache for slot chunk
      ``chunk`` (``num_chunks(filled_slots)`` of them cover the filled part of the rings).
    - ``add_step(state, replay_state, obs, actions, rewards, terminated, truncated, policies)
      -> replay_state``: ``Replay.add`` of one step of every env, with the target network's
      value of ``obs`` for the target cache (so new data bootstraps from the target network
      until the next refresh, as refreshed data does). A new step is not searched: until the
      next refresh its cached search value is that same value.
    """

    init: Callable[..., LearnerState]
    targets: Callable[..., dict]
    update: Callable[[LearnerState, Batch], tuple[LearnerState, dict]]
    learn: Callable[..., tuple[LearnerState, ReplayState, dict]]
    refresh: Callable[[LearnerState, ReplayState, chex.Numeric], ReplayState]
    add_step: Callable[..., ReplayState]
    chunk_slots: int

    def num_chunks(self, filled_slots: int) -> int:
        return -(-filled_slots // self.chunk_slots)


def learning_rate_schedule(cfg: OptimConfig, total_updates: int) -> optax.Schedule:
    """Linear warm-up from 0 (lr = peak * step / warmup, as EfficientZero's ``adjust_lr``),
    then step decay (x decay_rate every decay_updates after warm-up), cosine to 0 at
    ``total_updates``, or constant."""

    def schedule(step: chex.Numeric) -> chex.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = jnp.minimum(1.0, step / max(cfg.warmup_updates, 1))
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
    a = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-5)
    b = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-5)
    return -jnp.sum(a * b, axis=-1)


def make_learner(
    cfg: Config, net: Any, replay: Replay, shard: Callable[[Any], Any] = lambda tree: tree
) -> Learner:
    """The learner of ``cfg`` over network ``net`` and replay ``replay`` (see ``Learner``).

    ``shard`` places the rows of each sampled batch and of each refresh chunk inside ``jit``
    (``dreamer.core.sharding.DataParallel.shard``: split over the local devices); the
    default leaves them where XLA puts them.
    """
    model, rcfg, ocfg = cfg.model, cfg.replay, cfg.optim
    K, S = rcfg.unroll_steps, replay.frame_stack
    image = len(replay.frame_shape) == 3
    augmentations = tuple(ocfg.augmentation) if image else ()
    total_updates = cfg.total_updates
    optimizer = make_optimizer(ocfg, total_updates)
    lr_schedule = learning_rate_schedule(ocfg, total_updates)
    reanalyze = make_search(
        net,
        model,
        cfg.search,
        discount=rcfg.discount,
        num_simulations=rcfg.reanalyze_simulations or None,
    )
    num_reanalyze = rcfg.reanalysed_rows
    num_searched = rcfg.searched_rows  # >= num_reanalyze: search value targets search all
    cached = rcfg.reanalyze_mode == "cached"
    dreaming = make_dreaming(cfg, net)
    dream_start = cfg.dream_start_update

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

    # -- targets ------------------------------------------------------------------------------
    def target_value(state: LearnerState, obs: chex.Array) -> chex.Array:
        """The target network's value ``[N]`` of observations ``obs``."""
        tv = state.target_variables
        _, v_logits = net.apply(tv, net.apply(tv, obs, method="represent"), method="predict")
        return support_to_scalar(v_logits, model.value_support)

    def target_outputs(state: LearnerState, obs: chex.Array, rng: chex.PRNGKey) -> tuple:
        """The target network's value ``[N]``, its search's root value ``[N]`` and reanalysed
        policy ``[N, A]`` at ``obs``. Where nothing is searched (no reanalysis, n-step value
        targets) the root value is the value and the policy is zeros."""
        if num_searched == 0:
            value = target_value(state, obs)
            return value, value, jnp.zeros((obs.shape[0], net.num_actions), jnp.float32)
        tv = state.target_variables
        out = reanalyze(tv, rng, obs, temperature=1.0, noise=1.0)
        return out.predicted_value, out.root_value, out.policy

    def compute_targets(state: LearnerState, batch: Batch, rng: chex.PRNGKey) -> dict:
        b_k, bootstrapped = T.bootstrap_offsets(
            batch.last_offset, batch.terminal, batch.td_steps, K
        )
        mask = T.step_masks(batch.last_offset, batch.terminal, K)
        fresh = batch.reanalysed[:num_reanalyze]
        root_value = batch.searched_values  # [B, K+1] (cached) at o_t .. o_{t+K}
        if not cached and num_searched > 0:
            ks = jnp.broadcast_to(jnp.arange(K + 1), (num_searched, K + 1))
            obs = T.stack_at(batch.frames[:num_searched], ks, S)
            _, root_value, policy = target_outputs(state, obs, rng)
            root_value = root_value.reshape(num_searched, K + 1)
            fresh = policy.reshape(num_searched, K + 1, -1)[:num_reanalyze]
        fresh = fresh * mask[:num_reanalyze, :, None]
        policies = batch.policies.at[:num_reanalyze].set(fresh)
        if rcfg.value_target != "search":
            if cached:
                v_boot = jnp.take_along_axis(batch.values, b_k, axis=1)
            else:
                v_boot = target_value(state, T.stack_at(batch.frames, b_k, S)).reshape(b_k.shape)
            n_step = T.n_step_values(batch.rewards, v_boot, b_k, bootstrapped, rcfg.discount)
        if rcfg.value_target == "nstep":
            values = n_step
        else:
            if root_value is None:
                raise ValueError("search value targets need the batch's searched_values")
            searched = T.searched_value_targets(root_value, mask)
            if rcfg.value_target == "search":
                values = searched
            else:
                if batch.age is None:
                    raise ValueError("mixed value targets need the batch's age")
                values = T.mixed_value_targets(
                    n_step,
                    searched,
                    batch.age,
                    state.step,
                    start_update=rcfg.mixed_start_update,
                    fresh_transitions=rcfg.mixed_fresh_transitions,
                )
        prefixes = T.value_prefix_targets(batch.rewards, K, model.lstm_horizon)
        return dict(values=values, prefixes=prefixes, policies=policies, mask=mask)

    # -- loss ---------------------------------------------------------------------------------
    def inputs(batch: Batch, rng: chex.PRNGKey) -> tuple[chex.Array, chex.Array]:
        """Step-0 observations ``[B, *obs]`` and the K consistency-target observations
        ``[B * K, *obs]``, augmented for images (one draw per example and per group)."""
        b = batch.frames.shape[0]
        ks = jnp.broadcast_to(jnp.arange(K), (b, K))
        if not augmentations:
            return T.stack_at(batch.frames, jnp.zeros(b, jnp.int32), S), T.stack_at(
                batch.frames, ks + 1, S
            )
        k0, k1 = jax.random.split(rng)
        aug = lambda key, frames: augment(  # noqa: E731
            key, frames, augmentations, pad=ocfg.shift_pad, scale=ocfg.intensity_scale
        )
        first = aug(k0, batch.frames[:, :S])
        later = aug(k1, batch.frames[:, 1 : S + K])
        return first, T.stack_at(later, ks, S)

    def loss_fn(
        params: Any, batch_stats: Any, batch: Batch, tgt: dict, rng: chex.Array, dream: Any
    ):
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

        obs0, next_obs = inputs(batch, rng)
        b = obs0.shape[0]
        head_scale = 1.0 / K if ocfg.unroll_scale == "heads" else 1.0
        scale = lambda x: scale_gradient(x, head_scale)  # noqa: E731
        latent = apply("represent", obs0)
        policy_logits, value_logits = apply("predict", latent)
        lstm = net.apply({"params": params}, b, method="initial_lstm")
        values, policies, prefixes, preds = [value_logits], [policy_logits], [], []
        for k in range(1, K + 1):
            latent, lstm, prefix_logits = apply("dynamics", latent, lstm, batch.actions[:, k - 1])
            latent = scale_gradient(latent, model.dynamics_grad_scale)
            if k % model.lstm_horizon == 0:
                lstm = jax.tree.map(jnp.zeros_like, lstm)
            policy_logits, value_logits = apply("predict", latent)
            values.append(scale(value_logits))
            policies.append(scale(policy_logits))
            prefixes.append(scale(prefix_logits))
            preds.append(scale(apply("project", latent, predictor=True)))

        mask = tgt["mask"].astype(jnp.float32)  # [B, K+1]
        target_proj = jax.lax.stop_gradient(
            apply("project", apply("represent", next_obs), predictor=False)
        ).reshape(b, K, -1)

        value_logits = jnp.stack(values, axis=1)  # [B, K+1, V]
        v_target = scalar_to_support(tgt["values"], model.value_support)
        value_loss = cross_entropy(v_target, value_logits).sum(1)
        policy_loss = (cross_entropy(tgt["policies"], jnp.stack(policies, 1)) * mask).sum(1)
        p_target = scalar_to_support(tgt["prefixes"], model.reward_support)
        reward_loss = cross_entropy(p_target, jnp.stack(prefixes, axis=1)).sum(1)
        consistency = negative_cosine(jnp.stack(preds, axis=1).astype(jnp.float32), target_proj)
        consistency_loss = (consistency * mask[:, 1:]).sum(1)

        per_example = (
            ocfg.value_weight * value_loss
            + ocfg.policy_weight * policy_loss
            + ocfg.reward_weight * reward_loss
            + ocfg.consistency_weight * consistency_loss
        )
        loss = jnp.mean(batch.weights * per_example)
        dream_metrics = {}
        if dreaming.starts:  # imagined targets, next to the batch's (sum over them / B)
            dream_obs, dream_tgt, active = dream
            per_rollout, dream_metrics = dreaming.loss(
                apply, {"params": params, **stats}, dream_obs, dream_tgt
            )
            loss = loss + active * jnp.sum(per_rollout) / b
            dream_metrics = {k: active * v for k, v in dream_metrics.items()}
            dream_metrics["charts/dream_active"] = active
        loss_scale = 1.0 / K if ocfg.unroll_scale == "loss" else 1.0
        value0 = support_to_scalar(value_logits[:, 0], model.value_support)
        priorities = jnp.abs(value0 - tgt["values"][:, 0]) + rcfg.priority_eps
        metrics = {
            "losses/total": loss,
            "losses/value": value_loss.mean(),
            "losses/policy": policy_loss.mean(),
            "losses/reward": reward_loss.mean(),
            "losses/consistency": consistency_loss.mean(),
            "charts/value_mean": value0.mean(),
            "charts/target_value_mean": tgt["values"][:, 0].mean(),
            **dream_metrics,
        }
        return loss * loss_scale, (stats["batch_stats"], metrics, priorities)

    # -- update -------------------------------------------------------------------------------
    def dream_targets(state: LearnerState, batch: Batch, rng: chex.PRNGKey) -> tuple:
        """Start observations (step-0 and later window positions of the batch, in turn),
        their imagined targets, and whether this update dreams (``dream.start`` reached)."""
        b = batch.frames.shape[0]
        i = jnp.arange(dreaming.starts)
        rows, ks = i % b, (i // b) % (K + 1)
        obs = T.stack_at(batch.frames[rows], ks, S)
        active = state.step >= dream_start
        imagine = lambda: dreaming.imagine(state.target_variables, rng, obs)  # noqa: E731
        shapes = jax.eval_shape(imagine)
        idle = lambda: jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)  # noqa: E731
        tgt: DreamTargets = jax.lax.cond(active, imagine, idle)
        return obs, tgt, active.astype(jnp.float32)

    def update(state: LearnerState, batch: Batch) -> tuple[LearnerState, dict]:
        rng, target_rng, input_rng = jax.random.split(state.rng, 3)
        tgt = compute_targets(state, batch, target_rng)
        dream = None
        if dreaming.starts:
            dream = dream_targets(state, batch, jax.random.fold_in(target_rng, 1))
        grad_fn = jax.grad(loss_fn, has_aux=True)
        grads, (batch_stats, metrics, priorities) = grad_fn(
            state.params, state.batch_stats, batch, tgt, input_rng, dream
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(metrics["losses/total"]) & jnp.isfinite(grad_norm)
        # A non-finite update is not applied: parameters and optimiser state stay the last
        # good ones. The step still counts, so the target network syncs every
        # ``target_update_every`` updates made, in step with the shell's cache refreshes.
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        params, batch_stats, opt_state = keep(
            (params, batch_stats, opt_state), (state.params, state.batch_stats, state.opt_state)
        )
        step = state.step + 1
        sync = step % ocfg.target_update_every == 0
        pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(sync, n, o), new, old)  # noqa: E731
        new = LearnerState(
            params=params,
            batch_stats=batch_stats,
            target_params=pick(params, state.target_params),
            target_batch_stats=pick(batch_stats, state.target_batch_stats),
            opt_state=opt_state,
            step=step,
            rng=rng,
        )
        metrics = dict(
            metrics,
            **{"charts/grad_norm": grad_norm, "charts/learning_rate": lr_schedule(state.step)},
            finite=finite,
            priorities=priorities,
        )
        return new, metrics

    def learn(
        state: LearnerState, replay_state: ReplayState, count: chex.Numeric
    ) -> tuple[LearnerState, ReplayState, dict]:
        def one(_: Any, carry: tuple) -> tuple:
            state, replay_state, sums = carry
            rng, sample_rng = jax.random.split(state.rng)
            progress = jnp.minimum(1.0, state.step / max(total_updates, 1))
            beta = rcfg.priority_beta + (1.0 - rcfg.priority_beta) * progress
            batch, index = replay.sample(replay_state, sample_rng, beta=beta)
            state, metrics = update(state.replace(rng=rng), shard(batch))
            finite = metrics.pop("finite")
            # A skipped (non-finite) update leaves the priorities as they were.
            old = replay_state.priorities[index]
            new = jnp.where(finite, metrics.pop("priorities"), old)
            replay_state = replay.set_priorities(replay_state, index, new)
            # Metrics of skipped updates are left out of the sums (they may be NaN).
            metrics = {k: jnp.where(finite, v, 0.0) for k, v in metrics.items()}
            metrics = dict(metrics, updates=1.0, finite_updates=finite.astype(jnp.float32))
            sums = {k: sums[k] + jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
            return state, replay_state, sums

        zeros = {k: jnp.zeros((), jnp.float32) for k in metric_names(cfg)}
        return jax.lax.fori_loop(0, count, one, (state, replay_state, zeros))

    # -- the target cache ---------------------------------------------------------------------
    chunk_slots = max(1, rcfg.refresh_chunk // replay.num_envs)

    def refresh(state: LearnerState, replay_state: ReplayState, chunk: chex.Numeric):
        e = replay.num_envs
        pos = jnp.tile(chunk * chunk_slots + jnp.arange(chunk_slots), e)
        env = jnp.repeat(jnp.arange(e), chunk_slots)
        # The last chunk may run past the ring's end: those rows search a real slot (any; the
        # last) and write nowhere (an index past the end, which the scatter drops).
        read = jnp.minimum(pos, replay.slots - 1)
        obs = shard(replay.observations(replay_state, env, read))
        rng = jax.random.fold_in(state.rng, chunk)
        values, root_values, policy = target_outputs(state, obs, rng)
        return replay_state.replace(
            values=replay_state.values.at[env, pos].set(values, mode="drop"),
            searched_values=replay_state.searched_values.at[env, pos].set(root_values, mode="drop"),
            reanalysed=replay_state.reanalysed.at[env, pos].set(policy, mode="drop"),
        )

    def add_step(
        state: LearnerState,
        replay_state: ReplayState,
        obs: chex.Array,
        actions: chex.Array,
        rewards: chex.Array,
        terminated: chex.Array,
        truncated: chex.Array,
        policies: chex.Array,
    ) -> ReplayState:
        values = target_value(state, obs)
        return replay.add(
            replay_state,
            obs,
            actions,
            rewards,
            terminated,
            truncated,
            policies,
            values,
            searched_values=values,  # no search at a new step until the next refresh
        )

    return Learner(
        init=init,
        targets=compute_targets,
        update=update,
        learn=learn,
        refresh=refresh,
        add_step=add_step,
        chunk_slots=chunk_slots,
    )


def metric_names(cfg: Config) -> tuple[str, ...]:
    """The keys of ``learn``'s metric sums (the dream metrics only when ``cfg`` dreams)."""
    dream = dream_metric_names() if cfg.dream.ratio > 0 else ()
    return (
        "losses/total",
        "losses/value",
        "losses/policy",
        "losses/reward",
        "losses/consistency",
        "charts/value_mean",
        "charts/target_value_mean",
        *dream,
        "charts/grad_norm",
        "charts/learning_rate",
        "updates",
        "finite_updates",
    )
