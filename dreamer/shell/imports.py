"""Importing the user's modules and the project's own top-level packages (shell code).

- ``import_modules``: the modules of ``env.imports`` (``--import my_pkg.my_envs``), which may
  register short env names; every process of a run (train, resume, eval, benchmarks) imports
  them again from ``config.json``.
- ``project_package``: ``envs`` or ``experiments``, checked to be the project's own and not a
  package of the same name in the user's project that shadows it.
- ``add_working_directory``: puts the current folder on the import path, as
  ``python -m dreamer`` does, so that the ``dreamer`` console script finds the same modules.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from dreamer.core.configtree import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds ``dreamer/`` and the project's ``envs/``, ``experiments/`` and
``benchmarks/`` (the repository, or site-packages when installed)."""


def import_modules(names: Iterable[str]) -> list[ModuleType]:
    """Imports each module of ``names`` (``env.imports``), with an error that says how to
    make a module importable."""
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as e:
            top = name.split(".")[0]
            clash = _clash(top)
            raise ConfigError(
                f"cannot import module {name!r} (--import / env.imports): {e}. "
                + (
                    clash
                    or f"The module must be importable: run from the folder that holds {top!r}, "
                    "or add that folder to PYTHONPATH (PYTHONPATH=/path/to/project dreamer "
                    "train ...), or pip install your package."
                )
            ) from e
    return modules


def project_package(name: str) -> ModuleType:
    """The project's own top-level package ``name`` (``envs``, ``experiments``).

    Raises a ConfigError naming the clash when ``import name`` finds another package of that
    name first (the user's own ``envs/`` folder, say).
    """
    module = importlib.import_module(name)
    where = getattr(module, "__file__", None)
    expected = PROJECT_ROOT / name / "__init__.py"
    if where is None or Path(where).resolve() != expected:
        found = Path(where).parent if where else list(getattr(module, "__path__", []))
        raise ConfigError(
            f"`import {name}` found {found}, not the dreamer project's package {expected.parent}: "
            f"your project has its own top-level package named {name!r}, which clashes with the "
            "dreamer project's (it installs top-level packages named 'envs', 'experiments' and "
            f"'benchmarks'). Rename yours (for example 'my_{name}') and use the new name in "
            "--env / --import."
        )
    return module


def add_working_directory() -> None:
    """Puts the current folder first on ``sys.path`` unless it is already there."""
    cwd = os.getcwd()
    if not any(os.path.abspath(entry or ".") == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def _clash(top: str) -> str | None:
    try:
        from envs.registry import package_clash
    except ImportError:  # the project's envs is itself shadowed; project_package says so
        return None
    return package_clash(top)
