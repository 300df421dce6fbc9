"""The frontier sweep (``benchmarks.frontier``): its plan, its compute-matched control, and
its report on hand-made run folders."""

import json

import numpy as np
import pytest

from benchmarks import frontier
from dreamer.core.configtree import apply_overrides


def test_each_knob_is_swept_alone_and_the_presets_own_value_is_the_baseline():
    base = frontier.base_config("cartpole", 5000, ())
    points = frontier.plan(base, ["simulations", "value_target"])
    assert points[0] == frontier.Point("baseline", "baseline", None, ())
    own = base.search.num_simulations
    sims = [p for p in points if p.knob == "simulations"]
    assert [p.value for p in sims] == [v for v in frontier.KNOBS["simulations"][1] if v != own]
    assert sims[0].overrides == (f"search.num_simulations={sims[0].value}",)
    targets = {p.value for p in points if p.knob == "value_target"}
    assert targets == {"nstep", "search", "mixed"} - {base.replay.value_target}
    for p in points[1:]:  # every override applies
        apply_overrides(base, list(p.overrides))
    # mixed leaves the n-step target 30% into the updates, for all but the newest 5% of data
    (mixed,) = [p for p in points if p.value == "mixed"]
    cfg = apply_overrides(base, list(mixed.overrides))
    assert cfg.replay.value_target == "mixed"
    assert cfg.replay.mixed_start_update == round(0.3 * base.total_updates) < base.total_updates
    assert cfg.replay.mixed_fresh_transitions == 250


def test_the_control_spends_the_points_compute_on_gradient_steps():
    base = frontier.base_config("cartpole", 5000, ())
    costly = apply_overrides(base, ["search.num_simulations=64"])
    target = frontier.run_compute(costly)
    (override,) = frontier.matched_control(base, target)
    control = apply_overrides(base, [override])
    assert control.loop.replay_ratio > base.loop.replay_ratio
    assert control.search.num_simulations == base.search.num_simulations
    np.testing.assert_allclose(frontier.run_compute(control), target, rtol=0.01)
    assert frontier.matched_control(base, frontier.run_compute(base) / 2) == ()


def test_a_kept_point_of_another_sweep_is_refused_not_reported(tmp_path, monkeypatch):
    base = frontier.base_config("cartpole", 10_000, ())
    point = frontier.Point("baseline", "baseline", None, ())
    trained = []

    def train_group(folder, *args):  # a stand-in for the CLI: the group's folder, no runs
        folder.mkdir(parents=True)
        trained.append(folder)
        return 1.0

    monkeypatch.setattr(frontier, "train_group", train_group)
    monkeypatch.setattr(frontier, "describe_machine", lambda: MACHINE)
    frontier.run_point(tmp_path, base, point, [0, 1], env_key="cartpole", overrides=())
    assert (
        len(trained) == 1
        and json.loads((tmp_path / "baseline/point.json").read_text())["steps"] == 10_000
    )
    frontier.run_point(tmp_path, base, point, [0, 1], env_key="cartpole", overrides=())
    assert len(trained) == 1  # the same sweep: kept
    shorter = frontier.base_config("cartpole", 5000, ())
    with pytest.raises(ValueError, match="another sweep .*'steps': 10000.* own --out"):
        frontier.run_point(tmp_path, shorter, point, [0, 1], env_key="cartpole", overrides=())
    with pytest.raises(ValueError, match="another sweep"):
        frontier.run_point(tmp_path, base, point, [0, 1, 2], env_key="cartpole", overrides=())


MACHINE = {"platform": "test", "processor": "x", "cpu_count": 2, "python": "3"}


def fake_point(out, name, knob, value, per_step, stay_at, finals, overrides=()):
    """A finished point: seeds whose greedy return is 475 from ``stay_at[k]`` steps on."""
    folder = out / name
    settings = {"simulations": 32, "reanalysis": 0.25, "replay_ratio": 1.0, "dream_ratio": 0.0,
                "value_target": "nstep"}  # fmt: skip
    record = {"name": name, "knob": knob, "value": value, "overrides": list(overrides),
              "settings": settings, "seeds": list(range(len(finals))), "steps": 5000,
              "compute_per_step": per_step, "wall_seconds": 10.0,
              "machine": MACHINE}  # fmt: skip
    for k, (stay, final) in enumerate(zip(stay_at, finals, strict=True)):
        run = folder / f"seed{k}"
        run.mkdir(parents=True)
        curve = [[s, 475.0 if stay is not None and s >= stay else 100.0]
                 for s in range(500, 5001, 500)]  # fmt: skip
        summary = {"final_eval_return": final, "compute": {"total": per_step * 5000},
                   "env_steps": 5000, "eval_curve": curve}  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "metrics.csv").write_text("env_steps,eval/return_mean,compute/total\n")
    (folder / "point.json").write_text(json.dumps(record))


