"""The run folder's files under failure: metrics rewrites, summaries without a final eval."""

import csv

import pytest

from dreamer.runlog import RunLog, read_metrics


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
