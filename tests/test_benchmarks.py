"""Tests of ``benchmarks``: statistics, published aggregates, the runners and the reports.

Training runs are replaced by ``FakeCli``, a test double that writes run folders in the
contract's format, so no test starts ``python -m dreamer``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from benchmarks import (
    aggregate,
    atari100k,
    curves,
    efficiency_report,
    machine,
    published,
    runs,
    sample_efficiency,
    scores,
    stats,
    suites,
)

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
FAKE_MACHINE = {"platform": "test", "processor": "x", "cpu_count": 2, "python": "3"}

# ------------------------------------------------------------------------------------------
# stats


def test_human_normalized_hand_cases():
    np.testing.assert_allclose(stats.human_normalized(60.0, 10.0, 110.0), 0.5)
    np.testing.assert_allclose(
        stats.human_normalized([10.0, 110.0, 0.0], 10.0, 110.0), [0.0, 1.0, -0.1]
    )


def test_aggregates_hand_case():
    scores = np.array([[1.0, 2.0, 10.0], [3.0, 2.0, 0.0]])  # [2 runs, 3 games]: means 2, 2, 5
    assert stats.AGGREGATES["mean"](scores) == pytest.approx(3.0)
    assert stats.AGGREGATES["median"](scores) == pytest.approx(2.0)
    assert stats.AGGREGATES["iqm"](scores) == pytest.approx(2.0)  # [0,1,2,2,3,10] -> 1,2,2,3
    assert stats.iqm_per_game(scores) == pytest.approx(3.0)  # 3 means: nothing trimmed
    # min(score, 1): 1, 1, 1, 1, 1, 0 -> 1 - 5/6
    assert stats.AGGREGATES["optimality_gap"](scores) == pytest.approx(1 / 6)


def _synthetic_scores(seeds: int, games: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.arange(games) / games + rng.normal(0.0, 0.5, size=(seeds, games))


def test_stratified_bootstrap_contains_point_and_is_deterministic():
    data = _synthetic_scores(seeds=5)
    a = stats.aggregate_intervals(data, reps=300, seed=3)
    b = stats.aggregate_intervals(data, reps=300, seed=3)
    assert a == b and list(a) == list(stats.AGGREGATES)
    for interval in a.values():
        assert interval.low <= interval.point <= interval.high
        assert interval.low < interval.high


def test_stratified_bootstrap_narrows_with_more_seeds():
    widths = []
    for seeds in (3, 10, 100):
        [interval] = stats.aggregate_intervals(
            _synthetic_scores(seeds), names=("mean",), reps=300
        ).values()
        widths.append(interval.high - interval.low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.5 * widths[0]


def test_stratified_bootstrap_resamples_within_games():
    # One seed per game: every replicate is the data itself, so the interval is a point.
    data = np.array([[0.1, 0.5, 2.0, 3.0]])
    [interval] = stats.aggregate_intervals(data, names=("iqm",), reps=200).values()
    assert interval.low == interval.point == interval.high == pytest.approx(1.25)


def test_bootstrap_mean_curve():
    values = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [1.0, 2.0, 6.0]])
    mean, low, high = stats.bootstrap_mean_curve(values, reps=400, seed=1)
    np.testing.assert_allclose(mean, [1.0, 2.0, 4.0])
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(low < high)
    again = stats.bootstrap_mean_curve(values, reps=400, seed=1)
    np.testing.assert_array_equal(again[1], low)
    one = stats.bootstrap_mean_curve(values[:1], reps=50)
    np.testing.assert_array_equal(one[1], values[0])
    np.testing.assert_array_equal(one[2], values[0])


# ------------------------------------------------------------------------------------------
# published reference data and the scores CLI

SOURCES_TABLE = {  # reference/SOURCES.md, "Aggregates (computed from the CSV)"
    "efficientzero": (26, 1.943, 1.090, 1.047, 14),
    "bbf": (26, 2.247, 0.917, 1.139, 12),
    "spr": (26, 0.616, 0.396, 0.415, 6),
    "der": (26, 0.285, 0.161, 0.142, 2),
    "dreamerv3": (26, 1.130, 0.560, 0.599, 9),
    "muzero": (26, 0.562, 0.227, 0.288, 5),
}


@pytest.mark.parametrize("method", sorted(SOURCES_TABLE))
def test_published_aggregates_reproduce_sources(method):
    agg = scores.published_aggregates(method)
    got = (agg["games"], agg["mean"], agg["median"], agg["iqm"], agg["superhuman"])
    n, mean, median, iqm, superhuman = SOURCES_TABLE[method]
    assert got[0] == n and got[4] == superhuman
    np.testing.assert_allclose(got[1:4], (mean, median, iqm), atol=5e-4)


def test_published_optimality_gap_from_the_csv():
    """1 - mean(min(HNS, 1)) over the 26 games, from the CSV with the csv module alone."""
    with open(published.SCORES_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    for method in ("efficientzero", "der"):
        hns = [
            (float(r[method]) - float(r["random"])) / (float(r["human"]) - float(r["random"]))
            for r in rows
        ]
        expected = 1.0 - sum(min(h, 1.0) for h in hns) / len(hns)
        assert scores.published_aggregates(method)["optimality_gap"] == pytest.approx(expected)


def test_empty_published_column_is_explained():
    agg = scores.published_aggregates("efficient_zero_v2")
    assert agg["games"] == 0 and agg["mean"] is None
    assert "empty" in agg["note"]


def test_scores_cli_json(capsys):
    assert scores.main(["--published", "efficientzero", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["efficientzero"]
    assert out["efficientzero"]["games"] == 26
    assert round(out["efficientzero"]["mean"], 3) == 1.943
    assert round(out["efficientzero"]["median"], 3) == 1.090
    assert round(out["efficientzero"]["iqm"], 3) == 1.047


def test_scores_module_entry_point_all():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scores", "--published", "all"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert "bbf" in done.stdout and "2.247" in done.stdout
    assert "efficient_zero_v2" in done.stdout and "no published values" in done.stdout


ENTRY_POINTS = ("atari100k", "aggregate", "sample_efficiency", "ablation", "seed_batch")


def test_module_entry_points_parse_arguments():
    """``python -m benchmarks.<module> --help`` for each, in one interpreter (as ``-m`` runs
    them: ``runpy`` with ``__name__ == "__main__"``)."""
    code = (
        "import runpy, sys\n"
        f"for name in {ENTRY_POINTS!r}:\n"
        "    sys.argv = ['-m', '--help']\n"
        "    try:\n"
        "        runpy.run_module(f'benchmarks.{name}', run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, (name, stop.code)\n"
        "    print(f'=== {name} done', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    for module in ENTRY_POINTS:
        assert f"usage: python -m benchmarks.{module}" in done.stdout
        assert f"=== {module} done" in done.stdout


def test_reference_is_packaged_and_games_map_to_ale_ids():
    assert published.SCORES_CSV.parent == REPO / "benchmarks" / "reference"
    assert (REPO / "benchmarks" / "reference" / "SOURCES.md").is_file()
    table = published.load_reference()
    assert len(table.games) == 26 and np.isnan(table.methods["efficient_zero_v2"]).all()
    assert published.ale_id("KungFuMaster") == "ALE/KungFuMaster-v5"
    assert published.ale_id("upndown") == "ALE/UpNDown-v5"
    assert published.game_from_ale_id("ALE/Jamesbond-v5") == "Jamesbond"
    assert published.parse_games("pong, ALE/MsPacman-v5") == ("MsPacman", "Pong")
    with pytest.raises(ValueError, match="unknown Atari 100k game"):
        published.canonical_game("Tetris")


def test_ale_ids_are_registered():
    gymnasium = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gymnasium.register_envs(ale_py)
    missing = [g for g in published.GAMES if published.ale_id(g) not in gymnasium.envs.registry]
    assert missing == []


# ------------------------------------------------------------------------------------------
# A test double of the CLI: writes run folders in the contract's format.


def write_run(run_dir: Path, *, algo, env_id, seed, steps, curve, final_returns, finish=True):
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"env": {"id": env_id}, "run": {"seed": seed, "env_steps": steps}}
    (run_dir / "config.json").write_text(json.dumps({"algo": algo, "config": config}))
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["env_steps", "updates", "wall_seconds", "eval/return_mean", "losses/total"]
        )
        for s, r in curve:
            writer.writerow([s - 250, s // 2 - 125, s / 100, "", 0.5])  # a row without eval
            writer.writerow([s, s // 2, s / 100, r, 0.4])
    if finish:
        summary = {
            "algo": algo,
            "env_id": env_id,
            "seed": seed,
            "env_steps": steps,
            "updates": steps // 2,
            "wall_seconds": steps / 100,
            "final_eval_return": float(np.mean(final_returns)),
            "best_eval_return": max(r for _, r in curve),
            "eval_curve": [list(p) for p in curve],
            "final_eval_returns": list(final_returns),
            "versions": {"jax": "0.0-test"},
            "device": "cpu:test",
            "config": config,
        }
        (run_dir / "summary.json").write_text(json.dumps(summary))


class FakeCli:
    """Stands in for ``runs.launch``: records calls and writes the run folders they ask for
    (one per seed with ``--seeds``, a group folder as ``train --seeds`` writes it)."""

    def __init__(self, final_return):
        self.calls: list[list[str]] = []
        self.final_return = final_return  # (env_id, algo, seed) -> return

    def __call__(self, args, **options):
        self.calls.append(list(args))
        if args[0] == "resume":
            folder = Path(args[1])
            if (folder / "group.json").exists():
                for k in json.loads((folder / "group.json").read_text())["seeds"]:
                    if not (folder / f"seed{k}" / "summary.json").exists():
                        self.finish(folder / f"seed{k}")
            else:
                self.finish(folder)
            return 0
        opts = dict(zip(args[1::2], args[2::2], strict=False))
        out, env_id, algo, steps = (
            Path(opts["--out"]),
            opts["--env"],
            opts["--algo"],
            opts["--steps"],
        )
        if "--seeds" not in opts:
            self.write(out, env_id, algo, int(opts["--seed"]), int(steps))
            return 0
        seeds = [int(k) for k in opts["--seeds"].split(",")]
        out.mkdir(parents=True, exist_ok=True)
        group = {"algo": algo, "seeds": seeds, "fused": True}
        (out / "group.json").write_text(json.dumps(group))
        for k in seeds:
            self.write(out / f"seed{k}", env_id, algo, k, int(steps))
        return 0

    def finish(self, run_dir: Path) -> None:
        """Finishes the interrupted run in ``run_dir`` with its config's env, seed, budget."""
        meta = json.loads((run_dir / "config.json").read_text())
        config = meta["config"]
        env_id = config["env"]["id"]
        self.write(run_dir, env_id, meta["algo"], config["run"]["seed"], config["run"]["env_steps"])

    def write(self, run_dir: Path, env_id: str, algo: str, seed: int, steps: int) -> None:
        final = self.final_return(env_id, algo, seed)
        curve = [(s, final * s / steps) for s in range(500, steps + 1, 500)]
        write_run(
            run_dir,
            algo=algo,
            env_id=env_id,
            seed=seed,
            steps=steps,
            curve=curve,
            final_returns=[final - 1.0, final + 1.0],
        )


