"""DQN family: targets, losses, replay, networks, learner and one end-to-end run."""

from __future__ import annotations

import dataclasses
import json

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.baselines.config import NetworkConfig
from dreamer.agents.baselines.dqn.builder import build
from dreamer.agents.baselines.dqn.config import DQNConfig, DQNParams
from dreamer.agents.baselines.dqn.learning import (
    Batch,
    double_q_target,
    huber,
    linear_epsilon,
    make_learner,
    td_loss,
)
from dreamer.agents.baselines.dqn.networks import QNetwork, dueling_aggregate
from dreamer.agents.baselines.dqn.replay import Replay, n_step_return
from dreamer.agents.baselines.networks import initializers, stack_to_channels, torso_kind
from dreamer.agents.baselines.vector import discrete_actions, final_observations
from dreamer.core.config import EnvConfig, RunConfig
from dreamer.core.configtree import ConfigError
from dreamer.core.errors import ObservationSpaceError
from dreamer.core.shift import random_shift
from dreamer.loops import dqn
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.runlog import read_metrics


def test_n_step_return_stops_at_episode_end():
    rewards = np.array([[1.0, 2.0, 3.0]] * 3)
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    truncated = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 1]], bool)
    returns, discounts, steps = n_step_return(rewards, terminated, truncated, 0.5)
    np.testing.assert_allclose(returns, [1 + 0.5 * 2 + 0.25 * 3, 1 + 0.5 * 2, 1.0])
    np.testing.assert_allclose(discounts, [0.125, 0.0, 0.5])  # truncation still bootstraps
    np.testing.assert_array_equal(steps, [3, 2, 1])


@pytest.mark.parametrize("jit", [False, True])
def test_double_q_target(jit):
    f = jax.jit(double_q_target) if jit else double_q_target
    q_target = jnp.array([[1.0, 5.0], [3.0, 2.0]])
    q_online = jnp.array([[2.0, 1.0], [0.0, 4.0]])
    r, discount = jnp.array([1.0, 1.0]), jnp.array([0.5, 0.0])
    np.testing.assert_allclose(f(q_target, q_online, r, discount), [1.5, 1.0])
    np.testing.assert_allclose(f(q_target, q_target, r, discount), [3.5, 1.0])  # plain max


@pytest.mark.parametrize("jit", [False, True])
def test_dueling_aggregate(jit):
    f = jax.jit(dueling_aggregate) if jit else dueling_aggregate
    q = f(jnp.array([1.0, 2.0]), jnp.array([[1.0, 3.0], [0.0, 0.0]]))
    np.testing.assert_allclose(q, [[0.0, 2.0], [2.0, 2.0]])


def test_huber_and_weighted_td_loss():
    np.testing.assert_allclose(huber(jnp.array([0.5, -2.0]), 1.0), [0.125, 1.5])
    q = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    loss, td = td_loss(q, jnp.array([1, 0]), jnp.array([2.5, 3.0]), jnp.array([1.0, 0.5]), 1.0)
    np.testing.assert_allclose(td, [0.5, 3.0])
    np.testing.assert_allclose(loss, (0.125 + 0.5 * 2.5) / 2)


def test_linear_epsilon():
    p = DQNParams(epsilon_start=1.0, epsilon_final=0.1, epsilon_decay_start=100)
    p = dataclasses.replace(p, epsilon_decay_steps=900)
    assert linear_epsilon(p, 0) == 1.0
    assert linear_epsilon(p, 550) == pytest.approx(0.55)
    assert linear_epsilon(p, 5_000) == pytest.approx(0.1)


