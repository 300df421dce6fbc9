import json

from benchmarks import timing


def test_timing_reports_hot_path_costs(tmp_path, capsys):
    assert timing.main(["--preset", "debug", "--updates", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "debug__CartPole-v1.json").read_text())
    assert result["act_seconds"] > 0 and result["update_seconds"] > 0
    assert result["total_updates"] == 37 and result["env_steps"] == 200
    expected = (200 / 2 * result["act_seconds"] + 37 * result["update_seconds"]) / 3600
    assert abs(result["projected_run_hours"] - expected) < 1e-9
    assert "updates/s" in capsys.readouterr().out