def ez_fraction(env_id, algo, seed):
    """Final return: a fraction of EfficientZero's published score, by seed."""
    table = published.load_reference()
    i = table.index(published.game_from_ale_id(env_id))
    return float(table.methods["efficientzero"][i]) * (0.5 + 0.25 * seed)


# ------------------------------------------------------------------------------------------
# Atari 100k runner and aggregator


def test_runner_skips_finished_and_resumes_interrupted(tmp_path, monkeypatch):
    fake = FakeCli(ez_fraction)
    monkeypatch.setattr(runs, "launch", fake)
    out = tmp_path / "atari"
    finished_curve = [(500, 1.0), (1000, 2.0)]
    write_run(
        out / "runs" / "Pong__seed0",
        algo="efficientzero",
        env_id="ALE/Pong-v5",
        seed=0,
        steps=1000,
        curve=finished_curve,
        final_returns=[2.0],
    )
    write_run(
        out / "runs" / "Boxing__seed0",
        algo="efficientzero",
        env_id="ALE/Boxing-v5",
        seed=0,
        steps=1000,
        curve=[(500, 1.0)],
        final_returns=[1.0],
        finish=False,
    )

    outcomes = atari100k.run_benchmark(
        games=("Boxing", "Breakout", "Pong"),
        seeds=(0,),
        steps=1000,
        preset="atari100k",
        out=out,
        overrides=("search.num_simulations=4",),
    )

    assert [o.action for o in outcomes] == ["resumed", "trained", "skipped"]
    assert all(o.finished for o in outcomes)
    assert fake.calls[0] == ["resume", str(out / "runs" / "Boxing__seed0")]
    assert fake.calls[1] == [
        "train", "--algo", "efficientzero", "--preset", "atari100k", "--env", "ALE/Breakout-v5",
        "--seed", "0", "--steps", "1000", "--out", str(out / "runs" / "Breakout__seed0"),
        "--set", "search.num_simulations=4",
    ]  # fmt: skip
    assert len(fake.calls) == 2
    pong = json.loads((out / "results" / "Pong__seed0.json").read_text())
    assert pong["game"] == "Pong" and pong["seed"] == 0 and pong["eval_returns"] == [2.0]
    assert pong["final_eval_return"] == 2.0 and pong["env_steps"] == 1000
    assert pong["steps_per_second"] == pytest.approx(100.0)
    assert pong["hns"] == pytest.approx((2.0 + 20.7) / (14.6 + 20.7))
    for key in ("config", "versions", "device", "wall_seconds", "updates", "ale_id"):
        assert key in pong
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        "Boxing__seed0.json",
        "Breakout__seed0.json",
        "Pong__seed0.json",
    ]


