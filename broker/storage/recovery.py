"""Durable state with --data-dir: recover at start, journal every change, snapshot now and then.

Theory of operation
-------------------
Start: the write-ahead log (wal.py) yields the newest snapshot and the records after it; the
journal (engine/journal.py) replays them onto the snapshot's plain state and the broker loads
it. From then on every engine change is a record appended to the log (`journal`).

A request's reply waits for its own records: the endpoint takes a `mark()` before calling the
engine and, if records were added since, awaits `commit()`, which returns once they are on disk
(group commit: one fsync serves everyone waiting). A failed write fails the requests waiting on
it with StorageUnavailable; their records stay queued and are retried, so memory and disk
converge once the disk recovers, and nothing acknowledged is ever missing after a crash.

Changes no client waits for (push retries, simulator events) are flushed by a background loop
every FLUSH_INTERVAL. When the log passes `snapshot_bytes`, the whole state is dumped and
written as a snapshot, which lets older log segments go; a clean shutdown writes one too, so the
next start replays nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import msgpack

from ..batchsim import BatchSim
from ..engine import Broker
from ..engine import journal as J
from ..engine.topic import Subscription, TopicMessage
from ..errors import StorageUnavailable
from .wal import StorageError, Wal

log = logging.getLogger("broker.storage")

FLUSH_INTERVAL = 0.1  # seconds between background flushes of records nobody waits for
FLUSH_BACKOFF_MAX = 2.0  # seconds between retries while the disk keeps failing
SNAPSHOT_BYTES = 64 * 1024 * 1024  # log size that triggers a snapshot
MAX_BACKLOG = 64 * 1024 * 1024  # unwritten bytes past which changes are refused (disk full)


class Durability:
    def __init__(self, directory: str | Path, broker: Broker, sim: BatchSim, snapshot_bytes: int = SNAPSHOT_BYTES):
        self._wal = Wal(directory)
        self._broker = broker
        self._sim = sim
        self._batch_state: dict | None = None  # loaded into the simulator once its clock runs
        self._snapshot_bytes = snapshot_bytes
        self._appended = 0  # records appended so far: a request's mark
        self._durable = 0  # records known to be on disk
        self._task: asyncio.Task | None = None
        self._snapshotting = False

    @property
    def wal(self) -> Wal:
        """The log itself, for metrics (fsync times, bytes waiting)."""
        return self._wal

    # -- start and stop -------------------------------------------------------------------

    def recover(self) -> list[tuple[Subscription, TopicMessage, int]]:
        """Load the data directory into the broker (raises DataDirLocked or CorruptData, whose
        messages name the file and offset). Returns the pushes still pending."""
        recovered = self._wal.open()
        state = recovered.snapshot if recovered.snapshot is not None else J.empty_state()
        J.replay(state, recovered.records)
        resumed = self._broker.load(state)
        self._batch_state = state.get("batch")
        log.info("recovered %d queue(s), %d topic(s) and %d pending push(es) from %d log record(s)",
                 len(state["queues"]), len(state["topics"]), len(resumed), len(recovered.records))
        self._broker.set_journal(self._append)
        return resumed

    async def start(self) -> None:
        if self._batch_state:
            self._sim.load(self._batch_state)  # its timers need the running loop
            self._batch_state = None
        self._task = asyncio.get_running_loop().create_task(self._background())

    async def close(self) -> None:
        """Flush, write a final snapshot (so the next start replays nothing) and unlock."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._commit()
            await self._wal.snapshot(self._state(), pack)
        except StorageError as exc:
            log.error("could not write the final snapshot: %s (the log still holds everything)", exc)
        self._broker.set_journal(None)  # everything has stopped; nothing may append after close
        try:
            await self._wal.close()
        except StorageError as exc:
            log.error("could not flush the log at shutdown: %s", exc)

    # -- the request path -----------------------------------------------------------------

    def _append(self, record: tuple) -> None:
        self._wal.append(record)
        self._appended += 1

    def backlogged(self) -> bool:
        """Writes have been failing long enough that the unwritten tail is large: refuse changes."""
        return self._wal.pending_bytes() > MAX_BACKLOG

    def mark(self) -> int:
        return self._appended

    def changed_since(self, mark: int) -> bool:
        return self._appended != mark and self._durable < self._appended

    async def commit(self) -> None:
        """Return once every record appended so far is on disk; else raise StorageUnavailable."""
        try:
            await self._commit()
        except StorageError as exc:
            raise StorageUnavailable(
                f"the change could not be written to the data directory ({exc}); it was not acknowledged"
            ) from None

    async def _commit(self) -> None:
        target = self._appended
        await self._wal.commit()
        self._durable = max(self._durable, target)

    # -- background -----------------------------------------------------------------------

    async def _background(self) -> None:
        pause = FLUSH_INTERVAL
        while True:
            await asyncio.sleep(pause)
            try:
                if self._durable < self._appended:
                    await self._commit()
                if self._wal.log_bytes() > self._snapshot_bytes and not self._snapshotting:
                    await self.snapshot()
                if pause > FLUSH_INTERVAL:
                    log.warning("the data directory accepts writes again")
                pause = FLUSH_INTERVAL
            except Exception as exc:
                # A full or failing disk: retry, but back off (up to FLUSH_BACKOFF_MAX) so a long
                # outage neither floods the log nor rewrites the backlog ten times a second.
                if not isinstance(exc, StorageError):
                    log.exception("background flush failed")
                elif pause == FLUSH_INTERVAL:  # the first failure of an outage; the rest are alike
                    log.error("background flush failed: %s (retrying, less often while it fails)", exc)
                pause = min(pause * 2, FLUSH_BACKOFF_MAX)

    def _state(self) -> dict:
        """A copy of the whole state. Taken in one go (it must be consistent with the log's
        switch to a new segment), with the collector paused: the dump allocates a few objects
        per message, and collections halfway through would only slow it down."""
        gc.disable()
        try:
            state = self._broker.dump()
            state["batch"] = self._sim.dump()
        finally:
            gc.enable()
        return state

    async def snapshot(self) -> None:
        """Dump the state and write it as a snapshot; earlier log segments are then removed."""
        self._snapshotting = True
        try:
            # The dump and the WAL's rotation happen with no await between them, so no record
            # can fall between the snapshot and the new segment.
            await self._wal.snapshot(self._state(), pack)
        finally:
            self._snapshotting = False


PACK_SLICE = 20_000  # messages packed between two yields to the event loop


async def pack(state: dict[str, Any]) -> bytes:
    """msgpack of `state`, the same bytes as msgpack.packb, but yielding to the event loop every
    PACK_SLICE messages, so that a snapshot of millions of messages does not stall requests."""
    packer = msgpack.Packer(use_bin_type=True)
    out = bytearray(packer.pack_map_header(len(state)))
    for key, value in state.items():
        out += packer.pack(key)
        if key != "queues":
            out += packer.pack(value)
            continue
        out += packer.pack_map_header(len(value))
        for queue_key, queue in value.items():
            out += packer.pack(queue_key)
            out += packer.pack_map_header(len(queue))
            for field, item in queue.items():
                out += packer.pack(field)
                if field != "messages":
                    out += packer.pack(item)
                    continue
                out += packer.pack_map_header(len(item))
                for n, (mid, message) in enumerate(item.items(), 1):
                    out += packer.pack(mid)
                    out += packer.pack(message)
                    if n % PACK_SLICE == 0:
                        await asyncio.sleep(0)
    return bytes(out)
