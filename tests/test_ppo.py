"""PPO: GAE, clipped losses, schedules, learner and one end-to-end run."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.agents.baselines.ppo.builder import build, initial_state
from dreamer.agents.baselines.ppo.config import PPOConfig, PPOParams
from dreamer.agents.baselines.ppo.learning import (
    Rollout,
    batched_gae,
    clipped_policy_loss,
    gae,
    make_learner,
    remaining_fraction,
    value_loss,
)
from dreamer.agents.baselines.ppo.networks import ActorCritic
from dreamer.core.config import EnvConfig, RunConfig
from dreamer.core.configtree import ConfigError
from dreamer.loops import ppo
from dreamer.shell.evaluation import make_vector_env
from dreamer.shell.runbook import RunBook, crossed
from dreamer.shell.runlog import read_metrics


def _gae_loop(rewards, discounts, lambda_, values):
    advantages, running = [], 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + discounts[t] * values[t + 1] - values[t]
        running = delta + discounts[t] * lambda_ * running
        advantages.append(running)
    return advantages[::-1]


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_a_python_loop(jit):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(7, 3)).astype(np.float32)
    discounts = (0.9 * (rng.random((7, 3)) > 0.3)).astype(np.float32)  # some episode ends
    values = rng.normal(size=(8, 3)).astype(np.float32)
    f = jax.jit(batched_gae, static_argnums=2) if jit else batched_gae
    advantages = f(rewards, discounts, 0.8, values)
    for n in range(3):
        expected = _gae_loop(rewards[:, n], discounts[:, n], 0.8, values[:, n])
        np.testing.assert_allclose(advantages[:, n], expected, rtol=1e-5, atol=1e-6)


def test_gae_hand_case():
    # lambda = 1, no discount: A_t = sum of later rewards + bootstrap - v_t.
    advantages = gae(jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0]), 1.0, jnp.array([0.5, 0.0, 3.0]))
    np.testing.assert_allclose(advantages, [5.5, 5.0])


@pytest.mark.parametrize("jit", [False, True])
def test_clipped_policy_loss(jit):
    f = jax.jit(clipped_policy_loss) if jit else clipped_policy_loss
    logp_old = jnp.zeros(3)
    logp = jnp.log(jnp.array([1.5, 0.5, 1.1]))
    advantage = jnp.array([1.0, -1.0, 2.0])
    # min(1.5, 1.2) = 1.2; min(-0.5, -0.8) = -0.8; min(2.2, 2.2) = 2.2
    np.testing.assert_allclose(f(logp, logp_old, advantage, 0.2), -(1.2 - 0.8 + 2.2) / 3, 1e-6)


def test_value_loss_clip():
    v, v_old, ret = jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0])
    np.testing.assert_allclose(value_loss(v, v_old, ret, 0.5, False), 0.5)
    np.testing.assert_allclose(value_loss(v, v_old, ret, 0.5, True), 0.5 * 1.5**2)
    # V moved from -1 to 0.5: the clipped value is -1 + 0.2 = -0.8, 1.8 from the return
    v, v_old, ret = jnp.array([0.5]), jnp.array([-1.0]), jnp.array([1.0])
    np.testing.assert_allclose(value_loss(v, v_old, ret, 0.2, True), 0.5 * 1.8**2, rtol=1e-6)


def test_schedules_and_interval_crossing():
    np.testing.assert_allclose(remaining_fraction(1, 256, 100_000), 1 - 256 / 100_000)
    np.testing.assert_allclose(remaining_fraction(400, 256, 100_000), 0.0)
    assert crossed(2304, 2560, 2500) and not crossed(2560, 2816, 2500)
    assert not crossed(0, 10_000, 0)


def _tiny_config(env_steps: int, **ppo_overrides) -> PPOConfig:
    params = dict(num_steps=16, minibatch_size=32, epochs=2, lr=3e-3, share_torso=False)
    params.update(ppo_overrides)
    return PPOConfig(
        env=EnvConfig(id="CartPole-v1", num_envs=4, num_eval_envs=2),
        run=RunConfig(
            env_steps=env_steps,
            eval_every=128,
            eval_episodes=2,
            final_eval_episodes=2,
            log_every=64,
            checkpoint_every=128,
            progress=False,
        ),
        network=NetworkConfig(kind="mlp", hidden=(16,), activation="tanh", init="orthogonal"),
        ppo=PPOParams(**params),
    )


def _rollout(learner, state, rewards=0.1):
    """A 16 x 4 rollout of random observations, acted by ``state``'s own policy."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 4, 4)).astype(np.float32)
    action, logp, value, _ = learner.act(state.params, obs.reshape(64, 4), jax.random.PRNGKey(1))
    return Rollout(
        obs=obs,
        action=np.asarray(action).reshape(16, 4),
        logp=np.asarray(logp).reshape(16, 4),
        value=np.asarray(value).reshape(16, 4),
        reward=np.full((16, 4), rewards, np.float32),
        done=np.zeros((16, 4), np.float32),
        last_obs=obs[-1],
    )


