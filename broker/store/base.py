"""The store seam: what protocols (and the console and provisioning) may ask of the broker's state.

Theory of operation
-------------------
Protocols never hold engine objects: they await a `Store`. Each method is one whole operation,
checks included (the queue exists, each body fits its queue's maxMsgSize, the queue has room,
...), so that a store kept in Redis or Valkey can do each in one round trip, one atomic script,
as RSMQ and BullMQ do. Ids, receipt handles and long-poll wake-ups are the store's business: a
protocol passes them through as opaque values.

Results are plain read-only values (below), except received messages, which are any objects
with the attributes `ReceivedMessage` lists (the in-memory store hands out its own messages, so
the hot path copies nothing). Errors are the domain errors of broker/errors.py, naming fields
neutrally; each protocol words them in its own terms.

The first implementation is `MemoryStore` (memory.py), over the in-process engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence


class ReceivedMessage(Protocol):
    """A message handed to a receiver (times are wall-clock seconds)."""

    id: int
    body: str
    receipt_handle: str  # only the latest delivery's handle deletes
    enqueue_time: float
    first_dequeue_time: float
    dequeue_count: int


class Received(NamedTuple):
    messages: Sequence[ReceivedMessage]  # oldest first
    visible_at: float  # wall-clock second they become visible again unless deleted (same for all)


@dataclass(frozen=True, slots=True)
class Counts:
    ready: int
    inflight: int
    delayed: int
    kept: int  # deleted, held for rewind


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str  # as created (names match case-insensitively)
    queue_id: str
    settings: dict  # the domain's setting names (engine/settings.py) → values
    create_time: int
    last_modify_time: int
    counts: Counts | None = None  # None in listings unless asked for
    min_msg_time: int = 0  # enqueue time of the oldest message held, 0 for none (with counts)


@dataclass(frozen=True, slots=True)
class PeekedMessage:
    id: int
    body: str
    enqueue_time: float
    first_dequeue_time: float
    dequeue_count: int
    state: str  # ready, delayed, inflight, kept
    visible_at: float  # when a delayed or in-flight message becomes visible; 0 otherwise


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: str
    filter_type: int  # 1 tags, 2 routing key
    settings: dict
    create_time: int
    last_modify_time: int
    pending: int = 0  # copies waiting for deferred delivery, over its subscriptions
    subscriptions: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    topic: str
    name: str
    sub_id: str
    protocol: str  # http, queue
    endpoint: str
    strategy: str
    content_format: str
    filter_tags: tuple[str, ...]
    binding_keys: tuple[str, ...]
    create_time: int
    last_modify_time: int
    pending: int = 0
    delivered: int = 0
    dropped: int = 0


class Store(ABC):
    """Queues, topics and subscriptions, and their messages (see the module docstring)."""

    app_id: int  # the account that owns everything (a topic's owner in CMQ)

    # -- queues -----------------------------------------------------------------------------------
    @abstractmethod
    async def create_queue(self, name: str, settings: dict) -> QueueInfo: ...

    @abstractmethod
    async def get_queue(self, name: str) -> QueueInfo:
        """With counts and the oldest message's time."""

    @abstractmethod
    async def set_queue_attributes(self, name: str, changes: dict) -> QueueInfo: ...

    @abstractmethod
    async def delete_queue(self, name: str) -> None: ...

    @abstractmethod
    async def list_queues(self, search: str = "", offset: int = 0, limit: int = 20,
                          counts: bool = False) -> tuple[int, list[QueueInfo]]:
        """(number of all matches, one page of them), ordered by name."""

    @abstractmethod
    async def purge_queue(self, name: str) -> int: ...

    @abstractmethod
    async def rewind_queue(self, name: str, start_time: int) -> int: ...

    # -- messages ---------------------------------------------------------------------------------
    @abstractmethod
    async def send(self, queue: str, bodies: list[str], delay: int = 0) -> list[int]:
        """Enqueue all of `bodies` or none; their ids."""

    @abstractmethod
    async def receive(self, queue: str, n: int, wait: int | None = None) -> Received:
        """Up to `n` messages, waiting up to `wait` seconds for the first (None: the queue's
        pollingWaitSeconds)."""

    @abstractmethod
    async def delete(self, queue: str, handle: str) -> None: ...

    @abstractmethod
    async def delete_batch(self, queue: str, handles: list[str]) -> list[tuple[str, Exception]]:
        """Delete each handle's message; the (handle, error) of those that failed."""

    @abstractmethod
    async def peek(self, queue: str, n: int) -> list[PeekedMessage]:
        """Up to `n` messages, oldest first, in any state but kept, changing nothing."""

    # -- topics -----------------------------------------------------------------------------------
    @abstractmethod
    async def create_topic(self, name: str, filter_type: int, settings: dict) -> TopicInfo: ...

    @abstractmethod
    async def get_topic(self, name: str) -> TopicInfo: ...

    @abstractmethod
    async def set_topic_attributes(self, name: str, changes: dict) -> TopicInfo: ...

    @abstractmethod
    async def delete_topic(self, name: str) -> None: ...

    @abstractmethod
    async def list_topics(self, search: str = "", offset: int = 0, limit: int = 20) -> tuple[int, list[TopicInfo]]: ...

    @abstractmethod
    async def publish(self, topic: str, bodies: list[str], tags: list[str], routing_key: str) -> list[int]:
        """Fan out to every matching subscription (queue copies before this returns); the ids."""

    # -- subscriptions ----------------------------------------------------------------------------
    @abstractmethod
    async def subscribe(self, topic: str, name: str, protocol: str, endpoint: str, *, strategy: str | None = None,
                        content_format: str | None = None, filter_tags: list[str] | None = None,
                        binding_keys: list[str] | None = None) -> SubscriptionInfo: ...

    @abstractmethod
    async def get_subscription(self, topic: str, name: str) -> SubscriptionInfo: ...

    @abstractmethod
    async def update_subscription(self, topic: str, name: str, *, strategy: str | None = None,
                                  content_format: str | None = None, filter_tags: list[str] | None = None,
                                  binding_keys: list[str] | None = None) -> SubscriptionInfo:
        """Change what is given (None keeps it; an empty list clears it)."""

    @abstractmethod
    async def unsubscribe(self, topic: str, name: str) -> None: ...

    @abstractmethod
    async def list_subscriptions(self, topic: str, search: str = "", offset: int = 0,
                                 limit: int = 20) -> tuple[int, list[SubscriptionInfo]]: ...
