"""One run's updates across the devices of a host: data parallelism through ``jax.sharding``.

    parallel = DataParallel(devices=0, batch_size=256)    # every local device
    state = parallel.replicate(state)                     # parameters on every device
    batch = parallel.shard(batch)                         # inside jit: rows split over devices

A 1-D ``Mesh`` over the local devices names the ``data`` axis. Arrays the update carries
(learner state, replay) are replicated; inside the jitted update the sampled batch is
constrained to be split by rows over ``data`` (``with_sharding_constraint``), so XLA
partitions the forward and backward passes by rows and reduces the gradients across devices
itself. The result is the update of the whole global batch on one device, up to the order of
float additions. With one device nothing is split or copied.

Multi-host (several processes, ``jax.distributed.initialize``) is not supported: the mesh
holds this process's local devices only, and the replay lives in each process.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dreamer.core.configtree import ConfigError
from dreamer.core.seeds import devices_for

__all__ = ["DataParallel", "split_seeds"]

AXIS = "data"


class DataParallel:
    """The local devices one run's updates are split over (``devices`` = 0: all of them)."""

    def __init__(self, devices: int, *, batch_size: int, setting: str = "loop.devices"):
        local = jax.local_devices()
        count = len(local) if devices == 0 else devices
        if count > len(local):
            raise ConfigError(
                f"{setting}={devices} but this process sees {len(local)} device(s) "
                f"({local[0].platform}); set {setting} to at most {len(local)} (0: all of them)."
            )
        if batch_size % count:
            raise ConfigError(
                f"replay.batch_size={batch_size} does not split evenly over {count} devices "
                f"({setting}); choose a batch size that is a multiple of {count}."
            )
        self.count = count
        self.mesh = Mesh(np.asarray(local[:count]), (AXIS,)) if count > 1 else None

    def shard(self, tree: Any) -> Any:
        """Inside ``jit``: every array of ``tree`` whose leading axis splits evenly over the
        devices is split by rows over them (the rest stays replicated)."""
        if self.mesh is None:
            return tree
        rows = NamedSharding(self.mesh, PartitionSpec(AXIS))

        def constrain(x: Any) -> Any:
            if getattr(x, "ndim", 0) == 0 or x.shape[0] % self.count:
                return x
            return jax.lax.with_sharding_constraint(x, rows)

        return jax.tree.map(constrain, tree)

    def replicate(self, tree: Any) -> Any:
        """``tree`` placed whole on every device of the mesh (with one device: on it)."""
        if self.mesh is None:
            return jax.device_put(tree)
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))


SEED_AXIS = "seeds"


def split_seeds(tree: Any) -> Any:
    """``tree`` (arrays with a leading seed axis) split by seeds over the local devices: over
    the most devices that hold whole seeds (``seeds.devices_for``).

    Seeds are independent, so a jitted computation over the seed axis runs on each device's
    seeds without communication (XLA partitions it), and gives each seed the same result as
    on one device, up to the order of float operations. With one local device, or a seed
    count no device count above 1 divides, ``tree`` is placed on the default device.
    """
    local = jax.local_devices()
    count = devices_for(jax.tree.leaves(tree)[0].shape[0], len(local))
    if count == 1:
        return jax.device_put(tree)
    mesh = Mesh(np.asarray(local[:count]), (SEED_AXIS,))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(SEED_AXIS)))
