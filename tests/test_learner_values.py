"""The learner's numbers on a one-example batch, against a computation written apart from it.

The reference below shares nothing with EfficientZero's ``learner`` / ``targets`` /
``transforms`` (``dreamer.agents.efficientzero``) but the network: its targets are plain
Python, its two-hot projection, inverse value transform and gradient scaling are written anew
(the scaling as a ``jax.custom_vjp``), and its LSTM reset follows the search's rule
(depth % horizon == 0).

Gradients are read from one SGD step (no momentum, weight decay or clipping, learning rate 1
after the first update, whose rate is 0): ``grad = params - new_params``.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dreamer.agents.efficientzero.config import apply_overrides
from dreamer.agents.efficientzero.learner import make_learner
from dreamer.agents.efficientzero.networks import make_network
from dreamer.agents.efficientzero.replay import Batch, Replay
from dreamer.agents.efficientzero.search import make_model_fns
from experiments.efficientzero import debug

K, N, A, D = 3, 2, 2, 4  # unroll steps, n-step horizon, actions, observation size
HORIZON = 2  # lstm_horizon < K: the unroll crosses an LSTM reset
GAMMA, EPS, WEIGHT = 0.9, 0.01, 0.7

BASE = [
    "replay.batch_size=1",
    f"replay.unroll_steps={K}",
    f"replay.td_steps={N}",
    f"replay.discount={GAMMA}",
    f"replay.priority_eps={EPS}",
    "replay.reanalyze_fraction=0.0",
    "replay.reanalyze_mode=per_batch",
    f"model.lstm_horizon={HORIZON}",
    "optim.optimizer=sgd",
    "optim.momentum=0.0",
    "optim.learning_rate=1.0",
    "optim.weight_decay=0.0",
    "optim.max_grad_norm=1e9",
    "optim.warmup_updates=1",
    "optim.decay=none",
    "optim.target_update_every=1000",
]


def build(*overrides, k=K):
    cfg = apply_overrides(debug(), [*BASE, f"replay.unroll_steps={k}", *overrides])
    net = make_network(cfg.model, (D,), A)
    replay = Replay(
        cfg.replay,
        num_envs=1,
        frame_shape=(D,),
        frame_dtype=np.float32,
        num_actions=A,
        frame_stack=1,
    )
    return cfg, net, replay, make_learner(cfg, net, replay)


def perturbed(tree, seed, scale=0.3):
    """Every parameter moved by noise (the zero-initialised heads would hide errors)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noise = [scale * jax.random.normal(key, x.shape) for key, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, [x + e for x, e in zip(leaves, noise, strict=True)])


def initial_state(learner, update, batch, seed=0):
    """Online and target parameters differ. One update at learning rate 0 (the first step of
    the warm-up) moves the optimiser's step to 1, where the rate is 1."""
    state = learner.init(jax.random.PRNGKey(seed), jnp.zeros((1, D)))
    state = state.replace(
        params=perturbed(state.params, seed + 1),
        target_params=perturbed(state.params, seed + 2),
    )
    new, _ = update(state, batch)
    assert distance(new.params, state.params) == 0.0
    return new


def one_example_batch(k=K):
    rng = np.random.default_rng(7)
    w = k + N + 1
    policies = rng.dirichlet(np.ones(A), size=(1, k + 1)).astype(np.float32)
    return Batch(
        frames=jnp.asarray(rng.normal(size=(1, w, D)), jnp.float32),
        actions=jnp.asarray(rng.integers(0, A, size=(1, k + N)), jnp.int32),
        rewards=jnp.asarray([[1.0, -0.5, 2.0, 0.25, 1.5, -1.0][: k + N]], jnp.float32),
        policies=jnp.asarray(policies),
        reanalysed=jnp.asarray(policies),
        values=jnp.zeros((1, w), jnp.float32),
        last_offset=jnp.asarray([k + N], jnp.int32),
        terminal=jnp.asarray([False]),
        td_steps=jnp.asarray([N], jnp.int32),
        weights=jnp.asarray([WEIGHT], jnp.float32),
    )


# -- the reference ------------------------------------------------------------------------------
def h_py(x, eps=0.001):
    return math.copysign(math.sqrt(abs(x) + 1) - 1, x) + eps * x


def h_inv_py(y, eps=0.001):
    """Bisection on the increasing h (no closed form, unlike the code)."""
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if h_py(mid, eps) < y else (lo, mid)
    return (lo + hi) / 2


def two_hot_py(x, support):
    y = min(max(h_py(x), -support), support)
    low = math.floor(y)
    out = [0.0] * (2 * support + 1)
    out[low + support] += 1 - (y - low)
    if y > low:
        out[low + support + 1] += y - low
    return out


