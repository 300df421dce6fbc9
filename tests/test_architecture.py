"""The package layering of docs/architecture.md, checked on every import of every module.

    core  <-  agents (one folder each)  <-  loops  <-  cli
      ^                                       |
      +------------  shell  <-----------------+

An import counts wherever it is written (module top or inside a function), so a lazy import
cannot hide a dependency that runs the wrong way.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from a import b`` gives ``a.b`` when
    ``a.b`` is a module of ours, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                as_module = ROOT / Path(*sub.split("."))
                is_module = as_module.with_suffix(".py").exists() or as_module.is_dir()
                found.add(sub if is_module else node.module)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def agent_of(name: str) -> str | None:
    """The agent folder a module belongs to (``dreamer.agents.baselines.dqn``), or the shared
    package of a family (``dreamer.agents.baselines``)."""
    parts = name.split(".")
    if parts[:2] != ["dreamer", "agents"] or len(parts) < 3:
        return None
    if parts[2] == "baselines" and len(parts) > 3 and parts[3] in ("dqn", "ppo"):
        return ".".join(parts[:4])
    return ".".join(parts[:3])


def allowed(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import ``imported`` (see the module docstring)."""
    if not within(imported, "dreamer"):  # only the CLI reads presets; agents make no envs
        if any(within(imported, top) for top in ("benchmarks", "tools", "experiments", "tests")):
            return within(importer, "dreamer.cli") and within(imported, "experiments")
        return not (within(imported, "envs") and within(importer, "dreamer.agents"))
    if within(importer, "dreamer.core"):
        return within(imported, "dreamer.core")
    if within(importer, "dreamer.shell"):
        return within(imported, "dreamer.core") or within(imported, "dreamer.shell")
    if within(importer, "dreamer.agents"):
        if within(imported, "dreamer.core") or imported in ("dreamer.agents", "dreamer"):
            return True
        mine, theirs = agent_of(importer), agent_of(imported)
        family = "dreamer.agents.baselines"
        return theirs == mine or (theirs == family and within(mine, family))
    if within(importer, "dreamer.loops"):
        loops = {"dreamer.loops.host": 0, "dreamer.loops.fused": 1, "dreamer.loops.fused_scan": 1}
        if importer in loops and imported in loops and loops[importer] != loops[imported]:
            return False  # the host loop and the fused loop never import each other
        return not within(imported, "dreamer.cli") and imported != "dreamer.config"
    return True  # dreamer, dreamer.cli, dreamer.__main__, the dreamer.config re-exports


def wrong_way() -> list[tuple[str, str]]:
    """(importer, imported) for every import of ``dreamer`` that breaks the layering."""
    found = []
    for path in sorted((ROOT / "dreamer").rglob("*.py")):
        importer = module_name(path)
        found += [(importer, name) for name in sorted(imports(path)) if not allowed(importer, name)]
    return found


def test_every_import_runs_one_way():
    assert wrong_way() == []


def test_no_agent_imports_another_and_envs_import_no_dreamer():
    for path in sorted((ROOT / "envs").rglob("*.py")):
        assert not any(within(name, "dreamer") for name in imports(path)), path


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("dreamer.core.config", "dreamer.shell.runlog"),
        ("dreamer.shell.runbook", "dreamer.agents.efficientzero.config"),
        ("dreamer.agents.efficientzero.learner", "dreamer.shell.checkpoint"),
        ("dreamer.agents.efficientzero.replay", "dreamer.agents.baselines.dqn.replay"),
        ("dreamer.agents.baselines.dqn.replay", "dreamer.agents.baselines.ppo.learning"),
        ("dreamer.agents.baselines.networks", "dreamer.agents.baselines.dqn.networks"),
        ("dreamer.agents.efficientzero.builder", "dreamer.loops.host"),
        ("dreamer.loops.fused", "dreamer.loops.host"),
        ("dreamer.loops.host", "dreamer.loops.fused"),
        ("dreamer.loops.groups", "dreamer.cli"),
        ("dreamer.shell.evaluation", "benchmarks.runs"),
        ("dreamer.agents.efficientzero.builder", "envs"),
    ],
)
def test_the_rules_refuse_an_import_the_wrong_way(importer, imported):
    assert not allowed(importer, imported)


