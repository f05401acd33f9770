"""The registry: queues and topics by name, the id counter, limits, and fan-out.

Names are unique case-insensitively (as in CMQ) and looked up the same way; the name an object
was created with is the one shown. Listing is by name, so paging with offset/limit is stable.

Publishing: a message goes to every matching subscription. Queue subscriptions get their copy
right here, before the publish is acknowledged. What cannot be delivered at once (every HTTP
copy, and a queue copy whose queue is missing or full) becomes a `PushPending` event, which the
deferred deliverer subscribes to (delivery/push.py): the engine never speaks HTTP itself. With
no deliverer subscribed, such copies are dropped (and counted).

Every change is an event on `self.events` (events.py); the write-ahead log records them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import (
    BindingKeyRequired,
    InvalidEndpoint,
    InvalidParameter,
    InvalidQueueName,
    InvalidSubscriptionName,
    InvalidTopicName,
    MessageTooLarge,
    NoMatchingSubscription,
    NoSubscription,
    QueueAlreadyExists,
    QueueFull,
    QueueLimitExceeded,
    QueueNotFound,
    TooManyMessageTags,
    TopicAlreadyExists,
    TopicHasSubscriptions,
    TopicLimitExceeded,
    TopicNotFound,
)
from .events import (
    Events,
    PushAttempted,
    PushPending,
    PushSettled,
    QueueCreated,
    QueueDeleted,
    QueueUpdated,
    SubscriptionCreated,
    SubscriptionDeleted,
    SubscriptionUpdated,
    TopicCreated,
    TopicDeleted,
    TopicUpdated,
)
from .names import check_name, page, resource_id
from .queue import ParkingLot, Queue, check_body, next_message_id
from .settings import QueueSettings, TopicSettings
from .topic import FILTER_ROUTING, FILTER_TAGS, Subscription, Topic, TopicMessage, check_endpoint, check_key, check_tags

log = logging.getLogger("broker.engine")

SNAPSHOT_VERSION = 1  # the "v" of a dumped state


@dataclass(frozen=True)
class Limits:
    max_queues: int = 1000
    max_topics: int = 1000
    max_long_polls: int = 10000


class Broker:
    def __init__(self, clock: Clock, limits: Limits = Limits(), strict: bool = False, app_id: int = 1250000000):
        self.clock = clock
        self.app_id = app_id  # the one account that owns everything here (CMQ's topic owner)
        self.limits = limits
        self.parking = ParkingLot(limits.max_long_polls)  # parked long polls, over every queue
        self.strict = strict  # refuse what the cloud may refuse but the spec could not confirm
        self._queues: dict[str, Queue] = {}
        self._topics: dict[str, Topic] = {}
        # Message ids encode their enqueue time and grow across restarts too, so ids never
        # repeat and sort by age (queue.next_message_id).
        self._last_id = 0
        self.events = Events()  # every change of state, typed (events.py)
        # Who can list pending deliveries for a snapshot (the deliverer registers itself).
        self._pending_dumpers: list = []

    def next_message_id(self) -> int:
        self._last_id = next_message_id(self.clock.time(), self._last_id)
        return self._last_id

    # -- queues ---------------------------------------------------------------------------

    def create_queue(self, name: str, settings: dict[str, Any] | None = None) -> Queue:
        key = check_name(name, InvalidQueueName).lower()
        if key in self._queues:
            raise QueueAlreadyExists(name)
        if len(self._queues) >= self.limits.max_queues:
            raise QueueLimitExceeded(self.limits.max_queues)
        queue_settings = QueueSettings().updated(settings or {})
        queue = Queue(name, resource_id("queue-"), queue_settings, self.clock, self.next_message_id, self.parking,
                      self.events)
        self._queues[key] = queue
        self.events.emit(QueueCreated(key, queue.dump()))
        return queue

    def get_queue(self, name: str) -> Queue:
        queue = self._queues.get(name.lower())
        if queue is None:
            raise QueueNotFound(name)
        return queue

    def set_queue_attributes(self, name: str, changes: dict[str, Any]) -> Queue:
        queue = self.get_queue(name)
        queue.update_settings(queue.settings.updated(changes))
        self.events.emit(QueueUpdated(queue.key, queue.settings.as_dict(), queue.last_modify_time))
        return queue

    def delete_queue(self, name: str) -> None:
        queue = self.get_queue(name)
        del self._queues[queue.key]
        queue.close()
        self.events.emit(QueueDeleted(queue.key))

    def list_queues(self, search: str = "", offset: int = 0, limit: int = 20) -> tuple[int, list[Queue]]:
        """(number of all matches, one page of them), ordered by name."""
        return page(self._queues, search, offset, limit)

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, name: str, filter_type: int = FILTER_TAGS, settings: dict[str, Any] | None = None) -> Topic:
        key = check_name(name, InvalidTopicName).lower()
        if filter_type not in (FILTER_TAGS, FILTER_ROUTING):
            raise InvalidParameter("filter_type",
                                   lambda f: f"{f} must be 1 (tags) or 2 (routing key), got {filter_type}")
        if key in self._topics:
            raise TopicAlreadyExists(name)
        if len(self._topics) >= self.limits.max_topics:
            raise TopicLimitExceeded(self.limits.max_topics)
        topic_settings = TopicSettings().updated(settings or {})
        topic = Topic(name, resource_id("topic-"), filter_type, topic_settings, int(self.clock.time()))
        self._topics[key] = topic
        self.events.emit(TopicCreated(key, topic.dump()))
        return topic

    def get_topic(self, name: str) -> Topic:
        topic = self._topics.get(name.lower())
        if topic is None:
            raise TopicNotFound(name)
        return topic

    def set_topic_attributes(self, name: str, changes: dict[str, Any]) -> Topic:
        topic = self.get_topic(name)
        topic.settings = topic.settings.updated(changes)
        topic.last_modify_time = int(self.clock.time())
        self.events.emit(TopicUpdated(name.lower(), topic.settings.as_dict(), topic.last_modify_time))
        return topic

    def delete_topic(self, name: str) -> None:
        topic = self.get_topic(name)
        if self.strict and topic.subscriptions:
            raise TopicHasSubscriptions(topic.name, len(topic.subscriptions))
        del self._topics[name.lower()]
        for sub_name in list(topic.subscriptions):
            topic.remove_subscription(sub_name)
        self.events.emit(TopicDeleted(name.lower()))

    def list_topics(self, search: str = "", offset: int = 0, limit: int = 20) -> tuple[int, list[Topic]]:
        return page(self._topics, search, offset, limit)

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(
        self,
        topic_name: str,
        name: str,
        protocol: str,
        endpoint: str,
        strategy: str | None = None,
        content_format: str | None = None,
        filter_tags: list[str] | None = None,
        binding_keys: list[str] | None = None,
    ) -> Subscription:
        topic = self.get_topic(topic_name)
        check_name(name, InvalidSubscriptionName)
        protocol, endpoint = check_endpoint(protocol, endpoint)
        if protocol == "queue" and endpoint.lower() not in self._queues:
            raise InvalidEndpoint("endpoint", f"queue {endpoint!r} does not exist: create it before subscribing it")
        if self.strict and topic.filter_type == FILTER_ROUTING and not binding_keys:
            raise BindingKeyRequired("binding_keys",
                                     lambda f: f"a subscription to a routing-key topic needs a {f} (strict mode)")
        sub = Subscription(topic, name, resource_id("subsc-"), protocol, endpoint, int(self.clock.time()))
        sub.configure(strategy, content_format, filter_tags, binding_keys)
        topic.add_subscription(sub)
        self.events.emit(SubscriptionCreated(topic.name.lower(), name.lower(), sub.dump()))
        return sub

    def unsubscribe(self, topic_name: str, name: str) -> None:
        self.get_topic(topic_name).remove_subscription(name)
        self.events.emit(SubscriptionDeleted(topic_name.lower(), name.lower()))

    def get_subscription(self, topic_name: str, name: str) -> Subscription:
        return self.get_topic(topic_name).get_subscription(name)

    def update_subscription(self, topic_name: str, name: str, **changes: Any) -> Subscription:
        """Change notifyStrategy, notifyContentFormat, filter tags or binding keys (None = keep)."""
        sub = self.get_subscription(topic_name, name)
        sub.configure(**changes)
        sub.last_modify_time = int(self.clock.time())
        self.events.emit(SubscriptionUpdated(topic_name.lower(), name.lower(), sub.dump()))
        return sub

    # -- publishing -----------------------------------------------------------------------

    def publish(self, topic_name: str, bodies: list[str], tags: list[str], routing_key: str) -> list[int]:
        """Fan `bodies` out to every matching subscription; return their message ids."""
        topic = self.get_topic(topic_name)
        msg_tags = check_tags(tags, "tags", TooManyMessageTags)
        route = check_key(routing_key, "routing_key", wildcards=False)
        limit = topic.settings.maxMsgSize
        for i, body in enumerate(bodies, 1):
            check_body(body, limit, i if len(bodies) > 1 else 0)
        subs = topic.matching(msg_tags, route)
        if self.strict and not subs:
            raise NoMatchingSubscription(topic.name) if topic.subscriptions else NoSubscription(topic.name)
        now = self.clock.time()
        messages = [TopicMessage(self.next_message_id(), body, msg_tags, now) for body in bodies]
        topic.published += len(messages)
        deliverer = self.events.has_subscribers(PushPending)
        for sub in subs:
            topic.copies[sub.protocol] += len(messages)
            if sub.protocol == "queue":
                try:
                    self.deliver_to_queue(sub, messages)
                    sub.delivered += len(messages)
                    continue
                except (QueueNotFound, QueueFull) as exc:
                    log.info("subscription %s/%s: %s; will retry", topic.name, sub.name, exc.message)
                except MessageTooLarge as exc:
                    log.warning("subscription %s/%s dropped %d message(s): %s",
                                topic.name, sub.name, len(messages), exc.message)
                    sub.dropped += len(messages)
                    continue
            for msg in messages:
                sub.pending += 1
                self.events.emit(PushPending(sub, msg))
                if not deliverer:
                    self.drop_deferred(sub, msg)
        return [m.msg_id for m in messages]

    def deliver_to_queue(self, sub: Subscription, messages: list[TopicMessage]) -> None:
        """Put copies into the subscription's queue, all or none (raises if it cannot)."""
        queue = self.get_queue(sub.endpoint)
        for msg in messages:
            queue.check_body(msg.body)
        queue.send([m.body for m in messages])

    def drop_deferred(self, sub: Subscription, msg: TopicMessage) -> None:
        log.warning("no deliverer is running: message %s for %s/%s dropped", msg.msg_id, sub.topic.name, sub.name)
        sub.pending -= 1
        sub.dropped += 1
        self.push_attempted(sub, msg, 0, settled=True)

    def push_attempted(self, sub: Subscription, msg: TopicMessage, attempts: int, settled: bool) -> None:
        """The deliverer reports each failed attempt and the end (delivered or given up)."""
        self.events.emit(PushSettled(sub, msg) if settled else PushAttempted(sub, msg, attempts))

    # -- durability -----------------------------------------------------------------------

    def add_pending_source(self, source) -> None:
        """Register who can list the deliveries still pending (for snapshots): a function
        returning {pending key: [topic key, sub key, msg id, body, tags, published, attempts]}."""
        self._pending_dumpers.append(source)

    def dump(self) -> dict[str, Any]:
        """The whole state as plain data (the snapshot's shape; storage/codec.py)."""
        pending: dict[str, list] = {}
        for hook in self._pending_dumpers:
            pending.update(hook())
        return {"v": SNAPSHOT_VERSION, "next_id": self._last_id + 1,
                "queues": {key: q.dump() for key, q in self._queues.items()},
                "topics": {key: t.dump() for key, t in self._topics.items()},
                "pending": pending}

    def load(self, state: dict[str, Any]) -> list[tuple[Subscription, TopicMessage, int]]:
        """Rebuild queues, topics and subscriptions from plain state; return the deliveries
        that were still pending, for the deliverer to resume (with their attempt counts)."""
        self._last_id = max(self._last_id, state["next_id"] - 1)
        for key, d in state["queues"].items():
            queue = Queue(d["name"], d["id"], QueueSettings(**d["settings"]), self.clock, self.next_message_id,
                          self.parking, self.events)
            queue.create_time, queue.last_modify_time = d["created"], d["modified"]
            queue.restore(d["messages"])
            self._queues[key] = queue
        for key, d in state["topics"].items():
            topic = Topic(d["name"], d["id"], d["filter"], TopicSettings(**d["settings"]), d["created"])
            topic.last_modify_time = d["modified"]
            for sub_key, sd in d["subs"].items():
                topic.subscriptions[sub_key] = Subscription.restore(topic, sd)
            self._topics[key] = topic
        resumed = []
        for topic_key, sub_key, msg_id, body, tags, published, attempts in state["pending"].values():
            topic = self._topics.get(topic_key)
            sub = topic.subscriptions.get(sub_key) if topic else None
            if sub is not None:
                sub.pending += 1
                resumed.append((sub, TopicMessage(msg_id, body, tuple(tags), published), attempts))
        return resumed

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Answer every parked receiver, and park no more, so shutdown need not wait out long polls."""
        for queue in self._queues.values():
            queue.close()

