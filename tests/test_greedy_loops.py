"""benchmarks.greedy_loops: episodes played on a real env, and the loop statistic."""

from __future__ import annotations

import itertools
from collections import Counter
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from benchmarks.greedy_loops import Episode, most_repeated, play, summary_row
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
