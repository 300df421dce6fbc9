"""The host's CPU as one JAX device per core (shell code), asked for before JAX starts.

XLA's CPU backend is one device whose operations share a thread pool, and the small matrix
products of vector-env networks use a second core poorly: one update of the ``default``
preset on CartPole takes 23.8 ms on one thread and 17.8 ms on two. Seen as one device per
core, the CPU runs the shards of a computation side by side, and the fused loop splits its
seeds over the local devices (``dreamer.core.sharding.split_seeds``): 10 seeds of that preset
update 1.33 times as fast on two devices as on one, on 2 cores.

A computation on one device runs 5-8% slower when the CPU is split (15.8 ms against 15.0 ms
per update), so only commands that train seeds together ask for it: ``python -m dreamer``
with ``train --seeds`` or on a group folder (``trains_seeds_together``), and ``python -m
benchmarks.seeds --paths fused``. ``request_cpu_devices`` adds
``--xla_force_host_platform_device_count=N`` to ``XLA_FLAGS``, N the cores this process may
use, unless ``XLA_FLAGS`` already sets a count; ``DREAMER_CPU_DEVICES=N`` chooses N (1: the
CPU as one device). GPU and TPU backends are not affected (the CPU devices hold only what is
placed on them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

FLAG = "--xla_force_host_platform_device_count"
VARIABLE = "DREAMER_CPU_DEVICES"
GROUP_FILE = "group.json"
"""``dreamer.loops.groups.GROUP_FILE``, named here without importing JAX."""


def trains_seeds_together(argv: Sequence[str]) -> bool:
    """Whether the CLI arguments ``argv`` train several seeds in one process: ``train`` with
    ``--seeds``, or ``resume`` / ``evaluate`` of a group folder."""
    if not argv:
        return False
    if argv[0] == "train":
        return any(a == "--seeds" or a.startswith("--seeds=") for a in argv)
    folders = [a for a in argv[1:] if not a.startswith("-")]
    return argv[0] in ("resume", "evaluate") and any(
        (Path(f) / GROUP_FILE).exists() for f in folders
    )


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def request_cpu_devices(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """Ask XLA for one CPU device per usable core (or ``$DREAMER_CPU_DEVICES``); returns the
    count asked for, or None where nothing was changed (a count already in ``XLA_FLAGS``, or
    JAX already started, so that the flag would come too late)."""
    flags = environ.get("XLA_FLAGS", "")
    if FLAG in flags or "jax" in sys.modules:
        return None
    wanted = environ.get(VARIABLE, "").strip()
    if wanted and not (wanted.isdigit() and int(wanted) >= 1):
        raise SystemExit(
            f"{VARIABLE}={wanted!r} is not a device count: set it to a whole number of at "
            f"least 1 (1: the CPU as one device), or unset it for one device per core."
        )
    count = int(wanted) if wanted else usable_cores()
    environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count
