"""Seeds as a batch axis in the host loop (gymnasium envs): each seed as it trains alone."""

import json
import shutil
import signal
from collections import Counter
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

from dreamer import cli
from dreamer.agents.efficientzero.config import apply_overrides
from dreamer.loops import efficientzero as agent_module
from dreamer.loops import groups, host
from dreamer.loops.efficientzero import Agent
from dreamer.shell.checkpoint import Checkpointer
from dreamer.shell.runbook import RunBook
from dreamer.shell.runlog import read_metrics
from experiments.efficientzero import debug

ENV = "envs.examples:make_corridor"
SMALL = [
    f"env.id={ENV}",
    "run.env_steps=120",
    "run.eval_every=60",
    "run.eval_episodes=2",
    "run.checkpoint_every=60",
    "run.keep_checkpoints=3",
    "run.log_every=20",
    "run.final_eval_episodes=2",
    "run.eval_max_steps=50",  # the corridor cuts at 32: a cap that changes nothing
    "loop.warmup_steps=40",
    "loop.replay_ratio=0.25",
    "optim.target_update_every=8",
]


def final_learner(cfg, run_dir):
    ckpt = Checkpointer(run_dir)
    arrays, _ = ckpt.restore({"learner": Agent(cfg).new_learner()})
    ckpt.close()
    return arrays["learner"]


def assert_close(a, b):
    # float tolerance: a batch of two runs and a run alone may round differently
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def losses(run_dir):
    rows = read_metrics(run_dir / "metrics.csv")
    return [float(r["losses/total"]) for r in rows if r["losses/total"]]


class Group(NamedTuple):
    cfg: Any
    base: Any
    summaries: list
    alone: dict
    evaluations: list
    searches: Counter


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> Group:
    """Seeds 3 and 4 trained together, and seed 4 alone; the (env step, max_steps) of every
    evaluation they ran, and the evaluation searches of each run folder."""
    base = tmp_path_factory.mktemp("host_seeds")
    cfg = apply_overrides(debug(), SMALL)
    evaluations, searches = [], Counter()
    evaluate = RunBook.evaluate

    def recording(book, act, env_steps, episodes, *, max_steps=0):
        evaluations.append((env_steps, max_steps))

        def counted(obs):
            searches[book.run_dir.name] += 1
            return act(obs)

        return evaluate(book, counted, env_steps, episodes, max_steps=max_steps)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunBook, "evaluate", recording)
        summaries = groups.train_group("efficientzero", cfg, base / "g", [3, 4])
        patch.setattr(host, "time", TickClock())  # only the loop's phase times read it
        alone = agent_module.train(apply_overrides(cfg, ["run.seed=4"]), base / "alone")
    return Group(cfg, base, summaries, alone, evaluations, searches)


class TickClock:
    """``time`` whose ``perf_counter`` advances by 1 at each reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def test_each_phase_time_sums_all_its_calls(group):
    """Seed 4 alone ran on a clock that ticks once per reading, and each act and env step
    reads it twice (before and after): each phase counts one tick per iteration, not only
    its last call's."""
    phases, iterations = group.alone["seconds_by_phase"], group.alone["counts"]["iterations"]
    assert set(phases) == {"act", "env", "add", "learn", "refresh", "eval", "save", "host"}
    assert iterations > 1
    assert phases["act"] == phases["env"] == iterations


def test_the_evaluation_steps_counted_are_the_evaluation_searches(group):
    searches = group.searches["alone"]
    assert searches > 0 and group.alone["counts"]["eval_steps"] == searches


def test_seeds_train_in_one_process_each_as_it_trains_alone(group):
    cfg, base, summaries, alone, *_ = group
    assert [s["seed"] for s in summaries] == [3, 4]
    assert summaries[1]["seeds_in_process"] == 2 and "seeds_in_process" not in alone
    record = json.loads((base / "g" / groups.GROUP_FILE).read_text())
    assert record["together"] and not record["fused"]
    # the replay is allocated for the budget (120 steps), not the preset's 1,000
    written = json.loads((base / "g/seed3/config.json").read_text())["config"]["replay"]
    assert cfg.replay.capacity == 1000 and written["capacity"] == 120
    p3 = final_learner(cfg, base / "g/seed3").params
    p4 = final_learner(cfg, base / "g/seed4").params
    assert any(
        not np.allclose(x, y) for x, y in zip(jax.tree.leaves(p3), jax.tree.leaves(p4), strict=True)
    )
    assert_close(p4, final_learner(cfg, base / "alone").params)
    np.testing.assert_allclose(summaries[1]["eval_curve"], alone["eval_curve"])
    assert summaries[1]["final_eval_returns"] == pytest.approx(alone["final_eval_returns"])
    np.testing.assert_allclose(losses(base / "g/seed4"), losses(base / "alone"), rtol=1e-4)
    assert len(losses(base / "alone")) == 4  # rows at 60, 80, 100, 120 (learning from 40)