def test_one_update_reports_the_entropy_kl_and_annealed_clip_of_its_policy():
    # one epoch of one minibatch: the metrics are those of the initial policy, which acted
    cfg = _tiny_config(128, epochs=1, minibatch_size=64, anneal_clip=True, clip=0.2)
    learner = make_learner(cfg, ActorCritic(cfg.network, 2, share_torso=False))
    state = learner.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
    rollout = _rollout(learner, state)
    _, metrics = learner.update(state, rollout)
    logits, _ = ActorCritic(cfg.network, 2, share_torso=False).apply(
        state.params, rollout.obs.reshape(64, 4)
    )
    probs = np.asarray(jax.nn.softmax(logits))
    entropy = -np.mean(np.sum(probs * np.log(probs), axis=-1))
    np.testing.assert_allclose(metrics["losses/entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(metrics["losses/approx_kl"], 0.0, atol=1e-6)  # ratio 1
    # after the first of two rollouts half the budget remains: the clip range is halved
    np.testing.assert_allclose(metrics["charts/clip_range"], 0.1, rtol=1e-6)


def test_gradients_are_clipped_to_max_grad_norm():
    def params_after(max_grad_norm):
        cfg = _tiny_config(10_000, anneal_lr=False, max_grad_norm=max_grad_norm)
        learner = make_learner(cfg, ActorCritic(cfg.network, 2, share_torso=False))
        state = learner.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.float32))
        state, _ = learner.update(state, _rollout(learner, state, rewards=50.0))
        return jax.tree.leaves(state.params)

    unclipped, never, clipped = params_after(0.0), params_after(1e9), params_after(0.5)
    for a, b in zip(unclipped, never, strict=True):  # a norm no gradient reaches: no change
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(unclipped, clipped, strict=True))


def test_repeated_updates_lower_the_value_loss():
    cfg = _tiny_config(10_000, anneal_lr=False, lr=1e-2, clip_value=False)
    learner = make_learner(cfg, ActorCritic(cfg.network, 2, share_torso=False))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 4, 4)).astype(np.float32)
    state = learner.init(jax.random.PRNGKey(0), obs[0, :1])
    action, logp, value, _ = learner.act(state.params, obs.reshape(64, 4), jax.random.PRNGKey(1))
    rollout = Rollout(
        obs=obs,
        action=np.asarray(action).reshape(16, 4),
        logp=np.asarray(logp).reshape(16, 4),
        value=np.asarray(value).reshape(16, 4),
        reward=np.full((16, 4), 0.1, np.float32),
        done=np.zeros((16, 4), np.float32),
        last_obs=obs[-1],
    )
    losses = []
    for _ in range(10):
        state, metrics = learner.update(state, rollout)
        losses.append(float(metrics["losses/value"]))
        assert bool(metrics["finite"])
    assert losses[-1] < 0.5 * losses[0]
    assert int(state.step) == 10


def test_bad_minibatch_size_names_a_divisor():
    with pytest.raises(ConfigError, match=r"ppo.minibatch_size=32"):
        _tiny_config(1_000, minibatch_size=48).check()
    with pytest.raises(ConfigError, match="ppo.gae_lambda"):
        PPOParams(gae_lambda=1.5)


