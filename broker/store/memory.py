"""The in-memory store: the `Store` seam over the in-process engine (engine/).

Each method is the whole operation a protocol needs, done synchronously on the event loop (so it
is atomic, like one script on a Redis server); only a receive that parks waits. Received
messages are the engine's own `Message` objects, which have the attributes the seam promises.
"""

from __future__ import annotations

from ..engine import Broker, Queue, Subscription, Topic
from ..engine.queue import DELAYED, INFLIGHT, STATE_NAMES
from .base import Counts, PeekedMessage, QueueInfo, Received, Store, SubscriptionInfo, TopicInfo


def queue_info(queue: Queue, counts: bool = False) -> QueueInfo:
    if not counts:
        return QueueInfo(queue.name, queue.queue_id, queue.settings.as_dict(), queue.create_time,
                         queue.last_modify_time)
    stats = queue.stats()
    return QueueInfo(queue.name, queue.queue_id, queue.settings.as_dict(), queue.create_time, queue.last_modify_time,
                     Counts(stats["activeMsgNum"], stats["inactiveMsgNum"], stats["delayMsgNum"],
                            stats["rewindMsgNum"]), queue.min_msg_time())


def topic_info(topic: Topic) -> TopicInfo:
    return TopicInfo(topic.name, topic.topic_id, topic.filter_type, topic.settings.as_dict(), topic.create_time,
                     topic.last_modify_time, topic.pending, len(topic.subscriptions))


def subscription_info(sub: Subscription) -> SubscriptionInfo:
    return SubscriptionInfo(sub.topic.name, sub.name, sub.sub_id, sub.protocol, sub.endpoint, sub.notify_strategy,
                            sub.notify_content_format, sub.filter_tags, sub.binding_keys, sub.create_time,
                            sub.last_modify_time, sub.pending, sub.delivered, sub.dropped)


class MemoryStore(Store):
    def __init__(self, engine: Broker):
        self.engine = engine
        self.app_id = engine.app_id
        self._clock = engine.clock

    # -- queues -----------------------------------------------------------------------------------

    async def create_queue(self, name: str, settings: dict) -> QueueInfo:
        return queue_info(self.engine.create_queue(name, settings))

    async def get_queue(self, name: str) -> QueueInfo:
        return queue_info(self.engine.get_queue(name), counts=True)

    async def set_queue_attributes(self, name: str, changes: dict) -> QueueInfo:
        return queue_info(self.engine.set_queue_attributes(name, changes))

    async def delete_queue(self, name: str) -> None:
        self.engine.delete_queue(name)

    async def list_queues(self, search: str = "", offset: int = 0, limit: int = 20,
                          counts: bool = False) -> tuple[int, list[QueueInfo]]:
        total, page = self.engine.list_queues(search, offset, limit)
        return total, [queue_info(q, counts) for q in page]

    async def purge_queue(self, name: str) -> int:
        return self.engine.get_queue(name).purge()

    async def rewind_queue(self, name: str, start_time: int) -> int:
        return self.engine.get_queue(name).rewind(start_time)

    # -- messages ---------------------------------------------------------------------------------

    async def send(self, queue: str, bodies: list[str], delay: int = 0) -> list[int]:
        q = self.engine.get_queue(queue)
        if len(bodies) == 1:  # SendMessage, the hot path: no loop, no comprehension
            q.check_body(bodies[0])
            return [q.send(bodies, delay)[0].id]
        for i, body in enumerate(bodies, 1):
            q.check_body(body, i)
        return [m.id for m in q.send(bodies, delay)]

    async def receive(self, queue: str, n: int, wait: int | None = None) -> Received:
        q = self.engine.get_queue(queue)
        got = await q.receive(n, q.settings.pollingWaitSeconds if wait is None else wait)
        if not got:
            return Received(got, 0.0)
        clock = self._clock
        # Every message of one receive shares its visibility deadline (monotonic in the engine).
        return Received(got, got[0].due + (clock.time() - clock.monotonic()))

    async def delete(self, queue: str, handle: str) -> None:
        self.engine.get_queue(queue).delete(handle)

    async def delete_batch(self, queue: str, handles: list[str]) -> list[tuple[str, Exception]]:
        return self.engine.get_queue(queue).delete_batch(handles)

    async def peek(self, queue: str, n: int) -> list[PeekedMessage]:
        clock = self._clock
        offset = clock.time() - clock.monotonic()
        return [PeekedMessage(m.id, m.body, m.enqueue_time, m.first_dequeue_time, m.dequeue_count,
                              STATE_NAMES[m.state], m.due + offset if m.state in (DELAYED, INFLIGHT) else 0)
                for m in self.engine.get_queue(queue).peek(n)]

    # -- topics -----------------------------------------------------------------------------------

    async def create_topic(self, name: str, filter_type: int, settings: dict) -> TopicInfo:
        return topic_info(self.engine.create_topic(name, filter_type, settings))

    async def get_topic(self, name: str) -> TopicInfo:
        return topic_info(self.engine.get_topic(name))

    async def set_topic_attributes(self, name: str, changes: dict) -> TopicInfo:
        return topic_info(self.engine.set_topic_attributes(name, changes))

    async def delete_topic(self, name: str) -> None:
        self.engine.delete_topic(name)

    async def list_topics(self, search: str = "", offset: int = 0, limit: int = 20) -> tuple[int, list[TopicInfo]]:
        total, page = self.engine.list_topics(search, offset, limit)
        return total, [topic_info(t) for t in page]

    async def publish(self, topic: str, bodies: list[str], tags: list[str], routing_key: str) -> list[int]:
        return self.engine.publish(topic, bodies, tags, routing_key)

    # -- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, topic: str, name: str, protocol: str, endpoint: str, *, strategy: str | None = None,
                        content_format: str | None = None, filter_tags: list[str] | None = None,
                        binding_keys: list[str] | None = None) -> SubscriptionInfo:
        return subscription_info(self.engine.subscribe(topic, name, protocol, endpoint, strategy, content_format,
                                                       filter_tags, binding_keys))

    async def get_subscription(self, topic: str, name: str) -> SubscriptionInfo:
        return subscription_info(self.engine.get_subscription(topic, name))

    async def update_subscription(self, topic: str, name: str, *, strategy: str | None = None,
                                  content_format: str | None = None, filter_tags: list[str] | None = None,
                                  binding_keys: list[str] | None = None) -> SubscriptionInfo:
        return subscription_info(self.engine.update_subscription(
            topic, name, strategy=strategy, content_format=content_format, filter_tags=filter_tags,
            binding_keys=binding_keys))

    async def unsubscribe(self, topic: str, name: str) -> None:
        self.engine.unsubscribe(topic, name)

    async def list_subscriptions(self, topic: str, search: str = "", offset: int = 0,
                                 limit: int = 20) -> tuple[int, list[SubscriptionInfo]]:
        total, page = self.engine.get_topic(topic).list_subscriptions(search, offset, limit)
        return total, [subscription_info(s) for s in page]
