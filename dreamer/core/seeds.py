"""Seeds as the command lines write them, and how a group of seeds splits over devices (no
JAX here: ``python -m dreamer`` reads both before JAX starts)."""

from __future__ import annotations

from dreamer.core.configtree import ConfigError


def parse_seeds(spec: str) -> tuple[int, ...]:
    """Seeds as the command lines take them: ``0,1,2``, a range ``0-9``, or both (``0,5-7``)."""
    seeds: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part[1:]:
                first, last = part.split("-", 1)
                seeds.extend(range(int(first), int(last) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds {spec!r}: write seeds as 0,1,2 or as a range 0-9.") from None
    if not seeds:
        raise ConfigError(f"--seeds {spec!r}: no seeds; write them as 0,1,2 or 0-9.")
    return tuple(dict.fromkeys(seeds))


def devices_for(seeds: int, devices: int) -> int:
    """The most devices, at most ``devices``, that hold whole seeds: the largest divisor of
    ``seeds`` not above ``devices`` (1 where none above 1 divides it)."""
    return max((d for d in range(1, min(seeds, devices) + 1) if seeds % d == 0), default=1)
