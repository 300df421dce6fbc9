"""Search on hand-made models with known answers."""

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

from dreamer.agents.efficientzero.actor import make_actor
from dreamer.agents.efficientzero.config import Config, ModelConfig, ReplayConfig, SearchConfig
from dreamer.agents.efficientzero.search import (
    _qtransform,
    make_model_fns,
    make_search,
    mixed_value,
    qtransform_by_tree_min_max,
    qtransform_gumbel_by_tree_min_max,
    temperature_at,
)
from dreamer.agents.efficientzero.transforms import scalar_to_support

SUPPORT = 5
MODEL = ModelConfig(value_support=SUPPORT, reward_support=SUPPORT, lstm_horizon=3, lstm_hidden=2)


def _logits(x):
    return jnp.log(jnp.maximum(scalar_to_support(x, SUPPORT), 1e-12))


class BanditNet:
    """A hand-made model: action a at the root yields reward payoff[a]; later steps yield
    ``later`` per step; values are 0.

    The latent is the depth, the 'LSTM' h carries the running value prefix, so the network
    predicts a value prefix and the search must turn it into per-step rewards.
    """

    def __init__(self, payoff, later=0.0):
        self.payoff = jnp.asarray(payoff, jnp.float32)
        self.later = later

    def apply(self, variables, *args, method, **kwargs):
        """``variables``, when given, are the payoffs (in place of the net's own)."""
        del kwargs
        payoff = self.payoff if variables is None else variables
        if method == "represent":
            (obs,) = args
            return jnp.zeros((obs.shape[0], 1))
        if method == "initial_lstm":
            (batch,) = args
            return jnp.zeros((batch, 2)), jnp.zeros((batch, 2))
        if method == "predict":
            (latent,) = args
            b = latent.shape[0]
            return jnp.zeros((b, payoff.size)), _logits(jnp.zeros(b))
        if method == "dynamics":
            latent, (c, h), action = args
            reward = jnp.where(latent[:, 0] == 0, payoff[action], self.later)
            prefix = h[:, 0] + reward
            h = h.at[:, 0].set(prefix)
            return latent + 1, (c, h), _logits(prefix)
        raise ValueError(method)


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_search_finds_the_rewarding_action(policy):
    net = BanditNet([0.0, 0.0, 1.0, 0.0])
    cfg = SearchConfig(policy=policy, num_simulations=32)
    search = jax.jit(
        lambda rng, obs: make_search(net, MODEL, cfg, discount=0.99)(
            None, rng, obs, temperature=0.0, noise=0.0
        )
    )
    out = search(jax.random.PRNGKey(0), jnp.zeros((3, 1)))
    np.testing.assert_array_equal(out.action, [2, 2, 2])
    assert (out.policy[:, 2] > 0.5).all()
    np.testing.assert_allclose(out.policy.sum(-1), 1.0, atol=1e-5)
    # The root value averages the root's own estimate (0) and visited Qs (= payoff): it rises
    # above the network's prediction but not beyond the best payoff.
    assert (out.root_value > out.predicted_value + 0.3).all()
    assert (out.root_value <= 1.0 + 1e-3).all()


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_the_actor_is_the_configured_search_at_its_temperature_and_noise(policy):
    """``make_actor`` wires the config's search, discount, the variables, temperature and
    noise: the same outputs as the search built apart, at two settings whose outputs differ.
    The variables (the payoffs) favour another action than the net's own payoffs."""
    net = BanditNet([1.0, 0.0, 0.0, 0.0], later=0.5)
    variables = jnp.asarray([0.0, 0.3, 1.0, 0.0])
    search_cfg = SearchConfig(policy=policy, num_simulations=16)
    cfg = Config(model=MODEL, search=search_cfg, replay=ReplayConfig(discount=0.5))
    act = make_actor(cfg, net)
    search = make_search(net, MODEL, search_cfg, discount=0.5)
    obs, key = jnp.zeros((6, 1)), jax.random.PRNGKey(3)
    outs = {}
    for temperature, noise in [(1.0, 0.0), (0.0, 1.0)]:
        outs[temperature, noise] = got = act(variables, key, obs, temperature, noise)
        want = search(variables, key, obs, temperature=temperature, noise=noise)
        for field in ("action", "policy", "root_value"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-6)
    assert not np.allclose(outs[1.0, 0.0].policy, outs[0.0, 1.0].policy, atol=1e-3)
    # the discount reaches the search: the root values differ from a search at 0.99
    other = make_search(net, MODEL, search_cfg, discount=0.99)(
        variables, key, obs, temperature=0.0, noise=1.0
    )
    assert not np.allclose(other.root_value, outs[0.0, 1.0].root_value, atol=1e-3)
    # the variables reach the search: the net's own payoffs lead elsewhere
    np.testing.assert_array_equal(act(variables, key, obs, 0.0, 0.0).action, 2)
    np.testing.assert_array_equal(act(None, key, obs, 0.0, 0.0).action, 0)


