"""Message actions: (Batch)SendMessage, (Batch)ReceiveMessage, (Batch)DeleteMessage, and
PeekMessage (a cmq-broker extension: the cloud has no such action)."""

from __future__ import annotations

from json.encoder import encode_basestring

from ...engine import Broker, Message, Queue
from ...engine.queue import STATE_NAMES
from ...errors import NoMessage
from .errors import BATCH_DELETE_FAILED, BATCH_DELETE_PARTIAL, ReplyError, codes_for
from .params import MAX_BATCH, Params

MAX_DELAY = 3600
MAX_POLL = 30
MAX_PEEK = 100


async def send_message(broker: Broker, p: Params) -> str:
    queue = broker.get_queue(p.str("queueName"))
    body = p.str("msgBody")
    delay = p.int("delaySeconds", 0, 0, MAX_DELAY)
    queue.check_body(body)
    [msg] = queue.send([body], delay)
    return f'"msgId":"{msg.id}",'


async def batch_send_message(broker: Broker, p: Params) -> dict:
    queue = broker.get_queue(p.str("queueName"))
    bodies = p.list("msgBody")
    delay = p.int("delaySeconds", 0, 0, MAX_DELAY)
    for i, body in enumerate(bodies, 1):
        queue.check_body(body, f"msgBody.{i}")
    return {"msgList": [{"msgId": str(m.id)} for m in queue.send(bodies, delay)]}


def _wait(p: Params, queue: Queue) -> int:
    return p.int("pollingWaitSeconds", queue.settings.pollingWaitSeconds, 0, MAX_POLL)


# Receive replies are the hot path's biggest: written as JSON text directly, no dicts between.
# encode_basestring is json's own string encoder (quotes and escapes; non-ASCII kept as is).
_MESSAGE = ('"msgBody":{},"msgId":"{}","receiptHandle":"{}","enqueueTime":{},"firstDequeueTime":{},'
            '"nextVisibleTime":{},"dequeueCount":{}').format


def _render(msg: Message, wall_minus_mono: float) -> str:
    """One message's members, as JSON text (no braces)."""
    return _MESSAGE(encode_basestring(msg.body), msg.id, msg.receipt_handle, int(msg.enqueue_time),
                    int(msg.first_dequeue_time), int(msg.due + wall_minus_mono), msg.dequeue_count)


def _wall_minus_mono(broker: Broker) -> float:
    """Turns a monotonic due time into wall-clock seconds; read once per reply."""
    return broker.clock.time() - broker.clock.monotonic()


async def receive_message(broker: Broker, p: Params) -> str:
    queue = broker.get_queue(p.str("queueName"))
    got = await queue.receive(1, _wait(p, queue))
    if not got:
        raise NoMessage()
    return _render(got[0], _wall_minus_mono(broker)) + ","


async def batch_receive_message(broker: Broker, p: Params) -> str:
    queue = broker.get_queue(p.str("queueName"))
    n = p.int("numOfMsg", lo=1, hi=MAX_BATCH)
    got = await queue.receive(n, _wait(p, queue))
    if not got:
        raise NoMessage()
    offset = _wall_minus_mono(broker)
    return '"msgInfoList":[{' + "},{".join([_render(m, offset) for m in got]) + "}],"


async def peek_message(broker: Broker, p: Params) -> dict:
    """Messages as they are, oldest first, in any state but deleted: nothing changes, no
    dequeue count or visibility timeout. An empty queue gives an empty list, not 7000."""
    queue = broker.get_queue(p.str("queueName"))
    n = p.int("numOfMsg", 16, 1, MAX_PEEK)
    offset = _wall_minus_mono(broker)
    return {"msgInfoList": [
        {"msgBody": m.body, "msgId": str(m.id), "enqueueTime": int(m.enqueue_time),
         "firstDequeueTime": int(m.first_dequeue_time), "dequeueCount": m.dequeue_count,
         "state": STATE_NAMES[m.state], "nextVisibleTime": int(m.due + offset) if m.due else 0}
        for m in queue.peek(n)
    ]}


async def delete_message(broker: Broker, p: Params) -> dict:
    queue = broker.get_queue(p.str("queueName"))
    queue.delete(p.str("receiptHandle"))
    return ""


async def batch_delete_message(broker: Broker, p: Params) -> dict:
    queue = broker.get_queue(p.str("queueName"))
    handles = p.list("receiptHandle")
    failures = []
    for handle, exc in queue.delete_batch(handles):
        code, module = codes_for(exc)
        failures.append({"code": code, "message": f"({module}){exc.message}", "receiptHandle": handle})
    if not failures:
        return ""
    if len(failures) == len(handles):
        raise ReplyError(BATCH_DELETE_FAILED, "no message was deleted", {"errorList": failures})
    raise ReplyError(
        BATCH_DELETE_PARTIAL,
        f"{len(failures)} of {len(handles)} messages were not deleted",
        {"errorList": failures},
    )