def _fill_stacked_replay(n_step: int, stack: int = 2) -> tuple[Replay, dict[int, tuple]]:
    """Two episodes with ``stack``-frame stacks of frame ids ``1000 e + x`` (frame x is seen
    after x steps): the first terminates after 3 steps, the second is truncated after 4.
    Reward of step t = the id of frame t."""
    replay = Replay(
        capacity=64,
        num_envs=1,
        obs_shape=(stack, 1),
        obs_dtype=np.float32,
        stacked=True,
        n_step=n_step,
        gamma=0.5,
    )
    truth = {}
    for episode, (length, terminal) in enumerate([(3, True), (4, False)], start=1):

        def frame(x: int, episode: int = episode) -> int:
            return 1000 * episode + x

        def window(x: int) -> np.ndarray:  # frames x - stack + 1 .. x
            return np.array([[[frame(y)] for y in range(x - stack + 1, x + 1)]], np.float32)

        for t in range(length):
            end = t == length - 1
            replay.add(
                window(t),
                np.array([t % 2]),
                np.array([float(frame(t))]),
                np.array([end and terminal]),
                np.array([end and not terminal]),
                window(t + 1),
            )
            steps = min(n_step, length - t)
            ret = sum(0.5**k * frame(t + k) for k in range(steps))
            ends = t + steps == length
            discount = 0.0 if (ends and terminal) else 0.5**steps
            truth[frame(t)] = (ret, discount, frame(t + steps))
    return replay, truth


@pytest.mark.parametrize("stack", [2, 3])
def test_replay_rebuilds_stacks_and_n_step_targets(stack):
    replay, truth = _fill_stacked_replay(n_step=2, stack=stack)
    assert replay.size == len(truth) == 7
    assert replay.frames.dtype == np.float32  # frames are kept in the observation dtype
    batch = replay.sample(256, np.random.default_rng(0), alpha=0.0, beta=1.0)
    assert batch["reward"].dtype == batch["discount"].dtype == np.float32
    seen = set()
    back = np.arange(-stack + 1, 1)
    for i in range(256):
        frame = int(batch["obs"][i, -1, 0])
        seen.add(frame)
        ret, discount, next_frame = truth[frame]
        np.testing.assert_array_equal(batch["obs"][i, :, 0], frame + back)
        assert batch["reward"][i] == pytest.approx(ret)
        assert batch["discount"][i] == pytest.approx(discount)
        np.testing.assert_array_equal(batch["next_obs"][i, :, 0], next_frame + back)
        assert batch["weight"][i] == 1.0
    assert seen == set(truth)


def test_a_restored_replay_keeps_its_own_dtypes():
    """A checkpoint may hand the fields back as JAX arrays (float64 becomes float32 with x64
    off): the replay casts them back to its own dtypes."""
    replay, _ = _fill_stacked_replay(n_step=2)
    replay.update_priorities(np.flatnonzero(replay.ready.ravel()), np.full(7, 1.0 + 1e-9))
    state = replay.state()
    fresh, _ = _fill_stacked_replay(n_step=2)
    fresh.load_state({name: jnp.asarray(value) for name, value in state.items()})
    for name, value in fresh.state().items():
        assert value.dtype == state[name].dtype, name
        np.testing.assert_allclose(value, state[name], rtol=1e-6)


def test_replay_priorities_and_interrupt():
    replay, truth = _fill_stacked_replay(n_step=2)
    rng = np.random.default_rng(0)
    index = np.flatnonzero(replay.ready.ravel())
    favourite = index[0]
    replay.update_priorities(index, np.ones(len(index)))
    replay.update_priorities(np.array([favourite]), np.array([6.0]))  # P = 6 / 12
    batch = replay.sample(512, rng, alpha=1.0, beta=1.0)
    hits = batch["index"] == favourite
    assert 0.4 < hits.mean() < 0.6
    # weights (N P)^-beta over their maximum: (7 * 1/2)^-1 / (7 * 1/12)^-1 = 1/6
    np.testing.assert_allclose(batch["weight"][hits], 1 / 6, rtol=1e-6)
    np.testing.assert_allclose(batch["weight"][~hits], 1.0)
    # A running episode has no next observation for its newest step; on resume it becomes
    # the final frame and the step before it is truncated (bootstrapping from it).
    obs = np.array([[[3000.0], [3001.0]]], np.float32)
    for frame in (3001.0, 3002.0):
        replay.add(obs, np.array([0]), np.array([frame]), *np.zeros((2, 1), bool), obs)
        obs = obs + 1
    size = replay.size
    replay.interrupt()
    assert replay.size == size + 1
    batch = replay.sample(512, rng, alpha=0.0, beta=1.0)
    mask = batch["obs"][:, -1, 0] == 3001.0
    assert mask.any()
    np.testing.assert_allclose(batch["reward"][mask], 3001.0)
    np.testing.assert_allclose(batch["discount"][mask], 0.5)
    np.testing.assert_array_equal(batch["next_obs"][mask, :, 0], [[3001.0, 3002.0]] * mask.sum())


