"""Durable state with --data-dir: recover at start, journal every change, snapshot now and then.

Theory of operation
-------------------
The durable state is made of *parts* (`Part` below): the engine (codec.py: its typed events and
their records) and the Batch simulator (batchsim/persist.py: records of its own). Each part owns
its record kinds, its entry in the snapshot, and how records replay onto it.

Start: the write-ahead log (wal.py) yields the newest snapshot and the records after it; each
record is replayed by the part that owns its kind, and each part loads its state. From then on
this class is the *recorder* of every part's events: each change is encoded and appended.

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
from typing import Any, Protocol

import msgpack

from ..engine import Broker
from ..engine.events import Events
from ..engine.topic import Subscription, TopicMessage
from ..errors import StorageUnavailable
from . import codec
from .wal import StorageError, Wal

log = logging.getLogger("broker.storage")

FLUSH_INTERVAL = 0.1  # seconds between background flushes of records nobody waits for
FLUSH_BACKOFF_MAX = 2.0  # seconds between retries while the disk keeps failing
SNAPSHOT_BYTES = 64 * 1024 * 1024  # log size that triggers a snapshot
MAX_BACKLOG = 64 * 1024 * 1024  # unwritten bytes past which changes are refused (disk full)


class Part(Protocol):
    """One owner of durable state."""

    key: str | None  # its entry in the snapshot; None: the top level (the engine's)
    kinds: tuple[str, ...]  # the record kinds it owns
    load_at_start: bool  # True: load once the event loop runs (timers); False: at recovery

    def events(self) -> Events: ...  # where its changes appear; this class becomes their recorder
    def empty(self) -> dict: ...
    def encode(self, event: Any) -> tuple: ...  # a change → its record
    def replay(self, state: dict, record: tuple) -> None: ...
    def dump(self) -> dict: ...
    def load(self, state: dict) -> Any: ...


class EnginePart:
    """The engine as a part: typed events encoded by codec.py, the top level of the snapshot."""

    key = None
    kinds = tuple(codec.REPLAY)
    load_at_start = False

    def __init__(self, broker: Broker):
        self.broker = broker

    def events(self) -> Events:
        return self.broker.events

    def empty(self) -> dict:
        return codec.empty_state()

    encode = staticmethod(codec.encode)

    def replay(self, state: dict, record: tuple) -> None:
        codec.REPLAY[record[0]](state, record)

    def dump(self) -> dict:
        return self.broker.dump()

    def load(self, state: dict) -> list[tuple[Subscription, TopicMessage, int]]:
        return self.broker.load(state)


class Durability:
    def __init__(self, directory: str | Path, parts: list[Part], snapshot_bytes: int = SNAPSHOT_BYTES):
        self._wal = Wal(directory)
        self._parts = parts
        self._owner: dict[str, Part] = {}
        for part in parts:
            for kind in part.kinds:
                if kind in self._owner:
                    raise ValueError(f"record kind {kind!r} is claimed twice")
                self._owner[kind] = part
        self._later: list[tuple[Part, dict]] = []  # parts that load once the loop runs
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
        """Load the data directory into every part (raises DataDirLocked or CorruptData, whose
        messages name the file and offset). Returns the pushes still pending."""
        recovered = self._wal.open()
        state = recovered.snapshot
        if state is None:
            state = {}
            for part in self._parts:
                if part.key is None:
                    state.update(part.empty())
        for part in self._parts:
            if part.key is not None:
                state.setdefault(part.key, part.empty())
        owner = self._owner
        for record in recovered.records:
            part = owner.get(record[0])
            if part is None:
                raise ValueError(f"unknown journal record {record[0]!r}")
            part.replay(state if part.key is None else state[part.key], record)
        resumed = []
        for part in self._parts:
            own = state if part.key is None else state[part.key]
            if part.load_at_start:
                self._later.append((part, own))
            else:
                resumed.extend(part.load(own) or ())
        log.info("recovered %d queue(s), %d topic(s) and %d pending push(es) from %d log record(s)",
                 len(state.get("queues", ())), len(state.get("topics", ())), len(resumed), len(recovered.records))
        for part in self._parts:
            part.events().set_recorder(self._recorder(part))
        return resumed

    def _recorder(self, part: Part):
        encode, append = part.encode, self._append
        return lambda event: append(encode(event))

    async def start(self) -> None:
        for part, state in self._later:
            part.load(state)  # its timers need the running loop
        self._later = []
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
        for part in self._parts:  # everything has stopped; nothing may append after close
            part.events().set_recorder(None)
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
            state: dict = {}
            for part in self._parts:
                if part.key is None:
                    state.update(part.dump())
                else:
                    state[part.key] = part.dump()
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
