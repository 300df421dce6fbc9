import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero.config import apply_overrides
from dreamer.agents.efficientzero.learner import learning_rate_schedule, make_learner
from dreamer.agents.efficientzero.networks import make_network
from dreamer.agents.efficientzero.replay import Replay
from experiments.efficientzero import atari100k, debug

OVERRIDES = [
    "replay.batch_size=16",
    "optim.learning_rate=3e-3",
    "optim.warmup_updates=1",
    "optim.target_update_every=3",
]


def build(*overrides):
    cfg = apply_overrides(debug(), list(overrides))
    net = make_network(cfg.model, (4,), 2)
    replay = Replay(
        cfg.replay,
        num_envs=2,
        frame_shape=(4,),
        frame_dtype=np.float32,
        num_actions=2,
        frame_stack=1,
    )
    learner = make_learner(cfg, net, replay)
    rstate = replay.init()
    rng = np.random.default_rng(0)
    for t in range(60):
        rstate = replay.add(
            rstate,
            rng.normal(size=(2, 4)).astype(np.float32),
            rng.integers(0, 2, 2),
            np.ones(2),
            np.array([t % 17 == 16, False]),
            np.zeros(2, bool),
            np.tile([0.8, 0.2], (2, 1)),
            np.zeros(2),
        )
    state = learner.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    return cfg, replay, learner, state, rstate


@pytest.fixture(scope="module")
def setup():
    """One compiled learner for the module (compilation dominates the test time)."""
    cfg, replay, learner, state, rstate = build(*OVERRIDES)
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(1), beta=0.4)
    return cfg, state, jax.jit(learner.update), batch


def test_repeated_updates_on_one_batch_lower_the_loss(setup):
    cfg, state, update, batch = setup
    losses = []
    for _ in range(30):
        state, metrics = update(state, batch)
        losses.append(float(metrics["losses/total"]))
        assert bool(metrics["finite"])
        assert np.isfinite(np.asarray(metrics["priorities"])).all()
    assert int(state.step) == 30
    assert losses[-1] < 0.7 * losses[0]
    for leaf in jax.tree.leaves(state.params):
        assert bool(jnp.isfinite(leaf).all())


def test_target_network_refreshes_on_schedule(setup):
    _, state, update, batch = setup
    first = state.target_params
    for i in range(1, 4):
        state, _ = update(state, batch)
        same = all(jax.tree.leaves(jax.tree.map(jnp.array_equal, first, state.target_params)))
        assert same == (i < 3)
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, state.params, state.target_params)))


def test_non_finite_update_is_not_applied(setup):
    _, state, update, batch = setup
    bad = batch.replace(rewards=batch.rewards.at[0, 0].set(jnp.nan))
    new, metrics = update(state, bad)
    assert not bool(metrics["finite"])
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, new.params, state.params)))
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, new.opt_state, state.opt_state)))
    # The step counts every update made, applied or not: the target sync keeps in step with
    # the shell's cache refresh, which counts the same updates.
    assert int(new.step) == int(state.step) + 1


def test_a_skipped_update_at_a_sync_step_still_syncs_to_the_last_good_parameters(setup):
    _, state, update, batch = setup  # target_update_every = 3
    bad = batch.replace(rewards=batch.rewards.at[0, 0].set(jnp.nan))
    state, _ = update(state, batch)
    state, _ = update(state, batch)
    good = state.params
    assert not all(jax.tree.leaves(jax.tree.map(jnp.array_equal, good, state.target_params)))
    state, metrics = update(state, bad)  # update 3: a sync step, skipped
    assert not bool(metrics["finite"]) and int(state.step) == 3
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, good, state.target_params)))


def test_new_steps_enter_the_target_cache_with_the_target_networks_value(setup):
    cfg, replay, learner, state, rstate = build(*OVERRIDES)
    # Move the online network away from the target network, then add one step.
    for _ in range(2):
        state, _ = jax.jit(learner.update)(
            state, replay.sample(rstate, jax.random.PRNGKey(1), beta=0.4)[0]
        )
    obs = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
    zeros = np.zeros(2, bool)
    rstate = learner.add_step(
        state, rstate, obs, np.array([0, 1]), np.ones(2), zeros, zeros, np.full((2, 2), 0.5)
    )
    newest = (np.asarray(rstate.count) - 1) % replay.slots
    stored = np.asarray(rstate.values)[np.arange(2), newest]
    net = make_network(cfg.model, (4,), 2)
    from dreamer.agents.efficientzero.transforms import support_to_scalar

    def value(variables):
        _, logits = net.apply(
            variables, net.apply(variables, obs, method="represent"), method="predict"
        )
        return np.asarray(support_to_scalar(logits, cfg.model.value_support))

    np.testing.assert_allclose(stored, value(state.target_variables), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored, value(state.variables), rtol=1e-3, atol=1e-4)


