"""The on-disk format of the data directory: names, record and snapshot layout, and reading.

A log segment `wal-<seq>.log` is a run of records `u32 length | u32 crc32(payload) | payload`
(little-endian; the payload is msgpack). A snapshot `snapshot-<seq>.msgpack` is a header
(magic, crc32, length) and one msgpack payload. Reading tells a torn tail (what a crash in the
middle of a write leaves) from damage, which it reports as `CorruptData` with file and offset.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack

RECORD_HEADER = struct.Struct("<II")  # payload length, crc32(payload)
SNAPSHOT_MAGIC = b"CMQSNAP1"
SNAPSHOT_HEADER = struct.Struct("<8sIQ")  # magic, crc32(payload), payload length
_SEGMENT = re.compile(r"wal-(\d{16})\.log")
_SNAPSHOT = re.compile(r"snapshot-(\d{16})\.msgpack")
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class StorageError(Exception):
    """Writing or syncing failed: whatever waited on it is not durable."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DataDirLocked(StorageError):
    """Another process (or another Wal in this one) holds the data directory."""


class CorruptData(StorageError):
    """A file in the data directory is damaged where a crash cannot have damaged it."""

    def __init__(self, path: str | Path, offset: int, reason: str):
        self.path = str(path)
        self.offset = offset
        super().__init__(
            f"{self.path}: {reason} at byte offset {offset}; the data directory was left untouched "
            "(restore the file from a backup or move the data directory aside to start empty)"
        )


def segment_name(seq: int) -> str:
    return f"wal-{seq:016d}.log"


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:016d}.msgpack"


def _unpack(payload: memoryview) -> Any:
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


def fsync_dir(path: Path) -> None:
    # A created, renamed or deleted name is durable only once its directory is fsynced.
    fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_dir(directory: Path) -> tuple[dict[int, Path], dict[int, Path], list[Path]]:
    segments: dict[int, Path] = {}
    snapshots: dict[int, Path] = {}
    leftovers: list[Path] = []  # snapshot temp files of a crashed compaction
    for entry in os.scandir(directory):
        if m := _SEGMENT.fullmatch(entry.name):
            segments[int(m.group(1))] = Path(entry.path)
        elif m := _SNAPSHOT.fullmatch(entry.name):
            snapshots[int(m.group(1))] = Path(entry.path)
        elif entry.name.startswith("snapshot-") and entry.name.endswith(".tmp"):
            leftovers.append(Path(entry.path))
    return segments, snapshots, leftovers


def read_snapshot(path: Path) -> Any:
    data = path.read_bytes()
    if len(data) < SNAPSHOT_HEADER.size:
        raise CorruptData(path, 0, f"snapshot header is short ({len(data)} bytes)")
    magic, crc, length = SNAPSHOT_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise CorruptData(path, 0, "not a cmq-broker snapshot (bad magic)")
    body = memoryview(data)[SNAPSHOT_HEADER.size:]
    if len(body) != length:
        raise CorruptData(path, SNAPSHOT_HEADER.size, f"snapshot payload is {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise CorruptData(path, SNAPSHOT_HEADER.size, "snapshot checksum mismatch")
    try:
        return _unpack(body)
    except Exception as exc:
        raise CorruptData(path, SNAPSHOT_HEADER.size, f"undecodable snapshot ({exc})") from None


def _record_problem(data: bytes, off: int) -> str | None:
    """Why the record at `off` is not intact, or None if it is."""
    if len(data) - off < RECORD_HEADER.size:
        return "short record header"
    length, crc = RECORD_HEADER.unpack_from(data, off)
    end = off + RECORD_HEADER.size + length
    if length == 0:  # msgpack never packs to nothing; this is a zeroed header
        return "zero-length record"
    if end > len(data):
        return f"record of {length} bytes runs past the end of the file"
    if zlib.crc32(memoryview(data)[off + RECORD_HEADER.size:end]) != crc:
        return "record checksum mismatch"
    return None


def _intact_record_in(data: bytes, start: int) -> bool:
    view, size, unpack = memoryview(data), len(data), RECORD_HEADER.unpack_from
    for i in range(start, size - RECORD_HEADER.size):
        length, crc = unpack(data, i)
        body = i + RECORD_HEADER.size
        if 0 < length <= size - body and zlib.crc32(view[body:body + length]) == crc:
            return True
    return False


def _is_torn_tail(data: bytes, off: int) -> bool:
    """Could a crash in the middle of the last write have left the bad record at `off`?"""
    size = len(data)
    if size - off < RECORD_HEADER.size:
        return True
    length = RECORD_HEADER.unpack_from(data, off)[0]
    end = off + RECORD_HEADER.size + length
    if end >= size:
        # A short body is torn only if nothing intact follows: a flipped high bit in the length of
        # a record in the middle would otherwise pass for one and swallow every record after it.
        return not _intact_record_in(data, off + 1)
    # A filesystem may extend a file before the data lands, leaving zeros after the torn record.
    return not any(data[end:])


def read_segment(path: Path, data: bytes, is_last: bool) -> tuple[list[Any], int]:
    """The records of one segment, and the offset where its intact records end."""
    records: list[Any] = []
    view = memoryview(data)
    off = 0
    while off < len(data):
        problem = _record_problem(data, off)
        if problem is not None:
            if is_last and _is_torn_tail(data, off):
                return records, off
            raise CorruptData(path, off, f"damaged record ({problem})")
        length = RECORD_HEADER.unpack_from(data, off)[0]
        start = off + RECORD_HEADER.size
        try:
            records.append(_unpack(view[start:start + length]))
        except Exception as exc:  # the checksum matched, so these bytes were written like this
            raise CorruptData(path, off, f"undecodable record ({exc})") from None
        off = start + length
    return records, off