def test_uniform_payoff_gives_uniform_visits():
    net = BanditNet([0.5, 0.5, 0.5, 0.5])
    cfg = SearchConfig(policy="muzero", num_simulations=40)
    out = make_search(net, MODEL, cfg, discount=0.99)(
        None, jax.random.PRNGKey(0), jnp.zeros((1, 1)), temperature=1.0, noise=0.0
    )
    np.testing.assert_allclose(out.policy[0], 0.25, atol=1e-6)


def test_invalid_actions_are_never_chosen():
    net = BanditNet([0.0, 0.0, 1.0, 0.0])
    invalid = jnp.array([[False, False, True, False]] * 4)
    for policy in ("muzero", "gumbel"):
        cfg = SearchConfig(policy=policy, num_simulations=16)
        run = make_search(net, MODEL, cfg, discount=0.99)
        for seed in range(3):
            out = run(
                None,
                jax.random.PRNGKey(seed),
                jnp.zeros((4, 1)),
                temperature=1.0,
                noise=1.0,
                invalid_actions=invalid,
            )
            assert not (out.action == 2).any()
            np.testing.assert_allclose(out.policy[:, 2], 0.0)


def test_value_prefix_becomes_reward_with_lstm_reset():
    """With horizon 3, depth-3 nodes reset: the reward after them is the prefix itself."""
    net = BanditNet([1.0, 2.0], later=1.0)
    root_fn, recurrent_fn = make_model_fns(net, MODEL, discount=0.9)
    root = root_fn(None, jnp.zeros((1, 1)))
    emb, rewards = root.embedding, []
    for action in [1, 0, 0, 0, 0]:
        out, emb = recurrent_fn(None, None, jnp.array([action]), emb)
        rewards.append(float(out.reward[0]))
        assert float(out.discount[0]) == pytest.approx(0.9)
    # Prefixes within the first block: 2, 3, 4 -> rewards 2, 1, 1; after the reset at depth 3
    # the 'LSTM' (our running sum) restarts: prefixes 1, 2 -> rewards 1, 1.
    np.testing.assert_allclose(rewards, [2.0, 1.0, 1.0, 1.0, 1.0], atol=1e-3)
    assert int(emb.depth[0]) == 5


def _tree(children_index, visits, rewards, values, prior_logits=None) -> mctx.Tree:
    """An unbatched mctx tree from per-node children, visits, rewards ``[N, A]`` and node
    values ``[N]`` (raw value = node value); edge discounts are 1."""
    children_index, values = jnp.asarray(children_index), jnp.asarray(values, jnp.float32)
    n, a = children_index.shape
    parents = np.full(n, -1)
    action_from_parent = np.full(n, -1)
    for node, row in enumerate(np.asarray(children_index)):
        for action, child in enumerate(row):
            if child >= 0:
                parents[child], action_from_parent[child] = node, action
    child_values = values[jnp.maximum(children_index, 0)]
    return mctx.Tree(
        node_visits=jnp.asarray(visits).sum(axis=1) + 1,
        raw_values=values,
        node_values=values,
        parents=jnp.asarray(parents),
        action_from_parent=jnp.asarray(action_from_parent),
        children_index=children_index,
        children_prior_logits=jnp.zeros((n, a)) if prior_logits is None else prior_logits,
        children_visits=jnp.asarray(visits),
        children_rewards=jnp.asarray(rewards, jnp.float32),
        children_discounts=jnp.ones((n, a)),
        children_values=jnp.where(children_index >= 0, child_values, 0.0),
        embeddings=jnp.zeros((n, 1)),
        root_invalid_actions=jnp.zeros(a),
        extra_data=None,
    )


def test_tree_min_max_qtransform_normalises_over_the_whole_tree():
    # Root (0) with children 1 (via action 0) and 2 (via action 1); node 1 has child 3.
    tree = _tree(
        children_index=[[1, 2], [3, -1], [-1, -1], [-1, -1]],
        visits=[[2, 1], [1, 0], [0, 0], [0, 0]],
        rewards=[[1.0, 0.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        values=[3.0, 2.0, -1.0, 0.0],
    )
    # Edge Qs: root a0 = 1 + 2 = 3, root a1 = 0 - 1 = -1, node1 a0 = 5 + 0 = 5.
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, 0), [4 / 6, 0.0], atol=1e-6)
    # Node 1's unvisited action gets the mean of node value and visited Qs: (2 + 5) / 2.
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, 1), [1.0, (3.5 + 1) / 6], atol=1e-6)


