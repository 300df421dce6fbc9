"""The run folder's files under failure: metrics rewrites, summaries, checkpoints."""

import csv
import errno
import os

import numpy as np
import pytest
from etils import epath

from dreamer.shell import runlog
from dreamer.shell.checkpoint import Checkpointer, CheckpointError
from dreamer.shell.runlog import RunLog, read_metrics, summarize


def _log_rows(tmp_path, steps):
    log = RunLog(tmp_path, tensorboard=False)
    for s in steps:
        log.log({"env_steps": s, "updates": s // 10, "wall_seconds": 1.0, "loss": 0.5})
    return log


def _fail_midway(monkeypatch):
    """Make every CSV rewrite die after its header, as a kill or a full disk would."""

    def writerows(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", writerows)


def test_trimming_metrics_on_resume_never_leaves_half_a_file(tmp_path, monkeypatch):
    log = _log_rows(tmp_path, [50, 100, 150])
    before = (tmp_path / "metrics.csv").read_text()
    _fail_midway(monkeypatch)
    with pytest.raises(OSError):
        log.truncate_after(100)
    assert (tmp_path / "metrics.csv").read_text() == before
    monkeypatch.undo()
    log.truncate_after(100)
    assert [r["env_steps"] for r in read_metrics(tmp_path / "metrics.csv")] == ["50", "100"]


def test_widening_metrics_never_leaves_half_a_file(tmp_path, monkeypatch):
    log = _log_rows(tmp_path, [50, 100])
    before = (tmp_path / "metrics.csv").read_text()
    _fail_midway(monkeypatch)
    with pytest.raises(OSError):
        log.log({"env_steps": 150, "updates": 15, "wall_seconds": 1.0, "new_metric": 2.0})
    assert (tmp_path / "metrics.csv").read_text() == before
    monkeypatch.undo()
    log.log({"env_steps": 150, "updates": 15, "wall_seconds": 1.0, "new_metric": 2.0})
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["new_metric"] for r in rows] == ["", "", "2"]


def test_summary_without_a_final_evaluation_has_a_null_return(monkeypatch):
    monkeypatch.setattr(runlog, "device_description", lambda: "cpu")
    summary = summarize(
        algo="dqn",
        env_id="CartPole-v1",
        seed=0,
        env_steps=100,
        updates=5,
        wall_seconds=1.0,
        eval_curve=[(50, 9.0)],
        final_eval_returns=[],
        config={},
    )
    assert summary["final_eval_return"] is None and summary["best_eval_return"] == 9.0


def _corrupt(folder):
    for f in folder.rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "learner" in f.parts:
            f.write_bytes(b"garbage")


def _save(ckpt, step):
    ckpt.save(step, {"learner": {"w": np.full(3, float(step))}}, {"env_steps": step})


def test_an_unreadable_newest_checkpoint_falls_back_and_is_set_aside(tmp_path, capsys):
    ckpt = Checkpointer(tmp_path)
    _save(ckpt, 10)
    _save(ckpt, 20)
    _corrupt(tmp_path / "checkpoints" / "20")
    arrays, meta = Checkpointer(tmp_path).restore({"learner": {"w": np.zeros(3)}}, set_aside=True)
    assert meta["env_steps"] == 10 and arrays["learner"]["w"].tolist() == [10.0] * 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "20 is unreadable" in lines[0] and "env step 10" in lines[0]
    assert (tmp_path / "checkpoints" / "20.corrupt").is_dir()  # kept aside, not deleted
    assert Checkpointer(tmp_path).latest_step() == 10


def test_evaluation_falls_back_without_moving_anything(tmp_path, capsys):
    ckpt = Checkpointer(tmp_path)
    _save(ckpt, 10)
    _save(ckpt, 20)
    _corrupt(tmp_path / "checkpoints" / "20")
    _, meta = Checkpointer(tmp_path).restore({"learner": {"w": np.zeros(3)}})
    assert meta["env_steps"] == 10 and "unreadable" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "20"]


def test_when_no_checkpoint_can_be_read_nothing_is_moved_and_the_error_is_short(tmp_path):
    _save(Checkpointer(tmp_path), 10)
    _corrupt(tmp_path / "checkpoints" / "10")
    with pytest.raises(CheckpointError) as error:
        Checkpointer(tmp_path).restore({"learner": {"w": np.zeros(3)}}, set_aside=True)
    message = str(error.value)
    assert "can be read" in message and "\n" not in message and len(message) < 400
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["10"]


def test_a_failed_save_names_the_path_keeps_the_previous_and_removes_the_partial(
    tmp_path, monkeypatch
):
    ckpt = Checkpointer(tmp_path, writer=True)
    _save(ckpt, 10)

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(epath.Path, "write_text", disk_full)  # how orbax writes its metadata
    with pytest.raises(CheckpointError) as error:
        _save(ckpt, 20)
    monkeypatch.undo()
    message = str(error.value)
    assert str(tmp_path / "checkpoints" / "20") in message
    assert "No space left on device" in message and "env step 10 is kept" in message
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["10"]
    _, meta = Checkpointer(tmp_path).restore({"learner": {"w": np.zeros(3)}})
    assert meta["env_steps"] == 10


def test_saving_a_step_that_exists_keeps_it(tmp_path):
    ckpt = Checkpointer(tmp_path)
    _save(ckpt, 10)
    ckpt.save(10, {"learner": {"w": np.zeros(3)}}, {"env_steps": -1})
    arrays, meta = ckpt.restore({"learner": {"w": np.zeros(3)}})
    assert meta["env_steps"] == 10 and arrays["learner"]["w"].tolist() == [10.0] * 3


def test_carrying_checkpoints_tracks_the_newest_of_each_unfinished_run_only(tmp_path):
    """`tools.carry_checkpoints` stages the newest checkpoint of a run without summary.json and
    untracks what an earlier carry staged for a run that has since finished."""
    import subprocess

    from tools.carry_checkpoints import carry

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("results/**/checkpoints/\n")
    running, finished = tmp_path / "results" / "running", tmp_path / "results" / "finished"
    for run in (running, finished):
        run.mkdir(parents=True)
        (run / "config.json").write_text("{}")
        ckpt = Checkpointer(run)
        for step in (10, 20):
            _save(ckpt, step)
        ckpt.close()
    assert carry(tmp_path / "results", repo=tmp_path, max_mb=100, dry_run=False) == 0
    staged = git("ls-files", "results")
    assert "results/running/checkpoints/20/" in staged
    assert "results/finished/checkpoints/20/" in staged
    assert "checkpoints/10/" not in staged

    (finished / "summary.json").write_text("{}")
    assert carry(tmp_path / "results", repo=tmp_path, max_mb=100, dry_run=False) == 0
    staged = git("ls-files", "results")
    assert "results/running/checkpoints/20/" in staged
    assert "results/finished/checkpoints" not in staged
    assert (finished / "checkpoints" / "20").is_dir()  # untracked, not deleted

    assert carry(tmp_path / "results", repo=tmp_path, max_mb=0.0001, dry_run=False) == 1
