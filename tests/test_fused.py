"""The fused loop: the host loop's results on a deterministic env, vmapped seeds, kill/resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from dreamer.agents.efficientzero.config import apply_overrides
from dreamer.loops import efficientzero as agent_module
from dreamer.loops import fused as fused_loop
from dreamer.loops.fused_scan import make_fused
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.runlog import read_metrics
from experiments.efficientzero import debug

ROOT = Path(__file__).resolve().parents[1]
HOST_ENV, JAX_ENV = "envs.examples:make_corridor", "envs.examples:make_jax_corridor"
SMALL = [
    "run.env_steps=120",
    "run.eval_every=0",
    "run.checkpoint_every=0",
    "run.log_every=20",
    "run.final_eval_episodes=2",
    "loop.warmup_steps=40",
    "loop.replay_ratio=0.5",
    "optim.target_update_every=8",
]


def config(env_id, *more):
    return apply_overrides(debug(), [f"env.id={env_id}", *SMALL, *more])


def restore_learner(cfg, run_dir):
    """The final learner state of a run on either corridor (the networks are the same)."""
    agent = agent_module.Agent(apply_overrides(cfg, [f"env.id={HOST_ENV}"]))
    ckpt = Checkpointer(run_dir)
    arrays, meta = ckpt.restore({"learner": agent.new_learner()})
    ckpt.close()
    return arrays["learner"], meta


def test_jax_corridor_matches_the_gymnasium_corridor():
    host, fused = envs.make(HOST_ENV, max_steps=6), envs.make_jax(JAX_ENV, max_steps=6)
    obs, _ = host.reset()
    jobs, state = fused.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(obs, jobs)
    for action in [1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]:
        obs, reward, terminated, truncated, _ = host.step(action)
        jobs, state, jreward, jterm, jtrunc = fused.step(jax.random.PRNGKey(1), state, action)
        if terminated or truncated:
            obs, _ = host.reset()
        np.testing.assert_array_equal(obs, jobs)
        assert (reward, terminated, truncated) == (float(jreward), bool(jterm), bool(jtrunc))


def test_a_fused_run_gives_the_host_loops_data_and_updates(tmp_path):
    """Same seed and schedule on the deterministic corridor: the fused loop (one jit, one
    seed vmapped) stores the same transitions and makes the same updates as the host loop,
    the updates after the last env step (``loop.extra_updates``) included."""
    extra = "loop.extra_updates=4"
    host_cfg, jax_cfg = config(HOST_ENV, extra), config(JAX_ENV, extra)
    assert not agent_module.is_jax_native(host_cfg) and agent_module.is_jax_native(jax_cfg)
    a = agent_module.train(host_cfg, tmp_path / "host")
    b = agent_module.train(jax_cfg, tmp_path / "fused")
    assert b["loop"] == "fused" and a["updates"] == b["updates"] == 40 + 4
    rows_a, rows_b = (
        read_metrics(tmp_path / "host/metrics.csv"),
        read_metrics(tmp_path / "fused/metrics.csv"),
    )
    assert [r["env_steps"] for r in rows_a] == [r["env_steps"] for r in rows_b]
    for key in ("losses/total", "losses/value", "charts/episodic_return"):
        np.testing.assert_allclose(
            [float(r[key] or "nan") for r in rows_a],
            [float(r[key] or "nan") for r in rows_b],
            rtol=1e-4,
        )
    learner_a, _ = restore_learner(host_cfg, tmp_path / "host")
    learner_b, _ = restore_learner(host_cfg, tmp_path / "fused")
    assert int(learner_a.step) == int(learner_b.step) == 40 + 4
    for x, y in zip(
        jax.tree.leaves(learner_a.params), jax.tree.leaves(learner_b.params), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def countdown(size: int = 8, longest: int = 4) -> envs.JaxEnv:
    """Episodes of 1 to ``longest`` steps, the length drawn from the reset key, reward 1 at
    the last step only: every episode returns exactly 1, however long it lasts (the
    corridor's observation and action spaces, so the corridor's agent plays it)."""

    def reset(key):
        left = jax.random.randint(key, (), 1, longest + 1)
        return jax.nn.one_hot(left, size, dtype=jnp.float32), {"left": left}

    def step(key, state, action):
        left = state["left"] - 1
        terminated = left == 0
        fresh_obs, fresh = reset(key)
        obs = jnp.where(terminated, fresh_obs, jax.nn.one_hot(left, size, dtype=jnp.float32))
        state = jax.tree.map(lambda f, n: jnp.where(terminated, f, n), fresh, {"left": left})
        return obs, state, terminated.astype(jnp.float32), terminated, jnp.zeros((), bool)

    space = gymnasium.spaces.Box(0.0, 1.0, (size,), np.float32)
    return envs.JaxEnv(reset, step, space, gymnasium.spaces.Discrete(2), "countdown")


def test_each_env_resets_from_its_own_key_and_returns_stop_at_the_episode_end():
    """On episodes whose lengths are drawn at reset: the training steps reset every env from
    a key of its own, and each training and evaluation episode counts its reward up to its
    own end, not up to the end of the longest."""
    cfg = config(JAX_ENV)
    agent, _ = fused_loop.build(cfg)
    fused = make_fused(cfg, agent, countdown(), chunk_length=24)
    states = fused_loop.init_seeds(fused, [0])
    states, env_steps, _ = fused.chunk(states, 0, 0, 24)
    assert int(env_steps) == 24 * cfg.env.num_envs
    episodes = jax.tree.map(float, jax.tree.map(lambda x: x[0], states.episodes))
    assert episodes["count"] >= 5 * cfg.env.num_envs  # each env ran several episodes...
    assert episodes["return_sum"] == episodes["count"]  # ...each returning 1
    lengths = episodes["length_sum"] / episodes["count"]
    assert 1.0 < lengths < 4.0  # of drawn lengths, not all 1 or all 4
    returns = fused.evaluate(states, jax.random.PRNGKey(0)[None], episodes=16, max_steps=0)
    np.testing.assert_array_equal(returns, np.ones((1, 16)))


def test_vmapped_seeds_differ_and_each_matches_its_run_alone(tmp_path):
    cfg = config(JAX_ENV, "loop.replay_ratio=0.25")
    group = fused_loop.train_seeds(
        cfg, fused_loop.seed_folders(tmp_path / "g", [3, 4]), [3, 4], resume=False
    )
    alone = fused_loop.train_seeds(
        apply_overrides(cfg, ["run.seed=4"]), [tmp_path / "alone"], [4], resume=False
    )[0]
    assert [s["seed"] for s in group] == [3, 4]
    p3, _ = restore_learner(cfg, tmp_path / "g/seed3")
    p4, _ = restore_learner(cfg, tmp_path / "g/seed4")
    p4_alone, _ = restore_learner(cfg, tmp_path / "alone")
    leaves3, leaves4 = jax.tree.leaves(p3.params), jax.tree.leaves(p4.params)
    assert any(not np.allclose(x, y) for x, y in zip(leaves3, leaves4, strict=True))
    # float tolerance: a batch of two seeds and a batch of one may round differently
    for x, y in zip(leaves4, jax.tree.leaves(p4_alone.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert group[1]["final_eval_returns"] == pytest.approx(alone["final_eval_returns"])
    for seed in (3, 4):
        assert (tmp_path / f"g/seed{seed}/summary.json").exists()
        assert (
            json.loads((tmp_path / f"g/seed{seed}/config.json").read_text())["config"]["run"][
                "seed"
            ]
            == seed
        )


def group_on_devices(out: str, devices: int) -> dict:
    """Seeds 3 and 4 of the vmapped-seeds config trained together in a process that sees
    ``devices`` CPU devices; where their states lived, and what they learned."""
    cfg = config(JAX_ENV, "loop.replay_ratio=0.25")
    placed = fused_loop.init_seeds(fused_loop.build(cfg)[1], [3, 4])
    summaries = fused_loop.train_seeds(
        cfg, fused_loop.seed_folders(Path(out), [3, 4]), [3, 4], resume=False
    )
    params = [restore_learner(cfg, Path(out) / f"seed{k}")[0].params for k in (3, 4)]
    return {
        "devices": len(jax.tree.leaves(placed)[0].sharding.device_set),
        "returns": [s["final_eval_returns"] for s in summaries],
        "params": [[np.asarray(x).ravel().tolist() for x in jax.tree.leaves(p)] for p in params],
    }


@pytest.mark.slow  # two processes that each compile and train a group: minutes on 2 cores
def test_seeds_split_over_two_cpu_devices_learn_what_one_device_learns(tmp_path):
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); import test_fused as t; "
        "print(json.dumps(t.group_on_devices(sys.argv[1], int(sys.argv[2]))))"
    )
    runs = []
    for devices in (1, 2):
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
            JAX_PLATFORMS="cpu",
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"d{devices}"), str(devices)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    one, two = runs
    assert (one["devices"], two["devices"]) == (1, 2)  # one seed per device
    for a, b in zip(one["returns"], two["returns"], strict=True):
        assert b == pytest.approx(a)
    for a, b in zip(one["params"], two["params"], strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


def run_python(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def test_kill_and_resume_a_fused_run_continues_exactly(tmp_path):
    args = [
        "--preset",
        "debug",
        "--env",
        JAX_ENV,
        "--seed",
        "2",
        "--set",
        "run.env_steps=160",
        "--set",
        "run.checkpoint_every=60",
        "--set",
        "run.log_every=20",
        "--set",
        "run.eval_every=80",
        "--set",
        "loop.warmup_steps=40",
    ]
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = run_python("-m", "dreamer", "train", *args, "--out", str(full))
    assert done.returncode == 0, done.stderr[-2000:]
    killer = (
        "import os, signal, sys\n"
        "from dreamer import cli\n"
        "from dreamer.shell import runlog\n"
        "log = runlog.RunLog.log\n"
        "def log_then_die(self, row):\n"
        "    log(self, row)\n"
        "    if int(row['env_steps']) >= 100:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "runlog.RunLog.log = log_then_die\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = run_python("-c", killer, "train", *args, "--out", str(killed))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert Checkpointer(killed).latest_step() == 60
    resumed = run_python("-m", "dreamer", "resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["eval_curve"] == b["eval_curve"] and a["final_eval_returns"] == b["final_eval_returns"]
    rows_a, rows_b = read_metrics(full / "metrics.csv"), read_metrics(killed / "metrics.csv")
    assert [r["losses/total"] for r in rows_a] == [r["losses/total"] for r in rows_b]
    assert [r["charts/episodic_return"] for r in rows_a] == [
        r["charts/episodic_return"] for r in rows_b
    ]


def test_a_jax_env_that_cannot_be_traced_gets_a_clear_error():
    def reset(key):
        return jnp.zeros(3), {"t": jnp.zeros((), jnp.int32)}

    def step(key, state, action):
        if action > 0:  # Python control flow on a traced value
            pass
        return jnp.zeros(3), state, 0.0, False, False

    import gymnasium

    env = envs.JaxEnv(reset, step, gymnasium.spaces.Box(0, 1, (3,)), gymnasium.spaces.Discrete(2))
    with pytest.raises(envs.JaxEnvError, match="cannot be traced"):
        envs.jax_envs.check_jax_env(env)


def test_a_checkpoints_stochastic_evaluation_acts_as_training_at_that_step(tmp_path, monkeypatch):
    """``evaluate_checkpoint`` passes the search temperature 0 and no noise, or with
    ``stochastic`` the temperature of the checkpoint's step and the noise on: a search steered
    right (to the corridor's reward) only at temperature 0.5 with noise, the schedule's value
    after its milestone, returns 1 stochastically and 0 greedily."""
    cfg = config(JAX_ENV, "search.temperatures=[1.0,0.5]", "search.temperature_milestones=[0.5]")
    build = fused_loop.build
    states = fused_loop.init_seeds(build(cfg)[1], [0])  # an untrained learner at step 120
    ckpt = Checkpointer(tmp_path / "run")
    ckpt.save(120, {"learner": jax.tree.map(lambda x: x[0], states.learner)}, {"env_steps": 120})
    ckpt.close()

    def steered_build(cfg):
        agent, _ = build(cfg)
        act = agent.act

        def steered(variables, rng, obs, temperature, noise):
            out = act(variables, rng, obs, temperature, noise)
            right = (temperature == 0.5) & (noise == 1.0)
            return dataclasses.replace(out, action=jnp.where(right, 1, 0) + 0 * out.action)

        agent.act = steered
        env = envs.make_jax(cfg.env.id, **cfg.env.options)
        return agent, make_fused(cfg, agent, env, chunk_length=8)

    monkeypatch.setattr(fused_loop, "build", steered_build)
    greedy = fused_loop.evaluate_checkpoint(cfg, tmp_path / "run", episodes=2)
    acting = fused_loop.evaluate_checkpoint(cfg, tmp_path / "run", episodes=2, stochastic=True)
    assert (greedy, acting) == ([0.0, 0.0], [1.0, 1.0])