def _gumbel_tree(q0: float, q1: float, deep_q: float) -> mctx.Tree:
    """Root with two visited actions of Q ``q0``, ``q1`` (two and one visits) and a deeper
    visited edge of Q ``deep_q`` below action 0: the tree's spread is set by all three."""
    return _tree(
        children_index=[[1, 2], [3, -1], [-1, -1], [-1, -1]],
        visits=[[2, 1], [1, 0], [0, 0], [0, 0]],
        rewards=[[0.0, 0.0], [deep_q, 0.0], [0.0, 0.0], [0.0, 0.0]],
        values=[50.0, q0, q1, 0.0],
    )


def _improved_policy(sigma) -> np.ndarray:
    """Gumbel MuZero's improved policy softmax(logits + sigma(q)) for a uniform prior."""
    return np.asarray(jax.nn.softmax(sigma))


def test_gumbel_qtransform_keeps_a_noise_gap_near_the_prior():
    # Q gap 0.001 at values near 50, the tree's spread 1.001: the target stays near uniform.
    tree = _gumbel_tree(50.0, 50.001, deep_q=49.0)
    sigma = qtransform_gumbel_by_tree_min_max(tree, 0)
    scale = (50.0 + 2) * 0.1
    np.testing.assert_allclose(sigma, [scale * 1.0 / 1.001, scale * 1.001 / 1.001], rtol=1e-5)
    np.testing.assert_allclose(_improved_policy(sigma), [0.5, 0.5], atol=0.002)
    # mctx's own transform stretches the same gap to the full scale: near one-hot.
    own = mctx.qtransform_completed_by_mix_value(tree, 0)
    assert _improved_policy(own)[1] > 0.99


def test_gumbel_qtransform_sharpens_a_gap_as_large_as_the_tree_spread():
    tree = _gumbel_tree(49.0, 50.0, deep_q=49.5)  # spread 1, all of it between the actions
    sigma = qtransform_gumbel_by_tree_min_max(tree, 0, c_visit=50.0, c_scale=0.1)
    np.testing.assert_allclose(sigma, [0.0, (50 + 2) * 0.1], atol=1e-5)
    expected = np.exp([0.0, 5.2]) / np.exp([0.0, 5.2]).sum()
    np.testing.assert_allclose(_improved_policy(sigma), expected, rtol=1e-5)
    # c_visit and c_scale enter as (c_visit + max N) * c_scale.
    np.testing.assert_allclose(
        qtransform_gumbel_by_tree_min_max(tree, 0, c_visit=10.0, c_scale=0.5), [0.0, 6.0]
    )


@pytest.mark.parametrize("spread", [0.004, 0.01, 0.02])
def test_gumbel_qtransform_floor_takes_over_exactly_below_value_delta_max(spread):
    tree = _gumbel_tree(50.0, 50.0 + spread, deep_q=50.0)
    sigma = qtransform_gumbel_by_tree_min_max(tree, 0, value_delta_max=0.01, c_scale=1 / 52)
    # Normalised gap: spread / max(spread, 0.01); the visit scale is (50 + 2) / 52 = 1.
    np.testing.assert_allclose(sigma[1] - sigma[0], spread / max(spread, 0.01), rtol=1e-3)


def test_the_configured_q_transforms_take_c_visit_and_c_scale():
    tree = _gumbel_tree(49.0, 50.0, deep_q=49.5)  # spread 1, max visits 2
    gumbel = _qtransform(SearchConfig(policy="gumbel", c_visit=10.0, c_scale=0.5))
    np.testing.assert_allclose(gumbel(tree, 0), [0.0, (10 + 2) * 0.5], atol=1e-5)
    mix = _qtransform(
        SearchConfig(policy="gumbel", qtransform="completed_mix", c_visit=10.0, c_scale=0.5)
    )
    own = mctx.qtransform_completed_by_mix_value(tree, 0, maxvisit_init=10.0, value_scale=0.5)
    np.testing.assert_allclose(mix(tree, 0), own, rtol=1e-6)
    np.testing.assert_allclose(mix(tree, 0), [0.0, 6.0], atol=1e-5)  # (10 + 2) * 0.5


@pytest.mark.parametrize("alpha, low, high", [(0.01, 0.85, 1.0), (100.0, 0.0, 0.4)])
def test_dirichlet_alpha_shapes_the_root_noise(alpha, low, high):
    """Equal payoffs and the prior replaced by Dirichlet noise: visits follow the noise, near
    one action at a small alpha, spread over all four at a large one."""
    cfg = SearchConfig(
        policy="muzero", num_simulations=32, dirichlet_alpha=alpha, dirichlet_fraction=1.0
    )
    out = make_search(BanditNet([0.0, 0.0, 0.0, 0.0]), MODEL, cfg, discount=0.997)(
        None, jax.random.PRNGKey(3), jnp.zeros((32, 1)), temperature=1.0, noise=1.0
    )
    top_share = float(np.mean(np.max(np.asarray(out.policy), axis=-1)))
    assert low <= top_share <= high, top_share


