"""One CMQ queue: its messages, their states, and the receivers parked on it.

Theory of operation
-------------------
A message is in one of four states::

    DELAYED --(delay ends)--> READY --(receive)--> INFLIGHT --(visibility timeout)--> READY
                                                      |
                                                      +--(delete)--> gone, or KEPT if rewind is on

Ids grow with time (milliseconds since ID_EPOCH, shifted left, so a message's id is also its
enqueue time), so a smaller id is an older message. A message that was sent and never touched
since sits in `_fresh`, a deque in id order: the common case costs one deque slot. Every other
live message (delayed, in flight, kept for rewind, or visible again after a visibility timeout)
is in a dict by id, with a min-heap of the READY ones' ids, one min-heap of (due, id) for DELAYED
and INFLIGHT, and a min-heap of all their ids for retention. Receive takes the older of the two
heads ("oldest first"); delete only ever concerns in-flight messages, so the dict is enough.
Heaps are cleaned lazily: an entry whose message is gone, or whose `due` no longer matches, is
skipped when it surfaces, so receive, delete and expiry are O(log n) and nothing scans the queue.

Time moves only when someone looks: every operation first calls `_advance()`, which promotes
due messages and expires old ones, so the counters are exact whenever they are read. A timer
exists only while receivers are parked, armed for the earliest due entry.

A receipt handle is the message id followed by its delivery number (10 digits): only the latest
delivery of a message still in flight matches, so a stale or expired handle is refused with no
extra table.

Parked long-poll receivers wait in a FIFO of futures; whenever messages become READY they are
handed straight to the first live waiter, so a woken receiver never races another for them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from heapq import heapify, heappop, heappush, nsmallest
from operator import attrgetter
from typing import Callable

from ..clock import Clock, TimerHandle
from ..errors import (
    EmptyMessage,
    InvalidReceiptHandle,
    InvalidRewindTime,
    MessageTooLarge,
    QueueFull,
    RewindDisabled,
    TooManyLongPolls,
)
from .events import Events, MessagesDeleted, MessagesReceived, MessagesRewound, MessagesSent, QueuePurged
from .settings import QueueSettings

READY, DELAYED, INFLIGHT, KEPT = 0, 1, 2, 3
_message_id = attrgetter("id")
STATE_NAMES = ("ready", "delayed", "inflight", "kept")

_HANDLE_DIGITS = 10  # digits of the delivery number at the end of a receipt handle
_HANDLE_SCALE = 10**_HANDLE_DIGITS
ID_EPOCH = 1_700_000_000  # message ids count milliseconds from here (November 2023) ...
ID_SHIFT = 12  # ... shifted left by this much, leaving room for 4096 ids per millisecond


def next_message_id(now: float, last: int) -> int:
    """The id of a message enqueued at wall-clock `now`, after id `last`."""
    return max(last + 1, int((now - ID_EPOCH) * 1000) << ID_SHIFT)


def first_id_after(t: float) -> int:
    """The smallest id a message enqueued after wall-clock `t` can have."""
    return (int((t - ID_EPOCH) * 1000) + 1) << ID_SHIFT


class ParkingLot:
    """How many receivers are parked in long polls, over every queue of a broker, and how many may be."""

    __slots__ = ("limit", "count")

    def __init__(self, limit: int = 1 << 62):
        self.limit = limit
        self.count = 0


class Message:
    # Few fields on purpose: a queue may hold millions (design.md: well under 300 bytes each).
    __slots__ = ("id", "body", "first_dequeue_time", "dequeue_count", "state", "due")

    def __init__(self, mid: int, body: str, state: int, due: float):
        self.id = mid
        self.body = body  # as received; never copied or re-encoded
        self.first_dequeue_time = 0.0
        self.dequeue_count = 0
        self.state = state
        self.due = due  # monotonic instant a DELAYED/INFLIGHT message becomes READY; 0 otherwise

    @property
    def enqueue_time(self) -> float:
        """Wall-clock seconds, from the id (to the millisecond; a burst of more than 4096
        messages in one millisecond may read up to a few milliseconds late)."""
        return ID_EPOCH + (self.id >> ID_SHIFT) / 1000

    @property
    def receipt_handle(self) -> str:
        return str(self.id * _HANDLE_SCALE + self.dequeue_count)  # the id, then 10 digits of count


def check_body(body: str, limit: int, index: int = 0) -> None:
    """A message body must be 1 to `limit` bytes of UTF-8 (`index`: its place in a batch, from 1)."""
    if not body:
        raise EmptyMessage(index)
    if len(body) * 4 > limit:  # only measure bytes when the characters alone cannot decide
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise MessageTooLarge(index, size, limit)


def _parse_handle(handle: str) -> tuple[int, int]:
    if len(handle) <= _HANDLE_DIGITS or not handle.isdigit() or not handle.isascii():
        raise InvalidReceiptHandle(handle)
    return divmod(int(handle), _HANDLE_SCALE)


class Queue:
    def __init__(
        self,
        name: str,
        queue_id: str,
        settings: QueueSettings,
        clock: Clock,
        next_id: Callable[[], int],
        parking: ParkingLot | None = None,
        events: Events | None = None,
    ):
        self.name = name
        self.key = name.lower()  # how the registry and the journal name it
        self.queue_id = queue_id
        self.settings = settings
        self.create_time = self.last_modify_time = int(clock.time())
        self._clock = clock
        self._next_id = next_id
        self._fresh: deque[Message] = deque()  # READY, never touched since sent; in id order
        self._messages: dict[int, Message] = {}  # every other live message
        self._ready: list[int] = []  # min-heap of the ids of READY messages in _messages
        self._timed: list[tuple[float, int]] = []  # min-heap of (due, id): DELAYED and INFLIGHT
        self._order: list[int] = []  # min-heap of the ids in _messages, for retention (lazily cleaned)
        self._waiters: deque[tuple[asyncio.Future, int]] = deque()
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False
        self._parking = parking or ParkingLot()
        self._events = events or Events()  # the broker's: every change is an event (events.py)
        self.active = 0  # READY
        self.inactive = 0  # INFLIGHT
        self.delayed = 0  # DELAYED
        self.kept = 0  # KEPT: deleted, but held for RewindQueue

    # -- counters -------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        self._advance()
        return {
            "activeMsgNum": self.active,
            "inactiveMsgNum": self.inactive,
            "delayMsgNum": self.delayed,
            "rewindMsgNum": self.kept,
        }

    @property
    def stored(self) -> int:
        """Messages not yet deleted (what maxMsgHeapNum bounds)."""
        return self.active + self.inactive + self.delayed

    def min_msg_time(self) -> int:
        """Enqueue time of the oldest message the queue holds, 0 when there is none."""
        self._advance()
        order, messages = self._order, self._messages
        while order and order[0] not in messages:
            heappop(order)
        oldest = min(self._fresh[0].id if self._fresh else 1 << 62, order[0] if order else 1 << 62)
        return int(ID_EPOCH + (oldest >> ID_SHIFT) / 1000) if oldest != 1 << 62 else 0

    # -- send -----------------------------------------------------------------------------

    def check_body(self, body: str, index: int = 0) -> None:
        check_body(body, self.settings.maxMsgSize, index)

    def send(self, bodies: list[str], delay: int = 0) -> list[Message]:
        """Enqueue all of `bodies` or none of them. Bodies must have passed `check_body`."""
        if self.stored + len(bodies) > self.settings.maxMsgHeapNum:
            self._advance()  # only now worth it: expired messages may have made room
            if self.stored + len(bodies) > self.settings.maxMsgHeapNum:
                raise QueueFull(self.name, self.settings.maxMsgHeapNum)
        now = self._clock.time()
        messages, order, out = self._messages, self._order, []
        events = self._events
        if delay > 0:
            due = self._clock.monotonic() + delay
            for body in bodies:
                msg = Message(self._next_id(), body, DELAYED, due)
                messages[msg.id] = msg
                heappush(order, msg.id)
                heappush(self._timed, (due, msg.id))
                out.append(msg)
            self.delayed += len(out)
            if events.recording:
                events.emit(MessagesSent(self.key, [[m.id, m.body, now, now + delay] for m in out]))
            if self._waiters:
                self._arm_timer()
        else:
            fresh = self._fresh
            for body in bodies:
                msg = Message(self._next_id(), body, READY, 0.0)
                fresh.append(msg)
                out.append(msg)
            self.active += len(out)
            if events.recording:
                events.emit(MessagesSent(self.key, [[m.id, m.body, now, 0] for m in out]))
            if self._waiters:
                self._wake()
        return out

    # -- receive --------------------------------------------------------------------------

    def take(self, n: int) -> list[Message]:
        """Receive up to `n` visible messages now, oldest first, without waiting."""
        self._advance()
        return self._take(n)

    async def receive(self, n: int, wait: float) -> list[Message]:
        """Receive up to `n` messages, parking up to `wait` seconds for the first one."""
        got = self.take(n)
        if got or wait <= 0 or self._closed:
            return got
        parking = self._parking
        if parking.count >= parking.limit:
            raise TooManyLongPolls(parking.limit)
        parking.count += 1
        fut = asyncio.get_running_loop().create_future()
        waiter = (fut, n)
        self._waiters.append(waiter)
        timeout = self._clock.call_at(self._clock.monotonic() + wait, lambda: fut.done() or fut.set_result([]))
        self._arm_timer()
        try:
            return await fut
        finally:
            parking.count -= 1
            timeout.cancel()
            woken = fut.done() and not fut.cancelled() and fut.result()
            if not woken:  # timed out or cancelled: still parked (unless released at shutdown)
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def close(self) -> None:
        """Answer every parked receiver now with nothing, and park no more (shutdown, deletion)."""
        self._closed = True
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                fut.set_result([])
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- delete ---------------------------------------------------------------------------

    def delete(self, handle: str) -> None:
        self._advance()
        mid, keep = self._delete(handle)
        if self._events.recording:
            self._events.emit(MessagesDeleted(self.key, [mid], keep))

    def delete_batch(self, handles: list[str]) -> list[tuple[str, InvalidReceiptHandle]]:
        """Delete each handle's message; return the (handle, error) of those that failed."""
        self._advance()
        deleted, failed, keep = [], [], False
        for handle in handles:
            try:
                mid, keep = self._delete(handle)
                deleted.append(mid)
            except InvalidReceiptHandle as exc:
                failed.append((handle, exc))
        if deleted and self._events.recording:
            self._events.emit(MessagesDeleted(self.key, deleted, keep))
        return failed

    def _delete(self, handle: str) -> tuple[int, bool]:
        mid, delivery = _parse_handle(handle)
        msg = self._messages.get(mid)
        if msg is None or msg.state != INFLIGHT or msg.dequeue_count != delivery:
            raise InvalidReceiptHandle(handle)
        self.inactive -= 1
        keep = self.settings.rewindSeconds > 0
        if keep:
            msg.state, msg.due = KEPT, 0.0
            self.kept += 1
        else:
            del self._messages[mid]
        return mid, keep

    # -- inspection and purge (cmq-broker extensions: the cloud has neither) --------------

    def peek(self, n: int, include_kept: bool = False) -> list[Message]:
        """Up to `n` messages, oldest first, in any state but kept (unless asked), changing
        nothing: no dequeue count, no visibility timeout. For people looking at a queue."""
        self._advance()
        fresh = list(itertools.islice(self._fresh, n))
        others = nsmallest(n, (m for m in self._messages.values() if include_kept or m.state != KEPT),
                                 key=_message_id)
        return nsmallest(n, fresh + others, key=_message_id)

    def purge(self) -> int:
        """Remove every message, in any state; return how many there were."""
        count = len(self._fresh) + len(self._messages)
        self._fresh.clear()
        self._messages.clear()
        self._ready.clear()
        self._timed.clear()
        self._order.clear()
        self.active = self.inactive = self.delayed = self.kept = 0
        self._events.emit(QueuePurged(self.key))
        return count

    # -- rewind and settings --------------------------------------------------------------

    def rewind(self, start_time: int) -> int:
        """Make every kept (deleted) message enqueued at or after `start_time` visible again."""
        rewind = self.settings.rewindSeconds
        if rewind <= 0:
            raise RewindDisabled(self.name)
        now = self._clock.time()
        if not now - rewind - 1 <= start_time <= now + 1:
            raise InvalidRewindTime(
                "start_time",
                lambda f: f"{f} must be within the last rewindSeconds ({rewind}s): "
                          f"from {int(now) - rewind} to {int(now)}, got {start_time}",
            )
        self._advance()
        revived = []
        for msg in self._messages.values():
            if msg.state == KEPT and msg.enqueue_time >= start_time:
                msg.state = READY
                heappush(self._ready, msg.id)
                revived.append(msg.id)
        count = len(revived)
        if revived:
            self._events.emit(MessagesRewound(self.key, revived))
        self.kept -= count
        self.active += count
        if count and self._waiters:
            self._wake()
        return count

    def update_settings(self, settings: QueueSettings) -> None:
        if settings.rewindSeconds == 0 and self.kept:
            for mid in [m.id for m in self._messages.values() if m.state == KEPT]:
                del self._messages[mid]
            self.kept = 0
        self.settings = settings
        self.last_modify_time = int(self._clock.time())

    # -- durability -----------------------------------------------------------------------

    def dump(self) -> dict:
        """Everything about this queue as plain data (the snapshot's shape; storage/codec.py)."""
        self._advance()
        wall_minus_mono = self._clock.time() - self._clock.monotonic()
        messages = {}
        for m in (*self._fresh, *self._messages.values()):
            visible_at = m.due + wall_minus_mono if m.state in (DELAYED, INFLIGHT) else 0
            messages[m.id] = [m.body, m.enqueue_time, m.dequeue_count, m.first_dequeue_time, visible_at,
                              m.state == KEPT]
        return {"name": self.name, "id": self.queue_id, "settings": self.settings.as_dict(),
                "created": self.create_time, "modified": self.last_modify_time, "messages": messages}

    def restore(self, messages: dict) -> None:
        """Load messages dumped (or replayed) as plain data; in-flight ones whose visibility
        timeout passed meanwhile come back visible, with their dequeue counts."""
        now, mono = self._clock.time(), self._clock.monotonic()
        for mid in sorted(messages):
            body, _, dequeue_count, first_dequeue, visible_at, kept = messages[mid]  # the id has the time
            if kept:
                state, due = KEPT, 0.0
                self.kept += 1
            elif visible_at > now:
                state, due = (INFLIGHT if dequeue_count else DELAYED), mono + (visible_at - now)
            else:
                state, due = READY, 0.0
            msg = Message(mid, body, state, due)
            msg.dequeue_count, msg.first_dequeue_time = dequeue_count, first_dequeue
            if state == READY:
                self._fresh.append(msg)  # in id order, as sorted above
                self.active += 1
                continue
            self._messages[mid] = msg
            self._order.append(mid)
            if state != KEPT:
                self._timed.append((due, mid))
                if state == INFLIGHT:
                    self.inactive += 1
                else:
                    self.delayed += 1
        heapify(self._order)  # appended in id order: already a heap, so this is cheap
        heapify(self._timed)

    # -- internals ------------------------------------------------------------------------

    def _take(self, n: int) -> list[Message]:
        fresh, ready, messages, out = self._fresh, self._ready, self._messages, []
        if not self.active:
            return out
        due = self._clock.monotonic() + self.settings.visibilityTimeout
        now = 0.0
        while len(out) < n:
            while ready and ((m := messages.get(ready[0])) is None or m.state != READY):
                heappop(ready)  # expired while visible, or taken: a stale heap entry
            if fresh and (not ready or fresh[0].id < ready[0]):
                msg = fresh.popleft()
                messages[msg.id] = msg
                heappush(self._order, msg.id)
            elif ready:
                msg = messages[heappop(ready)]
            else:
                break
            msg.state = INFLIGHT
            msg.due = due
            msg.dequeue_count += 1
            if not msg.first_dequeue_time:
                msg.first_dequeue_time = now = now or self._clock.time()
            heappush(self._timed, (due, msg.id))
            out.append(msg)
        self.active -= len(out)
        self.inactive += len(out)
        if out and self._events.recording:
            until = self._clock.time() + self.settings.visibilityTimeout
            self._events.emit(MessagesReceived(self.key, [[m.id, m.dequeue_count, m.first_dequeue_time, until]
                                                          for m in out]))
        if self._waiters:
            self._arm_timer()
        return out

    def _advance(self) -> None:
        """Promote due DELAYED/INFLIGHT messages to READY and expire messages past retention."""
        timed, messages = self._timed, self._messages
        promoted = 0
        if timed:
            now = self._clock.monotonic()
            while timed and timed[0][0] <= now:
                due, mid = heappop(timed)
                msg = messages.get(mid)
                if msg is None or msg.due != due:
                    continue  # deleted, or re-received since this entry was pushed
                if msg.state == DELAYED:
                    self.delayed -= 1
                elif msg.state == INFLIGHT:
                    self.inactive -= 1
                else:
                    continue
                msg.state, msg.due = READY, 0.0
                heappush(self._ready, mid)
                promoted += 1
            self.active += promoted
        fresh, order = self._fresh, self._order
        if fresh or order:
            limit = first_id_after(self._clock.time() - self.settings.msgRetentionSeconds)
            while fresh and fresh[0].id < limit:  # past retention: expired
                fresh.popleft()
                self.active -= 1
            while order and order[0] < limit:
                msg = messages.get(heappop(order))
                if msg is not None:
                    self._drop(msg)
            if len(order) > 2 * len(messages) + 1024:  # mostly ids of deleted messages: rebuild
                self._order = order = list(messages)
                heapify(order)
        if promoted and self._waiters:
            self._wake()

    def _drop(self, msg: Message) -> None:
        del self._messages[msg.id]
        state = msg.state
        if state == READY:
            self.active -= 1
        elif state == INFLIGHT:
            self.inactive -= 1
        elif state == DELAYED:
            self.delayed -= 1
        else:
            self.kept -= 1

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.active:
            fut, n = waiters.popleft()
            if not fut.done():
                fut.set_result(self._take(n))

    def _arm_timer(self) -> None:
        if not self._waiters or not self._timed:
            return
        due = self._timed[0][0]
        if self._timer is not None:
            if self._timer_at <= due:
                return
            self._timer.cancel()
        self._timer_at = due
        self._timer = self._clock.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._advance()
        self._arm_timer()