def scalar_py(logits, support):
    p = np.exp(np.asarray(logits, np.float64) - np.max(logits))
    p /= p.sum()
    return h_inv_py(float(np.dot(p, np.arange(-support, support + 1))))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def grad_times(x, s):
    return x


grad_times.defvjp(lambda x, s: (x, None), lambda s, _, g: (g * s,))


def targets_py(net, cfg, target_params, batch, k=K):
    """z_k = r_k + g r_{k+1} + g^2 v'(o_{k+2}) (ongoing episode, horizon 2), prefixes summed
    from the LSTM block start, policies as stored (no reanalysis)."""
    tv = {"params": target_params}
    obs = batch.frames[0]
    _, logits = net.apply(tv, net.apply(tv, obs, method="represent"), method="predict")
    v = [scalar_py(row, cfg.model.value_support) for row in np.asarray(logits)]
    r = [float(x) for x in batch.rewards[0]]
    values = [r[j] + GAMMA * r[j + 1] + GAMMA**2 * v[j + 2] for j in range(k + 1)]
    prefixes = []
    for j in range(1, k + 1):
        start = ((j - 1) // HORIZON) * HORIZON
        prefixes.append(sum(r[start:j]))
    return values, prefixes, np.asarray(batch.policies[0])


def reference_terms(net, cfg, params, batch, values, prefixes, *, dyn=0.5, heads=1.0, k=K):
    """(value, policy, reward, consistency) losses of the one example, with gradient scales
    ``dyn`` on the latent after each dynamics step and ``heads`` on the unrolled heads."""
    m = cfg.model
    run = lambda method, *a, **kw: net.apply({"params": params}, *a, method=method, **kw)  # noqa: E731

    def ce(target, logits):
        return -jnp.sum(jnp.asarray(target) * jax.nn.log_softmax(logits))

    def cosine(a, b):
        return jnp.dot(a, b) / (jnp.sqrt(jnp.dot(a, a)) * jnp.sqrt(jnp.dot(b, b)))

    latent = run("represent", batch.frames[:, 0])
    policy, value = run("predict", latent)
    value_loss = ce(two_hot_py(values[0], m.value_support), value[0])
    policy_loss = ce(batch.policies[0, 0], policy[0])
    reward_loss = consistency = 0.0
    c = hh = jnp.zeros((1, m.lstm_hidden))
    for j in range(1, k + 1):
        if (j - 1) % HORIZON == 0:  # the parent's depth is a multiple of the horizon
            c, hh = jnp.zeros_like(c), jnp.zeros_like(hh)
        latent, (c, hh), prefix = run("dynamics", latent, (c, hh), batch.actions[:, j - 1])
        latent = grad_times(latent, dyn)
        policy, value = run("predict", latent)
        pred = run("project", latent, predictor=True)
        target = jax.lax.stop_gradient(
            run("project", run("represent", batch.frames[:, j]), predictor=False)
        )
        value_loss += ce(two_hot_py(values[j], m.value_support), grad_times(value[0], heads))
        policy_loss += ce(batch.policies[0, j], grad_times(policy[0], heads))
        reward_loss += ce(
            two_hot_py(prefixes[j - 1], m.reward_support), grad_times(prefix[0], heads)
        )
        consistency += -cosine(grad_times(pred[0], heads), target[0])
    return value_loss, policy_loss, reward_loss, consistency


def reference_total(cfg, terms):
    o = cfg.optim
    v, p, r, c = terms
    return WEIGHT * (
        o.value_weight * v + o.policy_weight * p + o.reward_weight * r + o.consistency_weight * c
    )


def gradient_of_update(update, state, batch):
    new, metrics = update(state, batch)
    assert bool(metrics["finite"])
    return jax.tree.map(lambda a, b: a - b, state.params, new.params), metrics


def assert_trees_close(a, b, rtol=2e-3, atol=2e-6):
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=str(path))


