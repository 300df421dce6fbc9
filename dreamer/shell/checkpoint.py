"""orbax checkpoints of a whole run: arrays (params, optimizer, replay, RNG) plus JSON counters.

A checkpoint is written to a temporary folder and committed by orbax with a marker file, so a
run killed at any moment (``kill -9`` included) leaves the previous complete checkpoint intact;
``latest_step`` only ever names committed checkpoints.

When a save fails (a full disk, a read-only folder) the partial folder is removed and a
``CheckpointError`` names the path and the reason; the previous checkpoint stays. When the
newest checkpoint cannot be read, ``restore`` falls back to the newest one that can, says so in
one line and (for a resuming run) renames the unreadable folder to ``<step>.corrupt``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp

from dreamer.shell.runlog import resume_command

CHECKPOINT_DIR = "checkpoints"
CORRUPT_SUFFIX = ".corrupt"
_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # how orbax names a checkpoint it is still writing


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or could not be written; the message says what to
    do."""


class Checkpointer:
    """Saves and restores named array pytrees plus JSON metadata, keyed by env step.

    ``save(step, {"learner": state, "replay": arrays}, meta)``; ``restore({"learner": like})``
    reads back only the items named in ``like`` (evaluation skips a large replay).
    ``writer=True`` (the process training in the folder, which holds its lock) also removes
    the temporary folders of saves that a killed process left unfinished.
    """

    def __init__(self, run_dir: str | os.PathLike, *, keep: int = 2, writer: bool = False):
        if keep < 1:
            raise ValueError(f"keep={keep}: at least the newest checkpoint must be kept.")
        self.run_dir = Path(run_dir).absolute()
        self.path = self.run_dir / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=writer,
        )
        self._manager = ocp.CheckpointManager(self.path, options=options)

    def save(self, step: int, items: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write the checkpoint of ``step``; a step already saved is kept as it is (the state
        at a step is the same however often the run reaches it, e.g. when a resumed finished
        run ends again)."""
        if step in self.steps():
            return
        args = {name: ocp.args.StandardSave(_to_savable(tree)) for name, tree in items.items()}
        try:
            self._manager.save(
                step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **args), force=True
            )
            self._manager.wait_until_finished()
        except BaseException as error:
            self._remove_partial(step)
            if not isinstance(error, Exception):  # KeyboardInterrupt: stop as asked
                raise
            previous = [s for s in self.steps() if s != step]
            kept = (
                f"the checkpoint at env step {max(previous)} is kept"
                if previous
                else "no earlier checkpoint exists"
            )
            raise CheckpointError(
                f"could not write the checkpoint at env step {step} to {self.path / str(step)}: "
                f"{_reason(error)}. The partial checkpoint was removed and {kept}. Free disk "
                f"space or fix the folder's permissions, then continue with "
                f"`{resume_command(self.run_dir)}`."
            ) from error

    def steps(self) -> list[int]:
        """Env steps of the complete checkpoints on disk, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def restore(
        self, like: dict[str, Any], step: int | None = None, *, set_aside: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the items of ``like`` (their structures) at ``step``, by default the newest
        checkpoint that can be read. Unreadable newer ones are reported in one line each and,
        with ``set_aside``, renamed to ``<step>.corrupt`` (only once an older one was read, so
        a config that matches none of them renames nothing)."""
        steps = list(reversed(self.steps())) if step is None else [step]
        if not steps:
            raise CheckpointError(
                f"no complete checkpoint in {self.path}: the run stopped before its first "
                f"checkpoint. `{resume_command(self.run_dir)}` starts it over."
            )
        unreadable: list[tuple[int, Exception]] = []
        for candidate in steps:
            try:
                restored = self._restore(candidate, like)
            except Exception as error:  # orbax raises many types for damaged files
                unreadable.append((candidate, error))
                continue
            for bad, error in unreadable:
                moved = f"moved it to {self._set_aside(bad).name}, " if set_aside else ""
                print(
                    f"dreamer: checkpoint {self.path / str(bad)} is unreadable "
                    f"({_reason(error)}); {moved}using the one at env step {candidate}.",
                    file=sys.stderr,
                )
            return {name: restored[name] for name in like}, restored["meta"]
        newest, error = unreadable[0]
        raise CheckpointError(
            f"no checkpoint in {self.path} can be read (env step {newest}: {_reason(error)}). "
            "If the code or config.json changed since the run was made, go back to the "
            "version that made it; otherwise start the run over in a new folder."
        ) from error

    def close(self) -> None:
        self._manager.close()

    # -- internals ---------------------------------------------------------------------------
    def _restore(self, step: int, like: dict[str, Any]) -> Any:
        args = {n: ocp.args.StandardRestore(_to_savable(t)) for n, t in like.items()}
        return self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **args)
        )

    def _set_aside(self, step: int) -> Path:
        target = self.path / f"{step}{CORRUPT_SUFFIX}"
        n = 1
        while target.exists():
            target, n = self.path / f"{step}{CORRUPT_SUFFIX}-{n}", n + 1
        (self.path / str(step)).rename(target)
        self._manager.reload()
        return target

    def _remove_partial(self, step: int) -> None:
        for partial in self.path.glob(f"{step}{_TMP_SUFFIX}*"):
            shutil.rmtree(partial, ignore_errors=True)
        self._manager.reload()


def latest_checkpoint(run_dir: str | os.PathLike) -> int | None:
    """Env step of the newest complete checkpoint in ``run_dir`` (None if there is none)."""
    if not (Path(run_dir) / CHECKPOINT_DIR).is_dir():
        return None
    checkpointer = Checkpointer(run_dir)
    try:
        return checkpointer.latest_step()
    finally:
        checkpointer.close()


def _reason(error: BaseException) -> str:
    """One short line: an OS error's cause and path, or the exception's type and first line."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    first = first if len(first) <= 120 else first[:117] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _to_savable(tree: Any) -> Any:
    """Host numpy arrays only: device arrays are fetched once, scalars become 0-d arrays."""
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))
