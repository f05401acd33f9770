"""The write-ahead log: group-committed msgpack records, snapshots, and recovery.

Theory of operation
-------------------
The data directory holds ``LOCK``, log segments ``wal-<seq>.log`` and snapshots
``snapshot-<seq>.msgpack``. Snapshot N holds the whole state as of the start of segment N, so
recovery is: the newest snapshot (or nothing), then every record of segments N, N+1, ... in order.
A record is ``u32 length | u32 crc32(payload) | payload`` (little-endian, msgpack payload).

`append` only packs into the in-memory buffer of the newest segment. `commit` waits for one
background writer task, which hands the buffered bytes to a worker thread that `pwrite`s them at
the last good offset and fsyncs; appends made meanwhile pile up and go out together in the next
batch, so concurrent requests share one fsync (group commit). A failed write or fsync fails
every commit waiting at that moment, but the bytes go back to the front of the buffer and the
file is cut back to the last good offset, so the next commit writes them again at the same place:
records are never dropped, never duplicated, and never follow half a record.

Compaction (`snapshot`, once `compaction_due()` says the log passed `segment_bytes`): in its
first synchronous step, with the caller's state as of that instant, the log switches to a new
segment; appends from then on belong to it. The writer
finishes the old segment before it creates the new one, so segments become durable strictly in
order. Only once the snapshot is renamed into place (and the directory fsynced) are older
segments and snapshots deleted; a crash at any point leaves either the old snapshot with every
segment after it, or the new snapshot with the new segment.

Recovery refuses to guess. Damage at the end of the last segment (a short header, a short body,
or a bad checksum on its last record, or garbage followed only by zero bytes) is what a crash in
the middle of a write leaves, and is cut off; a short body counts as torn only if no intact
record starts inside it, so a flipped high bit in a length cannot swallow the records after it. Anything else (a bad record with intact data after
it, a damaged snapshot, a missing segment) raises `CorruptData` naming the file and offset,
before anything in the directory is changed.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import time
import zlib
from bisect import bisect_right
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgpack

from .format import (
    RECORD_HEADER,
    SNAPSHOT_HEADER,
    SNAPSHOT_MAGIC,
    O_CLOEXEC,
    CorruptData,
    DataDirLocked,
    StorageError,
    fsync_dir,
    list_dir,
    read_segment,
    read_snapshot,
    segment_name,
    snapshot_name,
)

log = logging.getLogger("broker.storage")

# Upper bounds (seconds) of the fsync-time histogram that /metrics shows.
FSYNC_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

@dataclass
class Recovered:
    snapshot: Any | None  # the newest snapshot's state, or None
    records: list[Any]  # every record after that snapshot, in order
    truncated_bytes: int  # torn tail cut off the last segment (0 after a clean stop)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("snapshot failed: %s", task.exception())


class _Chunk:
    """Bytes appended to one segment and not yet durable there."""

    __slots__ = ("seq", "buf")

    def __init__(self, seq: int):
        self.seq = seq
        self.buf = bytearray()



def _lock(directory: Path) -> int:
    path = directory / "LOCK"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirLocked(
                f"data directory {directory} is in use by another cmq-broker (pid {holder}); "
                "stop that one or choose another --data-dir"
            ) from None
        raise StorageError(f"cannot lock {path}: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # only for the message above
    return fd


class Wal:
    """The log of one data directory: `open`, then `append`/`commit`/`snapshot` from one loop, `close`."""

    def __init__(self, directory: str | Path, segment_bytes: int = 64 * 1024 * 1024):
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes  # log size past which compaction_due() turns true
        # Fault-injection seams for tests: data goes through write_fn (os.pwrite's contract),
        # log fsyncs through sync_fn; `syncs` counts the log fsyncs done.
        self.write_fn = os.pwrite
        self.sync_fn = getattr(os, "fdatasync", os.fsync)
        self.syncs = 0
        # Log fsync times as plain counts per FSYNC_BOUNDS bucket (+Inf last), kept by the loop side.
        self.fsync_counts = [0] * (len(FSYNC_BOUNDS) + 1)
        self.fsync_seconds = 0.0
        self._state = "new"  # new → open → closing → closed
        self._lock_fd = -1
        self._executor: ThreadPoolExecutor | None = None
        self._packer = msgpack.Packer(use_bin_type=True)
        self._seq = 0  # the segment appends go to
        self._chunks: deque[_Chunk] = deque()  # bytes not yet durable, per segment, oldest first
        self._tail = bytearray()  # == _chunks[-1].buf, the hot path's shortcut
        self._appended = 0  # bytes ever appended: positions in one stream across segments
        self._durable = 0  # ... of which written and synced
        self._log_start = 0  # stream position where the newest durable snapshot's log begins
        self._fd = -1  # the segment file the writer writes (segment _file_seq)
        self._file_seq = 0
        self._file_good = 0  # bytes of _fd known written and synced
        self._file_dirty = False  # a failed batch may have left bytes past _file_good
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # (position, segment, fut)
        self._writer: asyncio.Task[None] | None = None
        self._snapshotting: asyncio.Event | None = None  # set when the running snapshot ends

    # -- open and recover ------------------------------------------------------------------

    def open(self) -> Recovered:
        if self._state != "new":
            raise RuntimeError("a Wal is opened once")
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.directory.resolve().parent)
            self._lock_fd = _lock(self.directory)
            try:
                recovered = self._recover()
            except BaseException:
                self._release_lock()
                raise
        except OSError as exc:  # unreadable, not a directory, no permission: say which
            raise StorageError(f"cannot open the data directory {self.directory}: {exc}") from exc
        # One thread for the log writer, one for a snapshot, so compaction never delays a commit.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cmq-wal")
        self._state = "open"
        return recovered

    def _recover(self) -> Recovered:
        segments, snapshots, leftovers = list_dir(self.directory)
        base = max(snapshots, default=0)
        state = read_snapshot(snapshots[base]) if snapshots else None
        live = sorted(seq for seq in segments if seq >= base)
        for expected, seq in enumerate(live, start=base):
            if seq != expected:
                missing = self.directory / segment_name(expected)
                raise CorruptData(missing, 0, f"segment missing though {segments[seq].name} exists")
        records: list[Any] = []
        size = good = 0
        for seq in live:
            data = segments[seq].read_bytes()
            found, good = read_segment(segments[seq], data, is_last=seq == live[-1])
            records.extend(found)
            size += good
        truncated = len(data) - good if live else 0
        # Every file checked: only from here on is the directory changed.
        self._seq = self._file_seq = live[-1] if live else base
        fd = os.open(self.directory / segment_name(self._seq), os.O_WRONLY | os.O_CREAT | O_CLOEXEC, 0o644)
        try:
            if truncated:
                log.warning("%s: cut %d bytes of a torn last record at offset %d", segments[self._seq], truncated, good)
                os.ftruncate(fd, good)
                os.fsync(fd)
            if not live:
                fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._file_good = fd, good if live else 0
        self._chunks = deque([_Chunk(self._seq)])
        self._tail = self._chunks[-1].buf
        self._log_start = -size  # the recovered segments come before position 0
        stale = [p for s, p in segments.items() if s < base] + [p for s, p in snapshots.items() if s < base]
        self._remove(stale + leftovers)  # what a crash during compaction left behind
        return Recovered(state, records, truncated)

    def _remove_older(self, seq: int) -> None:
        segments, snapshots, _ = list_dir(self.directory)
        self._remove([p for s, p in segments.items() if s < seq] + [p for s, p in snapshots.items() if s < seq])

    def _remove(self, paths: list[Path]) -> None:
        try:
            for path in paths:
                path.unlink(missing_ok=True)
            if paths:
                fsync_dir(self.directory)
        except OSError as exc:  # harmless: the next open or compaction removes them
            log.warning("could not remove old log files in %s: %s", self.directory, exc)

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1

    # -- append and group commit -----------------------------------------------------------

    def append(self, record: Any) -> None:
        if self._state != "open":
            raise RuntimeError(f"append to a {self._state} log")
        payload = self._packer.pack(record)
        tail = self._tail
        tail += RECORD_HEADER.pack(len(payload), zlib.crc32(payload))
        tail += payload
        size = RECORD_HEADER.size + len(payload)
        self._appended += size

    async def commit(self) -> None:
        if self._durable < self._appended:
            await self._wait(self._appended, 0)

    def pending_bytes(self) -> int:
        return self._appended - self._durable

    def log_bytes(self) -> int:
        """Log bytes since the newest durable snapshot, the not yet written included."""
        return self._appended - self._log_start

    def compaction_due(self) -> bool:
        return self.log_bytes() >= self.segment_bytes and self._snapshotting is None

    def _wait(self, position: int, seq: int) -> asyncio.Future[None]:
        """A future done once `position` is durable and segment `seq` exists."""
        if self._state not in ("open", "closing"):
            raise RuntimeError(f"commit on a {self._state} log")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append((position, seq, fut))
        if self._writer is None:
            self._writer = loop.create_task(self._write_loop(), name="cmq-wal-writer")
        return fut

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake()
                if not self._waiters:
                    break
                front = self._chunks[0]
                if front.seq != self._file_seq:  # the previous segment is complete: start this one
                    fd = await loop.run_in_executor(self._executor, self._create_segment, front.seq)
                    os.close(self._fd)
                    self._fd, self._file_seq, self._file_good, self._file_dirty = fd, front.seq, 0, False
                elif front.buf:
                    data = bytes(front.buf)
                    front.buf.clear()  # appends made during the write start a new batch here
                    try:
                        synced_in = await loop.run_in_executor(
                            self._executor, self._write_batch, self._fd, self._file_good, data, self._file_dirty
                        )
                    except BaseException:
                        front.buf[:0] = data  # back in front of the newer appends, for the next try
                        self._file_dirty = True
                        raise
                    self._file_dirty = False
                    self._file_good += len(data)
                    self._durable += len(data)
                    self.syncs += 1
                    self.fsync_seconds += synced_in
                    self.fsync_counts[bisect_right(FSYNC_BOUNDS, synced_in)] += 1
                elif len(self._chunks) > 1:
                    self._chunks.popleft()
                else:
                    raise AssertionError("log writer: waiters left with nothing to write")
        except BaseException as exc:
            # The bytes stay queued; whoever waited now is refused and the next commit retries.
            path = self.directory / segment_name(self._chunks[0].seq)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            self._fail(f"writing the log {path} failed: {reason}; nothing was acknowledged", exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._writer = None

    def _wake(self) -> None:
        waiting = []
        for entry in self._waiters:
            position, seq, fut = entry
            if fut.done():
                continue  # its committer was cancelled
            if self._durable >= position and self._file_seq >= seq:
                fut.set_result(None)
            else:
                waiting.append(entry)
        self._waiters = waiting

    def _fail(self, message: str, cause: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                error = StorageError(message)
                error.__cause__ = cause
                fut.set_exception(error)

    def _write_all(self, fd: int, data: bytes, offset: int) -> int:
        view = memoryview(data)
        while view:
            n = self.write_fn(fd, view, offset)
            if n <= 0:
                raise OSError(errno.EIO, "write made no progress")
            offset += n
            view = view[n:]
        return offset

    def _write_batch(self, fd: int, offset: int, data: bytes, dirty: bool) -> float:
        """Worker thread: `data` at `offset`, synced; returns the seconds the fsync took. The loop
        side owns the offsets, so a batch that fails leaves them alone and the retry rewrites the
        same bytes at the same place."""
        if dirty:
            os.ftruncate(fd, offset)  # never write after half a record
        try:
            self._write_all(fd, data, offset)
            started = time.perf_counter()
            self.sync_fn(fd)
            return time.perf_counter() - started
        except BaseException:
            try:
                os.ftruncate(fd, offset)  # a crash before the retry then finds no torn tail
            except OSError:
                pass
            raise

    def _create_segment(self, seq: int) -> int:
        fd = os.open(self.directory / segment_name(seq), os.O_WRONLY | os.O_CREAT | O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, 0)  # an earlier failed attempt may have created it; nothing is in it
            fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- compaction ------------------------------------------------------------------------

    async def snapshot(self, state: Any, pack: Callable[[Any], Awaitable[bytes]] | None = None) -> None:
        """Make `state` the new base of the log. `state` must be the full state as of this call
        (no append in between). The log switches to a new segment at once. Without `pack`,
        `state` is packed before the first await, so the caller may change it afterwards; with
        `pack` (an async function giving the msgpack bytes at its own pace, yielding to the event
        loop), `state` must not change afterwards: pass a copy. Await this directly: as a Task
        its first step would run later. Cancelling the caller does not stop a snapshot half-way;
        a second call while one runs queues behind it."""
        if self._state != "open":
            raise RuntimeError(f"snapshot of a {self._state} log")
        if pack is None:
            state = msgpack.packb(state, use_bin_type=True)
        self._seq = seq = self._seq + 1  # from here on appends belong to segment seq
        self._chunks.append(_Chunk(seq))
        self._tail = self._chunks[-1].buf
        previous, self._snapshotting = self._snapshotting, asyncio.Event()
        work = self._write_snapshot_after(previous, self._snapshotting, seq, self._appended, state, pack)
        task = asyncio.get_running_loop().create_task(work, name=f"cmq-wal-snapshot-{seq}")
        task.add_done_callback(_retrieve)  # a cancelled caller leaves no one to read the error
        await asyncio.shield(task)

    async def _write_snapshot_after(
        self, previous: asyncio.Event | None, done: asyncio.Event, seq: int, position: int, state: Any,
        pack: Callable[[Any], Awaitable[bytes]] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            payload = await pack(state) if pack is not None else state  # already bytes without pack
            del state
            if previous is not None:
                await previous.wait()
            # The writer must be done with the old segments (and the new one exist) before they
            # can be replaced; a disk too full for that is too full for the snapshot anyway.
            await self._wait(position, seq)
            path = self.directory / snapshot_name(seq)
            try:
                await loop.run_in_executor(self._executor, self._write_snapshot, path, payload)
            except OSError as exc:
                raise StorageError(f"writing the snapshot {path} failed: {exc.strerror or exc}") from exc
            self._log_start = max(self._log_start, position)
            await loop.run_in_executor(self._executor, self._remove_older, seq)
        finally:
            if self._snapshotting is done:
                self._snapshotting = None
            done.set()

    def _write_snapshot(self, path: Path, payload: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        header = SNAPSHOT_HEADER.pack(SNAPSHOT_MAGIC, zlib.crc32(payload), len(payload))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_CLOEXEC, 0o644)
        try:
            self._write_all(fd, payload, self._write_all(fd, header, 0))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)  # atomic: recovery sees the old snapshot or the whole new one
        fsync_dir(self.directory)

    # -- shutdown --------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush what was appended, then let go of the files and the lock. Raises StorageError
        (after releasing everything) if the last records could not be written."""
        if self._state != "open":
            return
        self._state = "closing"
        try:
            if self._snapshotting is not None:
                await self._snapshotting.wait()
            await self.commit()
        finally:
            if self._writer is not None:
                await asyncio.wait([self._writer])
            assert self._executor is not None
            self._executor.shutdown(wait=False)
            os.close(self._fd)
            self._fd = -1
            self._release_lock()
            self._state = "closed"
