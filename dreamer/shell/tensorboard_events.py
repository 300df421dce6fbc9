"""TensorBoard event files of a run folder: writing scalars, reading them, and dropping the
steps a resumed run repeats.

A run folder holds one event file. ``EventWriter`` appends each metrics row to it as one
``Event`` of scalar values (step = env steps) and flushes it at once, so the events on disk
always match the rows of ``metrics.csv``, also after ``kill -9``. A run resumed from a
checkpoint at env step ``s`` repeats the steps after ``s`` that the interrupted process had
logged: ``compact`` first rewrites the folder's event files into one that keeps only the
steps ``<= s`` (``metrics.csv`` is truncated the same way), so every tag has each step once,
whatever tool reads the files.

An event file is a sequence of TFRecords: ``uint64 length``, ``uint32 masked crc(length)``,
``length`` bytes of a serialised ``Event`` protobuf, ``uint32 masked crc(data)``. A process
killed while writing may leave a partial last record; reading stops there.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c

EVENT_FILE_PATTERN = "events.out.tfevents.*"
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def event_files(run_dir: str | os.PathLike) -> list[Path]:
    """The folder's event files, oldest first."""
    return sorted(Path(run_dir).glob(EVENT_FILE_PATTERN), key=lambda p: (p.stat().st_mtime, p))


def read_events(path: str | os.PathLike) -> Iterator[Event]:
    """The events of one file, stopping quietly at a partial or damaged last record."""
    with open(path, "rb") as f:
        while True:
            header = f.read(_LENGTH.size + _CRC.size)
            if len(header) < _LENGTH.size + _CRC.size:
                return
            (length,) = _LENGTH.unpack_from(header)
            data = f.read(length)
            if len(data) < length or len(f.read(_CRC.size)) < _CRC.size:
                return
            try:
                yield Event.FromString(data)
            except Exception:  # a damaged record: keep what came before it
                return


def scalars(run_dir: str | os.PathLike) -> list[tuple[str, int, float]]:
    """``(tag, step, value)`` of every scalar in the folder's event files, in file order."""
    out = []
    for path in event_files(run_dir):
        for event in read_events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.append((value.tag, int(event.step), float(value.simple_value)))
    return out


class EventWriter:
    """Appends scalar rows to the folder's event file (a new one if there is none)."""

    def __init__(self, run_dir: str | os.PathLike):
        existing = event_files(run_dir)
        if existing:
            self.path = existing[-1]
            self._file = open(self.path, "ab")
        else:
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            self.path = Path(run_dir) / name
            self._file = open(self.path, "ab")
            self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One event of scalars at ``step``, flushed to disk."""
        summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
        self._write(Event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self) -> None:
        self._file.close()

    def _write(self, event: Event) -> None:
        self._file.write(_record(event))
        self._file.flush()


def compact(run_dir: str | os.PathLike, *, keep_upto: int) -> Path | None:
    """Rewrites the event files of ``run_dir`` as one file of the summaries at steps
    ``<= keep_upto``; returns that file (None when there were no event files).

    The new file is written under a temporary name, renamed over the newest old file, and
    only then are the other old files removed: an interruption leaves complete files whose
    duplicate events the next compaction drops.
    """
    paths = event_files(run_dir)
    if not paths:
        return None
    records, seen = [], set()
    for path in paths:
        for event in read_events(path):
            key = (event.step, tuple(value.tag for value in event.summary.value))
            if event.HasField("file_version") and not records:
                records.append(_record(event))
            elif event.HasField("summary") and event.step <= keep_upto and key not in seen:
                seen.add(key)
                records.append(_record(event))
    final = paths[-1]
    tmp = final.with_name(f".{final.name}.tmp")  # outside EVENT_FILE_PATTERN
    tmp.write_bytes(b"".join(records))
    os.replace(tmp, final)
    for path in paths[:-1]:
        path.unlink()
    return final


def _record(event: Event) -> bytes:
    data = event.SerializeToString()
    length = _LENGTH.pack(len(data))
    return length + _CRC.pack(masked_crc32c(length)) + data + _CRC.pack(masked_crc32c(data))
