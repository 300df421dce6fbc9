"""The run folder's files under failure: metrics rewrites, summaries, checkpoints."""

import csv

import pytest

from dreamer import runlog
from dreamer.runlog import RunLog, read_metrics, summarize


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
