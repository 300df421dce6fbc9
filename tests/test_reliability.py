"""Nothing lost under signals, concurrent runs, full disks and bad settings.

Real runs of the CLI on tiny budgets: DQN takes a few seconds a run, so the process-level
cases (signals, the run-folder lock, a full disk, kill and resume) use it; the RunBook they
exercise is the one every loop shares. EfficientZero runs only where its loop itself changed.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dreamer import cli
from dreamer.shell import runlog
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.runlog import read_json, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def _sets(items: str) -> list[str]:
    return [arg for item in items.split() for arg in ("--set", item)]


QUICK = "run.eval_episodes=2 run.final_eval_episodes=2 run.progress=false env.num_eval_envs=2"
# A DQN run of 400 env steps: rows every 100, checkpoints at 200 and 400, evals at 200, 400.
TINY_DQN = ["--algo", "dqn", "--preset", "cartpole", "--steps", "400"] + _sets(
    f"{QUICK} env.num_envs=2 run.eval_every=200 run.log_every=100 run.checkpoint_every=200 "
    "network.hidden=[16] dqn.batch_size=16 dqn.buffer_size=1000 dqn.learning_starts=100 "
    "dqn.train_freq=4 dqn.gradient_steps=1 dqn.target_update_interval=50 "
    "dqn.epsilon_decay_steps=200"
)
# A PPO run of 256 env steps: rollouts of 16 steps x 4 envs, rows every 64, checkpoints at 128.
TINY_PPO = ["--algo", "ppo", "--preset", "cartpole", "--steps", "256"] + _sets(
    f"{QUICK} env.num_envs=4 run.eval_every=128 run.log_every=64 run.checkpoint_every=128 "
    "network.hidden=[16] ppo.num_steps=16 ppo.minibatch_size=32 ppo.epochs=2"
)


# The child runs the CLI and, right after logging the row of env step AT, either sends itself
# a signal (SIGTERM, SIGINT, SIGKILL) or pauses while the file FLAG exists ("pause").
CHILD = """
import os, signal, sys, time
from pathlib import Path
from dreamer import cli
from dreamer.shell import runlog
action, at, flag, *argv = sys.argv[1:]
log = runlog.RunLog.log
def log_then_act(self, row):
    log(self, row)
    if int(row["env_steps"]) == int(at):
        if action == "pause":
            Path(flag).write_text(str(os.getpid()))
            while Path(flag).exists():
                time.sleep(0.05)
        else:
            os.kill(os.getpid(), getattr(signal, action))
