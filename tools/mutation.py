"""Mutation testing of the core: plant small bugs, run the tests that cover them, report.

    make mutation                                   # the default sample, about an hour on 2 cores
    python -m tools.mutation --sample all      # every mutant (several hours)
    python -m tools.mutation --modules dreamer/core/priorities.py --sample all
    python -m tools.mutation --report-only     # rewrite the report from the last run

mutmut (``[mutmut]`` in setup.cfg) copies the sources into ``mutants/`` and rewrites every
function of the core modules into its original and its mutants (an operator flipped, a
constant changed, an argument dropped, ...), chosen at call time by ``MUTANT_UNDER_TEST``.
A mutant is *killed* when a test fails with it, *survives* otherwise.

Each mutant runs against the test files that cover its module (``COVERAGE`` below), not
against the tests mutmut saw calling the function: closures built by a factory
(``make_learner``'s ``update``) and jitted functions traced once per process hide their
callers from mutmut's tracing. The runner writes that mapping into mutmut's stats before it
starts. Mutants are drawn per module with a fixed seed (``--sample N``: N per module, or
``all``), so two runs of the same sources test the same mutants; the score of a sample
estimates the module's score (its 95% Wilson interval is in the report).

Survivors that cannot be killed, because they do not change what the code computes, are
listed with their reason in ``EQUIVALENT`` (keyed by module and the mutated line, so the
entry outlives renumbering). The report (``results/mutation/report.md`` and ``.json``) gives
killed / survived / equivalent / timeout per module, the score
``(killed + timeout) / (tested - equivalent)``, and every survivor's diff.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MUTANTS = REPO / "mutants"

LEARNER_TESTS = ("tests/test_learner.py", "tests/test_learner_values.py")
COVERAGE: dict[str, tuple[str, ...]] = {
    "dreamer/agents/efficientzero/transforms.py": (
        "tests/test_transforms.py",
        "tests/test_search.py",
        *LEARNER_TESTS,
    ),
    "dreamer/agents/efficientzero/targets.py": (
        "tests/test_targets.py",
        "tests/test_value_targets.py",
        *LEARNER_TESTS,
    ),
    "dreamer/agents/efficientzero/search.py": ("tests/test_search.py", *LEARNER_TESTS),
    "dreamer/agents/efficientzero/replay.py": ("tests/test_replay.py", *LEARNER_TESTS),
    "dreamer/core/priorities.py": (
        "tests/test_priorities.py",
        "tests/test_replay.py",
        "tests/test_dqn.py::test_replay_rebuilds_stacks_and_n_step_targets",
        "tests/test_dqn.py::test_replay_priorities_and_interrupt",
    ),
    "dreamer/agents/efficientzero/learner.py": (
        *LEARNER_TESTS,
        "tests/test_value_targets.py",  # the search and mixed value targets
        "tests/test_dreaming.py",  # the learner's dream loss
        "tests/test_augment.py::test_learner_augments_the_step0_input_and_the_consistency_"
        "targets_only",
    ),
    "dreamer/agents/efficientzero/actor.py": (
        "tests/test_search.py::test_the_actor_is_the_configured_search_at_its_temperature_"
        "and_noise",
        "tests/test_greedy_loops.py",  # search_policy and greedy_policy
    ),
    "dreamer/agents/efficientzero/augment.py": ("tests/test_augment.py",),
    "dreamer/core/shift.py": ("tests/test_augment.py", "tests/test_dqn.py"),
    "dreamer/agents/efficientzero/dreaming.py": ("tests/test_dreaming.py",),
    "dreamer/loops/fused_scan.py": ("tests/test_fused.py",),
    "dreamer/loops/host.py": (
        "tests/test_host_seeds.py",
        "tests/test_loops.py",
        # the host loop's rows against the fused loop's: a row's metric sums over its updates
        "tests/test_fused.py::test_a_fused_run_gives_the_host_loops_data_and_updates",
    ),
    "dreamer/loops/algos.py": ("tests/test_loops.py",),
    # a group's start, resume (together, start-over, one by one) and its record
    "dreamer/loops/groups.py": ("tests/test_host_seeds.py",),
    "dreamer/agents/baselines/dqn/learning.py": ("tests/test_dqn.py",),
    "dreamer/agents/baselines/dqn/replay.py": ("tests/test_dqn.py",),
    "dreamer/agents/baselines/ppo/learning.py": ("tests/test_ppo.py",),
    "dreamer/agents/baselines/networks.py": ("tests/test_dqn.py", "tests/test_ppo.py"),
    "dreamer/agents/baselines/vector.py": ("tests/test_dqn.py", "tests/test_ppo.py"),
    "dreamer/loops/dqn.py": ("tests/test_dqn.py",),
    "dreamer/loops/ppo.py": ("tests/test_ppo.py",),
    "benchmarks/stats.py": ("tests/test_benchmarks.py", "tests/test_stats.py"),
    "dreamer/core/seeds.py": ("tests/test_cpu_devices.py", "tests/test_cli.py::test_seeds_syntax"),
    "dreamer/shell/cpu_devices.py": ("tests/test_cpu_devices.py",),
}
"""Module -> the test files (or test ids) whose tests every mutant of the module runs."""

EXCLUDE_TESTS = ("tests/test_benchmarks.py::test_ale_ids_are_registered",)
"""Tests of a covering file that never reach the module (kept out to save time)."""

DEFAULT_SAMPLE = 20
"""Mutants per module in the default run (under an hour on 2 shared cores)."""
SLOW_MODULES = ("dreamer/loops/fused_scan.py", "dreamer/loops/host.py", "dreamer/loops/groups.py")
"""Modules whose tests are short training runs (a minute or more per mutant)."""
DEFAULT_MODULES = tuple(m for m in COVERAGE if m not in SLOW_MODULES)
"""The default run; the loops' modules are run on request (``--modules``), one at a time."""

