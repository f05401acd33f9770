"""Queue management actions: CreateQueue, ListQueue, Get/SetQueueAttributes, DeleteQueue, RewindQueue,
and PurgeQueue (a cmq-broker extension: the cloud has no such action)."""

from __future__ import annotations

from ...engine import Broker, Queue
from ...engine.settings import QUEUE_SETTINGS
from .params import Params


def _attributes(queue: Queue) -> dict:
    return {**queue.settings.as_dict(), "queueId": queue.queue_id}


async def create_queue(broker: Broker, p: Params) -> dict:
    name = p.str("queueName")
    queue = broker.create_queue(name, p.optional_ints(QUEUE_SETTINGS))
    return {"queueId": queue.queue_id}


async def set_queue_attributes(broker: Broker, p: Params) -> dict:
    queue = broker.set_queue_attributes(p.str("queueName"), p.optional_ints(QUEUE_SETTINGS))
    return _attributes(queue)


async def get_queue_attributes(broker: Broker, p: Params) -> dict:
    queue = broker.get_queue(p.str("queueName"))
    stats = queue.stats()
    return {
        **_attributes(queue),
        "queueName": queue.name,
        "createTime": queue.create_time,
        "lastModifyTime": queue.last_modify_time,
        **stats,
        "rewindmsgNum": stats["rewindMsgNum"],  # the spelling the Python SDK reads
        "minMsgTime": queue.min_msg_time(),
    }


async def delete_queue(broker: Broker, p: Params) -> dict:
    broker.delete_queue(p.str("queueName"))
    return {}


async def list_queue(broker: Broker, p: Params) -> dict:
    search = p.str("searchWord", "")
    offset = p.int("offset", 0, 0, 1_000_000)
    limit = p.int("limit", 20, 1, 50)
    total, page = broker.list_queues(search, offset, limit)
    return {
        "totalCount": total,
        "queueList": [{"queueId": q.queue_id, "queueName": q.name} for q in page],
    }


async def rewind_queue(broker: Broker, p: Params) -> dict:
    queue = broker.get_queue(p.str("queueName"))
    queue.rewind(p.int("startConsumeTime"))
    return {}


async def purge_queue(broker: Broker, p: Params) -> dict:
    return {"purged": broker.get_queue(p.str("queueName")).purge()}
