"""A smaller `make atari100k-smoke`: the real Atari benchmark path on CPU (ALE, conv nets)."""

import json

from benchmarks import atari100k
from benchmarks.gpu_check import TINY_MODEL

TINY = [
    "search.num_simulations=2",
    "replay.batch_size=4",
    "replay.capacity=200",
    "replay.reanalyze_simulations=2",
    "replay.unroll_steps=2",
    "replay.td_steps=2",
    "loop.warmup_steps=20",
    "loop.replay_ratio=0.25",
    "loop.extra_updates=0",
    "optim.warmup_updates=2",
    *TINY_MODEL,
    "env.num_eval_envs=1",
    "run.eval_every=0",
    "run.final_eval_episodes=1",
    "run.log_every=20",
    "run.checkpoint_every=30",
    'env.options={"max_episode_frames": 400}',
    "env.vectorization=sync",
]


def test_atari_benchmark_smoke(tmp_path, capsys):
    args = ["--games", "Pong", "--seeds", "0", "--steps", "40", "--out", str(tmp_path)]
    for item in TINY:
        args += ["--set", item]
    assert atari100k.main(args) == 0
    result = json.loads((tmp_path / "results" / "Pong__seed0.json").read_text())
    assert result["env_steps"] == 40 and result["updates"] == 5
    assert len(result["eval_returns"]) == 1
    assert (tmp_path / "runs" / "Pong__seed0" / "checkpoints").is_dir()
    report = (tmp_path / "report.md").read_text()
    assert "Pong" in report
    # A rerun skips the finished run.
    assert atari100k.main(args + ["--no-report"]) == 0
    assert "skipped" in capsys.readouterr().out
