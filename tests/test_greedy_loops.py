"""benchmarks.greedy_loops: episodes played on a real env, and the loop statistic."""

from __future__ import annotations

import itertools
from collections import Counter
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.greedy_loops import (
    Episode,
    most_frequent,
    most_repeated,
    play,
    summary_row,
    weighs_rows,
    what_the_search_weighs,
)
from dreamer.agents.efficientzero.actor import greedy_policy, search_policy
from dreamer.core.config import EnvConfig

CORRIDOR = EnvConfig(id="envs.examples:make_corridor", num_envs=1, num_eval_envs=1)


def recording(calls: list):
    """A stand-in for the jitted search: records (variables, key, obs shape, temperature,
    noise) of each call and picks action 0."""

    def act(variables, rng, obs, temperature, noise):
        calls.append((variables, np.asarray(rng).tolist(), obs.shape, temperature, noise))
        return SimpleNamespace(action=np.zeros(len(obs), np.int32))

    return act


def constant(action: int):
    return lambda obs: np.full(len(obs), action)


def test_most_repeated_counts_the_most_frequent_observation():
    a, b = np.zeros(3), np.ones(3)
    assert most_repeated([a, b, a.copy(), a, b]) == 3
    assert most_repeated([a, b]) == 1
    assert most_repeated([]) == 0


def test_a_policy_against_the_wall_repeats_one_observation_for_the_whole_episode():
    played = play(CORRIDOR, constant(0), episodes=2, seed=3)  # left: never leaves cell 0
    assert [(e.episode_return, e.length, e.most_repeated) for e in played] == [(0.0, 32, 32)] * 2
    assert played[0].repeat_share == 1.0 and played[0].actions == {0: 32}


def test_a_policy_that_walks_to_the_end_sees_each_observation_once():
    played = play(CORRIDOR, constant(1), episodes=3, seed=3)
    assert [(e.episode_return, e.length, e.most_repeated) for e in played] == [(1.0, 7, 1)] * 3


def test_a_two_step_cycle_spends_half_the_episode_on_each_observation():
    turns = itertools.cycle([1, 0])  # right, left, ...: cells 0, 1, 0, 1, ...
    played = play(CORRIDOR, lambda obs: np.array([next(turns)]), episodes=2, seed=0)
    assert [(e.length, e.most_repeated, e.repeat_share) for e in played] == [(32, 16, 0.5)] * 2
    assert played[1].actions == {0: 16, 1: 16}  # the count starts over with each episode


def test_the_summary_row_counts_rewarded_episodes_and_the_share_of_each_action():
    played = [
        Episode(1.0, 4, 1, Counter({1: 4})),
        Episode(0.0, 4, 4, Counter({0: 4})),
    ]
    row = summary_row("acting", played)
    assert row == "| acting | 0.500 | 1/2 | 4 | 0.25, 1.00 | 0: 50%, 1: 50% |"


@pytest.mark.parametrize("temperature, noise", [(0.0, 0.0), (1.0, 1.0), (0.25, 0.5)])
def test_search_policy_searches_at_its_temperature_and_noise_with_a_fresh_key_each_call(
    temperature, noise
):
    calls = []
    policy = search_policy(
        recording(calls), "vars", jax.random.PRNGKey(0), temperature=temperature, noise=noise
    )
    policy(np.zeros((1, 3)))
    policy(np.zeros((1, 3)))
    assert [c[3:] for c in calls] == [(temperature, noise)] * 2
    assert calls[0][0] == "vars" and calls[0][1] != calls[1][1]


def test_greedy_policy_is_the_search_at_temperature_0_without_noise():
    calls = []
    greedy_policy(recording(calls), "vars", jax.random.PRNGKey(1))(np.zeros((2, 3)))
    assert [(c[0], *c[3:]) for c in calls] == [("vars", 0.0, 0.0)]


def test_play_keeps_each_episodes_most_repeated_observation():
    played = play(CORRIDOR, constant(0), episodes=1, seed=3)  # left: stays in cell 0
    np.testing.assert_array_equal(played[0].repeated, np.eye(8, dtype=np.float32)[0])
    obs, count = most_frequent([np.zeros(2), np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(obs, np.ones(2))
    assert count == 2 and most_frequent([]) == (None, 0)


def test_what_the_search_weighs_at_an_observation_of_a_model_with_known_values():
    """On the bandit model (action a earns payoff[a]) with every value 1, the value one step
    ahead is payoff + discount * 1, the prior is the network's (uniform) and the search picks
    the best."""
    from dreamer.agents.efficientzero.actor import make_actor
    from dreamer.agents.efficientzero.config import Config, ReplayConfig, SearchConfig
    from tests.test_search import MODEL, BanditNet, _logits

    class Valued(BanditNet):
        def apply(self, variables, *args, method, **kwargs):
            out = super().apply(variables, *args, method=method, **kwargs)
            if method == "predict":
                return out[0], _logits(jnp.ones(args[0].shape[0]))
            return out

    payoff = [0.1, 0.0, 0.3, 0.2]
    cfg = Config(model=MODEL, search=SearchConfig(policy="gumbel", num_simulations=16),
                 replay=ReplayConfig(discount=0.5))  # fmt: skip
    net = Valued(payoff)
    agent = SimpleNamespace(net=net, act=make_actor(cfg, net))
    weighed = what_the_search_weighs(agent, None, cfg, np.zeros(1, np.float32))
    np.testing.assert_allclose(weighed["q"], np.add(payoff, 0.5), atol=3e-4)  # via the supports
    np.testing.assert_allclose(weighed["prior"], 0.25, atol=1e-6)
    assert weighed["action"] == 2 and np.argmax(weighed["policy"]) == 2
    rows = weighs_rows(weighed)
    assert rows[2 + 2].startswith("| 2 (chosen) | 0.250 | 0.8000 |") and len(rows) == 2 + 4