def test_runner_main_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "launch", lambda args, **_: 3)  # a CLI that fails at once
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    code = atari100k.main(["--games", "Pong", "--seeds", "0", "--out", str(tmp_path)])
    assert code == 1
    assert "FAILED" in capsys.readouterr().out


def test_aggregate_partial_results_report_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "launch", FakeCli(ez_fraction))
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    root = tmp_path / "atari"
    code = atari100k.main(
        [
            "--games",
            "Pong,Breakout,Qbert",
            "--seeds",
            "0,1",
            "--steps",
            "1000",
            "--out",
            str(root),
            "--no-report",
        ]
    )
    assert code == 0
    # A finished run folder without a result JSON is picked up as well.
    write_run(
        root / "runs" / "Alien__seed0",
        algo="efficientzero",
        env_id="ALE/Alien-v5",
        seed=0,
        steps=1000,
        curve=[(500, 300.0), (1000, 400.0)],
        final_returns=[400.0],
    )

    assert aggregate.main([str(root), "--reps", "200"]) == 0
    assert "Partial results: 4 of 26 games" in capsys.readouterr().out
    report = (root / "report.md").read_text()
    assert "Partial results: 4 of 26 games" in report and "| Qbert | 2 |" in report
    for name in ("per_game_hns.png", "aggregates.png", "performance_profile.png"):
        assert (root / name).stat().st_size > 1000
    assert (root / "learning_curves.png").stat().st_size > 1000
    summary = json.loads((root / "aggregate.json").read_text())
    assert summary["games"] == ["Alien", "Breakout", "Pong", "Qbert"]
    assert summary["num_runs"] == 7
    table = published.load_reference()
    i = table.index("Pong")
    ez_pong = table.methods["efficientzero"][i]
    pong = next(r for r in summary["per_game"] if r["game"] == "Pong")
    expected = np.mean(
        [stats.human_normalized(ez_pong * f, table.random[i], table.human[i]) for f in (0.5, 0.75)]
    )
    assert pong["hns"] == pytest.approx(expected)
    ours = summary["ours"]["mean"]
    assert ours["low"] <= ours["point"] <= ours["high"]
    # Alien has one seed, the others two: the aggregates use every game's first seed, at
    # half of EfficientZero's published score (seed 0), so each game's seed loses to it.
    assert summary["seeds_in_aggregates"] == 1 and "first 1 (rliable needs" in report
    hns = np.array([r["hns"] for r in summary["per_game"]])
    assert summary["ours"]["optimality_gap"]["point"] > 0
    poi = summary["probability_of_improvement"]
    assert poi["against"] == "efficientzero" and poi["point"] == pytest.approx(0.0)
    assert "Probability of improvement over efficientzero" in report
    assert np.all(np.isfinite(hns))
    assert summary["published_same_games"]["efficientzero"]["games"] == 4
    assert summary["published_all_games"]["efficientzero"]["mean"] == pytest.approx(1.943, abs=5e-4)


# ------------------------------------------------------------------------------------------
# Sample efficiency


def test_threshold_logic_on_hand_made_curves():
    steps = np.array([500, 1000, 1500, 2000, 2500, 3000])
    dips = np.array([100, 480, 300, 490, 500, 476])
    assert curves.first_reach(steps, dips, 475) == 1000
    assert curves.stays_above_from(steps, dips, 475) == 2000
    ends_low = np.array([480, 500, 500, 500, 500, 400])
    assert curves.first_reach(steps, ends_low, 475) == 500
    assert curves.stays_above_from(steps, ends_low, 475) is None
    never = np.full(6, 100.0)
    assert curves.first_reach(steps, never, 475) is None
    assert curves.stays_above_from(steps, never, 475) is None
    always = np.full(6, 500.0)
    assert curves.stays_above_from(steps, always, 475) == 500
    assert curves.first_reach(steps, np.array([0, 0, 475, 0, 0, 0]), 475) == 1500  # at = reached
    assert curves.value_at(steps, dips, 1700) == 300 and curves.value_at(steps, dips, 10) is None