def test_update_compiles_once(setup):
    _, state, update, batch = setup
    state, _ = update(state, batch)
    size = update._cache_size()
    state, _ = update(state, batch)
    assert update._cache_size() == size == 1  # no retracing across steps


def test_learn_runs_count_updates_and_writes_priorities_back():
    _, replay, learner, state, rstate = build(*OVERRIDES)
    learn = jax.jit(learner.learn)
    before = np.asarray(rstate.priorities).copy()
    state, rstate, sums = learn(state, rstate, 4)
    assert int(state.step) == 4 and float(sums["updates"]) == 4.0
    assert float(sums["finite_updates"]) == 4.0
    assert np.isfinite(float(sums["losses/total"]))
    changed = np.asarray(rstate.priorities) != before
    assert 0 < changed.sum() <= 4 * 16
    state, rstate, sums = learn(state, rstate, 0)  # a traced count: no recompilation
    assert int(state.step) == 4 and float(sums["updates"]) == 0.0
    assert learn._cache_size() == 1


def test_cached_targets_equal_per_batch_targets_with_noise_off():
    noise_off = [*OVERRIDES, "search.dirichlet_fraction=0.0", "replay.reanalyze_fraction=1.0"]
    cfg, replay, cached, state, rstate = build(*noise_off, "replay.reanalyze_mode=cached")
    _, _, per_batch, _, _ = build(*noise_off, "replay.reanalyze_mode=per_batch")
    refresh = jax.jit(cached.refresh)
    for chunk in range(cached.num_chunks(replay.slots)):
        rstate = refresh(state, rstate, chunk)
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(2), beta=1.0)
    key = jax.random.PRNGKey(3)
    a = jax.jit(cached.targets)(state, batch, key)
    b = jax.jit(per_batch.targets)(state, batch, key)
    np.testing.assert_allclose(a["values"], b["values"], rtol=1e-4)  # batch shapes differ
    np.testing.assert_allclose(a["policies"], b["policies"], atol=1e-6)
    np.testing.assert_array_equal(a["mask"], b["mask"])
    # The refresh replaced the acting policies ([0.8, 0.2]) by searched ones.
    assert not np.allclose(np.asarray(a["policies"])[:, 0], [0.8, 0.2])


@pytest.mark.parametrize("decay", ["step", "cosine", "none"])
def test_learning_rate_schedule_warms_up_from_zero(decay):
    cfg = apply_overrides(
        debug(),
        [
            f"optim.decay={decay}",
            "optim.warmup_updates=10",
            "optim.learning_rate=1.0",
            "optim.decay_updates=20",
        ],
    )
    lr = learning_rate_schedule(cfg.optim, total_updates=40)
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.5)
    assert float(lr(10)) == pytest.approx(1.0)
    later = float(lr(35))
    assert {
        "step": later == pytest.approx(0.1),
        "cosine": 0 < later < 0.5,
        "none": later == pytest.approx(1.0),
    }[decay]


def test_atari100k_update_count_and_schedule_follow_the_official_code():
    """EfficientZero-V1: 100k updates while collecting + 20k after (``last_steps``); lr 0.2,
    1k warm-up steps (1% of 100k), x0.1 after update 101k (``adjust_lr``)."""
    cfg = atari100k()
    assert cfg.total_updates == 120_000
    lr = learning_rate_schedule(cfg.optim, cfg.total_updates)
    assert float(lr(0)) == 0.0 and float(lr(500)) == pytest.approx(0.1)
    assert float(lr(1_000)) == pytest.approx(0.2) and float(lr(100_999)) == pytest.approx(0.2)
    assert float(lr(101_000)) == pytest.approx(0.02)
    assert float(lr(119_999)) == pytest.approx(0.02)


def test_init_keeps_the_batch_norm_statistics_of_the_network_for_online_and_target():
    cfg, _, _, state, _ = build("model.norm=batch")
    init_rng, _ = jax.random.split(jax.random.PRNGKey(0))  # build's init key, as init splits it
    net = make_network(cfg.model, (4,), 2)
    expected = net.init(init_rng, jnp.zeros((1, 4)), jnp.zeros(1, jnp.int32))["batch_stats"]
    assert jax.tree.leaves(expected)  # BatchNorm layers keep running statistics
    for stats in (state.batch_stats, state.target_batch_stats):
        jax.tree.map(np.testing.assert_array_equal, stats, expected)
