"""Imagined value targets (``replay.value_target``): the root value of the target network's
search as the value target, and EfficientZero-V2's mixed rule.

A hand-made model makes the search value known in closed form; the n-step targets on the same
data are computed by hand; the real network's cached and per-batch targets are compared with
each other (noise off).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero import compute
from dreamer.agents.efficientzero import targets as T
from dreamer.agents.efficientzero.config import ConfigError, ReplayConfig, apply_overrides
from dreamer.agents.efficientzero.learner import LearnerState, make_learner
from dreamer.agents.efficientzero.networks import make_network
from dreamer.agents.efficientzero.replay import Replay
from dreamer.agents.efficientzero.transforms import scalar_to_support
from experiments.efficientzero import debug

GAMMA, C = 0.5, 1.0
V_STAR = C / (1 - GAMMA)  # 2: the worth of paying C at every step forever
SIMS = 4  # reanalysis simulations
K, N = 3, 2  # unroll steps, n-step horizon
STEPS, END = 40, 16  # steps stored (one env); the first episode ends in a terminal at END
NEWEST = STEPS - 1
VALUE_SUPPORT, REWARD_SUPPORT = 10, 5

HAND = [
    "replay.batch_size=16",
    f"replay.unroll_steps={K}",
    f"replay.td_steps={N}",
    f"replay.discount={GAMMA}",
    f"replay.reanalyze_simulations={SIMS}",
    "replay.reanalyze_fraction=0.25",  # searches every row all the same
    f"model.value_support={VALUE_SUPPORT}",
    f"model.reward_support={REWARD_SUPPORT}",
    "model.lstm_horizon=3",
]


def u_at(t):
    """The observation at step t (one number), which is also its value under ``DepthNet``."""
    return 0.05 * t


def r_at(t):
    return 0.25 * ((t % 4) - 1)  # -0.25, 0, 0.25, 0.5, ...


def _logits(x, support):
    return jnp.log(jnp.maximum(scalar_to_support(x, support), 1e-12))


class DepthNet:
    """A model whose search value is known: the latent is ``[depth, u]``; the root of a search
    at observation ``[u]`` is ``[0, u]`` and is worth u; every state below it is worth
    V* = C / (1 - gamma), and every step pays C (a value prefix growing by C, which the search
    turns back into rewards). Each simulation backs up C + gamma V* = V* to the root, whatever
    the actions and depths, and mctx's root value is the mean of the root's own value and
    its N backed-up values: (u + N V*) / (N + 1)."""

    num_actions = 2

    def apply(self, variables, *args, method, **kwargs):
        del variables, kwargs
        if method == "represent":
            (obs,) = args
            return jnp.concatenate([jnp.zeros_like(obs[:, :1]), obs[:, :1]], axis=1)
        if method == "initial_lstm":
            (batch,) = args
            return jnp.zeros((batch, 2)), jnp.zeros((batch, 2))
        if method == "predict":
            (latent,) = args
            value = jnp.where(latent[:, 0] == 0, latent[:, 1], V_STAR)
            return jnp.zeros((latent.shape[0], 2)), _logits(value, VALUE_SUPPORT)
        if method == "dynamics":
            latent, (c, h), _ = args
            prefix = h[:, 0] + C
            return (
                latent.at[:, 0].add(1.0),
                (c, h.at[:, 0].set(prefix)),
                _logits(prefix, REWARD_SUPPORT),
            )
        raise ValueError(method)


def root_value_by_hand(t):
    return (u_at(t) + SIMS * V_STAR) / (SIMS + 1)


def n_step_by_hand(t, k):
    """z_k of the sample at t: rewards to the horizon, then the target value (u) there; no
    bootstrap past the terminal at END; an ongoing episode bootstraps at most at NEWEST."""
    start = t + k
    if t <= END < start:
        return 0.0  # past the terminal
    if t <= END and start + N > END:
        return sum(GAMMA ** (s - start) * r_at(s) for s in range(start, END + 1))
    boot = min(start + N, NEWEST)
    rewards = sum(GAMMA ** (s - start) * r_at(s) for s in range(start, boot))
    return rewards + GAMMA ** (boot - start) * u_at(boot)


def search_by_hand(t, k):
    return 0.0 if t <= END < t + k else root_value_by_hand(t + k)


def by_hand(fn, ts):
    return np.array([[fn(t, k) for k in range(K + 1)] for t in ts])


def hand_learner(*overrides):
    cfg = apply_overrides(debug(), [*HAND, *overrides])
    replay = Replay(
        cfg.replay,
        num_envs=1,
        frame_shape=(1,),
        frame_dtype=np.float32,
        num_actions=2,
        frame_stack=1,
    )
    return cfg, replay, make_learner(cfg, DepthNet(), replay)


def hand_state(step=0):
    """The hand-made model has no parameters: only the step and the key matter."""
    return LearnerState(
        params={},
        batch_stats={},
        target_params={},
        target_batch_stats={},
        opt_state=(),
        step=jnp.asarray(step, jnp.int32),
        rng=jax.random.PRNGKey(0),
    )


def hand_replay(replay, learner=None, state=None):
    """STEPS steps of one env, u_t = 0.05 t, r_t as ``r_at``, a terminal at END; refreshed
    when a learner is given (the cached mode)."""
    rstate = replay.init()
    for t in range(STEPS):
        rstate = replay.add(
            rstate,
            np.array([[u_at(t)]], np.float32),
            np.array([t % 2]),
            np.array([r_at(t)]),
            np.array([t == END]),
            np.zeros(1, bool),
            np.array([[0.5, 0.5]]),
            np.zeros(1),
        )
    if learner is not None:
        for chunk in range(learner.num_chunks(replay.slots)):
            rstate = learner.refresh(state, rstate, chunk)
    return rstate


def hand_targets(mode, *overrides, step=0, seed=1):
    """Targets of one sampled batch, with the sampled steps t ``[B]`` and ages ``[B]``."""
    cfg, replay, learner = hand_learner(f"replay.reanalyze_mode={mode}", *overrides)
    state = hand_state(step)
    rstate = hand_replay(replay, learner if mode == "cached" else None, state)
    batch, (_, pos) = replay.sample(rstate, jax.random.PRNGKey(seed), beta=1.0)
    tgt = jax.jit(learner.targets)(state, batch, jax.random.PRNGKey(2))
    return np.asarray(tgt["values"]), np.asarray(pos), np.asarray(batch.age)


# -- the pure functions ----------------------------------------------------------------------
@pytest.mark.parametrize("jit", [False, True])
def test_mixed_value_targets_by_age_and_step(jit):
    n_step = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    searched = 10 * n_step
    age = jnp.array([19, 20, 21])  # newest first; 20 fresh transitions

    def mixed(step):
        return T.mixed_value_targets(
            n_step, searched, age, step, start_update=5, fresh_transitions=20
        )

    fn = jax.jit(mixed) if jit else mixed
    # Before update 5 every sample keeps the n-step target.
    np.testing.assert_array_equal(fn(4), [[1, 2], [3, 4], [5, 6]])
    # From update 5 on, only the sample younger than 20 transitions does (EZ-V2: idx >
    # collected - 20, i.e. age < 20); the others take the search value.
    np.testing.assert_array_equal(fn(5), [[1, 2], [30, 40], [50, 60]])


def test_searched_value_targets_are_zero_past_a_terminal():
    root = jnp.array([[1.5, -2.0, 3.0]])
    mask = jnp.array([[True, True, False]])
    np.testing.assert_array_equal(T.searched_value_targets(root, mask), [[1.5, -2.0, 0.0]])


# -- the hand-made model ---------------------------------------------------------------------
def test_the_hand_made_model_has_its_closed_form_search_value():
    from dreamer.agents.efficientzero.search import make_search

    cfg, _, _ = hand_learner()
    run = make_search(DepthNet(), cfg.model, cfg.search, discount=GAMMA, num_simulations=SIMS)
    t = np.arange(0, 30, 7)
    out = run(None, jax.random.PRNGKey(0), u_at(t)[:, None], temperature=1.0, noise=1.0)
    np.testing.assert_allclose(out.root_value, [root_value_by_hand(x) for x in t], atol=2e-4)
    np.testing.assert_allclose(out.predicted_value, u_at(t), atol=2e-4)


@pytest.mark.parametrize("mode", ["per_batch", "cached"])
def test_search_targets_are_the_root_values_at_every_position(mode):
    values, t, _ = hand_targets(mode, "replay.value_target=search")
    assert (t <= END).any() and (t > END).any()
    # Every row, not only the reanalysed quarter of the batch; 0 past the terminal.
    np.testing.assert_allclose(values, by_hand(search_by_hand, t), atol=2e-4)


@pytest.mark.parametrize("mode", ["per_batch", "cached"])
def test_nstep_targets_are_the_n_step_returns(mode):
    values, t, _ = hand_targets(mode)  # the default value target
    np.testing.assert_allclose(values, by_hand(n_step_by_hand, t), atol=2e-4)
    assert not np.allclose(values, by_hand(search_by_hand, t), atol=1e-2)


@pytest.mark.parametrize("mode", ["per_batch", "cached"])
def test_mixed_targets_follow_age_after_the_start_update(mode):
    mixed = ["replay.value_target=mixed", "replay.mixed_start_update=5"]
    mixed.append("replay.mixed_fresh_transitions=20")
    n_step, search = by_hand(n_step_by_hand, range(STEPS)), by_hand(search_by_hand, range(STEPS))
    before, t, age = hand_targets(mode, *mixed, step=4)
    np.testing.assert_allclose(before, n_step[t], atol=2e-4)
    after, t, age = hand_targets(mode, *mixed, step=5)
    np.testing.assert_array_equal(age, STEPS - t)  # transitions added since step t
    fresh = age < 20
    assert fresh.any() and (~fresh).any()
    want = np.where(fresh[:, None], n_step[t], search[t])
    np.testing.assert_allclose(after, want, atol=2e-4)
    assert not np.allclose(n_step[t][~fresh], search[t][~fresh], atol=1e-2)


def test_new_steps_enter_the_cache_unsearched_until_the_next_refresh():
    cfg, replay, learner = hand_learner("replay.value_target=search")
    state = hand_state()
    rstate = hand_replay(replay, learner, state)
    obs = np.array([[u_at(STEPS)]], np.float32)
    zeros = np.zeros(1, bool)
    rstate = learner.add_step(state, rstate, obs, np.array([0]), np.ones(1), zeros, zeros, [[1, 0]])
    # The new step's cached search value is the target network's value u, not a search's...
    np.testing.assert_allclose(rstate.searched_values[0, STEPS], u_at(STEPS), atol=2e-4)
    np.testing.assert_allclose(
        rstate.searched_values[0, STEPS - 1], root_value_by_hand(NEWEST), atol=2e-4
    )
    # ... until the next refresh searches it.
    rstate = learner.refresh(state, rstate, 0)
    np.testing.assert_allclose(
        rstate.searched_values[0, STEPS], root_value_by_hand(STEPS), atol=2e-4
    )


# -- the real network: cached and per-batch targets agree --------------------------------------
def real_learner(*overrides):
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
    return cfg, replay, make_learner(cfg, net, replay)


def perturbed(tree, scale=0.3):
    """Every parameter moved by noise (the zero-initialised heads would give values of 0)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(9), len(leaves))
    noise = [scale * jax.random.normal(key, x.shape) for key, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, [x + e for x, e in zip(leaves, noise, strict=True)])


