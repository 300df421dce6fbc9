import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.config import apply_overrides
from dreamer.learner import learning_rate_schedule, make_learner
from dreamer.networks import make_network
from dreamer.replay import Replay
from experiments.efficientzero import debug

OVERRIDES = [
    "replay.batch_size=16",
    "optim.learning_rate=3e-3",
    "optim.warmup_updates=1",
    "optim.target_update_every=3",
]


@pytest.fixture(scope="module")
def setup():
    """One compiled learner for the module (compilation dominates the test time)."""
    return _setup(*OVERRIDES)


def _setup(*overrides):
    cfg = apply_overrides(debug(), list(overrides))
    net = make_network(cfg.model, (4,), 2)
    init, update = make_learner(cfg, net, frame_stack=1)
    replay = Replay(
        cfg.replay,
        num_envs=2,
        frame_shape=(4,),
        frame_dtype=np.float32,
        num_actions=2,
        frame_stack=1,
    )
    rng = np.random.default_rng(0)
    for t in range(60):
        replay.add(
            rng.normal(size=(2, 4)).astype(np.float32),
            rng.integers(0, 2, 2),
            np.ones(2),
            np.array([t % 17 == 16, False]),
            np.zeros(2, bool),
            np.tile([0.8, 0.2], (2, 1)),
        )
    batch, _ = replay.sample(rng, beta=0.4)
    state = init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    return cfg, state, update, batch


def test_repeated_updates_on_one_batch_lower_the_loss(setup):
    cfg, state, update, batch = setup
    losses = []
    for _ in range(30):
        state, metrics = update(state, batch)
        losses.append(float(metrics["loss"]))
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
    rewards = batch.rewards.copy()
    rewards[0, 0] = np.nan
    bad = batch.replace(rewards=rewards)
    new, metrics = update(state, bad)
    assert not bool(metrics["finite"])
    assert int(new.step) == int(state.step)
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, new.params, state.params)))


def test_update_compiles_once(setup):
    _, state, update, batch = setup
    state, _ = update(state, batch)
    size = update._cache_size()
    state, _ = update(state, batch)
    assert update._cache_size() == size == 1  # no retracing across steps


@pytest.mark.parametrize("decay", ["step", "cosine", "none"])
def test_learning_rate_schedule_warms_up(decay):
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
    assert float(lr(0)) == pytest.approx(0.1)
    assert float(lr(9)) == pytest.approx(1.0)
    later = float(lr(35))
    assert {
        "step": later == pytest.approx(0.1),
        "cosine": 0 < later < 0.5,
        "none": later == pytest.approx(1.0),
    }[decay]
