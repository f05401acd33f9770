"""Queue management actions: CreateQueue, ListQueue, Get/SetQueueAttributes, DeleteQueue, RewindQueue,
and PurgeQueue (a cmq-broker extension: the cloud has no such action)."""

from __future__ import annotations

from ...engine.settings import QUEUE_SETTINGS
from ...store import QueueInfo, Store
from ...errors import BrokerError
from .messages import queue_first
from .params import Params


def _attributes(queue: QueueInfo) -> dict:
    return {**queue.settings, "queueId": queue.queue_id}


async def create_queue(store: Store, p: Params) -> dict:
    queue = await store.create_queue(p.str("queueName"), p.optional_ints(QUEUE_SETTINGS))
    return {"queueId": queue.queue_id}


async def set_queue_attributes(store: Store, p: Params) -> dict:
    return _attributes(await store.set_queue_attributes(p.str("queueName"), p.optional_ints(QUEUE_SETTINGS)))


async def get_queue_attributes(store: Store, p: Params) -> dict:
    queue = await store.get_queue(p.str("queueName"))
    counts = queue.counts
    return {
        **_attributes(queue),
        "queueName": queue.name,
        "createTime": queue.create_time,
        "lastModifyTime": queue.last_modify_time,
        "activeMsgNum": counts.ready,
        "inactiveMsgNum": counts.inflight,
        "delayMsgNum": counts.delayed,
        "rewindMsgNum": counts.kept,
        "rewindmsgNum": counts.kept,  # the spelling the Python SDK reads
        "minMsgTime": queue.min_msg_time,
    }


async def delete_queue(store: Store, p: Params) -> dict:
    await store.delete_queue(p.str("queueName"))
    return {}


async def list_queue(store: Store, p: Params) -> dict:
    search = p.str("searchWord", "")
    offset = p.int("offset", 0, 0, 1_000_000)
    limit = p.int("limit", 20, 1, 50)
    total, page = await store.list_queues(search, offset, limit)
    return {
        "totalCount": total,
        "queueList": [{"queueId": q.queue_id, "queueName": q.name} for q in page],
    }


async def rewind_queue(store: Store, p: Params) -> dict:
    name = p.str("queueName")
    try:
        start = p.int("startConsumeTime")
    except BrokerError:
        await queue_first(store, name)
        raise
    await store.rewind_queue(name, start)
    return {}


async def purge_queue(store: Store, p: Params) -> dict:
    return {"purged": await store.purge_queue(p.str("queueName"))}