REPLICATES = "the default replicate count changes an interval by Monte Carlo noise only"
INT32_FILL = (
    "with x64 off a Python int fills an int32 array: the same values and dtype (weakly "
    "typed, which no result depends on)"
)
TWO_DASHES = (
    "a part with two dashes is refused either way (an int of a dashed string, or too many "
    "values to unpack: both ValueError, the same ConfigError)"
)
ONE_EQUALS = "an option value with '=' in it (a seed list, an algorithm name) is never valid"
FLUSH = "flushing a progress line changes when a pipe shows it, not what the run computes"
NUMPY_FLOAT64 = "numpy's default dtype is float64, the dtype it replaced: the same array"
EQUIVALENT: dict[tuple[str, str], str] = {
    ("dreamer/core/seeds.py", 'first, last = part.split("-", )'): TWO_DASHES,
    ("dreamer/core/seeds.py", 'first, last = part.rsplit("-", 1)'): TWO_DASHES,
    ("dreamer/core/seeds.py", 'first, last = part.split("-", 2)'): TWO_DASHES,
    (
        "dreamer/core/seeds.py",
        "return max((d for d in range(2, min(seeds, devices) + 1) if seeds % d == 0), default=1)",
    ): "1 divides every count: leaving it out of the range leaves max's default, 1",
    ("dreamer/shell/cpu_devices.py", 'value = arg.split("=", 2)[1]'): ONE_EQUALS,
    ("dreamer/shell/cpu_devices.py", 'value = arg.split("=", )[1]'): ONE_EQUALS,
    ("dreamer/shell/cpu_devices.py", 'value = arg.rsplit("=", 1)[1]'): ONE_EQUALS,
    (
        "dreamer/shell/cpu_devices.py",
        'for folder in (a for a in argv[1:] if not a.startswith("XX-XX")):',
    ): "an option read as a folder has no group file: it is skipped as any non-group is",
    (
        "benchmarks/stats.py",
        'low, high = np.asarray(intervals["scores"], dtype=np.float64).reshape(2, -2)',
    ): "numpy reads any negative size in reshape as the one unknown dimension",
    (
        "benchmarks/stats.py",
        "a: ArrayLike, b: ArrayLike, *, reps: int = 2001, confidence: float = 0.95, seed: int = 0",
    ): REPLICATES,
    (
        "benchmarks/stats.py",
        "reps: int = 2001,",
    ): REPLICATES,
    (
        "dreamer/agents/efficientzero/replay.py",
        "step_id=jnp.full(shape, -1, None),",
    ): INT32_FILL,
    (
        "dreamer/agents/efficientzero/dreaming.py",
        "action = jax.random.categorical(key, logits.astype(None)).astype(jnp.int32)",
    ): "JAX's astype(None) is the default float dtype, float32 with x64 off: the same cast",
    (
        "dreamer/agents/efficientzero/dreaming.py",
        "policy_ce = -jnp.sum(tgt.policies * jax.nn.log_softmax(policy_logits, ), -1)",
    ): "jax.nn.log_softmax normalises over axis -1 by default: the same call",
    (
        "dreamer/agents/efficientzero/dreaming.py",
        "if d.value_weight >= 0:",
    ): "at weight 0 the value cross-entropy (finite: it is taken of a log-softmax) is added "
    "times 0: the same loss and gradients",
    (
        "dreamer/agents/efficientzero/learner.py",
        "sums = {k: sums[k] + jnp.asarray(v, ) for k, v in metrics.items()}",
    ): "every metric is a float32 array or a Python float, which x64 off makes float32: the "
    "sums stay float32 either way",
    (
        "dreamer/agents/efficientzero/replay.py",
        "td = jnp.full(cfg.batch_size, n, )",
    ): INT32_FILL,
    (
        "dreamer/core/priorities.py",
        "p = jnp.where(eligible, jnp.asarray(priorities, jnp.float32).ravel(), 2.0) ** alpha",
    ): "the placeholder of ineligible records is zeroed on the next line; any positive value "
    "works (it only keeps 0 ** alpha out)",
    (
        "dreamer/core/priorities.py",
        "return index.astype(jnp.int32), (weights / weights.max()).astype(None)",
    ): "the weights are float32 already (astype(None) is JAX's default float, float32)",
    (
        "dreamer/core/priorities.py",
        "p = jnp.where(eligible, jnp.asarray(priorities, None).ravel(), 1.0) ** alpha",
    ): "with x64 off jnp.asarray makes any float input (float32 arrays, numpy float64) "
    "float32: the same array",
    (
        "dreamer/agents/efficientzero/augment.py",
        "x = frames.astype(None) / 255.0",
    ): "JAX's astype(None) is the default float dtype, float32 with x64 off: the same cast",
    (
        "dreamer/agents/efficientzero/augment.py",
        "z = jax.random.normal(key, (frames.shape[0],), )",
    ): "float32 is jax.random.normal's default dtype (x64 is off)",
    (
        "dreamer/agents/efficientzero/augment.py",
        "for name, sub in zip(names, jax.random.split(key, max(len(names), 2)), strict=False):",
    ): "splitting into more keys than augmentations changes which draw each gets, not its "
    "distribution (the zip stops at the names)",
    (
        "dreamer/agents/baselines/dqn/replay.py",
        "self.priority = np.zeros(shape, dtype=None)",
    ): NUMPY_FLOAT64,
    (
        "dreamer/agents/baselines/dqn/replay.py",
        "self.max_priority = np.ones((), dtype=None)",
    ): NUMPY_FLOAT64,
    (
        "dreamer/agents/baselines/dqn/replay.py",
        "key = jax.random.PRNGKey(int(rng.integers(3**31 - 1)))",
    ): "a seed drawn from a wider range gives other draws from the same distribution (JAX "
    "takes any 64-bit seed)",
    (
        "dreamer/core/shift.py",
        'padded = jnp.pad(frames, ((0, 0), (0, 1), (pad, pad), (pad, pad), (0, 0)), mode="edge")',
    ): "padding after the last frame: the crop takes the t frames from 0 and drops it",
    (
        "dreamer/core/shift.py",
        'padded = jnp.pad(frames, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 1)), mode="edge")',
    ): "padding after the last channel: the crop takes the c channels from 0 and drops it",
    (
        "dreamer/core/shift.py",
        "return jax.lax.dynamic_slice(window, (0, offset[0], offset[2], 0), (t, hh, ww, c))",
    ): "JAX clamps an index past the end: offset[2] of a 2-vector reads offset[1]",
    (
        "dreamer/core/shift.py",
        "return jax.lax.dynamic_slice(window, (0, offset[0], offset[1], 1), (t, hh, ww, c))",
    ): "dynamic_slice clamps a start so that the slice fits: channel 1 of a c-channel crop "
    "of c channels starts at 0",
    (
        "dreamer/agents/baselines/vector.py",
        "out = np.array(next_obs, )",
    ): "np.array copies by default: copy=True is its default",
    (
        "dreamer/loops/ppo.py",
        'venv = make_vector_env(cfg.env, num_envs=1, seed=None, mode="eval")',
    ): "that env is built only to read its spaces and closed unstepped: its seed is never used",
    (
        "dreamer/loops/dqn.py",
        'venv = make_vector_env(cfg.env, num_envs=1, seed=None, mode="eval")',
    ): "that env is built only to read its spaces and closed unstepped: its seed is never used",
    (
        "dreamer/loops/dqn.py",
        "final = final_observations(next_obs, info, done) if (done.any()) or True else next_obs",
    ): "with no episode ended, final_observations returns a copy of next_obs: the condition "
    "only skips that copy",
    (
        "dreamer/loops/ppo.py",
        '"obs": np.zeros(shape + space.shape, None),',
    ): "a float64 buffer holds the same values (uint8 and float32 observations convert exactly) "
    "and the jitted update casts them back to float32: only the buffer's memory grows",
    ("dreamer/loops/host.py", "print(line, )"): FLUSH,
    ("dreamer/loops/host.py", "print(warning, )"): FLUSH,
    ("dreamer/loops/host.py", "print(line, flush=None)"): FLUSH,
    ("dreamer/loops/host.py", "print(warning, flush=None)"): FLUSH,
    (
        "dreamer/loops/host.py",
        "for book, metrics in zip(self.books, self.pop_metrics(), ):",
    ): "pop_metrics gives one row of metrics per book by construction: strict only guards it",
}
"""(module, mutated line as mutmut writes it, stripped) -> why the mutant cannot be killed."""