def test_align_curves_on_common_range():
    a = (np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0]))
    b = (np.array([5.0, 15.0, 30.0]), np.array([1.0, 1.0, 1.0]))
    grid, values = curves.align_curves([a, b])
    np.testing.assert_array_equal(grid, [5.0, 10.0, 15.0, 20.0])
    np.testing.assert_allclose(values, [[5.0, 10.0, 15.0, 20.0], [1.0, 1.0, 1.0, 1.0]])
    same, vals = curves.align_curves([a, a])
    np.testing.assert_array_equal(same, a[0])
    np.testing.assert_array_equal(vals[1], a[1])


def test_customize_suite_and_per_algo_overrides():
    suite = suites.customize(
        suites.SUITES["cartpole"],
        steps=[1000],
        seeds=[0, 1],
        algos=["dqn", "ppo"],
        overrides=["dqn:optim.lr=0.1", "run.log_every=100", "efficientzero:search.x=1"],
    )
    assert suite.budgets == (1000,) and suite.seeds == (0, 1)
    assert [a.algo for a in suite.algos] == ["dqn", "ppo"]
    assert suite.algos[0].overrides == ("optim.lr=0.1",) and suite.algos[1].overrides == ()
    assert suite.overrides[-1] == "run.log_every=100"
    again = suites.customize(suites.SUITES["cartpole"], overrides=["run.eval_every=100"])
    assert again.overrides == (
        "run.eval_episodes=8",
        "run.final_eval_episodes=8",
        "run.eval_every=100",
    )
    assert len(suites.suite_runs(suite)) == 4
    assert suites.suite_runs(suite)[0].name == "gymnax-CartPole-v1__dqn__1000__seed0"
    with pytest.raises(ValueError, match="unknown algos"):
        suites.customize(suites.SUITES["cartpole"], algos=["sac"])