def test_the_report_plots_each_knob_fits_and_names_the_cheapest_way_to_the_target(tmp_path):
    seeds = 5
    fake_point(tmp_path, "baseline", "baseline", None, 1000, [3000] * seeds, [480.0] * seeds)
    for i, (sims, stay) in enumerate([(4, None), (8, 4000), (16, 3500), (64, 1500)]):
        fake_point(tmp_path, f"simulations={sims}", "simulations", sims,
                   200 + 100 * sims, [stay] * seeds, [470.0 + i] * seeds)  # fmt: skip
    for ratio, stay in [(2.0, 2000), (4.0, 1500)]:
        fake_point(tmp_path, f"replay_ratio={ratio:g}", "replay_ratio", ratio,
                   1000 * ratio, [stay] * seeds, [490.0] * seeds)  # fmt: skip
    fake_point(tmp_path, "reanalysis=1", "reanalysis", 1.0, 1020, [2800] * seeds, [480.0] * seeds)
    fake_point(tmp_path, "control(simulations=64)", "control", None, 6600, [2500] * seeds,
               [450.0, 455, 460, 452, 458], ("loop.replay_ratio=6.6",))  # fmt: skip
    text = frontier.report(tmp_path, "cartpole")
    assert (tmp_path / "frontier.png").exists() and (tmp_path / "report.md").read_text() == text
    assert "| simulations | 4 | 600 | never [never, never] | 0/5 |" in text
    assert "| simulations | 32 (preset) | 1,000 | 3,000 [3,000, 3,000] | 5/5 |" in text
    assert "| control | loop.replay_ratio=6.6 | 6,600 | 2,500" in text
    assert "Target: 2,100 real steps (30% fewer than the preset's 3,000)" in text
    # measured: replay_ratio=2 reaches 2,000 steps at 2,000 evaluations per step, cheaper than
    # simulations=64 (1,500 steps at 6,600)
    assert "cheapest measured point that reaches it: replay_ratio=2." in text
    assert "- fit for simulations:" in text  # four points reach the threshold
    assert "- no fit for reanalysis (1,000 to 1,020) model evaluations per real step" in text
    assert (
        "Fewest real steps apart from the replay ratio: simulations=64 (1,500); its "
        "compute-matched control (loop.replay_ratio=6.6) takes 2,500, and in final return "
        "simulations=64 is better than its control." in text
    )
    assert "Goal (30% fewer real steps than the preset, and fewer than the control): met" in text


def test_a_preset_that_never_stays_sets_the_target_at_30_percent_under_the_budget(tmp_path):
    """The preset's median is beyond the budget (5,000): a point staying by 3,500 is 30% fewer
    or better, one staying at 4,000 (finite, below the budget) proves nothing."""
    seeds = 3
    fake_point(tmp_path, "baseline", "baseline", None, 1000, [None] * seeds, [300.0] * seeds)
    fake_point(tmp_path, "simulations=64", "simulations", 64, 6600, [4000] * seeds,
               [480.0] * seeds)  # fmt: skip
    fake_point(tmp_path, "control(simulations=64)", "control", None, 6600, [None] * seeds,
               [200.0] * seeds, ("loop.replay_ratio=6.6",))  # fmt: skip
    text = frontier.report(tmp_path, "cartpole")
    assert "Target: 3,500 real steps (the preset's median seed never stays within its 5,000" in text
    assert "cheapest measured point that reaches it: none." in text
    assert (
        "Goal (30% fewer real steps than the preset, and fewer than the control): not met" in text
    )
    fake_point(tmp_path, "simulations=8", "simulations", 8, 900, [3500] * seeds, [480.0] * seeds)
    text = frontier.report(tmp_path, "cartpole")
    assert "cheapest measured point that reaches it: simulations=8." in text


def test_cheapest_knob_from_the_fits():
    fits = {
        "a": {"d_min": 1000.0, "beta": 100.0, "alpha": 1.0},  # 2000 steps at c = 0.1
        "b": {"d_min": 1500.0, "beta": 10.0, "alpha": 1.0},  # at c = 0.02
        "c": {"d_min": 2500.0, "beta": 1.0, "alpha": 1.0},  # never below 2500
    }
    points = [{"name": "x", "median": 1900.0, "per_step": 5.0},
              {"name": "y", "median": 2100.0, "per_step": 1.0},
              {"name": "z", "median": 1000.0, "per_step": 9.0}]  # fmt: skip
    assert frontier.cheapest(points, fits, 2000.0) == ("b", "x")
    assert frontier.cheapest(points, {}, 500.0) == (None, None)


def test_the_command_line_refuses_an_unknown_knob(capsys):
    from benchmarks import dreaming

    with pytest.raises(SystemExit):
        dreaming.main(["--frontier", "--knobs", "simulations,budget"])
    assert "unknown knobs ['budget']" in capsys.readouterr().err


def test_the_sweep_costs_what_its_docs_say():
    """docs/dreaming.md and ``KNOBS``: the baseline and 11 points cost 16.4 preset runs."""
    base = frontier.base_config("cartpole", frontier.STEPS, ())
    points = frontier.plan(base, list(frontier.KNOBS))
    cost = sum(frontier.run_compute(apply_overrides(base, list(p.overrides))) for p in points)
    assert len(points) == 12  # the baseline and 11 points
    assert cost / frontier.run_compute(base) == pytest.approx(16.4, abs=0.05)


def test_the_plot_draws_the_reports_target_and_never_above_the_budget(tmp_path):
    """The plot's goal line is the report's target also when the preset never stays (it was
    drawn only for a finite median), and "never" is a tick above the budget."""
    seeds = 3
    fake_point(tmp_path, "baseline", "baseline", None, 1000, [None] * seeds, [300.0] * seeds)
    fake_point(tmp_path, "simulations=64", "simulations", 64, 6600, [3000] * seeds,
               [480.0] * seeds)  # fmt: skip
    fake_point(tmp_path, "control(simulations=64)", "control", None, 6600, [None] * seeds,
               [200.0] * seeds, ("loop.replay_ratio=6.6",))  # fmt: skip
    names = ("baseline", "simulations=64", "control(simulations=64)")
    base, point, control = (frontier.measured(tmp_path / n, 475.0) for n in names)
    target, _ = frontier.goal_target(base)
    fig = frontier.figure(base, {"simulations": [base, point]}, {}, [control], target, 475.0, "t")
    ax = fig.axes[0]
    dashed = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert target == 3500 and dashed == [target]
    labels = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert labels["never"] > 5000 and max(v for k, v in labels.items() if k != "never") <= 5000
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "compute-matched control of simulations=64" in legend