CACHE = {"DREAMER_CACHE_DIR": str(REPO / "results" / "mutation" / "jax-cache")}
"""A compilation cache of its own: mutants' programs stay out of the user's cache."""

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests"}
for _code in (36, -24, 24, 152, 255):
    STATUS[_code] = "timeout"
for _code in (-11, -9):
    STATUS[_code] = "killed"  # a crash of the test process is a detection too


def module_name(path: str) -> str:
    return path[: -len(".py")].replace("/", ".")


# -- mutants ------------------------------------------------------------------------------------
def generate() -> None:
    """Write ``mutants/`` (sources, mutants, ``.meta`` files) with mutmut's own generator."""
    os.chdir(REPO)
    from mutmut import __main__ as mm

    mm.makedirs(Path("mutants"), exist_ok=True)
    mm.copy_src_dir()
    mm.copy_also_copy_files()
    mm.setup_source_paths()
    for module in COVERAGE:
        # A module mapped after mutmut first copied it unmutated: mutmut takes the copy (newer
        # than its source) for an up-to-date mutant file with no mutants, so it goes.
        copy = Path("mutants") / module
        if copy.exists() and not copy.with_name(copy.name + ".meta").exists():
            copy.unlink()
    mm.create_mutants(max(1, os.cpu_count() or 1))