def test_an_interrupted_group_resumes_from_its_checkpoints(group, tmp_path):
    cfg, base, summaries, *_ = group
    copy = tmp_path / "g"
    shutil.copytree(base / "g", copy)
    for seed in (3, 4):  # as if the process died after the checkpoint at 60 steps
        folder = copy / f"seed{seed}"
        (folder / "summary.json").unlink()
        shutil.rmtree(folder / "checkpoints" / "120")
        assert Checkpointer(folder).latest_step() == 60
    resumed = groups.resume_group(copy)
    for before, after in zip(summaries, resumed, strict=True):
        assert after["final_eval_returns"] == pytest.approx(before["final_eval_returns"])
        np.testing.assert_allclose(after["eval_curve"], before["eval_curve"])
    for seed in (3, 4):
        assert_close(
            final_learner(cfg, copy / f"seed{seed}").params,
            final_learner(cfg, base / f"g/seed{seed}").params,
        )


def test_a_group_stopped_before_its_first_checkpoint_starts_over_on_resume(group, tmp_path):
    cfg, base, summaries, *_ = group
    said = cli._interrupted(base / "g", signal.SIGTERM)
    assert "seed3: 120, seed4: 120" in said and "resume" in said
    copy = tmp_path / "g"
    shutil.copytree(base / "g", copy)
    for seed in (3, 4):  # as if the process died before its first checkpoint
        (copy / f"seed{seed}" / "summary.json").unlink()
        shutil.rmtree(copy / f"seed{seed}" / "checkpoints")
    assert "before the group's first checkpoint" in cli._interrupted(copy, signal.SIGTERM)
    resumed = groups.resume_group(copy)
    for before, after in zip(summaries, resumed, strict=True):
        np.testing.assert_allclose(after["eval_curve"], before["eval_curve"])
    assert len(losses(copy / "seed4")) == 4  # started over: no rows of the first start kept
    # one seed with a checkpoint and one without cannot go on together
    (copy / "seed3" / "summary.json").unlink()
    shutil.rmtree(copy / "seed3" / "checkpoints")
    (copy / "seed4" / "summary.json").unlink()
    with pytest.raises(groups.ConfigError, match="stopped at different points"):
        groups.resume_group(copy)


def test_the_seeds_benchmark_resumes_a_stopped_group_then_skips_the_kept_path(
    group, tmp_path, monkeypatch
):
    from benchmarks import seeds as bench

    cfg, base, summaries, *_ = group
    out = tmp_path / "bench"
    shutil.copytree(base / "g", out / "host")
    for seed in (3, 4):  # stopped after the checkpoint at 60 steps
        (out / "host" / f"seed{seed}" / "summary.json").unlink()
        shutil.rmtree(out / "host" / f"seed{seed}" / "checkpoints" / "120")
    sets = [arg for item in SMALL for arg in ("--set", item)]
    argv = ["--paths", "host", "--preset", "debug", "--host-env", ENV, "--seeds", "3,4"]
    argv += ["--out", str(out), *sets]
    bench.main(argv)
    record = json.loads((out / "host.json").read_text())
    assert record["resumed"] and "(resumed part)" in (out / "report.md").read_text()
    for before, after in zip(summaries, record["summaries"], strict=True):
        assert after["final_eval_returns"] == pytest.approx(before["final_eval_returns"])

    def trains(*_, **__):
        raise AssertionError("a kept path was trained again")

    monkeypatch.setattr(groups, "train_group", trains)
    monkeypatch.setattr(groups, "resume_group", trains)
    bench.main(argv)  # kept: skipped
    with pytest.raises(SystemExit, match="holds another run"):
        bench.main([*argv, "--set", "run.eval_episodes=3"])


def test_evaluations_in_training_are_capped_and_the_final_one_is_not(group):
    evaluations = group.evaluations
    # seeds 3 and 4 together, then seed 4 alone: at 60 steps capped, at the end whole
    assert evaluations == [(60, 50), (60, 50), (120, 0), (120, 0), (60, 50), (120, 0)]


def test_an_interrupted_run_resumes_through_train_and_evaluates(group, tmp_path):
    cfg, base, _, alone, *_ = group
    run = tmp_path / "alone"
    shutil.copytree(base / "alone", run)
    (run / "summary.json").unlink()  # as if the process died after the checkpoint at 60
    shutil.rmtree(run / "checkpoints" / "120")
    own = apply_overrides(cfg, ["run.seed=4"]).sized_to_budget()  # its config.json
    summary = agent_module.train(own, run, resume=True)
    assert summary["env_steps"] == 120 and summary["updates"] == alone["updates"]
    assert summary["final_eval_returns"] == pytest.approx(alone["final_eval_returns"])
    returns = host.evaluate(own, run, episodes=2)
    assert len(returns) == 2 and returns == host.evaluate(own, run, episodes=2)
    assert set(returns) <= {0.0, 1.0}  # the corridor pays 1 at its end, else nothing


