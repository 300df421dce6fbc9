"""End to end: the real loop on the tiny ``debug`` preset, the CLI, save / kill -9 / resume."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dreamer import cli
from dreamer.shell import tensorboard_events
from dreamer.shell.checkpoint import Checkpointer, CheckpointError
from dreamer.shell.runlog import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def run_python(*argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def run_cli(*args):
    return run_python("-m", "dreamer", *args)


def test_train_kill_resume_matches_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = ["--preset", "debug", "--seed", "3"]
    done = run_cli("train", *args, "--out", str(full))
    assert done.returncode == 0, done.stderr[-2000:]
    # Before the first (compiled) step: the run folder, the device, the env, "compiling…".
    head = done.stdout.splitlines()[:5]
    assert [line.split()[0] for line in head] == ["training", "run", "device", "env", "compiling…"]
    assert str(full) in head[1] and "cpu" in head[2] and "CartPole-v1" in head[3]

    # The child kills itself with SIGKILL right after logging env step 150: past the checkpoint
    # at 100, before the one at 200. Deterministic on any machine, however fast.
    killer = (
        "import os, signal, sys\n"
        "from dreamer import cli\n"
        "from dreamer.shell import runlog\n"
        "log = runlog.RunLog.log\n"
        "def log_then_die(self, row):\n"
        "    log(self, row)\n"
        "    if int(row['env_steps']) >= 150:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "runlog.RunLog.log = log_then_die\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = run_python("-c", killer, "train", *args, "--out", str(killed))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert Checkpointer(killed).latest_step() == 100
    assert not (killed / "summary.json").exists()
    assert read_metrics(killed / "metrics.csv")[-1]["env_steps"] == "150"

    resumed = run_cli("resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout
    # TensorBoard: the steps after the checkpoint that the killed process logged are
    # dropped, so every (tag, step) is written once, as in the uninterrupted run.
    pairs = [(tag, step) for tag, step, _ in tensorboard_events.scalars(killed)]
    assert len(pairs) == len(set(pairs))
    assert sorted(pairs) == sorted((t, s) for t, s, _ in tensorboard_events.scalars(full))

    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    # Same seed and steps: the same curve whether or not the run was interrupted (exact on
    # the same machine: checkpoints reset the environments with derived seeds).
    assert a["eval_curve"] == b["eval_curve"]
    assert a["updates"] == b["updates"] == 38
    assert a["final_eval_returns"] == b["final_eval_returns"]
    for key in ("env_steps", "updates", "wall_seconds", "final_eval_return", "best_eval_return"):
        assert key in a
    rows_a, rows_b = read_metrics(full / "metrics.csv"), read_metrics(killed / "metrics.csv")
    assert [r["env_steps"] for r in rows_a] == [r["env_steps"] for r in rows_b]
    assert [r["losses/total"] for r in rows_a] == [r["losses/total"] for r in rows_b]
    # The running returns restart with the envs at each checkpoint, as they do on resume.
    returns_a = [r["charts/episodic_return"] for r in rows_a]
    assert returns_a == [r["charts/episodic_return"] for r in rows_b]
    assert returns_a[2] != ""  # a row after the resume point has finished episodes
    assert {"env_steps", "updates", "wall_seconds", "eval/return_mean", "losses/total"} <= set(
        rows_a[0]
    )
    assert (full / "config.json").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in full.iterdir())

    evaluated = run_cli("eval", str(full), "--episodes", "2", "--video", "--video-format", "gif")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert f"env step 200 ({full / 'checkpoints' / '200'})" in evaluated.stdout
    result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 2 and result["checkpoint_env_steps"] == 200
    gifs = [full / "videos" / "step-200" / f"episode-{k}.gif" for k in range(2)]
    assert result["videos"] == [str(g) for g in gifs]
    # CartPole renders 400x600 frames, one per step plus the reset frame (a GIF merges
    # identical consecutive frames).
    import imageio.v3 as iio

    frames = iio.imread(gifs[0])
    assert frames.shape[1:] == (400, 600, 3) and 2 <= len(frames) <= result["returns"][0] + 1

    again = run_cli("resume", str(full))  # a finished run just reports its summary
    assert again.returncode == 0 and "already finished" in again.stdout


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "nan"
    code = cli.main(
        [
            "train",
            "--preset",
            "debug",
            "--out",
            str(out),
            "--set",
            "optim.optimizer=sgd",
            "--set",
            "optim.learning_rate=1e30",
            "--set",
            "optim.warmup_updates=1",
            "--set",
            "run.checkpoint_every=50",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "NaN/inf" in err and "checkpoint at env step 50 is kept" in err
    assert Checkpointer(out).latest_step() == 50


def make_dict_env(**_):
    """An environment whose observations the networks cannot take."""
    from envs.examples import Corridor

    env = Corridor()
    env.observation_space = gym.spaces.Dict({"x": env.observation_space})
    return env


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "debug", "--env", "CartPoel-v1"], "CartPole-v1"),
        (["train", "--preset", "cartpol"], "Did you mean 'cartpole'"),
        (["train", "--preset", "debug", "--set", "search.num_sim=2"], "search.num_sim"),
        (["train", "--preset", "debug", "--env", "test_e2e:make_dict_env"], "observation space"),
        (["train", "--preset", "debug", "--env", "envs.examples:nothing"], "nothing"),
        (["resume", "/nonexistent/run"], "not a run folder"),
        (["train", "--preset", "debug", "--seed", "-1"], "run.seed=-1 is invalid"),
        (["train", "--preset", "debug", "--set", "run.keep_checkpoints=0"], "keep_checkpoints"),
        (["train", "--preset", "debug", "--set", "optim.learning_rate=-1"], "learning_rate"),
        (["train", "--preset", "debug", "--set", "replay.capacity=2"], "capacity to at least"),
    ],
)
def test_bad_input_gets_one_clear_error(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamer: error:") and message in err
    assert "Traceback" not in err


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"algo": "efficientzero", "config": {"loop": {"warmup_steps": 10}}})
    )
    assert cli.main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and f"`python -m dreamer resume {run}` starts" in err

    ckpt = Checkpointer(run)
    ckpt.save(10, {"learner": {"w": np.ones(3)}}, {"env_steps": 10})
    for f in (run / "checkpoints" / "10" / "learner").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="can be read"):
        Checkpointer(run).restore({"learner": {"w": np.ones(3)}})