def read_meta(module: str) -> dict[str, Any]:
    path = MUTANTS / (module + ".meta")
    return json.loads(path.read_text()) if path.exists() else {"exit_code_by_key": {}}


def mutant_diffs(module: str) -> dict[str, tuple[str, str]]:
    """mutant name -> (original line, mutated line), both stripped (first changed line)."""
    text = (MUTANTS / module).read_text()
    lines = text.splitlines()
    funcs: dict[str, str] = {}
    for node in ast.walk(ast.parse(text)):  # a module's file holds thousands of mutants
        if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
            funcs[node.name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    out = {}
    for name, source in funcs.items():
        base, _, index = name.rpartition("__mutmut_")
        if index == "orig":
            continue
        orig = funcs.get(base + "__mutmut_orig", "").splitlines()
        new = source.splitlines()
        removed = [
            line[1:].strip() for line in difflib.ndiff(orig[1:], new[1:]) if line[:2] == "- "
        ]
        added = [line[1:].strip() for line in difflib.ndiff(orig[1:], new[1:]) if line[:2] == "+ "]
        out[f"{module_name(module)}.{name}"] = (
            " / ".join(removed) or "(none)",
            " / ".join(added) or "(removed)",
        )
    return out


def choose(modules: Sequence[str], sample: int | None, seed: int) -> dict[str, list[str]]:
    """Per module, the mutants to run: all, or ``sample`` drawn with ``seed``."""
    chosen = {}
    for module in modules:
        names = sorted(read_meta(module)["exit_code_by_key"])
        if sample is not None and len(names) > sample:
            names = sorted(random.Random(f"{seed}:{module}").sample(names, sample))
        chosen[module] = names
    return chosen


# -- tests --------------------------------------------------------------------------------------
def test_ids(modules: Sequence[str], without: Sequence[str] = ()) -> tuple[list, dict]:
    """All node ids of the covering test files (collected in ``mutants/``; mutmut's
    ``pytest_add_cli_args_test_selection`` must name the same files), and per module the ids
    of the tests that cover it, less those of the files ``without``."""
    # every file of mutmut's test selection (setup.cfg): a file it lists whose tests are
    # missing from the stats makes mutmut trace the whole suite again
    files = {t.split("::")[0] for m in COVERAGE for t in COVERAGE[m]}
    wanted = sorted(f for f in files if (REPO / f).exists())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not slow",  # minutes per test: never a mutant's killer (the default suite's rule)
            *wanted,
        ],
        cwd=MUTANTS,
        capture_output=True,
        text=True,
        env=dict(os.environ, MUTANT_UNDER_TEST="list_all_tests"),
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    if not ids:
        raise SystemExit(f"collecting the covering tests failed:\n{done.stdout}\n{done.stderr}")
    by_module = {}
    for m in modules:
        prefixes = COVERAGE[m]
        by_module[m] = [
            i
            for i in ids
            if any(i == p or i.startswith(p + "::") or i.startswith(p + "[") for p in prefixes)
            and not i.startswith(EXCLUDE_TESTS)
            and i.split("::")[0] not in without
        ]
    return ids, by_module


