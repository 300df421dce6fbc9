import re

import pytest

from dreamer.agents.baselines.dqn.config import DQNConfig
from dreamer.agents.baselines.ppo.config import PPOConfig
from dreamer.agents.efficientzero.config import (
    Config,
    ConfigError,
    apply_overrides,
    flatten,
    from_dict,
    to_dict,
)
from experiments import efficientzero


def test_overrides_are_typed_and_nested():
    cfg = apply_overrides(
        Config(),
        [
            "search.num_simulations=16",
            "model.hidden=[32, 32]",
            "optim.learning_rate=1e-3",
            'env.options={"grayscale": true}',
            "search.policy=gumbel",
        ],
    )
    assert cfg.search.num_simulations == 16
    assert cfg.model.hidden == (32, 32)
    assert cfg.optim.learning_rate == pytest.approx(1e-3)
    assert cfg.env.options == {"grayscale": True}
    assert cfg.search.policy == "gumbel"


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.num_sims=3", "unknown config key 'search.num_sims'"),
        ("search.num_simulations=abc", "expected an integer"),
        ("search.policy=alphazero", "choose one of"),
        ("run.env_steps=-5", "positive"),
        ("search=3", "is a section"),
        ("novalue", "key=value"),
        ("replay.discount=1.5", "in (0, 1]"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=pytest.importorskip("re").escape(message)):
        apply_overrides(Config(), [override])


@pytest.mark.parametrize("preset", ["atari100k", "cartpole", "debug"])
def test_presets_round_trip_through_json(preset):
    cfg = getattr(efficientzero, preset)()
    assert from_dict(Config, to_dict(cfg)) == cfg
    assert "search.num_simulations" in flatten(cfg)


def test_configs_are_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.search = None  # type: ignore[misc]


def test_fields_validated_together_can_change_together():
    cfg = apply_overrides(
        Config(), ["search.temperatures=[0.25]", "search.temperature_milestones=[]"]
    )
    assert cfg.search.temperatures == (0.25,) and cfg.search.temperature_milestones == ()
    with pytest.raises(ConfigError, match="one more entry"):
        apply_overrides(Config(), ["search.temperatures=[0.25]"])


# Each value lies just outside its range; the message must name the key.
OUT_OF_RANGE = [
    "run.seed=-1",
    "run.seed=4294967296",
    "run.keep_checkpoints=0",
    "run.keep_checkpoints=-1",
    "run.final_eval_episodes=-1",
    "run.eval_every=-1",
    "run.checkpoint_every=-1",
    "model.latent_dim=0",
    "model.hidden=[32, 0]",
    "model.num_blocks=-1",
    "model.dynamics_grad_scale=1.5",
    "search.dirichlet_alpha=0",
    "search.dirichlet_fraction=1.1",
    "search.pb_c_init=-1",
    "search.gumbel_scale=-0.1",
    "search.max_num_considered_actions=0",
    "replay.priority_alpha=-0.5",
    "replay.priority_beta=1.5",
    "replay.priority_eps=0",
    "replay.reanalyze_simulations=-1",
    "replay.off_policy_age_ratio=0",
    "replay.discount=0",
    "optim.learning_rate=-1",
    "optim.learning_rate=0",
    "optim.momentum=1",
    "optim.weight_decay=-1e-4",
    "optim.warmup_updates=-1",
    "optim.decay_updates=0",
    "optim.decay_rate=0",
    "optim.max_grad_norm=0",
    "optim.value_weight=-0.25",
    "optim.policy_weight=-1",
    "optim.reward_weight=-1",
    "optim.consistency_weight=-2",
    "optim.target_update_every=0",
    "loop.warmup_steps=-1",
    "loop.warmup_fraction=-0.1",
    "loop.warmup_fraction=1",
    "search.value_delta_max=0",
    "search.c_scale=0",
    "search.c_visit=-1",
    "loop.replay_ratio=-1",
    "loop.extra_updates=-1",
]


@pytest.mark.parametrize("override", OUT_OF_RANGE)
def test_out_of_range_values_are_rejected_naming_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(key) + r"=.+ is invalid: expected"):
        apply_overrides(Config(), [override])


