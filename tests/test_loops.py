"""The loops' own small parts, pinned by value: the algorithm registry and the host loop's
run axis (how one or several seeds' arrays are stacked, split, keyed and reseeded)."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.baselines.dqn.config import DQNConfig
from dreamer.agents.baselines.ppo.config import PPOConfig
from dreamer.agents.efficientzero.config import Config, apply_overrides
from dreamer.core.configtree import ConfigError
from dreamer.loops import algos, host


def test_the_registry_gives_each_algorithm_its_config_and_entry_points():
    from dreamer.loops import dqn, efficientzero, ppo

    assert algos.NAMES == ("efficientzero", "dqn", "ppo")
    for name, module, cls in (
        ("efficientzero", efficientzero, Config),
        ("dqn", dqn, DQNConfig),
        ("ppo", ppo, PPOConfig),
    ):
        algo = algos.get(name)
        assert algo.name == name and algo.config_cls is cls
        assert algo.train is module.train and algo.evaluate is module.evaluate
    with pytest.raises(ConfigError, match=r"unknown algorithm 'dreamerv3': choose one of \["):
        algos.get("dreamerv3")


def fake_agent():
    """The functions ``RunAxis`` wraps, as plain functions of arrays."""
    learner = SimpleNamespace(
        learn=lambda state, replay, n: (state + n, replay * 2, {"updates": state * 0 + n}),
        refresh=lambda state, replay, chunk: replay + state + chunk,
        add_step=lambda state, replay, obs, a, r, te, tr, p: replay + obs.sum() + r.sum(),
    )

    def act(variables, key, obs, temperature, noise):
        return variables + obs.sum(-1) * temperature + noise

    return SimpleNamespace(
        learner=learner,
        replay=SimpleNamespace(end_episodes=lambda replay: replay - 1),
        act=act,
        learn=learner.learn,
        refresh=learner.refresh,
        add=learner.add_step,
        end_episodes=lambda replay: replay - 1,
    )


def test_one_run_uses_the_functions_as_built_and_leaves_arrays_alone():
    agent = fake_agent()
    axis = host.RunAxis(agent, 1)
    assert axis.act is agent.act and axis.learn is agent.learn and axis.add is agent.add
    assert axis.refresh is agent.refresh and axis.end_episodes is agent.end_episodes
    tree = {"a": jnp.arange(3)}
    assert axis.stack([tree]) is tree and axis.take(tree, 0) is tree
    x = np.arange(6).reshape(3, 2)
    assert axis.per_run(x) is x and axis.envs_of(x, 0) is x
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(np.stack(axis.split_key(key)), jax.random.split(key))


def test_several_runs_stack_split_and_vmap_per_run():
    axis = host.RunAxis(fake_agent(), 2)
    stacked = axis.stack([{"a": jnp.asarray([1.0, 2.0])}, {"a": jnp.asarray([3.0, 4.0])}])
    np.testing.assert_array_equal(stacked["a"], [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(axis.take(stacked, 1)["a"], [3.0, 4.0])
    envs = np.arange(12).reshape(6, 2)  # 2 runs x 3 envs
    np.testing.assert_array_equal(axis.per_run(envs), envs.reshape(2, 3, 2))
    np.testing.assert_array_equal(axis.envs_of(envs, 1), envs[3:])
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
    key, sub = axis.split_key(keys)
    for run, seed in enumerate((1, 2)):  # each run's stream as it would be alone
        alone = jax.random.split(jax.random.PRNGKey(seed))
        np.testing.assert_array_equal(key[run], alone[0])
        np.testing.assert_array_equal(sub[run], alone[1])
    # per run: act vmaps over variables, keys and observations, not temperature and noise
    variables = jnp.asarray([10.0, 20.0])
    obs = jnp.asarray([[[1.0, 2.0]], [[3.0, 4.0]]])  # [runs, envs, features]
    np.testing.assert_allclose(axis.act(variables, keys, obs, 2.0, 0.5), [[16.5], [34.5]])
    state = lambda: jnp.asarray([1.0, 2.0])  # noqa: E731 (learn, refresh, add donate)
    replay = lambda: jnp.asarray([5.0, 7.0])  # noqa: E731
    new_state, new_replay, sums = axis.learn(state(), replay(), 3)
    np.testing.assert_allclose(new_state, [4.0, 5.0])
    np.testing.assert_allclose(new_replay, [10.0, 14.0])
    np.testing.assert_allclose(sums["updates"], [3.0, 3.0])
    np.testing.assert_allclose(axis.refresh(state(), replay(), 1), [7.0, 10.0])
    reward = jnp.asarray([[1.0], [2.0]])
    added = axis.add(state(), replay(), obs, None, reward, None, None, None)
    np.testing.assert_allclose(added, [5.0 + 3.0 + 1.0, 7.0 + 7.0 + 2.0])
    np.testing.assert_allclose(axis.end_episodes(replay()), [4.0, 6.0])


def test_several_runs_donate_the_learner_state_and_replay_each_step_replaces():
    """The replay is a run's largest array: each jitted step hands its input's buffers over to
    the state or replay it returns, so a device holds one copy of them, not two."""
    axis = host.RunAxis(fake_agent(), 2)
    state, replay = jnp.asarray([1.0, 2.0]), jnp.asarray([5.0, 7.0])
    new_state, new_replay, _ = axis.learn(state, replay, 3)
    assert state.is_deleted() and replay.is_deleted()
    kept = jnp.asarray([1.0, 2.0])
    refreshed = axis.refresh(kept, new_replay, 1)
    assert new_replay.is_deleted() and not kept.is_deleted()
    obs, reward = jnp.ones((2, 1, 2)), jnp.ones((2, 1))
    added = axis.add(kept, refreshed, obs, None, reward, None, None, None)
    assert refreshed.is_deleted() and not kept.is_deleted() and not obs.is_deleted()
    axis.end_episodes(added)
    assert added.is_deleted() and not new_state.is_deleted()


def test_the_spaces_probe_names_the_env_whose_actions_efficientzero_cannot_take():
    from dreamer.core.errors import ObservationSpaceError

    cfg = apply_overrides(Config(), ["env.id=Pendulum-v1"])
    with pytest.raises(ObservationSpaceError, match="^Pendulum-v1 has action space Box"):
        host.probe_spaces(cfg)


def test_each_runs_environments_are_reseeded_as_they_would_be_alone():
    loop = SimpleNamespace(cfg=SimpleNamespace(env=SimpleNamespace(num_envs=2)), seeds=[3, 4])
    loop.env_steps = 100
    seeds = host.HostLoop.reset_seeds(loop)
    assert seeds == [
        3 * 1_000_003 + 100,
        3 * 1_000_003 + 101,
        4 * 1_000_003 + 100,
        4 * 1_000_003 + 101,
    ]


def test_a_checkpoints_evaluation_is_greedy_or_as_training_acts_at_that_step(monkeypatch):
    """``host.evaluate``: the search at temperature 0 without noise, or with ``stochastic``
    at the temperature of the checkpoint's step and the exploration noise on."""
    cfg = apply_overrides(
        Config(),
        ["run.env_steps=1000", "search.temperatures=[1.0,0.5]",
         "search.temperature_milestones=[0.5]"],
    )  # fmt: skip
    calls = []

    def act(variables, rng, obs, temperature, noise):
        calls.append((variables, temperature, noise))
        return SimpleNamespace(action=np.zeros(len(obs), np.int32))

    played = []
    steps = {"now": 400}

    def restore(cfg, run_dir):
        return SimpleNamespace(act=act), "variables", steps["now"]

    def evaluate_policy(env, policy, **kwargs):
        played.append(kwargs["episodes"])
        policy(np.zeros((2, 4), np.float32))
        return [1.0]

    monkeypatch.setattr(host, "restore_newest", restore)
    monkeypatch.setattr(host, "evaluate_policy", evaluate_policy)
    host.evaluate(cfg, "run", episodes=3)
    host.evaluate(cfg, "run", episodes=3, stochastic=True)
    steps["now"] = 600  # past the milestone: the schedule's second temperature
    host.evaluate(cfg, "run", episodes=3, stochastic=True)
    assert calls == [("variables", 0.0, 0.0), ("variables", 1.0, 1.0), ("variables", 0.5, 1.0)]
    assert played == [3, 3, 3]