def durations(ids: Sequence[str], cache: Path, measure: Sequence[str]) -> dict[str, float]:
    """Seconds per test from one clean run (cached); mutmut's timeouts scale with them. Only
    the tests of ``measure`` (those the mutants will run) are timed; the others of ``ids``
    get a placeholder, as mutmut's stats must still list them."""
    known = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [i for i in measure if i not in known]
    if missing:
        report = cache.with_suffix(".jsonl")
        plugin = "tools.mutation"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                plugin,
                "-p",
                "no:cacheprovider",
                *missing,
            ],
            cwd=REPO,
            check=True,
            env=dict(os.environ, MUTATION_TIMER_OUT=str(report), **CACHE),
        )
        for line in report.read_text().splitlines():
            row = json.loads(line)
            known[row["id"]] = row["seconds"]
        report.unlink()
        cache.write_text(json.dumps(known, indent=1, sort_keys=True))
    return {i: known.get(i, 10.0) for i in ids}


def write_stats(by_module: dict[str, list[str]], seconds: dict[str, float]) -> None:
    """mutmut's stats file with our module -> tests mapping (so it skips its own tracing)."""
    from mutmut.mutation.file_mutation import compute_function_hashes

    tests = {}
    for module, ids in by_module.items():
        hashes = compute_function_hashes((REPO / module).read_text())
        for key in hashes:
            tests[f"{module_name(module)}.{key}"] = sorted(ids)
    stats_path = MUTANTS / "mutmut-stats.json"
    stats_path.write_text(
        json.dumps(
            {
                "tests_by_mangled_function_name": tests,
                "duration_by_test": seconds,
                "stats_time": 0.0,
                "function_hashes": {},
                "function_dependencies": {},
                "config_fingerprint": {},
                "watched_file_hashes": {},
                "git_commit": None,
            },
            indent=1,
        )
    )


def run_mutants(names: Sequence[str], jobs: int) -> None:
    """``mutmut run`` on exactly ``names`` (results land in the ``.meta`` files)."""
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(jobs), *names]
    subprocess.run(command, cwd=REPO, check=False, env=dict(os.environ, **CACHE))