def test_cached_mixed_targets_equal_per_batch_targets_with_noise_off():
    common = [
        "replay.batch_size=16",
        "search.dirichlet_fraction=0.0",
        "replay.reanalyze_fraction=0.5",
        "replay.value_target=mixed",
        "replay.mixed_start_update=0",
        "replay.mixed_fresh_transitions=60",
    ]
    cfg, replay, cached = real_learner(*common, "replay.reanalyze_mode=cached")
    _, _, per_batch = real_learner(*common, "replay.reanalyze_mode=per_batch")
    _, _, nstep = real_learner(*common[:3], "replay.reanalyze_mode=per_batch")
    rng = np.random.default_rng(0)
    rstate = replay.init()
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
    state = cached.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    state = state.replace(target_params=perturbed(state.target_params))  # values not all 0
    refresh = jax.jit(cached.refresh)
    for chunk in range(cached.num_chunks(replay.slots)):
        rstate = refresh(state, rstate, chunk)
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(2), beta=1.0)
    key = jax.random.PRNGKey(3)
    a = jax.jit(cached.targets)(state, batch, key)
    b = jax.jit(per_batch.targets)(state, batch, key)
    np.testing.assert_allclose(a["values"], b["values"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a["policies"], b["policies"], atol=1e-6)
    # Both kinds of target are in the batch: old samples differ from the n-step targets.
    fresh = np.asarray(batch.age) < 60
    assert fresh.any() and (~fresh).any()
    c = np.asarray(jax.jit(nstep.targets)(state, batch, key)["values"])
    np.testing.assert_allclose(np.asarray(b["values"])[fresh], c[fresh], rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.asarray(b["values"])[~fresh], c[~fresh], rtol=1e-3, atol=1e-4)


# -- settings and compute ------------------------------------------------------------------
def test_value_target_settings_default_and_validation():
    r = ReplayConfig()
    assert (r.value_target, r.mixed_start_update, r.mixed_fresh_transitions) == (
        "nstep",
        30_000,
        5_000,
    )
    assert r.searched_rows == r.reanalysed_rows == round(0.99 * 256) == 253
    assert ReplayConfig(value_target="mixed").searched_rows == 256
    with pytest.raises(ConfigError, match="replay.value_target"):
        ReplayConfig(value_target="max")
    with pytest.raises(ConfigError, match="choose one of"):
        apply_overrides(debug(), ["replay.value_target=sarsa"])
    with pytest.raises(ConfigError, match="replay.mixed_fresh_transitions"):
        ReplayConfig(mixed_fresh_transitions=-1)


@pytest.mark.parametrize(
    "value_target, per_update",
    [
        # B = 8, K + 1 = 4, 1 + 2 simulations per searched state, a quarter of 8 reanalysed:
        ("nstep", 8 * 4 + 2 * 4 * 3),  # bootstrap states + the reanalysed rows' searches
        ("search", 8 * 4 * 3),  # every row searched, no bootstrap
        ("mixed", 8 * 4 + 8 * 4 * 3),  # both
    ],
)
def test_per_batch_compute_counts_the_searches_of_every_row(value_target, per_update):
    cfg = apply_overrides(
        debug(),
        [
            "replay.batch_size=8",
            "replay.unroll_steps=3",
            "replay.reanalyze_simulations=2",
            "replay.reanalyze_fraction=0.25",
            "replay.reanalyze_mode=per_batch",
            f"replay.value_target={value_target}",
        ],
    )
    assert compute.per_update(cfg)["reanalysis"] == per_update
    new_steps = 200  # each new step's value by the target network
    assert compute.spent(cfg, 200, 10, 1)["reanalysis"] == 10 * per_update + new_steps


@pytest.mark.parametrize("value_target, per_state", [("nstep", 1), ("search", 3), ("mixed", 3)])
def test_cached_compute_counts_refresh_searches_without_reanalysis(value_target, per_state):
    """No policy is reanalysed: the refresh evaluates each state once for n-step targets, and
    searches it (1 + 2 simulations) for search values."""
    cfg = apply_overrides(
        debug(),
        [
            "replay.reanalyze_simulations=2",
            "replay.reanalyze_fraction=0.0",
            f"replay.value_target={value_target}",
            "optim.target_update_every=5",
        ],
    )
    refreshed = compute.refreshed_states(cfg, 200, 30, 16)
    assert refreshed > 0
    new_steps = 200  # each new step's value by the target network
    assert compute.spent(cfg, 200, 30, 16)["reanalysis"] == refreshed * per_state + new_steps


@pytest.mark.parametrize(
    "value_target, missing, message",
    [
        ("search", "searched_values", "search value targets need the batch's searched_values"),
        ("mixed", "age", "mixed value targets need the batch's age"),
    ],
)
def test_a_hand_made_batch_without_a_field_its_value_target_reads_names_it(
    value_target, missing, message
):
    # Cached: the root values come from the batch (per batch, the update searches them).
    cfg, replay, learner = hand_learner(
        "replay.reanalyze_mode=cached", f"replay.value_target={value_target}"
    )
    state = hand_state(0)
    rstate = hand_replay(replay, learner, state)
    batch, _ = replay.sample(rstate, jax.random.PRNGKey(1), beta=1.0)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        learner.targets(state, batch.replace(**{missing: None}), jax.random.PRNGKey(2))