runlog.RunLog.log = log_then_act
sys.exit(cli.main(argv))
"""


def _env():  # the children import dreamer, and this module for its faulty env
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))


def run_python(*argv, timeout=300):
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(*args):
    return run_python("-m", "dreamer", *args)


def run_child(action, at, *args, flag="-"):
    return run_python("-c", CHILD, action, str(at), str(flag), *args)


def dreamer_lines(stderr):
    """The lines the CLI itself printed (libraries may add warnings)."""
    return [line for line in stderr.splitlines() if line.startswith("dreamer:")]


def test_final_eval_episodes_zero_means_no_final_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TINY_DQN, "--set", "run.final_eval_episodes=0", "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_eval_return"] is None and summary["final_eval_returns"] == []
    assert [s for s, _ in summary["eval_curve"]] == [200]  # the periodic one only
    assert read_metrics(out / "metrics.csv")[-1]["eval/return_mean"] == ""
    assert "final eval return none (run.final_eval_episodes=0)" in capsys.readouterr().out
    assert cli.main(["resume", str(out)]) == 0  # a finished run reports its summary
    assert "already finished" in capsys.readouterr().out
    assert Checkpointer(out).latest_step() == 400


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, name, code):
    out = tmp_path / "run"
    proc = run_child(name, 300, "train", *TINY_DQN, "--out", str(out))
    assert proc.returncode == code, proc.stderr[-2000:]
    [line] = dreamer_lines(proc.stderr)
    assert f"stopped by {name} at env step 300" in line
    assert f"`python -m dreamer resume {out}`" in line  # the folder, not a placeholder
    assert Checkpointer(out).latest_step() == 300  # written on the signal (interval: 200)
    assert not (out / "summary.json").exists()
    if name == "SIGTERM":
        resumed = run_cli("resume", str(out))
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert json.loads((out / "summary.json").read_text())["env_steps"] == 400
        steps = [r["env_steps"] for r in read_metrics(out / "metrics.csv")]
        assert steps == ["100", "200", "300", "400"]


def test_a_second_process_cannot_train_in_a_locked_folder(tmp_path):
    out, flag = tmp_path / "run", tmp_path / "paused"
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            "pause",
            "100",
            str(flag),
            "train",
            *TINY_DQN,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not flag.exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.1)
        for args in (["train", *TINY_DQN, "--out", str(out)], ["resume", str(out)]):
            second = run_cli(*args)
            assert second.returncode == 2
            [line] = dreamer_lines(second.stderr)
            assert f"{out} is in use by another process (pid {first.pid} on" in line
        flag.unlink()  # let the first run finish
        assert first.wait(timeout=240) == 0, first.stderr.read()[-2000:]
    finally:
        first.kill()
    steps = [r["env_steps"] for r in read_metrics(out / "metrics.csv")]
    assert steps == ["100", "200", "300", "400"]  # one writer, no interleaved rows


def _stopped_before_first_checkpoint(folder):
    """What a run killed before its first checkpoint leaves: its config and some rows."""
    assert cli.main(["train", *TINY_DQN, "--set", "run.env_steps=100", "--out", str(folder)]) == 0
    config = read_json(folder / "config.json")
    config["config"]["run"]["env_steps"] = 400
    (folder / "config.json").write_text(json.dumps(config))
    for path in [folder / "summary.json", *(folder / "checkpoints").iterdir()]:
        path.unlink() if path.is_file() else shutil.rmtree(path)


def test_resume_and_train_start_over_a_run_that_has_no_checkpoint(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        _stopped_before_first_checkpoint(folder)
    capsys.readouterr()
    assert cli.main(["resume", str(first)]) == 0
    assert "starting it over from env step 0" in capsys.readouterr().out
    assert cli.main(["train", *TINY_DQN, "--out", str(second)]) == 0
    assert "stopped before its first checkpoint; starting over" in capsys.readouterr().out
    for folder in (first, second):
        steps = [r["env_steps"] for r in read_metrics(folder / "metrics.csv")]
        assert steps == ["100", "200", "300", "400"]  # the old attempt's rows are gone
        assert read_json(folder / "summary.json")["env_steps"] == 400
    assert cli.main(["train", *TINY_DQN, "--out", str(first)]) == 2  # now it has checkpoints
    assert f"Continue it with `python -m dreamer resume {first}`" in capsys.readouterr().err


def test_an_unusable_out_folder_is_named_before_anything_runs(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["train", *TINY_DQN, "--out", str(blocker / "run")]) == 2
    assert f"{blocker} is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder cannot stop it
        locked = tmp_path / "read_only"
        locked.mkdir(mode=0o500)
        assert cli.main(["train", *TINY_DQN, "--out", str(locked / "run")]) == 2
        assert "Choose a folder you can write to" in capsys.readouterr().err


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    disk_full = (
        "import errno, os, sys\n"
        "from etils import epath\n"
        "from dreamer import cli\n"
        "write = epath.Path.write_text\n"
        "def write_text(self, *args, **kwargs):\n"
        "    if '/checkpoints/400' in str(self):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))\n"
        "    return write(self, *args, **kwargs)\n"
        "epath.Path.write_text = write_text\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = run_python("-c", disk_full, "train", *TINY_DQN, "--out", str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = dreamer_lines(proc.stderr)
    assert f"could not write the checkpoint at env step 400 to {out}/checkpoints/400" in line
    assert "No space left on device" in line and "env step 200 is kept" in line
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["200"]  # no partial
    resumed = run_cli("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 400


@pytest.mark.parametrize("episodes", ["-1", "0", "x"])
def test_eval_rejects_an_episode_count_that_is_not_positive(tmp_path, capsys, episodes):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", str(tmp_path), "--episodes", episodes])
    assert exit_.value.code == 2
    assert f"--episodes: expected a positive integer, got '{episodes}'" in capsys.readouterr().err


def test_a_file_that_cannot_be_written_is_named_without_a_traceback(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def disk_full(self, algo, config):
        raise OSError(28, "No space left on device", str(out / "config.json"))

    monkeypatch.setattr(runlog.RunLog, "write_config", disk_full)
    assert cli.main(["train", *TINY_DQN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamer: error: {out / 'config.json'}: No space left on device.")
    assert "Traceback" not in err and f"python -m dreamer resume {out}" in err


def make_broken_env(**options):
    """A user's factory that fails (a missing licence, a bad path, ...)."""
    raise RuntimeError("no licence for the simulator")


