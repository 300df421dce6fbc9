"""One writer per run folder: an OS lock held while a process trains in it (shell code).

``hold(run_dir)`` creates the folder if needed (with a clear error when it cannot be made or
written to), then takes an exclusive ``fcntl.flock`` on ``RUN/.lock`` for as long as the
process trains there. A second process asking for the same folder stops at once with an
error naming the folder and the holder (pid, host, start time and command, which the holder
writes into the lock file). The kernel drops the lock when its process ends, however it ends
(``kill -9`` included), so a lock left by a dead process never blocks ``resume``. The lock file
itself stays in the folder: deleting it would let two processes lock two different files.
Locks are counted per process, so the CLI and the training loop can both hold one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from dreamer.core.errors import RunFolderError

LOCK_FILE = ".lock"

_held: dict[Path, list[int]] = {}  # folder -> [file descriptor, hold count] in this process


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (made if missing) for the ``with`` block."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)


def acquire(run_dir: str | os.PathLike) -> None:
    """Take the lock of ``run_dir`` or raise ``RunFolderError`` saying who holds it."""
    folder = Path(run_dir).absolute()
    if folder in _held:
        _held[folder][1] += 1
        return
    make_writable_folder(folder)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunFolderError(
            f"cannot write in the run folder {folder}: {error.strerror}. Choose a folder you "
            "can write to (--out)."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "holder unknown"
        os.close(fd)
        raise RunFolderError(
            f"{run_dir} is in use by another process ({holder}). Wait for it to finish or "
            "stop it, or choose another run folder (--out)."
        ) from None
    command = " ".join(sys.argv) if sys.argv and sys.argv[0] else "python"
    me = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%F %T')}: {command}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, (me + "\n").encode(), 0)
    _held[folder] = [fd, 1]


def release(run_dir: str | os.PathLike) -> None:
    """Give back one hold of ``run_dir``'s lock; the last one unlocks the folder."""
    folder = Path(run_dir).absolute()
    entry = _held.get(folder)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[folder]
        os.close(entry[0])  # closing the only descriptor drops the flock


def make_writable_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) and check that this process can write in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(
            f"{folder} is a file, not a folder; choose another run folder (--out)."
        ) from None
    except NotADirectoryError:
        blocker = next((p for p in folder.parents if p.is_file()), folder.parent)
        raise RunFolderError(
            f"cannot create the run folder {folder}: {blocker} is a file. Choose another "
            "run folder (--out)."
        ) from None
    except OSError as error:
        raise RunFolderError(
            f"cannot create the run folder {folder}: {error.strerror}. Choose a folder you "
            "can write to (--out)."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"cannot write in the run folder {folder} (it is read-only for this user or on a "
            "read-only file system). Choose a folder you can write to (--out)."
        )
