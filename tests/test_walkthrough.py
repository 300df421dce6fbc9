"""The commands of README.md and docs/*.md: every one checked, the walkthrough run as written.

``test_documented_command`` (default suite) takes every line of every ``bash`` block of the
README and the docs and checks it as far as it can without running it: a ``python -m``
program parses its arguments with its own parser (the ``dreamer`` CLI then also builds the
config, so presets and ``--set`` keys are checked), a ``make`` target exists in the Makefile,
an install names extras that setup.cfg has. ``test_relative_links_resolve`` checks every
relative link and its anchor.

``test_walkthrough_runs_as_written`` runs docs/own-env.md ("Your own environment") as written
on a tiny budget. The module and the commands are read from the page, so the test fails when
the page and the code part ways. Only the budget changes: ``--preset cartpole`` becomes
``--preset debug`` (the same loop, seconds long), ``resume --steps`` extends by 100 steps, and
the benchmark gets ``--preset debug --steps 200 --seeds 0``. Commands run in a fresh project
folder, as a user would run them there; ``python`` is this interpreter. A persistent XLA cache
lets runs with the same shapes skip compilation.

Eleven processes, three of them compiling EfficientZero (one with the conv trunk), take a few
minutes on 2 cores: that test is marked slow (``make test-all``). Each item it walks through
has a fast test in the default suite (test_cli, test_envs, test_runlog, test_benchmarks).
"""

import argparse
import importlib
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, walkthrough

from dreamer import cli
from dreamer.shell import tensorboard_events


def tiny(argv: list[str]) -> list[str]:
    """The same command on a tiny budget (see the module docstring)."""
    argv = [
        "debug" if a == "cartpole" and argv[i - 1] == "--preset" else a for i, a in enumerate(argv)
    ]
    if argv[:4] == ["python", "-m", "dreamer", "resume"]:
        argv[argv.index("--steps") + 1] = "300"
    if argv[:3] == ["python", "-m", "benchmarks.sample_efficiency"]:
        argv += ["--preset", "debug", "--steps", "200", "--seeds", "0"]
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


@pytest.mark.slow
def test_walkthrough_runs_as_written(user_project):
    tmp_path = user_project
    commands = [shlex.split(line) for line in walkthrough()[1]]
    env = dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONPATH="",  # the user's folder is found because commands run in it
    )
    outputs = {}
    for argv in commands:
        proc = subprocess.run(
            tiny(argv), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (
            f"{shlex.join(argv)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
        outputs[shlex.join(argv)] = proc.stdout

    runs = tmp_path / "runs"
    for name in ("grid", "grid_image", "grid4", "grid_named", "grid_gym"):
        assert (runs / name / "summary.json").is_file(), name
    config = json.loads((runs / "grid_named" / "config.json").read_text())["config"]
    assert config["env"]["imports"] == ["my_pkg.my_envs"] and config["env"]["id"] == "grid"
    assert json.loads((runs / "grid4" / "config.json").read_text())["config"]["env"]["options"] == {
        "size": 4
    }
    videos = sorted((runs / "grid" / "videos").rglob("*.mp4"))
    assert [v.name for v in videos] == ["episode-0.mp4"] and videos[0].stat().st_size > 0
    summary = json.loads((runs / "grid" / "summary.json").read_text())
    assert summary["env_steps"] == 300  # extended by `resume --steps`
    steps = [s for tag, s, _ in tensorboard_events.scalars(runs / "grid") if tag == "charts/SPS"]
    assert len(steps) == len(set(steps))  # no step written twice across the resume

    report = tmp_path / "results/sample_efficiency/my_pkg.my_envs-make_grid/report.md"
    text = report.read_text()
    assert text.startswith("# Sample efficiency: my_pkg.my_envs:make_grid")
    env_rows = [line for line in text.splitlines() if "| `my_pkg.my_envs:make_grid` |" in line]
    assert len(env_rows) == 1 and "| 0.9 |" in env_rows[0]  # the threshold of --threshold
    for algo in ("efficientzero", "dqn", "ppo"):
        assert f"| {algo} (debug) |" in text


# -- every command and link of the README and the docs ----------------------------------------
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(page, line) for every line of every ``bash`` block of the README and the docs."""
    found = []
    for page in PAGES:
        for code in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            for line in code.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    found.append((page.relative_to(ROOT).as_posix(), line.strip()))
    return found


class Parsed(Exception):
    """Raised by ``ArgumentParser.parse_args`` once it has parsed: stops ``main`` there."""


def parse_only(module_name: str, args: list[str], monkeypatch) -> argparse.Namespace:
    """``module.main(args)`` up to its argument parsing (argparse errors exit with 2)."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **k):
        raise Parsed(parse(self, *a, **k))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(Parsed) as parsed:
        importlib.import_module(module_name).main(args)
    return parsed.value.args[0]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def setup_extras() -> set[str]:
    text = (ROOT / "setup.cfg").read_text()
    section = text[text.index("[options.extras_require]") :].split("\n[", 1)[0]
    return set(re.findall(r"^(\w[\w-]*) =", section, flags=re.M))


@pytest.mark.parametrize(("page", "line"), documented_commands())
def test_documented_command(page, line, monkeypatch):
    argv = shlex.split(line, comments=True)
    if argv[0] == "dreamer":  # the console script takes what python -m dreamer takes
        argv = ["python", "-m", "dreamer", *argv[1:]]
    if argv[0] == "make":
        names = [a for a in argv[1:] if "=" not in a]
        assert set(names) <= make_targets(), f"{page}: {line}: no such make target"
    elif argv[:2] == ["python", "-m"] and argv[2] == "dreamer":
        args = cli.parser().parse_args(argv[3:])
        if args.command in ("train", "show-config"):
            cli.build_config(args)  # the preset exists, every --set key and value is valid
    elif argv[:2] == ["python", "-m"] and argv[2] == "pytest":
        assert all((ROOT / a).exists() for a in argv[3:] if not a.startswith("-")), line
    elif argv[:2] == ["python", "-m"]:
        assert argv[2].split(".")[0] in ("benchmarks", "experiments", "tools"), line
        parse_only(argv[2], argv[3:], monkeypatch)
    elif argv[0].endswith("pip") and argv[1] == "install":
        extras = re.findall(r"\.\[([\w,-]+)\]", line)
        assert {e for group in extras for e in group.split(",")} <= setup_extras(), line
    elif argv[0].endswith("python") and argv[1] == "-c":
        compile(argv[2], "<command>", "exec")
    else:
        pytest.fail(f"{page}: a command of a kind this test cannot check: {line}")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https://, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                if anchor not in {github_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []
    assert all((ROOT / "README.md").read_text().count(f"docs/{p.name}") for p in PAGES[1:])
