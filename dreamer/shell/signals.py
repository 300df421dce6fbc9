"""Stopping a run cleanly on SIGTERM and SIGINT (shell code).

Batch schedulers and container runtimes stop a job with SIGTERM; a person stops it with
Ctrl-C (SIGINT). While a loop trains, ``StopRequest`` turns the first of either signal into a
flag that the loop polls at its next step boundary (``RunBook.stop_if_requested``): the loop
writes a checkpoint there and raises ``RunStopped``, which the CLI reports in one line naming
the folder and the ``resume`` command before it exits with 128 + the signal number (143 for
SIGTERM, 130 for SIGINT, as a shell reports a process killed by that signal). A second signal
stops at once (``Interrupted``), keeping the newest complete checkpoint. Outside the loop
(setup, compilation) ``terminate_as_interrupt`` makes SIGTERM raise ``Interrupted`` the way
SIGINT raises ``KeyboardInterrupt``, so the CLI can still say what was kept.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from dreamer.shell.runlog import resume_command

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """The exit status of a process stopped by ``signum``: 128 + its number."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A signal stopped the process where it was, without writing a new checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


class RunStopped(Exception):
    """A signal asked the run to stop; the loop saved a checkpoint at ``env_steps``."""

    def __init__(self, run_dir: str | Path, signum: int, env_steps: int):
        self.run_dir, self.signum, self.env_steps = Path(run_dir), signum, env_steps
        super().__init__(
            f"stopped by {signal_name(signum)} at env step {env_steps} with a checkpoint in "
            f"{run_dir}; continue with `{resume_command(run_dir)}`."
        )


class StopRequest:
    """While entered, the first SIGTERM or SIGINT sets ``signum``; a second raises
    ``Interrupted``. Does nothing outside the main thread (only it may handle signals)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Interrupted`` (as Ctrl-C raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
