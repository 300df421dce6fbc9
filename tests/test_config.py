import pytest

from dreamer.config import Config, ConfigError, apply_overrides, flatten, from_dict, to_dict
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