def test_the_mutation_tools_coverage_map_and_mutmuts_selection_agree():
    """mutmut traces the whole suite again when its test selection (setup.cfg) names a file
    the coverage map does not, and mutates only the files of ``only_mutate``."""
    import configparser

    from tools.mutation import COVERAGE

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    selection = cfg["mutmut"]["pytest_add_cli_args_test_selection"].split()
    mutated = cfg["mutmut"]["only_mutate"].split()
    assert sorted(selection) == sorted({t.split("::")[0] for ts in COVERAGE.values() for t in ts})
    assert sorted(mutated) == sorted(COVERAGE)
    assert all((ROOT / path).exists() for path in [*selection, *mutated])


def test_a_mutation_queue_skips_only_modules_scored_on_unchanged_sources(tmp_path):
    import json
    import subprocess

    from tools.mutation import COVERAGE, scored_already

    module = "dreamer/loops/algos.py"
    assert not scored_already(tmp_path, module, "30", 0)  # no report yet
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    first = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not head or not first:
        pytest.skip("needs the project's git history")

    def report(generated=18, **row):
        row = {"generated": generated, **row}
        (tmp_path / "report.json").write_text(json.dumps({"modules": {module: row}}))

    tests = list(COVERAGE[module])
    report(sample="30", seed=0, commit=first[0][:7], tests=tests)  # the module did not exist
    assert not scored_already(tmp_path, module, "30", 0)
    report(sample="30", seed=0, commit=head + "+changes", tests=tests)  # uncommitted sources
    assert not scored_already(tmp_path, module, "30", 0)
    report(sample="20", seed=0, commit=head, tests=tests)
    assert not scored_already(tmp_path, module, "30", 0)
    assert not scored_already(tmp_path, module, "20", 1)
    edited = subprocess.run(  # uncommitted edits to the module or its tests count as changes
        ["git", "status", "--porcelain", module, *COVERAGE[module]],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    report(sample="20", seed=0, commit=head, tests=tests)
    assert scored_already(tmp_path, module, "20", 0) == (not edited)
    report(sample="20", seed=0, commit=head, tests=tests, generated=0)  # mutmut made none
    assert not scored_already(tmp_path, module, "20", 0)
    report(sample="20", seed=0, commit=head, tests=tests, **{"not run": 20})  # none ran
    assert not scored_already(tmp_path, module, "20", 0)
    report(sample="20", seed=0, commit=head, tests=["tests/test_fewer.py"])  # other tests then
    assert not scored_already(tmp_path, module, "20", 0)
    report(sample="20", seed=0, commit=head)  # a row that does not name its tests
    assert not scored_already(tmp_path, module, "20", 0)


def test_a_reason_written_after_a_run_counts_its_survivor_as_equivalent():
    from tools.mutation import explained

    row = {
        "killed": 27,
        "timeout": 1,
        "survived": 2,
        "equivalent": 0,
        "survivors": [
            {
                "name": "m1",
                "before": "reps: int = 2000,",
                "after": "reps: int = 2001,",
                "equivalent": None,
            },
            {"name": "m2", "before": "x = 1", "after": "x = 2", "equivalent": None},
        ],
    }
    again = explained("benchmarks/stats.py", row)
    assert (again["survived"], again["equivalent"]) == (1, 1)
    assert again["score"] == 28 / 29
    assert again["survivors"][0]["equivalent"] and not again["survivors"][1]["equivalent"]
    assert row["survived"] == 2 and row["survivors"][0]["equivalent"] is None  # a copy
    assert explained("benchmarks/stats.py", again) == again  # counted once