def distance(a, b):
    """Largest absolute difference between two parameter trees."""
    return max(
        float(jnp.abs(x - y).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.fixture(scope="module")
def loss_mode():
    cfg, net, replay, learner = build("optim.unroll_scale=loss")
    update, batch = jax.jit(learner.update), one_example_batch()
    state = initial_state(learner, update, batch)
    expected = targets_py(net, cfg, state.target_params, batch)
    return cfg, net, learner, update, state, batch, expected


# -- tests --------------------------------------------------------------------------------------
def test_targets_come_from_the_target_network_as_hand_computed(loss_mode):
    cfg, net, learner, _, state, batch, (values, prefixes, policies) = loss_mode
    targets = jax.jit(learner.targets)
    got = targets(state, batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(got["values"][0], values, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["prefixes"][0], prefixes, rtol=1e-6)
    np.testing.assert_allclose(got["policies"][0], policies, rtol=1e-6)
    np.testing.assert_array_equal(got["mask"], np.ones((1, K + 1), bool))
    # Moving the online parameters leaves every target where it was; moving the target
    # parameters moves the values.
    online_moved = targets(
        state.replace(params=perturbed(state.params, 9)), batch, jax.random.PRNGKey(0)
    )
    for name in ("values", "prefixes", "policies"):
        np.testing.assert_array_equal(online_moved[name], got[name])
    target_moved = targets(state.replace(target_params=state.params), batch, jax.random.PRNGKey(0))
    assert np.abs(np.asarray(target_moved["values"] - got["values"])).max() > 1e-3


def filled(replay, steps, value=0.0):
    """A one-env replay holding ``steps`` random observations, each with target value
    ``value`` in its cache."""
    rstate = replay.init()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        rstate = replay.add(
            rstate,
            rng.normal(size=(1, D)).astype(np.float32),
            np.zeros(1, np.int32),
            np.zeros(1),
            np.zeros(1, bool),
            np.zeros(1, bool),
            np.full((1, A), 1 / A),
            np.full(1, value),
        )
    return rstate


def test_cached_target_values_come_from_the_target_network():
    """The refresh of the target cache evaluates the *target* network on stored states."""
    cfg, net, replay, learner = build("replay.reanalyze_mode=cached")
    state = learner.init(jax.random.PRNGKey(0), jnp.zeros((1, D)))
    state = state.replace(
        params=perturbed(state.params, 1), target_params=perturbed(state.params, 2)
    )
    rstate = filled(replay, 12)
    refresh = jax.jit(learner.refresh)
    fresh = refresh(state, rstate, 0)
    obs = np.asarray(rstate.frames[0, :12])
    tv = {"params": state.target_params}
    _, logits = net.apply(tv, net.apply(tv, obs, method="represent"), method="predict")
    want = [scalar_py(row, cfg.model.value_support) for row in np.asarray(logits)]
    np.testing.assert_allclose(np.asarray(fresh.values)[0, :12], want, rtol=1e-4, atol=1e-4)
    moved = refresh(state.replace(params=perturbed(state.params, 9)), rstate, 0)
    np.testing.assert_array_equal(moved.values, fresh.values)


def test_each_loss_term_and_the_priority_match_the_reference(loss_mode):
    cfg, net, _, update, state, batch, (values, prefixes, _) = loss_mode
    _, metrics = update(state, batch)
    terms = reference_terms(net, cfg, state.params, batch, values, prefixes)
    names = ("losses/value", "losses/policy", "losses/reward", "losses/consistency")
    for name, want in zip(names, terms, strict=True):
        assert float(metrics[name]) == pytest.approx(float(want), rel=1e-4, abs=1e-5), name
    total = reference_total(cfg, terms)
    assert float(metrics["losses/total"]) == pytest.approx(float(total), rel=1e-4)
    # priority = |v_0 - z_0| + eps, v_0 the online network's value of o_t
    _, logits = net.apply(
        {"params": state.params},
        net.apply({"params": state.params}, batch.frames[:, 0], method="represent"),
        method="predict",
    )
    v0 = scalar_py(np.asarray(logits[0]), cfg.model.value_support)
    assert float(metrics["priorities"][0]) == pytest.approx(abs(v0 - values[0]) + EPS, rel=1e-4)
    assert float(metrics["charts/value_mean"]) == pytest.approx(v0, rel=1e-4, abs=1e-5)
    assert float(metrics["charts/target_value_mean"]) == pytest.approx(values[0], rel=1e-4)


def test_the_unroll_resets_the_lstm_where_the_search_does(loss_mode):
    """K = 3 > lstm_horizon = 2. The reference's prefixes are the search's (recurrent_fn
    carries the LSTM through the tree); the learner's reward loss equals the reference's,
    and differs from an unroll that never resets."""
    cfg, net, _, update, state, batch, (values, prefixes, _) = loss_mode
    variables = {"params": state.params}
    root_fn, recurrent_fn = make_model_fns(net, cfg.model, GAMMA)
    emb = root_fn(variables, batch.frames[:, 0]).embedding
    searched = []
    for j in range(K):
        _, emb = recurrent_fn(variables, None, batch.actions[:, j], emb)
        searched.append(float(emb.prefix[0]))
    # the reference's own unroll, read out as scalars
    c = hh = jnp.zeros((1, cfg.model.lstm_hidden))
    latent = net.apply(variables, batch.frames[:, 0], method="represent")
    own = []
    for j in range(1, K + 1):
        if (j - 1) % HORIZON == 0:
            c, hh = jnp.zeros_like(c), jnp.zeros_like(hh)
        latent, (c, hh), logits = net.apply(
            variables, latent, (c, hh), batch.actions[:, j - 1], method="dynamics"
        )
        own.append(scalar_py(np.asarray(logits[0]), cfg.model.reward_support))
    np.testing.assert_allclose(own, searched, rtol=1e-4, atol=1e-5)
    _, metrics = update(state, batch)
    reward = reference_terms(net, cfg, state.params, batch, values, prefixes)[2]
    assert float(metrics["losses/reward"]) == pytest.approx(float(reward), rel=1e-4)


@pytest.mark.parametrize("mode", ["loss", "heads"])
def test_gradients_match_the_reference_in_both_unroll_scale_modes(mode, loss_mode):
    """``loss``: the whole gradient times 1/K; ``heads``: only the unrolled heads' share.
    Either way the dynamics gradient is halved at every step."""
    if mode == "loss":
        cfg, net, _, update, state, batch, (values, prefixes, _) = loss_mode
    else:
        cfg, net, _, learner = build("optim.unroll_scale=heads")
        update, batch = jax.jit(learner.update), one_example_batch()
        state = initial_state(learner, update, batch)
        values, prefixes, _ = targets_py(net, cfg, state.target_params, batch)
    grads, _ = gradient_of_update(update, state, batch)

    def reference(params, dyn=0.5, heads=1.0, whole=1.0):
        terms = reference_terms(net, cfg, params, batch, values, prefixes, dyn=dyn, heads=heads)
        return whole * reference_total(cfg, terms)

    scaled = dict(whole=1 / K) if mode == "loss" else dict(heads=1 / K)
    want = jax.grad(functools.partial(reference, **scaled))(state.params)
    assert_trees_close(grads, want)
    # The scales matter: without either one the gradient is clearly different.
    for other in (dict(scaled, dyn=1.0), dict(dyn=0.5)):
        wrong = jax.grad(functools.partial(reference, **other))(state.params)
        assert distance(grads, wrong) > 100 * max(distance(grads, want), 1e-6), other


def test_dynamics_gradient_scale_by_comparing_gradients_with_and_without_it():
    """K = 1: the gradient is A + s B, A through step 0's heads and the prefix, B through the
    scaled latent. So grad(0.5) = (grad(0) + grad(1)) / 2, and grad(1) != grad(0)."""
    grads = {}
    for s in (0.0, 0.5, 1.0):
        _, _, _, learner = build(f"model.dynamics_grad_scale={s}", k=1)
        update, batch = jax.jit(learner.update), one_example_batch(k=1)
        grads[s], _ = gradient_of_update(update, initial_state(learner, update, batch), batch)
    half = jax.tree.map(lambda a, b: (a + b) / 2, grads[0.0], grads[1.0])
    assert_trees_close(grads[0.5], half, rtol=1e-3, atol=1e-6)
    assert distance(grads[0.0], grads[1.0]) > 1e-3
    # the representation network feels the scale (its gradient is not A alone)
    repr_0 = grads[0.0]["repr_mlp"]
    repr_1 = grads[1.0]["repr_mlp"]
    assert distance(repr_0, repr_1) > 1e-4


def test_a_last_partial_refresh_chunk_refreshes_the_last_slot_too():
    """Slots past the ring's end in the last chunk write nothing: the ring's last slot gets its
    fresh value (they once wrote the old value back onto it, racing the fresh one)."""
    cfg, net, replay, learner = build(
        "replay.reanalyze_mode=cached", "replay.capacity=64", "replay.refresh_chunk=24"
    )
    state = learner.init(jax.random.PRNGKey(0), jnp.zeros((1, D)))
    state = state.replace(target_params=perturbed(state.params, 2))
    rstate = filled(replay, replay.slots, value=-7.0)  # stale until refreshed
    refresh = jax.jit(learner.refresh)
    assert learner.num_chunks(replay.slots) == 3  # 24 + 24 + 16 slots, then 8 past the end
    for chunk in range(3):
        rstate = refresh(state, rstate, chunk)
    tv = {"params": state.target_params}
    obs = np.asarray(rstate.frames[0])
    _, logits = net.apply(tv, net.apply(tv, obs, method="represent"), method="predict")
    want = [scalar_py(row, cfg.model.value_support) for row in np.asarray(logits)]
    np.testing.assert_allclose(np.asarray(rstate.values)[0], want, rtol=1e-4, atol=1e-4)
