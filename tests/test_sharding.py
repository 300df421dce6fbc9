"""One run's update split over two (forced host) devices equals the update on one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreamer.agents.efficientzero.config import ConfigError, apply_overrides
from experiments.efficientzero import debug

ROOT = Path(__file__).resolve().parents[1]


def replay_and_learn(devices: int) -> dict:
    """A replay filled with the same random steps, then three updates and a cache refresh, on
    ``devices`` devices; what came out (as lists), and where the arrays live."""
    import gymnasium as gym
    import jax
    import numpy as np

    from dreamer.agents.efficientzero.builder import Parts, Spaces

    cfg = apply_overrides(
        debug(),
        [
            f"loop.devices={devices}",
            "model.norm=batch",
            "replay.reanalyze_mode=cached",
            "replay.reanalyze_fraction=0",  # no search to compile: the refresh is the values
        ],
    )
    spaces = Spaces(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2), "test")
    agent = Parts(cfg, spaces)
    state, replay = agent.new_learner(), agent.new_replay()
    data = np.random.default_rng(0)
    e = cfg.env.num_envs
    for t in range(40):
        obs = data.uniform(-1, 1, (e, 4)).astype(np.float32)
        replay = agent.add(
            state,
            replay,
            obs,
            data.integers(0, 2, e).astype(np.int32),
            data.uniform(0, 1, e).astype(np.float32),
            np.asarray([t % 17 == 16] * e),
            np.zeros(e, bool),
            np.full((e, 2), 0.5, np.float32),
        )
    lowered = agent.learn.lower(state, replay, 3).as_text()  # before XLA's partitioner
    state, replay, sums = agent.learn(state, replay, 3)
    replay = agent.refresh(state, replay, 0)
    return {
        "devices": len(jax.tree.leaves(state.params)[0].sharding.device_set),
        # the rows constrained to the mesh's data axis (Shardy's text, or GSPMD's)
        "rows_split": '{"data"}' in lowered or "devices=[2" in lowered,
        "loss": float(sums["losses/total"]),
        "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(state.params)],
        "searched": np.asarray(replay.searched_values).ravel().tolist(),
        "priorities": np.asarray(replay.priorities).ravel().tolist(),
    }


def test_two_devices_give_the_one_device_update():
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
    )
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); import test_sharding as t; "
        "print(json.dumps([t.replay_and_learn(1), t.replay_and_learn(2)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(done.stdout.strip().splitlines()[-1])
    assert (one["devices"], two["devices"]) == (1, 2)
    assert two["rows_split"] and not one["rows_split"]  # the batch's rows over 2 devices
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    # Adam divides by the root of the squared gradients: where a gradient is near 0 the
    # order of the cross-device sum can move a parameter by a fraction of one step (1e-3)
    for x, y in zip(one["params"], two["params"], strict=True):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4)
    assert two["searched"] == pytest.approx(one["searched"], rel=1e-3, abs=1e-5)
    assert two["priorities"] == pytest.approx(one["priorities"], rel=1e-3, abs=1e-5)


def test_more_devices_than_the_host_has_is_a_clear_error():
    import gymnasium as gym

    from dreamer.agents.efficientzero.builder import Parts, Spaces

    spaces = Spaces(gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2), "test")
    with pytest.raises(ConfigError, match="loop.devices=64 but this process sees"):
        Parts(apply_overrides(debug(), ["loop.devices=64"]), spaces)
