"""The command line with a user's own environment (the walkthrough's my_pkg), on the seconds-long
``debug`` presets: --import, the console script, package clashes, factory options, videos,
the lines printed at start, show-config --describe, resume --steps, rounded output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dreamer import cli
from dreamer.shell import tensorboard_events
from dreamer.shell.runlog import BASE_COLUMNS, read_metrics

DQN = ["--algo", "dqn", "--preset", "debug"]


def run(argv, cwd, console_script=False, **env):
    """A fresh process, as a user starts it in ``cwd`` (nothing of ours on PYTHONPATH)."""
    head = (
        [str(Path(sys.executable).parent / "dreamer")]
        if console_script
        else [
            sys.executable,
            "-m",
            "dreamer",
        ]
    )
    environ = dict(os.environ, PYTHONPATH="", **env)
    return subprocess.run(
        head + argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300
    )


def test_import_registers_a_name_that_eval_and_resume_find_again(user_project):
    out = user_project / "runs" / "named"
    trained = run(
        ["train", *DQN, "--import", "my_pkg.my_envs", "--env", "grid", "--out", str(out)],
        user_project,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["env"]["imports"] == ["my_pkg.my_envs"]
    # New processes (eval, resume) import the module again from config.json.
    evaluated = run(["eval", str(out), "--episodes", "1"], user_project)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    resumed = run(["resume", str(out), "--steps", "300"], user_project)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 300


def test_console_script_imports_modules_of_the_current_folder(user_project):
    proc = run(
        ["train", *DQN, "--steps", "100", "--env", "my_pkg.my_envs:make_grid", "--out", "run"],
        user_project,
        console_script=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (user_project / "run" / "summary.json").is_file()


def test_missing_module_says_how_to_make_it_importable(tmp_path):
    proc = run(["train", *DQN, "--env", "nowhere_pkg.envs:make", "--out", "run"], tmp_path)
    assert proc.returncode == 2
    assert "No module named 'nowhere_pkg'" in proc.stderr and "PYTHONPATH" in proc.stderr


def test_own_envs_package_shadowing_the_projects_names_the_clash(user_project):
    (user_project / "envs").mkdir()
    (user_project / "envs" / "__init__.py").write_text("")
    (user_project / "envs" / "grid.py").write_text("from my_pkg.my_envs import make_grid\n")
    proc = run(["train", *DQN, "--env", "envs.grid:make_grid", "--out", "run"], user_project)
    assert proc.returncode == 2
    assert "clashes" in proc.stderr and str(user_project / "envs") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_image_env_trains_with_a_one_frame_stack(user_project, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(user_project))
    out = user_project / "img"
    argv = ["train", *DQN, "--env", "my_pkg.my_envs:make_grid_image", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 200


def test_efficientzero_presets_take_single_image_envs(user_project, monkeypatch):
    """[H, W, C] images reach EfficientZero's networks as one-frame stacks [1, H, W, C] and the
    debug preset picks the conv trunk (its small-frame encoder) for them (a full image run is
    in test_walkthrough)."""
    import dataclasses

    import jax

    from dreamer.agents.efficientzero.networks import make_network
    from dreamer.shell.evaluation import make_vector_env
    from experiments.efficientzero import debug

    monkeypatch.syspath_prepend(str(user_project))
    cfg = debug()
    env = dataclasses.replace(cfg.env, id="my_pkg.my_envs:make_grid_image")
    venv = make_vector_env(env, num_envs=2, seed=0, mode="train")
    obs, _ = venv.reset()
    venv.close()
    assert obs.shape == (2, 1, 5, 5, 3)
    net = make_network(cfg.model, obs.shape[1:], 4)
    # Shapes only (traced, not compiled): the test stays fast.
    variables = jax.eval_shape(net.init, jax.random.PRNGKey(0), obs, np.zeros(2, np.int32))
    latent = jax.eval_shape(lambda v: net.apply(v, obs, method="represent"), variables)
    # A 5x5 frame keeps its size in the conv encoder, which ends in a vector latent.
    assert latent.shape == (2, cfg.model.latent_dim)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio reads through ffmpeg
@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_eval_video_and_names_the_checkpoint(algo, user_project, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(user_project))
    out = user_project / algo
    env = ["--env", "my_pkg.my_envs:make_grid", "--set", 'env.options={"size": 3}']
    assert cli.main(["train", "--algo", algo, "--preset", "debug", *env, "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--video", "--episodes", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint of {out}: env step 200 ({out / 'checkpoints' / '200'})" in printed
    result = json.loads(printed.strip().splitlines()[-1])
    videos = [out / "videos" / "step-200" / f"episode-{k}.mp4" for k in range(2)]
    assert result["videos"] == [str(v) for v in videos] and result["episodes"] == 2
    import imageio.v3 as iio

    frames = iio.imread(videos[0], plugin="FFMPEG")
    # 3x3 grid frames, enlarged to 129x129 and padded to even sides; one per step + reset.
    assert frames.shape[1:] == (130, 130, 3) and len(frames) >= 5


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_start_lines_and_metric_names_in_csv_and_tensorboard_across_a_resume(
    algo, tmp_path, capsys
):
    out = tmp_path / algo
    assert cli.main(["train", "--algo", algo, "--preset", "debug", "--out", str(out)]) == 0
    # Before anything compiles: the run folder, the device, the env, then "compiling…".
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"training {algo}" and lines[1].split() == ["run", "folder", str(out)]
    assert lines[2].split()[:2] == ["device", "cpu:cpu"]
    assert lines[3].split()[:2] == ["env", "CartPole-v1"] and lines[4].startswith("compiling…")
    assert cli.main(["resume", str(out), "--steps", "300"]) == 0
    printed = capsys.readouterr().out
    assert "extending" in printed and "run.env_steps=300" in printed
    rows = read_metrics(out / "metrics.csv")
    columns = list(rows[0])
    assert tuple(columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    expected = {"dqn": {"losses/td", "charts/epsilon"}, "ppo": {"losses/value", "losses/clipfrac"}}
    assert {"charts/learning_rate", "charts/grad_norm", *expected[algo]} <= set(columns)
    assert all("/" in c for c in columns[3:])
    assert [int(r["env_steps"]) for r in rows] == [50, 100, 150, 200, 250, 300]
    scalars = tensorboard_events.scalars(out)
    tags = {tag for tag, _, _ in scalars}
    assert tags == {c for c in columns if c != "env_steps" and any(r[c] for r in rows)}
    pairs = [(tag, step) for tag, step, _ in scalars]
    assert len(pairs) == len(set(pairs))  # no step twice after the resume
    episodic = [r for r in rows if r["charts/episodic_length"]]
    assert episodic and all(float(r["charts/episodic_length"]) >= 8 for r in episodic)


def test_show_config_describe_and_the_dqn_key_hint(capsys):
    assert cli.main(["show-config", *DQN, "--describe"]) == 0
    printed = capsys.readouterr().out.splitlines()
    i = printed.index("dqn.target_update_interval = 10")
    assert printed[i + 1].strip().startswith("Copy the online parameters to the target network")
    assert cli.main(["show-config", "--preset", "cartpole", "--describe"]) == 0
    assert "Not used by `cosine`" in capsys.readouterr().out  # optim.decay_updates
    assert cli.main(["train", *DQN, "--set", "dqn.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "show-config --algo dqn --preset debug" in err


def test_invalid_json_override_says_so(capsys):
    argv = ["show-config", *DQN, "--set", 'env.options={"size": 4']
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "invalid JSON" in err and "env.options" in err


def test_summary_and_eval_print_rounded_returns(capsys):
    summary = {
        "env_steps": 5000,
        "updates": 10,
        "wall_seconds": 1.5,
        "final_eval_return": 0.9299999999999999,
        "best_eval_return": 0.9299999999999999,
        "eval_curve": [[5000, 0.9299999999999999]],
    }
    cli._print_summary(Path("runs/x"), summary)
    printed = capsys.readouterr().out
    assert "0.9299999" not in printed and "best 0.93" in printed


def test_seeds_syntax():
    assert cli.parse_seeds("0,1,2") == (0, 1, 2)
    assert cli.parse_seeds("0-3,7") == (0, 1, 2, 3, 7)
    assert cli.parse_seeds("3-5") == (3, 4, 5)
    with pytest.raises(ValueError, match="0,1,2"):
        cli.parse_seeds("0 1 2")
    with pytest.raises(ValueError, match="no seeds"):
        cli.parse_seeds(" , ")
