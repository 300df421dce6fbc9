import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Compiled programs are shared between tests (and with the CLI runs of the e2e tests) through
# the persistent compilation cache; keyed by XLA on the program, it never serves a stale one.
from dreamer.shell.compilation import enable_compilation_cache  # noqa: E402

enable_compilation_cache()

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "docs" / "own-env.md"


def walkthrough() -> tuple[str, list[str]]:
    """The ``my_pkg/my_envs.py`` source and the shell lines of the walkthrough
    docs/own-env.md ("Your own environment")."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", WALKTHROUGH.read_text(), flags=re.S)
    (module,) = [code for lang, code in blocks if lang == "python"]
    lines = [
        line
        for lang, code in blocks
        if lang == "bash"
        for line in code.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return module, lines


@pytest.fixture
def user_project(tmp_path):
    """A user's project folder holding the walkthrough's ``my_pkg/my_envs.py``."""
    package = tmp_path / "my_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "my_envs.py").write_text(walkthrough()[0])
    return tmp_path


@pytest.fixture
def evaluation_seeds(monkeypatch):
    """The env seed of every greedy evaluation, training's (through the run book) and a
    loop's ``evaluate`` of a checkpoint, in call order (the evaluations still run)."""
    import dreamer.loops.dqn
    import dreamer.loops.ppo
    import dreamer.shell.runbook

    seeds = []
    for module in (dreamer.shell.runbook, dreamer.loops.dqn, dreamer.loops.ppo):

        def recording(*args, _evaluate=module.evaluate_policy, **kwargs):
            seeds.append(kwargs["seed"])
            return _evaluate(*args, **kwargs)

        monkeypatch.setattr(module, "evaluate_policy", recording)
    return seeds
