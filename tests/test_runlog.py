"""Run-folder logging: metric names, CSV columns, TensorBoard events across a resume."""

import pytest

from dreamer.shell import tensorboard_events
from dreamer.shell.runbook import metric_name
from dreamer.shell.runlog import BASE_COLUMNS, RunLog, read_metrics


def row(step, **metrics):
    return {"env_steps": step, "updates": step // 2, "wall_seconds": step / 10, **metrics}


def test_csv_and_tensorboard_hold_the_same_names_and_values(tmp_path):
    log = RunLog(tmp_path)
    log.log(row(10, **{"charts/SPS": 5.0, "losses/td": 0.5}))
    log.log(row(20, **{"charts/SPS": 6.0, "losses/td": 0.25, "eval/return_mean": 1.5}))
    log.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert list(rows[0])[:3] == ["env_steps", "updates", "wall_seconds"]
    assert list(rows[0])[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert sorted(tensorboard_events.scalars(tmp_path)) == sorted(
        [
            (k, int(r["env_steps"]), float(r[k]))
            for r in rows
            for k in r
            if k != "env_steps" and r[k]
        ]
    )


def test_resume_drops_events_after_the_checkpoint_and_appends_to_one_file(tmp_path):
    log = RunLog(tmp_path)
    for step in (10, 20, 30):
        log.log(row(step, **{"losses/td": step / 100}))
    log.close()
    path = tensorboard_events.event_files(tmp_path)[0]
    path.write_bytes(path.read_bytes() + b"\x20\x00\x00")  # a record cut short by kill -9

    resumed = RunLog(tmp_path)
    resumed.truncate_after(20)  # the checkpoint is at 20; 30 is logged again
    resumed.log(row(30, **{"losses/td": 0.35}))
    resumed.close()
    assert tensorboard_events.event_files(tmp_path) == [path]
    td = [(s, v) for tag, s, v in tensorboard_events.scalars(tmp_path) if tag == "losses/td"]
    assert td == [(10, pytest.approx(0.1)), (20, pytest.approx(0.2)), (30, pytest.approx(0.35))]
    assert [r["env_steps"] for r in read_metrics(tmp_path / "metrics.csv")] == ["10", "20", "30"]


@pytest.mark.parametrize(
    "key, name",
    [
        ("losses/value", "losses/value"),  # names with a "/" are kept
        ("charts/epsilon", "charts/epsilon"),
        ("grad_norm", "charts/grad_norm"),  # bare names become charts
        ("learning_rate", "charts/learning_rate"),
    ],
)
def test_metric_names(key, name):
    assert metric_name(key) == name
