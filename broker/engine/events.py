"""Typed engine events, and the small bus that hands them out.

Every change of state the engine makes is one event below (design.md rule 14). Two kinds of
listener take them:

- the *recorder* (at most one): the write-ahead log when state is durable. It sees every event,
  first, in order; the storage codec (storage/codec.py) is the only place that knows how an
  event looks on disk. `recording` is checked on the hot path so that, in memory, no event is
  even built for a message operation;
- *subscribers* by event type: the push deliverer subscribes to `PushPending`, so the engine
  never calls HTTP code; the console could subscribe to anything.

Payloads are plain lists where a snapshot holds the same data (messages as
[id, body, enqueued, visible_at] and so on), so that recording an event copies nothing twice.
Times are wall-clock seconds (0 = now / not set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


# -- queues ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class QueueCreated:
    key: str  # the lower-case name
    queue: dict  # Queue.dump()


@dataclass(slots=True)
class QueueUpdated:
    key: str
    settings: dict
    modified: int


@dataclass(slots=True)
class QueueDeleted:
    key: str


@dataclass(slots=True)
class QueuePurged:
    key: str


@dataclass(slots=True)
class MessagesSent:
    key: str
    messages: list  # [[id, body, enqueued, visible_at (0 = now)], ...]


@dataclass(slots=True)
class MessagesReceived:
    key: str
    messages: list  # [[id, dequeue_count, first_dequeue, visible_until], ...]


@dataclass(slots=True)
class MessagesDeleted:
    key: str
    ids: list
    kept: bool  # kept for RewindQueue rather than gone


@dataclass(slots=True)
class MessagesRewound:
    key: str
    ids: list  # kept (deleted) messages made visible again


# -- topics and subscriptions -----------------------------------------------------------------------

@dataclass(slots=True)
class TopicCreated:
    key: str
    topic: dict  # Topic.dump()


@dataclass(slots=True)
class TopicUpdated:
    key: str
    settings: dict
    modified: int


@dataclass(slots=True)
class TopicDeleted:
    key: str


@dataclass(slots=True)
class SubscriptionCreated:
    topic_key: str
    key: str
    subscription: dict  # Subscription.dump()


@dataclass(slots=True)
class SubscriptionUpdated:
    topic_key: str
    key: str
    subscription: dict


@dataclass(slots=True)
class SubscriptionDeleted:
    topic_key: str
    key: str


# -- deferred deliveries (HTTP pushes, and queue copies that could not be placed at once) -------

@dataclass(slots=True)
class PushPending:
    """A copy of a published message waits for delivery to `sub` (live objects: the deliverer
    takes them as they are; the codec records their plain form)."""

    sub: Any  # engine.topic.Subscription
    msg: Any  # engine.topic.TopicMessage
    attempts: int = 0


@dataclass(slots=True)
class PushAttempted:
    """One more attempt failed; the copy is still pending."""

    sub: Any
    msg: Any
    attempts: int


@dataclass(slots=True)
class PushSettled:
    """Delivered, or given up: the copy is pending no more."""

    sub: Any
    msg: Any


def pending_key(topic_key: str, sub_key: str, msg_id: int) -> str:
    """How a pending delivery is named, in records and snapshots."""
    return f"{topic_key}/{sub_key}/{msg_id}"


class Events:
    """The bus: one recorder (sees everything first), then subscribers by event type."""

    __slots__ = ("recorder", "recording", "_subscribers")

    def __init__(self) -> None:
        self.recorder: Callable[[Any], None] | None = None
        self.recording = False  # recorder is not None; read on the hot path
        self._subscribers: dict[type, list[Callable[[Any], None]]] = {}

    def set_recorder(self, recorder: Callable[[Any], None] | None) -> None:
        """Install (or, with None, remove) the one listener that records every event."""
        if recorder is not None and self.recorder is not None:
            raise RuntimeError("events already have a recorder")
        self.recorder = recorder
        self.recording = recorder is not None

    def subscribe(self, kind: type, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Call `listener` with every event of type `kind`; returns the unsubscribe function."""
        listeners = self._subscribers.setdefault(kind, [])
        listeners.append(listener)
        return lambda: listeners.remove(listener)

    def has_subscribers(self, kind: type) -> bool:
        return bool(self._subscribers.get(kind))

    def emit(self, event: Any) -> None:
        if self.recorder is not None:
            self.recorder(event)
        for listener in self._subscribers.get(type(event), ()):
            listener(event)
