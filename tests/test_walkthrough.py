"""The README walkthrough "Your own environment", run as written on a tiny budget.

The module and the commands are read from README.md, so the test fails when the README and
the code part ways. Only the budget changes: ``--preset cartpole`` becomes ``--preset debug``
(the same loop, seconds long), ``resume --steps`` extends by 100 steps, and the benchmark
gets ``--preset debug --steps 200 --seeds 0``. Commands run in a fresh project folder, as a
user would run them there; ``python`` is this interpreter. A persistent XLA cache lets runs
with the same shapes skip compilation.

Eleven processes, three of them compiling EfficientZero (one with the conv trunk), take a few
minutes on 2 cores: the test is marked slow (``make test-all``). Each item it walks through
has a fast test in the default suite (test_cli, test_envs, test_runlog, test_benchmarks).
"""

import json
import os
import shlex
import subprocess
import sys

import pytest
from conftest import readme_walkthrough

from dreamer.shell import tensorboard_events


def tiny(argv: list[str]) -> list[str]:
    """The same command on a tiny budget (see the module docstring)."""
    argv = [
        "debug" if a == "cartpole" and argv[i - 1] == "--preset" else a for i, a in enumerate(argv)
    ]
    if argv[:4] == ["python", "-m", "dreamer", "resume"]:
        argv[argv.index("--steps") + 1] = "300"
    if argv[:3] == ["python", "-m", "benchmarks.sample_efficiency"]:
        argv += ["--preset", "debug", "--steps", "200", "--seeds", "0"]
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


@pytest.mark.slow
def test_readme_walkthrough_runs_as_written(user_project):
    tmp_path = user_project
    commands = [shlex.split(line) for line in readme_walkthrough()[1]]
    env = dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONPATH="",  # the user's folder is found because commands run in it
    )
    outputs = {}
    for argv in commands:
        proc = subprocess.run(
            tiny(argv), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (
            f"{shlex.join(argv)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
        outputs[shlex.join(argv)] = proc.stdout

    runs = tmp_path / "runs"
    for name in ("grid", "grid_image", "grid4", "grid_named", "grid_gym"):
        assert (runs / name / "summary.json").is_file(), name
    config = json.loads((runs / "grid_named" / "config.json").read_text())["config"]
    assert config["env"]["imports"] == ["my_pkg.my_envs"] and config["env"]["id"] == "grid"
    assert json.loads((runs / "grid4" / "config.json").read_text())["config"]["env"]["options"] == {
        "size": 4
    }
    videos = sorted((runs / "grid" / "videos").rglob("*.mp4"))
    assert [v.name for v in videos] == ["episode-0.mp4"] and videos[0].stat().st_size > 0
    summary = json.loads((runs / "grid" / "summary.json").read_text())
    assert summary["env_steps"] == 300  # extended by `resume --steps`
    steps = [s for tag, s, _ in tensorboard_events.scalars(runs / "grid") if tag == "charts/SPS"]
    assert len(steps) == len(set(steps))  # no step written twice across the resume

    report = tmp_path / "results/sample_efficiency/my_pkg.my_envs-make_grid/report.md"
    text = report.read_text()
    assert text.startswith("# Sample efficiency: my_pkg.my_envs:make_grid")
    assert "my_pkg.my_envs:make_grid 0.9" in text
    for algo in ("efficientzero", "dqn", "ppo"):
        assert f"| {algo} (debug) |" in text
