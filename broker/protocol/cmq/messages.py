"""Message actions: (Batch)SendMessage, (Batch)ReceiveMessage, (Batch)DeleteMessage, and
PeekMessage (a cmq-broker extension: the cloud has no such action)."""

from __future__ import annotations

from json.encoder import encode_basestring

from ...engine.limits import MAX_DELAY, MAX_PEEK, MAX_POLL
from ...errors import BrokerError, NoMessage
from ...store import Store
from .errors import BATCH_DELETE_FAILED, BATCH_DELETE_PARTIAL, ReplyError, codes_for, describe
from .params import MAX_BATCH, Params


# CMQ's order of errors: a missing queue is reported before anything wrong with the parameters
# that follow the queue's name. So a handler parses those in `try`, and only when that fails asks
# the store whether the queue exists (`queue_first`) before re-raising: no cost on success.

async def queue_first(store: Store, queue: str) -> None:
    await store.get_queue(queue)  # raises QueueNotFound, if that is the case


async def send_message(store: Store, p: Params) -> str:
    name = p.str("queueName")
    try:
        body, delay = p.str("msgBody"), p.int("delaySeconds", 0, 0, MAX_DELAY)
    except BrokerError:
        await queue_first(store, name)
        raise
    [msg_id] = await store.send(name, [body], delay)
    return f'"msgId":"{msg_id}",'


async def batch_send_message(store: Store, p: Params) -> dict:
    name = p.str("queueName")
    try:
        bodies, delay = p.list("msgBody"), p.int("delaySeconds", 0, 0, MAX_DELAY)
    except BrokerError:
        await queue_first(store, name)
        raise
    ids = await store.send(name, bodies, delay)
    return {"msgList": [{"msgId": str(i)} for i in ids]}


def _wait(p: Params) -> int | None:
    """The long-poll wait asked for; None for the queue's own pollingWaitSeconds."""
    return p.int("pollingWaitSeconds", None, 0, MAX_POLL)


# Receive replies are the hot path's biggest: written as JSON text directly, no dicts between.
# encode_basestring is json's own string encoder (quotes and escapes; non-ASCII kept as is).
_MESSAGE = ('"msgBody":{},"msgId":"{}","receiptHandle":"{}","enqueueTime":{},"firstDequeueTime":{},'
            '"nextVisibleTime":{},"dequeueCount":{}').format


def _render(msg, visible_at: int) -> str:
    """One message's members, as JSON text (no braces)."""
    return _MESSAGE(encode_basestring(msg.body), msg.id, msg.receipt_handle, int(msg.enqueue_time),
                    int(msg.first_dequeue_time), visible_at, msg.dequeue_count)


async def receive_message(store: Store, p: Params) -> str:
    name = p.str("queueName")
    try:
        wait = _wait(p)
    except BrokerError:
        await queue_first(store, name)
        raise
    got, visible_at = await store.receive(name, 1, wait)
    if not got:
        raise NoMessage()
    return _render(got[0], int(visible_at)) + ","


async def batch_receive_message(store: Store, p: Params) -> str:
    name = p.str("queueName")
    try:
        n, wait = p.int("numOfMsg", lo=1, hi=MAX_BATCH), _wait(p)
    except BrokerError:
        await queue_first(store, name)
        raise
    got, visible_at = await store.receive(name, n, wait)
    if not got:
        raise NoMessage()
    visible_at = int(visible_at)
    return '"msgInfoList":[{' + "},{".join([_render(m, visible_at) for m in got]) + "}],"


async def peek_message(store: Store, p: Params) -> dict:
    """Messages as they are, oldest first, in any state but deleted: nothing changes, no
    dequeue count or visibility timeout. An empty queue gives an empty list, not 7000."""
    name = p.str("queueName")
    try:
        n = p.int("numOfMsg", 16, 1, MAX_PEEK)
    except BrokerError:
        await queue_first(store, name)
        raise
    peeked = await store.peek(name, n)
    return {"msgInfoList": [
        {"msgBody": m.body, "msgId": str(m.id), "enqueueTime": int(m.enqueue_time),
         "firstDequeueTime": int(m.first_dequeue_time), "dequeueCount": m.dequeue_count,
         "state": m.state, "nextVisibleTime": int(m.visible_at)}
        for m in peeked
    ]}


async def delete_message(store: Store, p: Params) -> str:
    name = p.str("queueName")
    try:
        handle = p.str("receiptHandle")
    except BrokerError:
        await queue_first(store, name)
        raise
    await store.delete(name, handle)
    return ""


async def batch_delete_message(store: Store, p: Params) -> str:
    name = p.str("queueName")
    try:
        handles = p.list("receiptHandle")
    except BrokerError:
        await queue_first(store, name)
        raise
    failures = [{"code": codes_for(exc)[0], "message": describe(exc), "receiptHandle": handle}
                for handle, exc in await store.delete_batch(name, handles)]
    if not failures:
        return ""
    if len(failures) == len(handles):
        raise ReplyError(BATCH_DELETE_FAILED, "no message was deleted", {"errorList": failures})
    raise ReplyError(
        BATCH_DELETE_PARTIAL,
        f"{len(failures)} of {len(handles)} messages were not deleted",
        {"errorList": failures},
    )