def pytest_runtest_logreport(report: Any) -> None:
    """pytest hook (``-p tools.mutation``): append each test's total seconds."""
    out = os.environ.get("MUTATION_TIMER_OUT")
    if out and report.when == "teardown":
        _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration
        with open(out, "a") as f:
            f.write(json.dumps({"id": report.nodeid, "seconds": _seconds[report.nodeid]}) + "\n")
    elif out:
        _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


_seconds: dict[str, float] = {}


# -- report -------------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(chosen: dict[str, list[str]]) -> dict[str, Any]:
    modules = {}
    for module, names in chosen.items():
        codes = read_meta(module)["exit_code_by_key"]
        diffs = mutant_diffs(module)
        counts = dict.fromkeys(
            ("killed", "timeout", "survived", "equivalent", "no tests", "not run"), 0
        )
        survivors = []
        for name in names:
            code = codes.get(name)
            status = "not run" if code is None else STATUS.get(code, "survived")
            before, after = diffs.get(name, ("?", "?"))
            if status == "survived":
                reason = EQUIVALENT.get((module, after))
                if reason:
                    status = "equivalent"
                survivors.append(
                    {"name": name, "before": before, "after": after, "equivalent": reason}
                )
            counts[status] += 1
        modules[module] = with_score(
            {"generated": len(codes), "tested": len(names), **counts, "survivors": survivors}
        )
    return modules