def test_train_writes_run_folder_and_resumes(tmp_path, monkeypatch, evaluation_seeds):
    asked = []  # the env step each stop check would checkpoint at
    check = RunBook.stop_if_requested

    def recording(book, env_steps, save):
        asked.append(env_steps)
        return check(book, env_steps, save)

    monkeypatch.setattr(RunBook, "stop_if_requested", recording)
    summary = ppo.train(_tiny_config(256), tmp_path)
    assert asked == [0, 64, 128, 192]  # before each rollout of 16 steps x 4 envs
    assert summary["env_steps"] == 256 and summary["updates"] == 4 * 2 * 2
    assert [s for s, _ in summary["eval_curve"]] == [128, 256]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [64, 128, 192, 256]
    assert rows[-1]["losses/policy"] != ""

    resumed = ppo.train(_tiny_config(384), tmp_path, resume=True)
    assert resumed["env_steps"] == 384
    assert [s for s, _ in resumed["eval_curve"]] == [128, 256, 384]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [64, 128, 192, 256, 320, 384]
    # evaluating the checkpoint replays training's final evaluation: the same episodes
    returns = ppo.evaluate(_tiny_config(384), tmp_path, episodes=2)
    assert evaluation_seeds[-1] == evaluation_seeds[-2] == 1_000_000 + 384
    assert returns == resumed["final_eval_returns"]
    # stochastic: actions sampled from the policy; greedy: its most probable action
    actors = []
    monkeypatch.setattr(ppo, "evaluate_policy", lambda env, act, **_: actors.append(act) or [])
    for stochastic in (False, True):
        ppo.evaluate(_tiny_config(384), tmp_path, episodes=2, stochastic=stochastic)
    obs = np.zeros((256, 4), np.float32)  # CartPole's 4 numbers
    greedy, sampled = (act(obs) for act in actors)
    assert len(set(greedy.tolist())) == 1 and len(set(sampled.tolist())) > 1


class _Book:
    """The two calls ``_collect`` makes of the run book (a test double)."""

    def check_env_output(self, obs, reward, env_steps):
        pass

    def step_rewards(self, reward, done):
        pass


def test_a_rollout_bootstraps_cut_episodes_from_their_final_observation():
    """Corridor of 3 cells cut after 4 steps: an episode that reaches the end earns 1, one
    that is cut earns gamma V(final obs) at its cut step (the cell it moved to), the rest 0."""
    cfg = dataclasses.replace(
        _tiny_config(1_000, num_steps=16, minibatch_size=32),
        env=EnvConfig(
            id="envs.examples:make_corridor", num_envs=2, options={"length": 3, "max_steps": 4}
        ),
    )
    venv = make_vector_env(cfg.env, num_envs=2, seed=0, mode="train")
    space = venv.single_observation_space
    learner = build(cfg, space, venv.single_action_space)
    state, key = initial_state(learner, space, 0)
    buffers = {
        "obs": np.zeros((16, 2, 3), np.float32),
        "action": np.zeros((16, 2), np.int32),
        "logp": np.zeros((16, 2), np.float32),
        "value": np.zeros((16, 2), np.float32),
        "reward": np.zeros((16, 2), np.float32),
        "done": np.zeros((16, 2), np.float32),
    }
    obs, _ = venv.reset(seed=0)
    ppo._collect(cfg, venv, learner, state.params, obs, key, buffers, _Book(), 0)
    venv.close()
    cell = np.clip(buffers["obs"].argmax(-1) + np.where(buffers["action"] == 1, 1, -1), 0, 2)
    terminated = cell == 2
    done = buffers["done"].astype(bool)
    cut = done & ~terminated
    assert terminated.any() and (cut.sum(1) == 1).any()  # ends of both kinds, out of step
    final = np.eye(3, dtype=np.float32)[cell[cut]]
    expected = cfg.ppo.gamma * np.asarray(learner.value(state.params, final))
    np.testing.assert_allclose(buffers["reward"][cut], expected, rtol=1e-6)
    np.testing.assert_array_equal(buffers["reward"][terminated], 1.0)
    np.testing.assert_array_equal(buffers["reward"][~done], 0.0)
    assert (done[terminated]).all()


def test_presets_build_and_reach_and_stay():
    from experiments.baselines import PRESETS, reach_and_stay

    for algo, presets in PRESETS.items():
        for make in presets.values():
            cfg = make()
            if algo == "ppo":
                cfg.check()
    cartpole = PRESETS["ppo"]["cartpole"]()
    assert cartpole.rollout_size == 256 and cartpole.num_minibatches == 1
    curve = [[2500, 480.0], [5000, 300.0], [7500, 475.0], [10000, 500.0]]
    assert reach_and_stay(curve, 475.0) == 7500
    assert reach_and_stay(curve[:2], 475.0) is None
