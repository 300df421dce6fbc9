"""Plant known bugs one at a time and check that the default suite catches each.

The bugs (``BUGS``) are mistakes a review of the replay, the learner and the statistics found
or feared; each names the test files that must fail with it.

    python -m tools.planted_bugs                  # all of them (about 10 minutes on 2 cores)
    python -m tools.planted_bugs --only alpha     # one

Each bug is a text substitution in a copy of the working tree (``results/planted/tree``);
the files of tests that should fail run there with ``pytest -x``. A bug is *caught* when
pytest exits 1 (a test failed), *missed* when the tests pass. The table goes to stdout and
``results/planted/report.md``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARNER = ("tests/test_learner_values.py", "tests/test_learner.py")
STATS = ("tests/test_stats.py", "tests/test_benchmarks.py")
VALUES = ("tests/test_value_targets.py",)


@dataclass(frozen=True)
class Bug:
    name: str
    description: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    count: int = 1
    """How many occurrences of ``old`` the bug replaces (all must exist)."""


BUGS = (
    Bug(
        "alpha",
        "priority exponent alpha dropped",
        "dreamer/core/priorities.py",
        "jnp.asarray(priorities, jnp.float32).ravel(), 1.0) ** alpha",
        "jnp.asarray(priorities, jnp.float32).ravel(), 1.0)",
        ("tests/test_replay.py", "tests/test_dqn.py"),
    ),
    Bug(
        "max_priority",
        "new steps enter at priority 1, not the replay's largest",
        "dreamer/agents/efficientzero/replay.py",
        "priorities=at(state.priorities, self.max_priority(state)),",
        "priorities=at(state.priorities, 1.0),",
        ("tests/test_replay.py",),
    ),
    Bug(
        "zero_draw",
        "inverse-CDF sampling over the raw float32 cumulative sum",
        "dreamer/core/priorities.py",
        "cdf = jax.lax.cummax(jnp.where(positive, jnp.cumsum(probs), -jnp.inf))",
        "cdf = jnp.cumsum(probs)",
        ("tests/test_priorities.py",),
    ),
    Bug(
        "gumbel_spread",
        "Gumbel completed Q normalised without the floor on the spread",
        "dreamer/agents/efficientzero/search.py",
        "normalized = jnp.clip((completed - lo) / jnp.maximum(hi - lo, value_delta_max), 0.0, 1.0)",
        "normalized = jnp.clip((completed - lo) / jnp.maximum(hi - lo, 1e-8), 0.0, 1.0)",
        ("tests/test_search.py",),
    ),
    Bug(
        "padding",
        "frame-stack padding ignores the episode start (Replay.sample)",
        "dreamer/agents/efficientzero/replay.py",
        "oldest = jnp.maximum(state.episode_start[env, pos], state.count[env] - self.slots)\n"
        "        frame_steps",
        "oldest = state.count[env] - self.slots\n        frame_steps",
        ("tests/test_replay.py",),
    ),
    Bug(
        "padding_cache",
        "... the same in Replay.observations (the target cache's stacks)",
        "dreamer/agents/efficientzero/replay.py",
        "oldest = jnp.maximum(state.episode_start[env, pos], state.count[env] - self.slots)\n"
        "        steps",
        "oldest = state.count[env] - self.slots\n        steps",
        ("tests/test_replay.py",),
    ),
    Bug(
        "lstm_reset",
        "the learner's LSTM never reset during the unroll",
        "dreamer/agents/efficientzero/learner.py",
        "            if k % model.lstm_horizon == 0:\n"
        "                lstm = jax.tree.map(jnp.zeros_like, lstm)\n",
        "",
        LEARNER,
    ),
    Bug(
        "online_targets",
        "targets computed with the online network instead of the target network",
        "dreamer/agents/efficientzero/learner.py",
        "tv = state.target_variables",
        "tv = state.variables",
        LEARNER,
        count=2,
    ),
    Bug(
        "dynamics_scale",
        "the x0.5 dynamics gradient scale removed",
        "dreamer/agents/efficientzero/learner.py",
        "            latent = scale_gradient(latent, model.dynamics_grad_scale)\n",
        "",
        LEARNER,
    ),
    Bug(
        "unroll_scale_loss",
        "the 1/K scale removed (unroll_scale=loss: the whole loss)",
        "dreamer/agents/efficientzero/learner.py",
        'loss_scale = 1.0 / K if ocfg.unroll_scale == "loss" else 1.0',
        "loss_scale = 1.0",
        LEARNER,
    ),
    Bug(
        "unroll_scale_heads",
        "the 1/K scale removed (unroll_scale=heads: the unrolled heads)",
        "dreamer/agents/efficientzero/learner.py",
        'head_scale = 1.0 / K if ocfg.unroll_scale == "heads" else 1.0',
        "head_scale = 1.0",
        LEARNER,
    ),
    Bug(
        "mixed_age",
        "mixed value target: a sample exactly mixed_fresh_transitions old kept as fresh",
        "dreamer/agents/efficientzero/targets.py",
        "(age < fresh_transitions)",
        "(age <= fresh_transitions)",
        VALUES,
    ),
    Bug(
        "search_cache",
        "the cache refresh stores the network's value as the search value",
        "dreamer/agents/efficientzero/learner.py",
        "searched_values=replay_state.searched_values.at[env, pos].set(root_values),",
        "searched_values=replay_state.searched_values.at[env, pos].set(values),",
        VALUES,
    ),
    Bug(
        "search_position",
        "per-batch search values all taken at o_t instead of o_{t+k}",
        "dreamer/agents/efficientzero/learner.py",
        "obs = T.stack_at(batch.frames[:num_searched], ks, S)",
        "obs = T.stack_at(batch.frames[:num_searched], ks * 0, S)",
        VALUES,
    ),
    Bug(
        "iqm_per_game_over_runs",
        "the per-game IQM trims the runs instead of the per-game means",
        "benchmarks/stats.py",
        "return metrics.aggregate_iqm(np.mean(scores, axis=0, keepdims=True))",
        "return metrics.aggregate_iqm(scores)",
        STATS,
    ),
    Bug(
        "run_left_running",
        "an interrupted launch leaves its run training (no SIGTERM, so no checkpoint, and a "
        "requeued job finds the folder locked)",
        "benchmarks/runs.py",
        "        stop(proc, tee)\n",
        "",
        ("tests/test_launchers.py",),
    ),
    Bug(
        "ci_coverage",
        "a 90% interval reported as 95%",
        "benchmarks/stats.py",
        "confidence_interval_size=confidence,",
        "confidence_interval_size=confidence - 0.05,",
        STATS,
    ),
    Bug(
        "verdict_seeds",
        "a verdict from one or two seeds (the bootstrap interval collapses to a point)",
        "benchmarks/stats.py",
        "if min(a.size, b.size) < min_seeds:",
        "if min(a.size, b.size) < 1:",
        STATS,
    ),
    Bug(
        "verdict_overlap",
        "a verdict from the overlap of the two means' intervals, not from their difference",
        "benchmarks/stats.py",
        "elif difference.low > 0:",
        "elif mean_a.low > mean_b.high:",
        STATS,
    ),
)


def copy_tree(dest: Path) -> None:
    """The tracked and untracked (not ignored) files of the working tree."""
    if dest.exists():
        shutil.rmtree(dest)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def plant(tree: Path, bug: Bug) -> str:
    """Apply ``bug`` in ``tree``; returns the original text of the file."""
    path = tree / bug.path
    text = path.read_text()
    found = text.count(bug.old)
    if found != bug.count:
        raise SystemExit(
            f"{bug.name}: expected {bug.count} of {bug.old!r} in {bug.path}, got {found}"
        )
    path.write_text(text.replace(bug.old, bug.new))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.planted_bugs", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated bug names")
    parser.add_argument("--out", default="results/planted")
    args = parser.parse_args(argv)
    only = {b for b in args.only.split(",") if b}
    bugs = [b for b in BUGS if not only or b.name in only]
    out = REPO / args.out
    tree = out / "tree"
    copy_tree(tree)
    where = subprocess.run(
        [sys.executable, "-c", "import dreamer, benchmarks; print(dreamer.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"the copy imports dreamer from {where}, not from {tree}")
    rows = []
    for bug in bugs:
        original = plant(tree, bug)
        start = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *bug.tests],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        (tree / bug.path).write_text(original)
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        verdict = {1: "caught", 0: "MISSED"}.get(done.returncode, f"error {done.returncode}")
        by = failed[0].split(" ")[1].split(" - ")[0] if failed else "—"
        rows.append((bug, verdict, by, time.time() - start))
        print(f"{verdict:8s} {bug.name:20s} {by}", flush=True)
    lines = [
        "# Planted bugs",
        "",
        "Command: `python -m tools.planted_bugs`. Each bug is planted alone in a copy of "
        "the tree; its test files run with `pytest -x`; *caught* = a test failed.",
        "",
        "| bug | where | verdict | first failing test | seconds |",
        "|---|---|---|---|---|",
    ]
    for bug, verdict, by, seconds in rows:
        lines.append(f"| {bug.description} | `{bug.path}` | {verdict} | `{by}` | {seconds:.0f} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'}")
    shutil.rmtree(tree)
    return 0 if all(v == "caught" for _, v, _, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