def test_a_raising_env_factory_is_named_with_its_own_traceback(tmp_path, capsys):
    env_id = "test_reliability:make_broken_env"
    assert cli.main(["train", *TINY_DQN, "--env", env_id, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"dreamer: error: the environment factory test_reliability.make_broken_env (environment "
        f"'{env_id}') raised RuntimeError: no licence for the simulator (its traceback is above)."
    )
    assert any("in make_broken_env" in line for line in err)  # where the error came from


class FaultyCartPole(gym.Wrapper):
    """CartPole whose rewards are scaled by ``reward_scale`` and whose ``nan_in`` output
    ("observation" or "reward") turns NaN at the env's ``nan_at``-th step."""

    def __init__(self, reward_scale=1.0, nan_in="observation", nan_at=30):
        super().__init__(gym.make("CartPole-v1"))
        self.reward_scale, self.nan_in, self.nan_at, self.steps = reward_scale, nan_in, nan_at, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        reward = float(reward) * self.reward_scale
        if self.steps == self.nan_at:
            obs, reward = (
                (np.full_like(obs, np.nan), reward)
                if self.nan_in == "observation"
                else (obs, float("nan"))
            )
        return obs, reward, terminated, truncated, info


def make_faulty_env(**options):
    return FaultyCartPole(**options)


FAULTY = "test_reliability:make_faulty_env"


def test_efficientzero_warns_once_on_huge_rewards_and_stops_on_sigterm_with_a_checkpoint(
    tmp_path,
):
    """Both calls of the EfficientZero loop into its RunBook in one short run: the env-output
    check after each env step and the stop request at each step boundary."""
    out = tmp_path / "ez"
    args = ["train", "--preset", "debug", "--env", FAULTY, "--out", str(out)]
    args += ["--set", 'env.options={"reward_scale": 1e9, "nan_at": 0}']  # huge, never NaN
    args += ["--set", "loop.warmup_steps=150"]  # stopped at 50, before the learner compiles
    proc = run_child("SIGTERM", 50, *args)
    assert proc.returncode == 143, proc.stderr[-2000:]
    warning, stop = dreamer_lines(proc.stderr)
    assert warning.startswith("dreamer: warning:")
    assert "reward of magnitude 1e+09 at env step 2" in warning
    assert "model.reward_support=5" in warning and "model.value_support=10" in warning
    assert stop == (
        f"dreamer: stopped by SIGTERM at env step 50 with a checkpoint in {out}; continue "
        f"with `python -m dreamer resume {out}`."
    )
    assert Checkpointer(out).latest_step() == 50  # written on the signal (interval: 100)


@pytest.mark.parametrize(
    "tiny, step, kept",
    [
        (
            [*TINY_DQN, "--set", "run.checkpoint_every=50"],
            60,
            "the checkpoint at env step 50 is kept",
        ),
        (TINY_PPO, 120, "no checkpoint was saved yet"),
    ],
)
def test_a_nan_from_the_env_stops_the_run_naming_the_env_step(tmp_path, capsys, tiny, step, kept):
    out = tmp_path / "run"
    args = ["train", *tiny, "--env", FAULTY, "--set", 'env.options={"nan_in": "reward"}']
    assert cli.main([*args, "--out", str(out)]) == 2
    err = dreamer_lines(capsys.readouterr().err)
    assert err == [
        f"dreamer: error: environment {FAULTY} returned NaN in the reward of sub-env 0 at env "
        f"step {step}; the run stopped and {kept}. Fix "
        "the environment (or wrap it to replace non-finite values), then continue with "
        f"`python -m dreamer resume {out}`."
    ]


def _rows_without_timing(run_dir):
    rows = read_metrics(run_dir / "metrics.csv")
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "charts/SPS")} for r in rows]


@pytest.mark.parametrize(
    "tiny, kill_after, resumed_from", [(TINY_DQN, 300, 200), (TINY_PPO, 192, 128)]
)
def test_the_baselines_resume_exactly_after_kill_9(tmp_path, tiny, kill_after, resumed_from):
    full, killed = tmp_path / "full", tmp_path / "killed"
    uninterrupted = subprocess.Popen(  # alongside the killed run: two cores, half the time
        [sys.executable, "-m", "dreamer", "train", *tiny, "--out", str(full)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = run_child("SIGKILL", kill_after, "train", *tiny, "--out", str(killed))
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-2000:]
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert Checkpointer(killed).latest_step() == resumed_from
    assert (killed / ".lock").exists()  # the dead process's lock does not block resume
    resumed = run_cli("resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["eval_curve"] == b["eval_curve"] and a["updates"] == b["updates"]
    assert a["final_eval_returns"] == b["final_eval_returns"]
    rows = _rows_without_timing(full)  # losses, episode returns, evals: row for row
    assert rows == _rows_without_timing(killed)
    assert any(r["charts/episodic_return"] for r in rows if int(r["env_steps"]) > resumed_from)


def test_a_reader_that_goes_away_is_not_reported_as_an_error():
    """`python -m dreamer show-config ... | head -1`: the pipe closes before the output ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dreamer", "show-config", "--preset", "debug"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # long before the child has imported anything and printed
    assert proc.wait(timeout=120) == 1
    assert proc.stderr.read() == ""
