"""The host's CPU as one JAX device per core (shell code), asked for before JAX starts.

XLA's CPU backend is one device whose operations share a thread pool, and the small matrix
products of vector-env networks use a second core poorly: one update of the ``default``
preset on CartPole takes 23.8 ms on one thread and 17.8 ms on two. Seen as one device per
core, the CPU runs the shards of a computation side by side, and the fused loop splits its
seeds over the local devices (``dreamer.core.sharding.split_seeds``): 10 seeds of that preset
train 1.13 times as fast on two devices as on one, on 2 cores (docs/jax-envs.md).

A computation on one device runs 5-8% slower when the CPU is split (15.8 ms against 15.0 ms
per update), so only commands that train seeds together ask for it, and only where the seeds
split: ``python -m dreamer`` with ``train --seeds`` or ``resume`` of a group folder
(``seeds_together``), and ``python -m benchmarks.seeds --paths fused``.
``request_cpu_devices`` adds ``--xla_force_host_platform_device_count=N`` to ``XLA_FLAGS``, N
the most devices that hold whole seeds on the usable cores (10 seeds on 2 cores: 2; 5 seeds
on 2 cores: none asked for), unless ``XLA_FLAGS`` already sets a count;
``DREAMER_CPU_DEVICES=N`` chooses N (1: the CPU as one device). GPU and TPU backends are not
affected (the CPU devices hold only what is placed on them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from dreamer.core.configtree import ConfigError
from dreamer.core.seeds import devices_for, parse_seeds

FLAG = "--xla_force_host_platform_device_count"
VARIABLE = "DREAMER_CPU_DEVICES"
GROUP_FILE = "group.json"
"""``dreamer.loops.groups.GROUP_FILE``, named here without importing JAX (a test checks)."""


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (the last one)."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def seeds_together(argv: Sequence[str]) -> int:
    """How many seeds the CLI arguments ``argv`` train in one process: those of ``train
    --seeds`` for EfficientZero (whose seeds train together), or those of a fused group
    folder's record for ``resume``; 0 for anything else (seeds the CLI will refuse
    included: it says why itself)."""
    if argv and argv[0] == "train":
        spec = _option(argv, "--seeds")
        if spec is None or _option(argv, "--algo") not in (None, "efficientzero"):
            return 0
        try:
            return len(parse_seeds(spec))
        except ConfigError:
            return 0
    if not argv or argv[0] != "resume":
        return 0
    for folder in (a for a in argv[1:] if not a.startswith("-")):
        try:
            record = json.loads((Path(folder) / GROUP_FILE).read_text())
            return len(record["seeds"]) if record.get("fused") else 0
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def request_cpu_devices(seeds: int, environ: MutableMapping[str, str] = os.environ) -> int | None:
    """Ask XLA for as many CPU devices as split ``seeds`` over the usable cores
    (``devices_for``), or for ``$DREAMER_CPU_DEVICES``; returns the count asked for, or None
    where nothing was changed (one device is all that helps, a count is already in
    ``XLA_FLAGS``, or JAX has started, so that the flag would come too late)."""
    flags = environ.get("XLA_FLAGS", "")
    if FLAG in flags or "jax" in sys.modules:
        return None
    wanted = environ.get(VARIABLE, "").strip()
    if wanted and not (wanted.isdigit() and int(wanted) >= 1):
        raise SystemExit(
            f"{VARIABLE}={wanted!r} is not a device count: set it to a whole number of at "
            f"least 1 (1: the CPU as one device), or unset it for one device per core."
        )
    count = int(wanted) if wanted else devices_for(seeds, usable_cores())
    if count <= 1:
        return None
    environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
