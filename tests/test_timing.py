import json

import pytest

from benchmarks import timing


def test_timing_measures_the_real_loop_and_projects_a_run(tmp_path, capsys):
    assert timing.main(["--preset", "debug", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "debug__CartPole-v1.json").read_text())
    assert result["env_steps"] == 200 and result["updates"] == 38
    phases = result["seconds_by_phase"]
    assert set(phases) == {"act", "env", "add", "learn", "refresh", "eval", "save", "host"}
    assert phases["act"] > 0 and phases["learn"] > 0 and phases["eval"] > 0
    assert result["counts"]["iterations"] == 100 and result["counts"]["saves"] == 1
    assert sum(phases.values()) == pytest.approx(result["loop_seconds"], rel=0.05)
    costs, counts = result["unit_costs"], result["full_run"]["counts"]
    assert counts["updates"] == 38 and counts["iterations"] == 100
    expected = timing.project(costs, counts) + result["compile_seconds"]
    assert abs(result["full_run"]["projected_seconds"] - expected) < 1e-6
    assert "env steps/s with updates" in capsys.readouterr().out


def test_full_run_counts_refreshes_the_filled_replay_each_period():
    from experiments.efficientzero import atari100k

    cfg = atari100k()
    counts = timing.full_run_counts(cfg, eval_steps_per_round=100, chunk_states=4096)
    assert counts["updates"] == 120_000 and counts["iterations"] == 25_000
    assert counts["eval_steps"] == 1_000  # rounds at 10k, 20k, ..., 100k
    assert counts["saves"] == 10
    # 600 refreshes; the later ones cover the whole 100k replay (25 chunks of 4096)
    assert 600 * 50_000 < counts["refreshed_states"] <= 600 * 25 * 4096
