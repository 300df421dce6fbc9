"""The machine a benchmark ran on, for its printout and its report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

from dreamer.shell.cpu_devices import usable_cores


def describe_machine(*, with_jax: bool = True) -> dict[str, Any]:
    """Platform, Python, CPU count (and how many this process may use) and (if ``with_jax``)
    the JAX devices of this process."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cores(),
        "python": sys.version.split()[0],
    }
    if with_jax:
        info.update(_jax_devices())
    return info


def _jax_devices() -> dict[str, Any]:
    """JAX version and devices, asked of a short-lived child process.

    Initialising JAX here would make this process hold accelerator memory (JAX preallocates
    most of a GPU) for as long as the benchmark runs, starving the training runs it launches.
    """
    code = "import jax; print(jax.__version__); print(*jax.devices(), sep='\\n')"
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"jax_devices": [f"unavailable ({type(e).__name__})"]}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"jax_devices": [f"unavailable ({last})"]}
    return {"jax": lines[0], "jax_devices": lines[1:]}


def format_machine(info: dict[str, Any]) -> str:
    """One line: ``Machine: Linux-... | x86_64 | 2 CPUs | Python 3.11 | jax 0.4 [cpu:0]``."""
    cpus = f"{info['cpu_count']} CPUs"
    if info.get("usable_cpus", info["cpu_count"]) < info["cpu_count"]:
        cpus = f"{info['usable_cpus']} of {cpus} (affinity)"
    parts = [info["platform"], info["processor"], cpus]
    parts.append(f"Python {info['python']}")
    if "jax_devices" in info:
        parts.append(f"jax {info.get('jax', '?')} devices {', '.join(info['jax_devices'])}")
    return "Machine: " + " | ".join(parts)


def run_devices(records: Iterable[dict[str, Any]]) -> str:
    """Where a report's runs trained, from their records' ``device`` lines, with a count each:
    a report rebuilt elsewhere (``--report-only``) still names the runs' machine."""
    counts = Counter(str(r.get("device") or "not recorded") for r in records)
    return "; ".join(f"{device} ({n} run{'s' * (n != 1)})" for device, n in counts.most_common())