def test_restore_newest_gives_the_variables_and_step_of_the_newest_checkpoint(group, tmp_path):
    cfg, base, *_ = group
    own = apply_overrides(cfg, ["run.seed=4"]).sized_to_budget()  # its config.json
    run = tmp_path / "alone"
    shutil.copytree(base / "alone", run)
    agent, newest, steps = host.restore_newest(own, run)
    shutil.rmtree(run / "checkpoints" / "120")
    _, older, older_steps = host.restore_newest(own, run)
    assert (steps, older_steps) == (120, 60)

    def differ(a, b):
        pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        return any(not np.array_equal(x, y) for x, y in pairs)

    # trained, not initialised: the updates between the checkpoints moved them
    assert differ(newest, older) and differ(older, agent.new_learner().variables)


def test_the_host_loops_run_book_warns_of_rewards_beyond_the_supports(tmp_path, capsys):
    """EfficientZero's run book checks every step's rewards against the model's supports
    (``RewardScale``): a reward of 10 is beyond supports of 1 bin a side (|x| <= 2.99)."""
    cfg = apply_overrides(debug(), [*SMALL, "model.value_support=1", "model.reward_support=1"])
    book = host.open_book(cfg, tmp_path, resume=False)
    try:
        book.check_env_output(np.zeros((1, 8), np.float32), np.array([1.0]), 1)
        assert "beyond what the model's supports" not in capsys.readouterr().err
        book.check_env_output(np.zeros((1, 8), np.float32), np.array([10.0]), 2)
        err = capsys.readouterr().err
        assert f"{ENV} gave a reward of magnitude 10 at env step 2" in err
    finally:
        book.close()


def test_skipped_updates_are_counted_warned_of_once_and_stop_the_run_as_a_majority(capsys):
    """``pop_metrics`` on a stand-in loop of two runs: a row's means are over its applied
    updates, the first skip prints one warning, and more than half skipped stops the run."""
    from types import SimpleNamespace

    from dreamer.core.errors import NonFiniteLossError

    loop = object.__new__(host.HostLoop)
    loop.axis = object.__new__(host.RunAxis)
    loop.axis.runs = 2
    loop.books = [
        SimpleNamespace(
            cfg=SimpleNamespace(run=SimpleNamespace(seed=seed)),
            kept_checkpoint=lambda: "the checkpoint at env step 40 is kept",
        )
        for seed in (3, 4)
    ]
    loop.env_steps, loop.warned_skipped = 80, False

    def pop(finite):
        loop.sums = {
            "updates": np.array([4.0, 4.0]),
            "finite_updates": np.array(finite),
            "losses/total": np.array([6.0, 8.0]),
        }
        return loop.pop_metrics()

    rows = pop([3.0, 4.0])
    assert rows == [
        {"losses/total": 2.0, "charts/skipped_updates": 1.0},
        {"losses/total": 2.0, "charts/skipped_updates": 0.0},
    ]
    assert loop.sums is None and loop.pop_metrics() == [{}, {}]
    out = capsys.readouterr().out
    assert out == (
        "warning: seed 3: 1 non-finite update(s) skipped before env step 80; "
        "see charts/skipped_updates\n"
    )
    rows = pop([2.0, 4.0])  # half skipped: still learning, and warned of once only
    assert rows[0] == {"losses/total": 3.0, "charts/skipped_updates": 2.0}
    assert capsys.readouterr().out == ""
    stop = "seed 4: loss or gradient became NaN/inf in 3 of the 4 updates before env step 80 "
    with pytest.raises(NonFiniteLossError, match=stop + ".*the checkpoint at env step 40 is kept"):
        pop([4.0, 1.0])


def test_a_groups_table_is_markdown_with_a_dash_for_a_missing_return(capsys, tmp_path):
    """The table `train --seeds` prints at the end: one row per seed; a run stopped before
    its final evaluation shows "-", not a number."""
    summaries = [
        {"seed": 0, "final_eval_return": 1.0, "best_eval_return": 1.25, "env_steps": 120,
         "wall_seconds": 9.6},
        {"seed": 1, "final_eval_return": None, "best_eval_return": 0.5, "env_steps": 60,
         "wall_seconds": 4.0},
    ]  # fmt: skip
    groups.print_group(tmp_path, summaries)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        f"group folder: {tmp_path}",
        "| seed | final eval return | best eval return | env steps | wall s |",
        "|---:|---:|---:|---:|---:|",
        "| 0 | 1.00 | 1.25 | 120 | 10 |",
        "| 1 | - | 0.50 | 60 | 4 |",
    ]