def test_networks_shapes_and_random_shift():
    images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, 4, 36, 36, 3)), jnp.uint8)
    cfg = NetworkConfig(kind="auto", conv_dense=16, head_hidden=(8,))
    net = QNetwork(cfg, num_actions=5, dueling=True)
    params = jax.jit(net.init)(jax.random.PRNGKey(0), images)
    q = jax.jit(net.apply)(params, images)
    assert q.shape == (2, 5) and q.dtype == jnp.float32
    np.testing.assert_array_equal(random_shift(jax.random.PRNGKey(1), images, 0), images)
    shifted = random_shift(jax.random.PRNGKey(1), images, 4)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    _check_shift_values()
    torch_net = QNetwork(NetworkConfig(kind="mlp", hidden=(8,), init="torch"), 2, dueling=False)
    torch_params = jax.jit(torch_net.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    bias = torch_params["params"]["Torso_0"]["Linear_0"]["Dense_0"]["bias"]
    assert 0 < float(jnp.abs(bias).max()) <= 0.5  # uniform in +-1/sqrt(fan_in = 4)


def _check_shift_values(batch=64, pad=3, size=12):
    """Each example is its edge-padded image cropped at one offset in [0, 2 pad]^2, the same
    for every frame of its stack; offsets vary over the batch."""
    b, f, i, j = np.meshgrid(
        np.arange(batch), np.arange(2), np.arange(size), np.arange(size), indexing="ij"
    )
    images = (b * 10_000 + f * 1_000 + 30 * i + j).astype(np.float32)[..., None]
    out = np.asarray(random_shift(jax.random.PRNGKey(3), jnp.asarray(images), pad))
    offsets = set()
    for e in range(batch):
        padded = np.pad(images[e], ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        # the centre pixel (6, 6) is never an edge copy: it tells the offset
        value = out[e, 0, 6, 6, 0] - e * 10_000
        dy, dx = int(value // 30) - 6 + pad, int(value % 30) - 6 + pad
        assert 0 <= dy <= 2 * pad and 0 <= dx <= 2 * pad
        np.testing.assert_array_equal(out[e], padded[:, dy : dy + size, dx : dx + size])
        offsets.add((dy, dx))
    assert len(offsets) > 20  # of 49
    assert {d for o in offsets for d in o} == set(range(2 * pad + 1))


def test_repeated_updates_lower_the_loss():
    rng = np.random.default_rng(0)
    p = DQNParams(lr=1e-2, double=True, dueling=True, n_step=3)
    net = QNetwork(NetworkConfig(kind="mlp", hidden=(32,)), num_actions=3, dueling=True)
    learner = make_learner(p, net, augment=False)
    batch = Batch(
        obs=rng.normal(size=(32, 4)).astype(np.float32),
        action=rng.integers(0, 3, 32),
        reward=rng.normal(size=32).astype(np.float32),
        discount=np.full(32, 0.9, np.float32),
        next_obs=rng.normal(size=(32, 4)).astype(np.float32),
        weight=np.ones(32, np.float32),
    )
    state = learner.init(jax.random.PRNGKey(0), batch.obs[:1])
    state = learner.sync_target(state)
    losses = []
    for _ in range(30):
        state, metrics = learner.update(state, batch)
        losses.append(float(metrics["losses/td"]))
        assert bool(metrics["finite"])
    assert losses[-1] < 0.5 * losses[0]
    assert int(state.step) == 30
    actions, _ = learner.act(state.params, batch.obs, jax.random.PRNGKey(1), 0.0)
    q = learner.q_values(state.params, batch.obs)
    np.testing.assert_array_equal(actions, jnp.argmax(q, axis=-1))


def test_an_augmented_update_is_the_update_on_the_shifted_batch():
    """DrQ: the update shifts ``obs`` and ``next_obs`` with keys of its own (split from the
    learner's key) and otherwise learns as the unaugmented learner on the shifted batch."""
    rng = np.random.default_rng(1)
    p = DQNParams(lr=1e-3, augment_pad=2)
    net = QNetwork(NetworkConfig(kind="conv"), num_actions=3, dueling=False)
    shape = (4, 2, 36, 36, 1)
    batch = Batch(
        obs=rng.integers(0, 256, shape).astype(np.uint8),
        action=rng.integers(0, 3, 4),
        reward=rng.normal(size=4).astype(np.float32),
        discount=np.full(4, 0.9, np.float32),
        next_obs=rng.integers(0, 256, shape).astype(np.uint8),
        weight=np.ones(4, np.float32),
    )
    augmented = make_learner(p, net, augment=True)
    plain = make_learner(p, net, augment=False)
    state = augmented.init(jax.random.PRNGKey(0), batch.obs[:1])
    _, obs_key, next_key = jax.random.split(state.rng, 3)
    shifted = batch.replace(
        obs=random_shift(obs_key, jnp.asarray(batch.obs), 2),
        next_obs=random_shift(next_key, jnp.asarray(batch.next_obs), 2),
    )
    assert not np.array_equal(shifted.obs, batch.obs)
    a_state, a_metrics = augmented.update(state, batch)
    b_state, b_metrics = plain.update(state, shifted)
    np.testing.assert_allclose(a_metrics["losses/td"], b_metrics["losses/td"], rtol=1e-6)
    for x, y in zip(jax.tree.leaves(a_state.params), jax.tree.leaves(b_state.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_exploration_draws_every_action_uniformly():
    net = QNetwork(NetworkConfig(kind="mlp", hidden=(8,)), num_actions=3, dueling=False)
    learner = make_learner(DQNParams(), net, augment=False)
    obs = np.zeros((3000, 4), np.float32)
    state = learner.init(jax.random.PRNGKey(0), obs[:1])
    actions, _ = learner.act(state.params, obs, jax.random.PRNGKey(1), 1.0)
    np.testing.assert_allclose(
        np.bincount(np.asarray(actions), minlength=3) / 3000, 1 / 3, atol=0.03
    )
    greedy, _ = learner.act(state.params, obs, jax.random.PRNGKey(1), 0.0)
    assert len(set(np.asarray(greedy).tolist())) == 1  # the same obs: the same greedy action


def test_final_observations_replace_only_the_ended_envs_next_obs():
    next_obs = np.arange(6.0).reshape(3, 2)  # the ended env's row is already its reset obs
    final = np.empty(3, object)
    final[1] = np.array([-1.0, -2.0])
    out = final_observations(next_obs, {"final_obs": final}, np.array([False, True, False]))
    np.testing.assert_array_equal(out, [[0.0, 1.0], [-1.0, -2.0], [4.0, 5.0]])
    np.testing.assert_array_equal(next_obs, np.arange(6.0).reshape(3, 2))  # left alone


def test_a_continuous_action_space_is_refused_by_name():
    box = gymnasium.spaces.Box(-1.0, 1.0, (2,))
    with pytest.raises(ObservationSpaceError, match=r"Discrete action space.*Box"):
        build(_tiny_config(100), gymnasium.spaces.Box(-1, 1, (4,)), box)
    assert discrete_actions(gymnasium.spaces.Discrete(5)) == 5


def test_torso_kind_follows_the_observation_rank_unless_named():
    auto = NetworkConfig()
    assert torso_kind(auto, (4,)) == "mlp"
    assert torso_kind(auto, (84, 84, 3)) == torso_kind(auto, (4, 84, 84, 1)) == "conv"
    assert torso_kind(NetworkConfig(kind="mlp"), (84, 84, 3)) == "mlp"
    assert torso_kind(NetworkConfig(kind="conv"), (4, 84, 84, 1)) == "conv"
    with pytest.raises(ObservationSpaceError, match="network.kind=conv needs image"):
        torso_kind(NetworkConfig(kind="conv"), (4,))


def test_stack_to_channels_puts_frame_s_channel_c_at_s_times_c_plus_c():
    obs = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 6, 2)).astype(np.uint8)
    out = np.asarray(stack_to_channels(jnp.asarray(obs)))
    assert out.shape == (2, 5, 6, 3 * 2) and out.dtype == np.float32
    for s, c in np.ndindex(3, 2):
        np.testing.assert_allclose(out[..., 2 * s + c], obs[:, s, :, :, c] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("scheme", ["orthogonal", "torch"])
def test_layer_initialisers(scheme):
    kernel_init, bias_init = initializers(scheme, fan_in=256, scale=2.0)
    kernel = np.asarray(kernel_init(jax.random.PRNGKey(0), (256, 64)))
    bias = np.asarray(bias_init(jax.random.PRNGKey(1), (4096,)))
    if scheme == "orthogonal":  # orthonormal columns times the gain; zero biases
        np.testing.assert_allclose(kernel.T @ kernel, 4.0 * np.eye(64), atol=1e-4)
        assert not bias.any()
    else:  # PyTorch's default: kernel and bias uniform in +- 1 / sqrt(fan_in)
        bound = 1.0 / 16.0
        for x in (kernel, bias):
            assert np.abs(x).max() <= bound and np.abs(x).max() > 0.99 * bound
            assert x.std() == pytest.approx(bound / np.sqrt(3.0), rel=0.03)


def test_bad_values_raise_config_error_with_the_fix():
    with pytest.raises(ConfigError, match="dqn.gamma"):
        DQNParams(gamma=1.5)
    with pytest.raises(ConfigError, match="dqn.buffer_size"):
        Replay(
            capacity=40,
            num_envs=2,
            obs_shape=(4,),
            obs_dtype=np.float32,
            stacked=False,
            n_step=30,
            gamma=0.9,
        )


def _tiny_config(env_steps: int) -> DQNConfig:
    return DQNConfig(
        env=EnvConfig(id="CartPole-v1", num_envs=2, num_eval_envs=2),
        run=RunConfig(
            env_steps=env_steps,
            eval_every=200,
            eval_episodes=2,
            final_eval_episodes=2,
            log_every=100,
            checkpoint_every=200,
            progress=False,
        ),
        network=NetworkConfig(kind="mlp", hidden=(16,)),
        dqn=DQNParams(
            lr=1e-3,
            batch_size=16,
            buffer_size=1_000,
            learning_starts=100,
            n_step=3,
            double=True,
            dueling=True,
            prioritized=True,
            target_update_interval=50,
            train_freq=4,
            epsilon_decay_steps=200,
            eval_epsilon=0.5,  # evaluations whose returns depend on the actor's key
        ),
    )


def _final_learner(cfg: DQNConfig, run_dir):
    """The learner state of the newest checkpoint in ``run_dir``."""
    parts = build(cfg, gymnasium.spaces.Box(-1, 1, (4,)), gymnasium.spaces.Discrete(2))
    state, act_key = parts.init(cfg.run.seed)
    ckpt = Checkpointer(run_dir)
    arrays, _ = ckpt.restore(
        {"learner": state, "replay": parts.replay(cfg).state(), "act_key": act_key}
    )
    ckpt.close()
    return arrays["learner"]


def test_train_writes_run_folder_and_resumes(tmp_path, monkeypatch, evaluation_seeds):
    summary = dqn.train(_tiny_config(400), tmp_path)
    # 2 envs, learning from step 100, an update at every multiple of 4 above it: 104 .. 400
    assert summary["env_steps"] == 400 and summary["updates"] == 75
    assert [s for s, _ in summary["eval_curve"]] == [200, 400]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["final_eval_return"] == summary["final_eval_return"]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [100, 200, 300, 400]
    assert rows[-1]["losses/td"] != "" and rows[0]["eval/return_mean"] == ""
    assert [r["env_steps"] for r in rows if r["eval/return_mean"]] == ["200", "400"]
    p = _tiny_config(400).dqn
    for r in rows:  # the exploration epsilon of each row's env step
        assert float(r["charts/epsilon"]) == pytest.approx(linear_epsilon(p, int(r["env_steps"])))
    # the target network is synced every 50 env steps, the last time after the update at 400
    state = _final_learner(_tiny_config(400), tmp_path)
    assert int(state.step) == 75
    for x, y in zip(
        jax.tree.leaves(state.params), jax.tree.leaves(state.target_params), strict=True
    ):
        np.testing.assert_array_equal(x, y)

    resumed = dqn.train(_tiny_config(600), tmp_path, resume=True)
    assert resumed["env_steps"] == 600 and resumed["updates"] == 75 + 50
    assert [s for s, _ in resumed["eval_curve"]] == [200, 400, 600]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [100, 200, 300, 400, 500, 600]
    # evaluating the checkpoint replays training's final evaluation: same episodes, same acts
    returns = dqn.evaluate(_tiny_config(600), tmp_path, episodes=2)
    assert evaluation_seeds[-1] == evaluation_seeds[-2] == 1_000_000 + 600
    assert returns == resumed["final_eval_returns"]
    # stochastic: epsilon-greedy at training's exploration epsilon of the checkpoint's step
    epsilons = []
    actor = dqn.greedy_actor
    monkeypatch.setattr(dqn, "greedy_actor", lambda *a: epsilons.append(a[2]) or actor(*a))
    dqn.evaluate(_tiny_config(600), tmp_path, episodes=2, stochastic=True)
    dqn.evaluate(_tiny_config(600), tmp_path, episodes=2)
    assert epsilons == [linear_epsilon(_tiny_config(600).dqn, 600), 0.5]


def test_the_replay_gets_each_ended_episodes_last_observation(tmp_path, monkeypatch):
    """The step that ends an episode is stored with the episode's last observation (the
    corridor's goal cell), not with the next episode's first (its start cell), which the
    vector env returns in its place."""
    added = []
    add = Replay.add

    def recording(self, obs, action, reward, terminated, truncated, next_obs):
        added.append((np.array(terminated), np.array(next_obs)))
        return add(self, obs, action, reward, terminated, truncated, next_obs)

    monkeypatch.setattr(Replay, "add", recording)
    length = 3
    cfg = dataclasses.replace(
        _tiny_config(200),
        env=EnvConfig(
            id="envs.examples:make_corridor",
            num_envs=2,
            num_eval_envs=2,
            options={"length": length, "max_steps": 8},
        ),
    )
    dqn.train(cfg, tmp_path)
    goal = np.eye(length, dtype=np.float32)[length - 1]
    ended = [next_obs[i] for terminated, next_obs in added for i in np.flatnonzero(terminated)]
    assert len(ended) >= 5  # random steps reach the goal of a 3-cell corridor often
    for obs in ended:
        np.testing.assert_array_equal(obs, goal)


def test_a_checkpoint_between_log_rows_checks_and_keeps_the_pending_updates(tmp_path):
    """Checkpoints at 150 and 300 with rows every 100: the save at 150 finds the updates
    since the row at 100 still pending, checks them finite and leaves them to the next row."""
    run = dataclasses.replace(_tiny_config(300).run, checkpoint_every=150)
    summary = dqn.train(dataclasses.replace(_tiny_config(300), run=run), tmp_path)
    assert summary["env_steps"] == 300 and summary["updates"] == 50
    checkpointer = Checkpointer(tmp_path)
    try:
        assert checkpointer.steps() == [150, 300]
    finally:
        checkpointer.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [100, 200, 300]
    assert rows[1]["losses/td"] != ""  # updates 104 .. 200, across the checkpoint at 150