def with_score(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its score, (killed + timeout) / (those + survived), and the score's 95%
    Wilson interval."""
    detected = row["killed"] + row["timeout"]
    scored = detected + row["survived"]
    return {
        **row,
        "score": detected / scored if scored else None,
        "score_95": list(wilson(detected, scored)),
    }


def explained(module: str, row: dict[str, Any]) -> dict[str, Any]:
    """An earlier run's ``row`` with the survivors that ``EQUIVALENT`` explains since then
    counted as equivalent (its other counts, date and commit unchanged)."""
    row = {**row, "survivors": [dict(s) for s in row["survivors"]]}
    for survivor in row["survivors"]:
        reason = EQUIVALENT.get((module, survivor["after"]))
        if reason and not survivor["equivalent"]:
            survivor["equivalent"] = reason
            row["survived"] -= 1
            row["equivalent"] += 1
    return with_score(row)


def merge(out: Path, modules: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The modules of earlier runs in ``out/report.json`` with this run's replacing theirs;
    each module keeps the date, commit and command of the run that scored it."""
    stamp = {k: meta[k] for k in ("date", "commit", "command", "sample", "seed")}
    merged: dict[str, Any] = {}
    path = out / "report.json"
    if path.exists():
        merged = json.loads(path.read_text()).get("modules", {})
    merged = {module: explained(module, m) for module, m in merged.items()}
    for module, m in modules.items():
        merged[module] = {**m, **stamp, "tests": list(COVERAGE[module])}
    order = list(COVERAGE)
    return dict(sorted(merged.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def scored_already(out: Path, module: str, sample: str, seed: int) -> bool:
    """Whether ``out/report.json`` scores ``module`` with this sample and seed, against the
    tests that cover it now, at a commit since which neither the module nor those tests have
    changed."""
    path = out / "report.json"
    if not path.exists():
        return False
    row = json.loads(path.read_text()).get("modules", {}).get(module)
    if not row or str(row.get("sample")) != str(sample) or row.get("seed") != seed:
        return False
    if not row.get("generated") or row.get("not run"):
        return False  # mutmut made no mutant of it, or did not run them all: not a score
    if row.get("tests") != list(COVERAGE[module]):
        return False  # scored against other tests, or a row that does not name its tests
    commit = str(row.get("commit", ""))
    if not commit or commit.endswith("+changes"):
        return False
    same = subprocess.run(
        ["git", "diff", "--quiet", commit, "--", module, *COVERAGE[module]], cwd=REPO
    )
    return same.returncode == 0


SOURCES = ("dreamer", "benchmarks", "envs", "experiments", "tests", "setup.cfg", "pyproject.toml")
"""What mutmut copies into ``mutants/`` (``source_paths``, ``also_copy``, the tests, the
config files): with uncommitted edits to these, the commit is not what the mutants were made
from; edits elsewhere (the docs, the README) change no mutant and no test."""


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCES],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (done.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def write_report(modules: dict[str, Any], out: Path, meta: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    modules = merge(out, modules, meta)
    (out / "report.json").write_text(json.dumps({"meta": meta, "modules": modules}, indent=1))
    lines = [
        "# Mutation testing report",
        "",
        f"Newest run: `{meta['command']}`; mutmut {meta['mutmut']}, {meta['jobs']} workers, "
        f"wall time {meta['wall_minutes']:.0f} min on {meta['machine']}. Modules are scored "
        "one run at a time (each row names its run's date, commit and sample; seed 0 draws "
        "the same mutants from the same sources).",
        "",
        "Score = (killed + timeout) / (tested - equivalent); the interval is the 95% Wilson "
        "interval of that proportion (the sample's uncertainty about the whole module).",
        "",
        "| module | mutants | tested | killed | timeout | survived | equivalent | score | 95% "
        "| date, commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for module, m in modules.items():
        score = "—" if m["score"] is None else f"{100 * m['score']:.0f}%"
        low, high = m["score_95"]
        lines.append(
            f"| `{module}` | {m['generated']} | {m['tested']} | {m['killed']} | {m['timeout']} "
            f"| {m['survived']} | {m['equivalent']} | {score} | {100 * low:.0f}–{100 * high:.0f}% "
            f"| {m.get('date', '?')}, `{m.get('commit', '?')}` |"
        )
    lines += ["", "## Survivors", ""]
    for module, m in modules.items():
        if not m["survivors"]:
            continue
        lines += [f"### `{module}`", ""]
        for s in m["survivors"]:
            why = f" — equivalent: {s['equivalent']}" if s["equivalent"] else ""
            lines.append(f"- `{s['name']}`: `{s['before']}` → `{s['after']}`{why}")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation", description=__doc__)
    parser.add_argument("--modules", default=",".join(DEFAULT_MODULES), help="comma-separated")
    parser.add_argument(
        "--without",
        default="",
        help="test files to leave out (comma-separated), e.g. to score "
        "the suite as it was before them",
    )
    parser.add_argument("--sample", default=str(DEFAULT_SAMPLE), help="mutants per module, or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="results/mutation")
    parser.add_argument("--rerun", choices=("none", "survived", "all"), default="all")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--skip-scored",
        action="store_true",
        help="leave out modules the report already scores with this sample and seed, "
        "unchanged (module and tests) since",
    )
    args = parser.parse_args(argv)
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in modules if m not in COVERAGE]
    if unknown:
        parser.error(f"no coverage mapping for {unknown}; known: {', '.join(COVERAGE)}")
    sample = None if args.sample == "all" else int(args.sample)
    out = REPO / args.out
    if args.skip_scored:
        done = [m for m in modules if scored_already(out, m, args.sample, args.seed)]
        modules = [m for m in modules if m not in done]
        for m in done:
            print(f"{m}: scored already (unchanged since); skipped", flush=True)
        if not modules:
            return 0
    start, commit = time.time(), git_commit()  # the sources the mutants are made from
    if not args.report_only:
        generate()
        without = [w.strip() for w in args.without.split(",") if w.strip()]
        ids, by_module = test_ids(modules, without)
        out.mkdir(parents=True, exist_ok=True)
        measure = sorted({i for module_ids in by_module.values() for i in module_ids})
        write_stats(by_module, durations(ids, out / "durations.json", measure))
    chosen = choose(modules, sample, args.seed)
    if not args.report_only and args.rerun != "none":
        names = [
            n
            for module, ns in chosen.items()
            for n in ns
            if args.rerun == "all"
            or STATUS.get(read_meta(module)["exit_code_by_key"].get(n), "survived") == "survived"
        ]
        print(f"running {len(names)} mutants of {len(modules)} modules", flush=True)
        if names:
            run_mutants(names, args.jobs)
    from importlib.metadata import version

    from benchmarks.machine import describe_machine

    machine = describe_machine(with_jax=False)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "command": "python -m tools.mutation " + " ".join(argv or sys.argv[1:]),
        "mutmut": version("mutmut"),
        "sample": args.sample,
        "without": args.without,
        "seed": args.seed,
        "jobs": args.jobs,
        "wall_minutes": (time.time() - start) / 60,
        "machine": f"{machine['processor']}, {machine['cpu_count']} CPUs",
    }
    path = write_report(summarise(chosen), out, meta)
    print(path.read_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
