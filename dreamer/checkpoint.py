"""orbax checkpoints of a whole run: arrays (params, optimizer, replay, RNG) plus JSON counters.

A checkpoint is written to a temporary folder and committed by orbax with a marker file, so a
run killed at any moment (``kill -9`` included) leaves the previous complete checkpoint intact;
``latest_step`` only ever names committed checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message says what to do."""


class Checkpointer:
    """Saves and restores named array pytrees plus JSON metadata, keyed by env step.

    ``save(step, {"learner": state, "replay": arrays}, meta)``; ``restore({"learner": like})``
    reads back only the items named in ``like`` (evaluation skips a large replay).
    """

    def __init__(self, run_dir: str | os.PathLike, *, keep: int = 2):
        self.path = Path(run_dir).absolute() / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, create=True
        )
        self._manager = ocp.CheckpointManager(self.path, options=options)

    def save(self, step: int, items: dict[str, Any], meta: dict[str, Any]) -> None:
        args = {name: ocp.args.StandardSave(_to_savable(tree)) for name, tree in items.items()}
        if step in self._manager.all_steps():  # e.g. the final save of a resumed finished run
            self._manager.delete(step)
        self._manager.save(
            step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **args), force=True
        )
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        self._manager.reload()
        return self._manager.latest_step()

    def restore(
        self, like: dict[str, Any], step: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the items of ``like`` (their structures) at ``step`` (default: newest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(
                f"no complete checkpoint in {self.path}. The run stopped before its first "
                "checkpoint; start it again with `python -m dreamer train ...`."
            )
        try:
            args = {n: ocp.args.StandardRestore(_to_savable(t)) for n, t in like.items()}
            restored = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **args)
            )
        except Exception as e:  # orbax raises many types for damaged files
            raise CheckpointError(
                f"checkpoint {self.path / str(step)} is corrupt or does not match this run's "
                f"config ({type(e).__name__}: {str(e)[:300]}). Delete that folder to fall back "
                "to an older checkpoint, or start the run again."
            ) from e
        return {name: restored[name] for name in like}, restored["meta"]

    def close(self) -> None:
        self._manager.close()


def _to_savable(tree: Any) -> Any:
    """Host numpy arrays only: device arrays are fetched once, scalars become 0-d arrays."""
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))