def test_the_warm_up_is_the_larger_of_its_steps_and_its_share_of_the_budget():
    cfg = apply_overrides(
        Config(), ["run.env_steps=3000", "loop.warmup_steps=100", "loop.warmup_fraction=0.1"]
    )
    assert cfg.warmup_steps == 300
    assert cfg.updates_by(300) == 0 and cfg.updates_by(301) == 1  # replay_ratio 1
    assert cfg.total_updates == 2700
    longer = apply_overrides(cfg, ["run.env_steps=20000"])
    assert longer.warmup_steps == 2000 and longer.total_updates == 18000
    assert apply_overrides(cfg, ["loop.warmup_steps=500"]).warmup_steps == 500


def test_values_on_the_edge_of_their_ranges_are_accepted():
    edges = ["run.seed=2147483647", "run.keep_checkpoints=1", "run.final_eval_episodes=0"]
    edges += ["optim.value_weight=0", "replay.discount=1", "search.dirichlet_fraction=0"]
    cfg = apply_overrides(Config(), edges)
    assert cfg.run.keep_checkpoints == 1 and cfg.replay.discount == 1.0


@pytest.mark.parametrize("cls", [DQNConfig, PPOConfig])
@pytest.mark.parametrize("override", ["run.seed=-1", "run.keep_checkpoints=0"])
def test_baselines_share_the_run_ranges(cls, override):
    with pytest.raises(ConfigError, match=re.escape(override.split("=")[0])):
        apply_overrides(cls(), [override])


def test_a_replay_too_small_for_one_sequence_names_the_minimum_capacity():
    cfg = efficientzero.debug()  # 2 envs, K=3, n=3: a sequence spans 7 steps of one env
    with pytest.raises(ConfigError) as error:
        apply_overrides(cfg, ["replay.capacity=2"])
    message = str(error.value)
    assert "replay.capacity=2 is too small" in message
    assert "Set replay.capacity to at least 14" in message
    assert "more steps" not in message
    assert apply_overrides(cfg, ["replay.capacity=14"]).replay.capacity == 14


def test_atari100k_v2_takes_the_ez_v2_recipe_and_the_fast_preset_builds_on_it():
    from experiments.efficientzero import atari100k, atari100k_fast, atari100k_v2

    v1, v2, fast = atari100k(), atari100k_v2(), atari100k_fast()
    s = v2.search
    assert (s.policy, s.num_simulations, s.max_num_considered_actions) == ("gumbel", 16, 4)
    assert (s.c_visit, s.c_scale, s.value_delta_max) == (50.0, 0.1, 0.01)
    assert (v2.replay.priority_alpha, v2.replay.priority_beta) == (1.0, 1.0)
    assert v2.replay.reanalyze_fraction == 1.0
    assert (v2.optim.value_weight, v2.optim.consistency_weight) == (0.5, 5.0)
    assert (v2.optim.decay, v2.optim.learning_rate) == ("none", 0.2)
    assert v2.optim.warmup_updates == v2.total_updates // 100 == 1_200
    assert v2.replay.discount == v1.replay.discount == 0.997**4
    assert v2.total_updates == v1.total_updates == 120_000
    # The fast preset: the V2 recipe at 16 envs and 0.2 updates per step, warm-up 1%.
    assert fast.search == v2.search and fast.replay == v2.replay
    assert (fast.env.num_envs, fast.loop.replay_ratio, fast.total_updates) == (16, 0.2, 19_600)
    assert fast.optim.warmup_updates == 196


def test_a_new_run_allocates_no_more_replay_than_its_budget_fills():
    default = efficientzero.default
    cfg = apply_overrides(default(), ["run.env_steps=5000"])  # 4 envs, capacity 100,000
    assert cfg.sized_to_budget().replay.capacity == 5000
    odd = apply_overrides(default(), ["run.env_steps=5001"])
    assert odd.sized_to_budget().replay.capacity == 4 * 1251  # whole slots per env
    short = apply_overrides(default(), ["run.env_steps=40"])  # a few sequences at least
    assert short.sized_to_budget().replay.capacity == 4 * (short.replay.sequence_length + 32)
    small = apply_overrides(default(), ["run.env_steps=500000"])
    assert small.sized_to_budget() is small  # 100,000 < the budget: kept