def test_sample_efficiency_suite_end_to_end(tmp_path, monkeypatch, capsys):
    """The cartpole suite (`make run`): EfficientZero's seeds in one group call, the
    baselines one call per seed; the report's table, verdict and figure."""
    returns = {"efficientzero": 500.0, "dqn": 300.0, "ppo": 200.0}
    fake = FakeCli(lambda env_id, algo, seed: returns[algo] + 10 * seed)
    monkeypatch.setattr(runs, "launch", fake)
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    out = tmp_path / "se"
    argv = ["--suite", "cartpole", "--steps", "2000", "--out", str(out)]
    argv += ["--set", "ppo:ppo.lr=0.1", "--reps", "200"]

    assert sample_efficiency.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Machine: test" in printed and str(out / "report.md") in printed
    assert "(seeds 0,1,2 in one process)" in printed
    group = out / "runs" / "gymnax-CartPole-v1__efficientzero__2000"
    assert fake.calls[0][:8] == [
        "train", "--algo", "efficientzero", "--preset", "cartpole", "--env",
        "gymnax:CartPole-v1", "--seeds",
    ]  # fmt: skip
    assert fake.calls[0][8:12] == ["0,1,2", "--steps", "2000", "--out"]
    assert fake.calls[0][12] == str(group)
    assert len(fake.calls) == 7  # one group, then dqn and ppo per seed
    assert [c[2] for c in fake.calls[1:3]] == ["dqn", "ppo"]
    ppo_calls = [c for c in fake.calls if c[2] == "ppo"]
    assert all("ppo.lr=0.1" in c for c in ppo_calls)
    assert not any("ppo.lr=0.1" in c for c in fake.calls if c[2] != "ppo")
    assert all("run.eval_every=500" in c for c in fake.calls)
    assert sorted(p.name for p in group.iterdir()) == ["group.json", "seed0", "seed1", "seed2"]

    summary = json.loads((out / "summary.json").read_text())
    rows = {r["algo"]: r for r in summary["rows"]}
    ez = rows["efficientzero"]
    assert ez["seeds"] == 3 and ez["final_return"]["point"] == pytest.approx(510.0)
    assert ez["final_return"]["low"] < 510.0 < ez["final_return"]["high"]  # an interval
    # Curves rise linearly to the final return: 500 * s / 2000 >= 475 first at s = 2000.
    assert ez["first_reach"]["median"] == 2000 and ez["first_reach"]["reached"] == 3
    assert ez["stays_above_from"]["per_seed"] == [2000, 2000, 2000]
    assert rows["dqn"]["first_reach"]["median"] is None
    assert ez["eval_steps"] == [500, 1000, 1500, 2000]
    assert (out / "curves__gymnax-CartPole-v1__2000.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "never (0/3)" in report and "seeds: 0, 1, 2 (3 per algorithm and env)" in report
    assert "- runs trained on: cpu:test (9 runs)" in report
    assert "| CartPole-v1 | efficientzero (cartpole) | 2000 | 3 | 510.0 [" in report
    assert "- **CartPole-v1, 2000 steps**: EfficientZero is **better than dqn** (mean " in report
    assert "![curves__gymnax-CartPole-v1__2000](curves__gymnax-CartPole-v1__2000.png)" in report
    (verdict,) = summary["verdicts"]
    assert (verdict["baseline"], verdict["verdict"]) == ("dqn", "better")
    assert verdict["difference"]["point"] == pytest.approx(200.0)
    record = json.loads((out / "results" / "gymnax-CartPole-v1__dqn__2000__seed1.json").read_text())
    assert record["final_eval_return"] == 310.0 and record["first_reach"] is None
    ez_record = json.loads(
        (out / "results" / "gymnax-CartPole-v1__efficientzero__2000__seed2.json").read_text()
    )
    assert ez_record["run_dir"] == str(group / "seed2") and ez_record["seed"] == 2

    fake.calls.clear()  # a second invocation finds every run finished
    assert sample_efficiency.main(argv) == 0
    assert fake.calls == []


def test_an_interrupted_group_is_resumed_and_missing_seeds_trained_together(tmp_path, monkeypatch):
    fake = FakeCli(lambda env_id, algo, seed: 100.0)
    monkeypatch.setattr(runs, "launch", fake)
    monkeypatch.setattr(  # a test checkpoint: the folder exists
        runs, "latest_checkpoint", lambda d: 1000 if (Path(d) / "checkpoints").is_dir() else None
    )
    group = tmp_path / "group"
    kwargs = dict(algo="efficientzero", env_id="gymnax:CartPole-v1", steps=2000, curve=[(500, 1.0)])
    for k in (0, 1):  # a group of seeds 0 and 1, stopped after a checkpoint
        write_run(group / f"seed{k}", seed=k, final_returns=[1.0], finish=False, **kwargs)
        (group / f"seed{k}" / "checkpoints").mkdir()
    (group / "group.json").write_text(json.dumps({"algo": "efficientzero", "seeds": [0, 1]}))
    # seed 3 stopped before its first checkpoint; seed 2 never started
    write_run(group / "seed3", seed=3, final_returns=[1.0], finish=False, **kwargs)

    def train(seeds):
        return runs.train_args(
            algo="efficientzero", preset="cartpole", env_id="gymnax:CartPole-v1",
            seed=list(seeds), steps=2000, out=group,
        )  # fmt: skip

    outcome = runs.ensure_group(group, [0, 1, 2, 3], train)
    assert fake.calls[0] == ["resume", str(group)]
    assert fake.calls[1][:10] == [
        "train", "--algo", "efficientzero", "--preset", "cartpole", "--env",
        "gymnax:CartPole-v1", "--seeds", "2,3", "--steps",
    ]  # fmt: skip
    assert len(fake.calls) == 2 and outcome.finished and outcome.action == "resumed, trained"
    assert runs.group_state(group, [0, 1, 2, 3]) == dict.fromkeys(range(4), runs.RunState.FINISHED)
    fake.calls.clear()
    assert runs.ensure_group(group, [0, 1, 2, 3], train).action == "skipped"
    assert fake.calls == []


def fake_record(env_id, algo, seed, final):
    return {"env": env_id, "budget": 1000, "algo_name": algo, "seed": seed,
            "final_eval_return": final}  # fmt: skip


@pytest.mark.parametrize(
    "ez, dqn, ppo, baseline, verdict",
    [
        ([480, 490, 500], [100, 120, 140], [300, 310, 320], "ppo", "better"),
        ([100, 110, 120], [100, 120, 140], [300, 310, 320], "ppo", "worse"),
        ([200, 300, 400], [100, 120, 140], [250, 300, 350], "ppo", "not distinguishable"),
        ([480, 490], [100, 120], [300, 310], "ppo", "too few seeds"),
        ([480, 490, 500], [100, 120, 140], [], "dqn", "better"),  # PPO did not finish
        ([], [100, 120, 140], [300, 310, 320], None, None),
    ],
)
def test_verdict_per_env_against_the_best_baseline(ez, dqn, ppo, baseline, verdict):
    suite = suites.customize(
        suites.SUITES["cartpole"], envs=["my_env:make"], steps=[1000], seeds=[0, 1, 2]
    )
    records = [
        fake_record("my_env:make", algo, k, float(v))
        for algo, values in (("efficientzero", ez), ("dqn", dqn), ("ppo", ppo))
        for k, v in enumerate(values)
    ]
    (judged,) = efficiency_report.verdicts(suite, records, reps=2000)
    assert (judged["baseline"], judged["verdict"]) == (baseline, verdict)
    if verdict is None:
        expected = "**my_env:make, 1000 steps**: no verdict (no finished run of EfficientZero)."
        assert judged["text"] == expected
        return
    words = {"better": "better than", "worse": "worse than", "not distinguishable": "not "
             "distinguishable from", "too few seeds": "not comparable with"}[verdict]  # fmt: skip
    assert f"EfficientZero is **{words} {baseline}" in judged["text"]
    d = judged["difference"]
    assert d["point"] == pytest.approx(np.mean(ez) - np.mean(dqn if baseline == "dqn" else ppo))


def test_report_has_a_figure_and_a_verdict_per_env(tmp_path, monkeypatch, capsys):
    fake = FakeCli(lambda env_id, algo, seed: {"dqn": 0.5, "ppo": 0.6}.get(algo, 0.9) + seed / 100)
    monkeypatch.setattr(runs, "launch", fake)
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    out = tmp_path / "two"
    argv = ["--suite", "classic", "--envs", "CartPole-v1,envs.grids:make_deep_sea"]
    argv += ["--steps", "1000", "--seeds", "0-2", "--out", str(out), "--reps", "200"]
    assert sample_efficiency.main(argv) == 0
    # EfficientZero's seeds in one call per env: fused on DeepSea, host loop on CartPole-v1
    ez_calls = [c for c in fake.calls if c[2] == "efficientzero"]
    assert [(c[6], c[c.index("--seeds") + 1]) for c in ez_calls] == [
        ("CartPole-v1", "0,1,2"),
        ("envs.grids:make_deep_sea", "0,1,2"),
    ]
    deep_sea = [c for c in fake.calls if c[6] == "envs.grids:make_deep_sea"]
    assert all('env.options={"size": 10}' in c for c in deep_sea)
    assert all("run.eval_every=100" in c for c in fake.calls)  # a tenth of the budget
    report = (out / "report.md").read_text()
    for slug, title in (("CartPole-v1", "CartPole-v1"), ("envs.grids-make_deep_sea", "DeepSea")):
        assert (out / f"curves__{slug}__1000.png").stat().st_size > 1000
        assert f"- **{title}" in report
    assert "| DeepSea (bsuite), size 10 | `envs.grids:make_deep_sea` | 1000 | 0.9 |" in report
    assert report.count("EfficientZero is **better than ppo**") == 2
    assert "### DeepSea (bsuite), size 10, 1000 env steps: eval return" in report
    assert "| DeepSea (bsuite), size 10 | ppo | 1000 | 2 | never | never | 0.620 |" in report


def test_same_budget_comparison_on_your_own_env(tmp_path, monkeypatch, capsys):
    """`--envs` with a threshold, a preset for every algo and an --import: the runs get them
    all, and the report is titled by the env."""
    grid = "my_pkg.my_envs:make_grid"
    fake = FakeCli(lambda env_id, algo, seed: {"efficientzero": 0.93, "dqn": 0.5, "ppo": 0.9}[algo])
    monkeypatch.setattr(runs, "launch", fake)
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    monkeypatch.chdir(tmp_path)
    argv = ["--envs", grid, "--threshold", "0.9", "--seeds", "0-1", "--steps", "1000"]
    argv += ["--preset", "debug", "--import", "my_pkg.my_envs", "--reps", "100"]
    assert sample_efficiency.main(argv) == 0
    assert len(fake.calls) == 5  # EfficientZero's two seeds in one call
    for call in fake.calls:
        assert call[call.index("--preset") + 1] == "debug" and call[call.index("--env") + 1] == grid
        assert 'env.imports=["my_pkg.my_envs"]' in call and "run.eval_every=500" in call
    out = tmp_path / "results" / "sample_efficiency" / "my_pkg.my_envs-make_grid"
    report = (out / "report.md").read_text()
    assert report.startswith(f"# Sample efficiency: {grid}\n")
    assert f"| {grid} | `{grid}` | 1000 | 0.9 | – |" in report and "suite `cartpole`" not in report
    assert "not comparable with ppo (too few seeds)" in report  # 2 seeds: no verdict
    rows = {r["algo"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    # Curves rise linearly to the final return: 0.93 * s / 1000 >= 0.9 first at s = 1000.
    assert rows["efficientzero"]["stays_above_from"]["per_seed"] == [1000, 1000]
    assert rows["dqn"]["first_reach"]["reached"] == 0
    assert (out / "curves__my_pkg.my_envs-make_grid__1000.png").is_file()


def test_baselines_script_takes_the_same_seeds_syntax(tmp_path, capsys):
    from experiments import baselines

    argv = ["--algo", "dqn", "--preset", "debug", "--threshold", "5", "--out", str(tmp_path)]
    baselines.main([*argv, "--seeds", "0-1"])
    printed = capsys.readouterr().out
    assert "dqn --preset debug on CartPole-v1" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "CartPole-v1__dqn__0",
        "CartPole-v1__dqn__1",
    ]
    with pytest.raises(SystemExit):
        baselines.main([*argv, "--seeds", "0 1"])
    assert "0,1,2 or as a range 0-9" in capsys.readouterr().err


def test_classic_suite_runs_each_env_at_its_own_budget():
    from benchmarks.suites import SUITES, customize, suite_jobs, suite_runs

    suite = SUITES["classic"]
    runs = suite_runs(suite)
    budgets = {(r.env.env_id, r.budget) for r in runs}
    assert budgets == {
        ("CartPole-v1", 5_000),
        ("MountainCar-v0", 20_000),
        ("LunarLander-v3", 50_000),
        ("gymnax:Breakout-MinAtar", 20_000),
        ("envs.grids:make_deep_sea", 20_000),
        ("envs.examples:make_corridor", 5_000),
        ("envs.grids:make_minigrid", 20_000),
    }
    assert suite.seeds == (0, 1, 2, 3, 4)
    assert len(runs) == len(suite.envs) * len(suite.algos) * len(suite.seeds)
    assert [(a.algo, a.preset) for a in suite.algos] == [
        ("efficientzero", "default"), ("dqn", "cartpole"), ("ppo", "cartpole"),
    ]  # fmt: skip
    for run in runs:
        overrides = run.overrides(suite)
        assert f"run.eval_every={run.budget // 10}" in overrides
        ez_only = [o for o in overrides if o not in run.overrides(suite) or False]
        if run.algo.algo == "efficientzero":  # nothing for EfficientZero beyond env options
            own = set(overrides) - set(suite.overrides) - {f"run.eval_every={run.budget // 10}"}
            assert all(o.startswith("env.options=") for o in own), (run.name, own)
        assert not ez_only
    by_env = {r.env.env_id: r for r in runs if r.algo.algo == "dqn"}
    assert 'env.options={"size": 10}' in by_env["envs.grids:make_deep_sea"].overrides(suite)
    minigrid = 'env.options={"name": "MiniGrid-DoorKey-5x5-v0"}'
    assert minigrid in by_env["envs.grids:make_minigrid"].overrides(suite)
    groups = [j for j in suite_jobs(suite) if j.group]
    # EfficientZero's seeds train together on every env, fused or through gymnasium
    assert {j.runs[0].env.env_id for j in groups} == {e.env_id for e in suite.envs}
    assert all(j.seeds == suite.seeds and j.runs[0].algo.algo == "efficientzero" for j in groups)
    steps = customize(suite, steps=[1000])  # --steps replaces every env's own budget
    assert {r.budget for r in suite_runs(steps)} == {1000}
    assert all("run.eval_every=100" in r.overrides(steps) for r in suite_runs(steps))


def test_cartpole_suite_is_three_seeds_with_efficientzero_in_one_group():
    from benchmarks.suites import SUITES, suite_jobs

    jobs = suite_jobs(SUITES["cartpole"])
    assert [(j.name, j.group) for j in jobs] == [
        ("gymnax-CartPole-v1__efficientzero__5000", True),
        ("gymnax-CartPole-v1__dqn__5000__seed0", False),
        ("gymnax-CartPole-v1__ppo__5000__seed0", False),
        ("gymnax-CartPole-v1__dqn__5000__seed1", False),
        ("gymnax-CartPole-v1__ppo__5000__seed1", False),
        ("gymnax-CartPole-v1__dqn__5000__seed2", False),
        ("gymnax-CartPole-v1__ppo__5000__seed2", False),
    ]
    assert jobs[0].seeds == (0, 1, 2)


def test_atari_games_keep_a_process_per_seed():
    from benchmarks.suites import SUITES, suite_jobs

    jobs = suite_jobs(SUITES["atari"])
    assert jobs and not any(j.group for j in jobs)
    assert len(jobs) == 3 * 3 * 3  # games x algos x seeds


def test_minatar_suite_gives_images_to_efficientzero_only():
    from benchmarks.suites import SUITES, suite_runs

    suite = SUITES["minatar"]
    runs = suite_runs(suite)
    assert {r.env.env_id for r in runs} == {"gymnax:Breakout-MinAtar", "gymnax:Freeway-MinAtar"}
    assert len(runs) == 2 * 3 * 5
    for run in runs:
        image = 'env.options={"image": true}' in run.overrides(suite)
        assert image == (run.algo.algo == "efficientzero"), run.name
        assert run.overrides(suite)[: len(suite.overrides)] == suite.overrides
    mlp = suite_runs(SUITES["minatar_mlp"])
    assert {r.algo.algo for r in mlp} == {"efficientzero"}
    assert not any("image" in item for r in mlp for item in r.overrides(SUITES["minatar_mlp"]))


# ------------------------------------------------------------------------------------------
# Ablation


def test_ablation_runs_each_variant_as_a_group_and_gives_a_verdict_per_mechanism(
    tmp_path, monkeypatch, capsys
):
    from benchmarks import ablation

    effect = {  # final return by variant: off-switch of a mechanism -> its effect
        "search.prior_mix=0": -300.0,  # the mechanism helps
        "search.value_delta_max=1e-8": 0.0,  # no effect
        "model.value_support=20": +100.0,  # it hurts
        "replay.td_steps=5": -1.0,  # within the noise of the seeds
    }

    class Fake(FakeCli):
        def __call__(self, args, **options):
            self.args = args
            return super().__call__(args, **options)

    def final(env_id, algo, seed):
        shift = sum(v for k, v in effect.items() if k in fake.args)
        return 400.0 + shift + 10.0 * (seed % 2) - 5.0 * (seed % 3)

    fake = Fake(final)
    monkeypatch.setattr(runs, "launch", fake)
    monkeypatch.setattr(machine, "describe_machine", lambda **_: FAKE_MACHINE)
    out = tmp_path / "ablation"
    argv = ["--envs", "cartpole", "--steps", "1000", "--out", str(out), "--reps", "500"]
    assert ablation.main(argv) == 0
    assert len(fake.calls) == 5  # one group call per variant
    for call, variant in zip(fake.calls, ablation.VARIANTS, strict=True):
        assert call[:8] == ["train", "--algo", "efficientzero", "--preset", "default", "--env",
                            "gymnax:CartPole-v1", "--seeds"]  # fmt: skip
        assert call[8:12] == ["0,1,2,3,4", "--steps", "1000", "--out"]
        assert call[12] == str(out / "cartpole" / variant.name)
        assert all(o in call for o in variant.overrides) and "run.eval_every=100" in call
    report = (out / "report.md").read_text()
    rows = {r["variant"]: r for r in runs.read_json(out / "ablation.json")["rows"]["cartpole"]}
    assert rows["full"]["verdict"] is None and len(rows["full"]["seeds"]) == 5
    assert rows["full"]["reached"] == 0  # the fake curves stay below 475 until the end
    assert [rows[v]["verdict"] for v in ("no_unimix", "no_q_floor", "small_supports", "n5")] == [
        "worse", "not distinguishable", "better", "not distinguishable",
    ]  # fmt: skip
    assert rows["no_unimix"]["difference"]["point"] == pytest.approx(-300.0)
    assert "- the 1% uniform mix of the prior: the mechanism helps (without it: worse " in report
    assert "- the 601-bin value and reward supports: the mechanism hurts" in report
    assert "- the floor of the Q spread: no detectable effect" in report
    assert (
        "| seeds reaching 475 | stays ≥ 475 from (median; per seed) |" in report
        and "## CartPole-v1 (`gymnax:CartPole-v1`), 1000" in report
    )
    # the fake curves rise to their final return at the last evaluation, 1,000 steps
    assert "| 0/5 | never; never, never, never, never, never |" in report
    assert "| 5/5 | 1,000; 1,000, 1,000, 1,000, 1,000, 1,000 |" in report  # small supports
    # the runs' machine, not only the one the report was written on (--report-only elsewhere)
    assert "- runs trained on: cpu:test (25 runs)" in report
    assert "- report written on: Machine: test" in report

    fake.calls.clear()  # finished groups are skipped; the report can be redone alone
    assert ablation.main(argv) == 0 and fake.calls == []
    assert ablation.main([*argv, "--report-only"]) == 0
    with pytest.raises(SystemExit):
        ablation.main(["--envs", "atari", "--out", str(out)])
    assert "unknown env(s) or variant(s) ['atari']" in capsys.readouterr().err


def test_ablation_deep_sea_is_the_suites_size_10_env():
    from benchmarks import ablation

    suite, specs = ablation.plan("deep_sea", ablation.VARIANTS[1], [0, 1], None, ["x.y=1"])
    (spec,) = {dataclasses.replace(s, seed=0) for s in specs}
    assert spec.budget == 20_000 and spec.env.env_id == "envs.grids:make_deep_sea"
    overrides = spec.overrides(suite)
    assert 'env.options={"size": 10}' in overrides and "search.prior_mix=0" in overrides
    assert "run.eval_every=2000" in overrides and overrides.index("search.prior_mix=0") < (
        overrides.index("x.y=1")
    )


def test_the_full_deep_sea_variant_is_the_classic_suites_efficientzero_run():
    """The ablation's ``full`` DeepSea group trains what the classic suite's EfficientZero
    DeepSea group trains (preset, budget, env, evaluation), so one can stand for the other."""
    from benchmarks import ablation
    from benchmarks.suites import SUITES, suite_runs

    classic = SUITES["classic"]
    (ours,) = [
        r
        for r in suite_runs(classic)
        if r.env.env_id == "envs.grids:make_deep_sea" and r.algo.algo == "efficientzero"
        and r.seed == 0
    ]  # fmt: skip
    (full,) = [v for v in ablation.VARIANTS if v.name == "full"]
    suite, specs = ablation.plan("deep_sea", full, list(classic.seeds), None, [])
    assert [s.seed for s in specs] == list(classic.seeds)
    theirs = specs[0]
    assert (theirs.algo.algo, theirs.algo.preset, theirs.budget, theirs.env.env_id) == (
        ours.algo.algo, ours.algo.preset, ours.budget, ours.env.env_id,
    )  # fmt: skip
    assert sorted(theirs.overrides(suite)) == sorted(ours.overrides(classic))


def test_unit_costs_times_each_part_of_a_preset(capsys):
    from benchmarks import unit_costs

    assert unit_costs.main(["--preset", "debug", "--updates", "1", "--acts", "1"]) == 0
    out = capsys.readouterr().out
    for part in ("update", "refresh chunk", "acting step", "machine"):
        assert part in out
    update = [line.split() for line in out.splitlines() if line.strip().startswith("update")]
    assert len(update) == 1
    seconds, gflop = float(update[0][1]), float(update[0][3])
    assert 0 < seconds < 60 and gflop > 0


def test_seed_batch_rate_and_report(tmp_path):
    from benchmarks import seed_batch

    for k in (0, 1):  # two seeds of one process share its clock
        folder = tmp_path / f"seed{k}"
        folder.mkdir()
        rows = ["env_steps,wall_seconds", "250,40", "500,50", "750,60", "1000,70"]
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    folders = [tmp_path / "seed0", tmp_path / "seed1"]
    assert seed_batch.second_half_rate(folders, 1000) == pytest.approx(2 * 500 / 20)
    assert seed_batch.second_half_rate(folders[:1], 4000) is None  # no row past half
    result = {
        "argv": ["--seeds", "2"],
        "machine": FAKE_MACHINE,
        "preset": "p",
        "env": "ALE/Pong-v5",
        "steps": 1000,
        "one": {"seeds": 1, "wall_seconds": 100.0, "steady_env_steps_per_second": 25.0},
        "many": {"seeds": 2, "wall_seconds": 130.0, "steady_env_steps_per_second": None},
        "ratio": 1.3,
    }
    text = seed_batch.report(result)
    assert "| 1 | 100 | 25.0 |" in text and "| 2 | 130 | – |" in text
    assert "wall(2 together) / wall(1) = **1.30** (2 runs one after another: 2.00)" in text


def _stored(run_dir, algo, cfg):
    """A run folder's config.json as a run writes it (``RunLog.write_config``)."""
    from dreamer.core.configtree import to_dict
    from dreamer.shell.runlog import RunLog

    run_dir.mkdir(parents=True)
    RunLog(run_dir).write_config(algo, to_dict(cfg))


def test_a_folder_holding_another_run_is_refused_not_skipped_or_resumed(tmp_path, monkeypatch):
    from dreamer import cli

    fake = FakeCli(lambda env_id, algo, seed: 1.0)
    monkeypatch.setattr(runs, "launch", fake)

    def args(steps, seed, *extra, algo="efficientzero", out=tmp_path / "run"):
        return runs.train_args(algo=algo, preset="debug", env_id="gymnax:CartPole-v1", seed=seed,
                               steps=steps, out=out, overrides=list(extra))  # fmt: skip

    def made(train):  # the config a run of ``train`` writes: sized to its budget
        return cli.build_config(cli.parser().parse_args(train)).sized_to_budget()

    _stored(tmp_path / "run", "efficientzero", made(args(1000, 0)))
    assert runs.config_mismatch(tmp_path / "run", args(1000, 0)) is None
    # a run made before replays were sized to the budget held more slots than it filled
    unsized = cli.build_config(cli.parser().parse_args(args(500, 0)))
    assert unsized.replay.capacity > 500
    _stored(tmp_path / "early", "efficientzero", unsized)
    assert runs.config_mismatch(tmp_path / "early", args(500, 0)) is None
    assert runs.config_mismatch(tmp_path / "new", args(1000, 0)) is None  # nothing there yet
    why = runs.config_mismatch(tmp_path / "run", args(2000, 0, "search.num_simulations=3"))
    assert why.startswith("it holds another run: ") and "run.env_steps=1000 (asked 2000)" in why
    assert "search.num_simulations=" in why
    other = runs.config_mismatch(tmp_path / "run", args(1000, 0, algo="dqn"))
    assert other == "it holds a run of efficientzero, not of dqn"
    # an interrupted run of another config is neither resumed nor trained over
    with pytest.raises(runs.RunMismatchError, match="run.env_steps=1000 .*own --out"):
        runs.ensure_run(tmp_path / "run", args(2000, 0))
    assert fake.calls == [] and runs.run_state(tmp_path / "run") is runs.RunState.INTERRUPTED
    assert runs.ensure_run(tmp_path / "run", args(1000, 0)).action == "resumed"
    # a group's seed folder is compared with its own seed
    group = tmp_path / "group"
    for k in (0, 1):
        _stored(group / f"seed{k}", "efficientzero", made(args(1000, k)))
    train = lambda seeds: args(1000, list(seeds), out=group)  # noqa: E731
    assert runs.config_mismatch(group / "seed1", train([0, 1])) is None
    with pytest.raises(runs.RunMismatchError, match="seed0: it holds another run"):
        runs.ensure_group(group, [0, 1], lambda seeds: args(500, list(seeds), out=group))
    assert fake.calls == [["resume", str(tmp_path / "run")]]
