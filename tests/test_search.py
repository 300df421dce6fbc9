"""Search on hand-made models with known answers."""

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

from dreamer.agents.efficientzero.config import ModelConfig, SearchConfig
from dreamer.agents.efficientzero.search import (
    make_model_fns,
    make_search,
    qtransform_by_tree_min_max,
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
        del variables, kwargs
        if method == "represent":
            (obs,) = args
            return jnp.zeros((obs.shape[0], 1))
        if method == "initial_lstm":
            (batch,) = args
            return jnp.zeros((batch, 2)), jnp.zeros((batch, 2))
        if method == "predict":
            (latent,) = args
            b = latent.shape[0]
            return jnp.zeros((b, self.payoff.size)), _logits(jnp.zeros(b))
        if method == "dynamics":
            latent, (c, h), action = args
            reward = jnp.where(latent[:, 0] == 0, self.payoff[action], self.later)
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


def test_tree_min_max_qtransform_normalises_over_the_whole_tree():
    # Root (0) with children 1 (via action 0) and 2 (via action 1); node 1 has child 3.
    n, a = 4, 2
    children_index = jnp.array([[1, 2], [3, -1], [-1, -1], [-1, -1]])
    visits = jnp.array([[2, 1], [1, 0], [0, 0], [0, 0]])
    rewards = jnp.array([[1.0, 0.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    values = jnp.array([3.0, 2.0, -1.0, 0.0])
    tree = mctx.Tree(
        node_visits=jnp.array([4, 2, 1, 1]),
        raw_values=values,
        node_values=values,
        parents=jnp.array([-1, 0, 0, 1]),
        action_from_parent=jnp.array([-1, 0, 1, 0]),
        children_index=children_index,
        children_prior_logits=jnp.zeros((n, a)),
        children_visits=visits,
        children_rewards=rewards,
        children_discounts=jnp.ones((n, a)),
        children_values=jnp.where(children_index >= 0, values[jnp.maximum(children_index, 0)], 0.0),
        embeddings=jnp.zeros((n, 1)),
        root_invalid_actions=jnp.zeros(a),
        extra_data=None,
    )
    # Edge Qs: root a0 = 1 + 2 = 3, root a1 = 0 - 1 = -1, node1 a0 = 5 + 0 = 5.
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, 0), [4 / 6, 0.0], atol=1e-6)
    # Node 1's unvisited action gets the mean of node value and visited Qs: (2 + 5) / 2.
    np.testing.assert_allclose(qtransform_by_tree_min_max(tree, 1), [1.0, (3.5 + 1) / 6], atol=1e-6)


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