def test_gumbel_qtransform_completes_unvisited_actions_with_the_mixed_value():
    # Root: action 0 visited twice (Q 2), action 1 visited once (Q 4), action 2 unvisited.
    tree = _tree(
        children_index=[[1, 2, -1], [-1, -1, -1], [-1, -1, -1]],
        visits=[[2, 1, 0], [0, 0, 0], [0, 0, 0]],
        rewards=np.zeros((3, 3)),
        values=[1.0, 2.0, 4.0],
        prior_logits=jnp.log(jnp.array([[0.5, 0.25, 0.25]] * 3)),
    )
    # Mixed value: (v + N * sum_visited pi q / sum_visited pi) / (N + 1)
    mixed = (1.0 + 3 * (0.5 * 2 + 0.25 * 4) / 0.75) / 4
    q, visits, prior = (
        jnp.array([2.0, 4.0, 0.0]),
        jnp.array([2, 1, 0]),
        jnp.array([0.5, 0.25, 0.25]),
    )
    assert float(mixed_value(1.0, q, visits, prior)) == pytest.approx(mixed)
    sigma = qtransform_gumbel_by_tree_min_max(tree, 0, c_scale=1 / 52)  # tree spread 2..4
    np.testing.assert_allclose(sigma, [0.0, 1.0, (mixed - 2.0) / 2.0], rtol=1e-5)


def test_gumbel_search_target_stays_near_the_prior_on_a_tiny_q_gap():
    """Through mctx's Gumbel policy, values near 50: a 0.001 gap gives a near-uniform target,
    a gap of 1 a clearly sharper one."""

    class Flat(BanditNet):  # values 50 everywhere
        def apply(self, variables, *args, method, **kwargs):
            out = super().apply(variables, *args, method=method, **kwargs)
            if method == "predict":
                fifty = jnp.log(jnp.maximum(scalar_to_support(jnp.full((1,), 50.0), 300), 1e-12))
                return out[0], jnp.tile(fifty, (out[0].shape[0], 1))
            return out

    model = ModelConfig(value_support=300, reward_support=5, lstm_horizon=3, lstm_hidden=2)

    def target(gap):
        cfg = SearchConfig(policy="gumbel", num_simulations=16)
        net = Flat([0.0, gap])
        return make_search(net, model, cfg, discount=0.997)(
            None, jax.random.PRNGKey(0), jnp.zeros((1, 1)), temperature=1.0, noise=0.0
        ).policy[0]

    np.testing.assert_allclose(target(0.001), [0.5, 0.5], atol=0.01)
    assert float(target(1.0)[1]) > 0.6


def test_temperature_schedule():
    cfg = SearchConfig(temperatures=(1.0, 0.5, 0.25), temperature_milestones=(0.5, 0.75))
    assert [temperature_at(cfg, p) for p in (0.0, 0.49, 0.5, 0.8)] == [1.0, 1.0, 0.5, 0.25]


def test_prior_mix_floors_every_action_at_a_share_of_uniform():
    from dreamer.agents.efficientzero.search import mix_prior

    logits = jnp.array([[30.0, 0.0, -30.0, 0.0]])
    np.testing.assert_array_equal(mix_prior(logits, 0.0), logits)  # off: untouched
    mixed = np.asarray(jax.nn.softmax(mix_prior(logits, 0.01)))
    expected = 0.99 * np.asarray(jax.nn.softmax(logits)) + 0.01 / 4
    np.testing.assert_allclose(mixed, expected, rtol=1e-5)
    assert mixed.min() >= 0.0025 * (1 - 1e-5)


def test_prior_mix_lets_the_search_find_an_action_its_prior_rules_out():
    class Blind(BanditNet):  # the prior all but forbids action 2, the only rewarding one
        def apply(self, variables, *args, method, **kwargs):
            out = super().apply(variables, *args, method=method, **kwargs)
            if method == "predict":
                return jnp.tile(jnp.array([0.0, 0.0, -60.0, 0.0]), (out[0].shape[0], 1)), out[1]
            return out

    net = Blind([0.0, 0.0, 1.0, 0.0])
    visits = {}
    for mix in (0.0, 0.25):
        cfg = SearchConfig(policy="muzero", num_simulations=64, prior_mix=mix)
        out = make_search(net, MODEL, cfg, discount=0.99)(
            None, jax.random.PRNGKey(0), jnp.zeros((1, 1)), temperature=1.0, noise=0.0
        )
        visits[mix] = float(out.policy[0, 2])
    assert visits[0.0] < 0.05 and visits[0.25] > 0.5, visits
