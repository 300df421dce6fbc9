"""Nothing lost under signals, concurrent runs, full disks and bad settings (issue 10).

Real runs of the CLI on tiny budgets: DQN takes a few seconds a run, so the process-level
cases (signals, the run-folder lock, a full disk, kill and resume) use it; the RunBook they
exercise is the one every loop shares. EfficientZero runs only where its loop itself changed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from dreamer import cli
from dreamer.checkpoint import Checkpointer
from dreamer.runlog import read_metrics

ROOT = Path(__file__).resolve().parents[1]

# A DQN run of 400 env steps: rows every 100, checkpoints at 200 and 400, evals at 200, 400.
TINY_DQN = ["--algo", "dqn", "--preset", "cartpole", "--steps", "400"]
for _item in (
    "env.num_envs=2",
    "env.num_eval_envs=2",
    "run.eval_every=200",
    "run.eval_episodes=2",
    "run.final_eval_episodes=2",
    "run.log_every=100",
    "run.checkpoint_every=200",
    "run.progress=false",
    "network.hidden=[16]",
    "dqn.batch_size=16",
    "dqn.buffer_size=1000",
    "dqn.learning_starts=100",
    "dqn.train_freq=4",
    "dqn.gradient_steps=1",
    "dqn.target_update_interval=50",
    "dqn.epsilon_decay_steps=200",
):
    TINY_DQN += ["--set", _item]


def run_python(*argv, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_final_eval_episodes_zero_means_no_final_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TINY_DQN, "--set", "run.final_eval_episodes=0", "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_eval_return"] is None and summary["final_eval_returns"] == []
    assert [s for s, _ in summary["eval_curve"]] == [200]  # the periodic one only
    assert read_metrics(out / "metrics.csv")[-1]["eval_return_mean"] == ""
    assert "final eval return none (run.final_eval_episodes=0)" in capsys.readouterr().out
    assert cli.main(["resume", str(out)]) == 0  # a finished run reports its summary
    assert "already finished" in capsys.readouterr().out
    assert Checkpointer(out).latest_step() == 400
