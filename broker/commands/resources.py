"""Queue and topic commands, and the helpers the event tail shares: paging through names,
long polls longer than the broker's, batch deletes, and tables for people."""

from __future__ import annotations

import json
import math
import sys
import time

from ..client import Client, ClientError, CmqError

MAX_BATCH = 16  # messages per BatchReceiveMessage / BatchDeleteMessage
# Longer waits are several polls of at most this: a poll cut short by Ctrl-C stays parked on the
# broker until it ends, and a message arriving meanwhile waits out its visibility timeout.
MAX_POLL = 5
NO_SUCH = 4440  # CMQ's code for a missing queue or topic
QUEUE_ATTRIBUTES = ("visibilityTimeout", "pollingWaitSeconds", "maxMsgSize", "msgRetentionSeconds",
                    "rewindSeconds", "maxMsgHeapNum")


def read_body(text: str) -> str:
    if text != "-":
        return text
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError("the body read from stdin is not UTF-8 text") from None


def local_time(epoch) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


# Bodies are shown on one line; --json shows them exactly.
ONE_LINE = {c: f"\\x{c:02x}" for c in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t", 127: "\\x7f"}


def one_line(text: str) -> str:
    return text.translate(ONE_LINE)


def table(headers: tuple[str, ...], rows: list[tuple]) -> None:
    """Print aligned columns; a column of numbers aligns right."""
    cells = [tuple(str(v) for v in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    right = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    for row in [headers, *cells]:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(row, widths, right)]
        print("  ".join(parts).rstrip())


def names(client: Client, action: str, key: str, prefix: str | None) -> list[str]:
    """Every queue or topic name (the List actions page by 50), optionally by prefix."""
    found: list[str] = []
    offset = 0
    while True:
        reply = client.call(action, searchWord=prefix or None, offset=offset, limit=50)
        page = reply.get(key + "List") or []
        found += [item[key + "Name"] for item in page]
        offset += len(page)
        if not page or offset >= reply.get("totalCount", 0):
            break
    if prefix:  # searchWord matches anywhere in the name; a prefix is what people expect
        found = [n for n in found if n.lower().startswith(prefix.lower())]
    return sorted(found, key=str.lower)


def missing_ok(call, *args, **kwargs):
    """`call`, or None when its queue or topic has gone in the meantime."""
    try:
        return call(*args, **kwargs)
    except CmqError as exc:
        if exc.code == NO_SUCH:
            return None
        raise


# -- queues -----------------------------------------------------------------------------------

def queue_list(client: Client, args) -> int:
    rows = []
    for name in names(client, "ListQueue", "queue", args.prefix):
        attrs = missing_ok(client.call, "GetQueueAttributes", queueName=name)
        if attrs is not None:
            rows.append((name, attrs["activeMsgNum"], attrs["inactiveMsgNum"], attrs["delayMsgNum"]))
    if not rows:
        print("no queues" + (f" starting with {args.prefix!r}" if args.prefix else ""), file=sys.stderr)
        return 0
    table(("QUEUE", "ACTIVE", "INFLIGHT", "DELAYED"), rows)
    return 0


def queue_create(client: Client, args) -> int:
    attrs = {a: getattr(args, a) for a in QUEUE_ATTRIBUTES}
    reply = client.call("CreateQueue", queueName=args.name, **attrs)
    print(f"created queue {args.name} ({reply.get('queueId', '?')})")
    return 0


def queue_delete(client: Client, args) -> int:
    client.call("DeleteQueue", queueName=args.name)
    print(f"deleted queue {args.name}")
    return 0


def queue_send(client: Client, args) -> int:
    reply = client.call("SendMessage", queueName=args.name, msgBody=read_body(args.body), delaySeconds=args.delay)
    print(reply["msgId"])
    return 0


def receive(client: Client, queue: str, n: int, deadline: float | None) -> list[dict]:
    """Up to `n` messages, long-polling until one arrives or `deadline` (monotonic; None: never)."""
    while True:
        poll = MAX_POLL if deadline is None else max(0, min(MAX_POLL, math.ceil(deadline - time.monotonic())))
        try:
            reply = client.call("BatchReceiveMessage", wait=poll, queueName=queue,
                                numOfMsg=min(n, MAX_BATCH), pollingWaitSeconds=poll)
            return reply["msgInfoList"]
        except CmqError as exc:
            if exc.code != 7000:  # 7000: nothing arrived in time
                raise
        if deadline is not None and time.monotonic() >= deadline:
            return []


def delete(client: Client, queue: str, handles: list[str]) -> None:
    for i in range(0, len(handles), MAX_BATCH):
        client.call("BatchDeleteMessage", queueName=queue, receiptHandle=handles[i:i + MAX_BATCH])


def _show_messages(messages: list[dict], as_json: bool, state: bool = False) -> None:
    if as_json:
        for m in messages:
            print(json.dumps(m, ensure_ascii=False))
        return
    headers = ("MSG ID", *(("STATE",) if state else ()), "ENQUEUED", "DEQUEUES", "BODY")
    table(headers, [(m["msgId"], *((m["state"],) if state else ()), local_time(m["enqueueTime"]),
                      m["dequeueCount"], one_line(m["msgBody"])) for m in messages])


def queue_receive(client: Client, args) -> int:
    got: list[dict] = []
    deadline = time.monotonic() + args.wait
    while len(got) < args.n:
        batch = receive(client, args.name, args.n - len(got), deadline)
        if not batch:
            break
        got += batch
        deadline = time.monotonic()  # only the first message is waited for
    if not got:
        print(f"no message in {args.name}", file=sys.stderr)
        return 0
    _show_messages(got, args.json)
    sys.stdout.flush()  # printed before deleted: a message is never lost unseen
    if not args.keep:
        delete(client, args.name, [m["receiptHandle"] for m in got])
    return 0


def queue_peek(client: Client, args) -> int:
    messages = client.call("PeekMessage", queueName=args.name, numOfMsg=args.n)["msgInfoList"]
    if not messages:
        print(f"no message in {args.name}", file=sys.stderr)
        return 0
    _show_messages(messages, args.json, state=True)
    return 0


def queue_purge(client: Client, args) -> int:
    purged = client.call("PurgeQueue", queueName=args.name)["purged"]
    print(f"purged {purged} message{'' if purged == 1 else 's'} from {args.name}")
    return 0


# -- topics -----------------------------------------------------------------------------------

def topic_list(client: Client, args) -> int:
    rows = []
    for name in names(client, "ListTopic", "topic", args.prefix):
        attrs = missing_ok(client.call, "GetTopicAttributes", topicName=name)
        subs = missing_ok(client.call, "ListSubscriptionByTopic", topicName=name, limit=1)
        if attrs is not None and subs is not None:
            kind = "routing" if attrs.get("filterType") == 2 else "tag"
            rows.append((name, kind, subs.get("totalCount", 0)))
    if not rows:
        print("no topics" + (f" starting with {args.prefix!r}" if args.prefix else ""), file=sys.stderr)
        return 0
    table(("TOPIC", "FILTER", "SUBSCRIPTIONS"), rows)
    return 0


def topic_create(client: Client, args) -> int:
    reply = client.call("CreateTopic", topicName=args.name, filterType=2 if args.routing else 1)
    print(f"created topic {args.name} ({reply.get('topicId', '?')})")
    return 0


def topic_delete(client: Client, args) -> int:
    client.call("DeleteTopic", topicName=args.name)
    print(f"deleted topic {args.name}")
    return 0


def topic_publish(client: Client, args) -> int:
    reply = client.call("PublishMessage", topicName=args.topic, msgBody=read_body(args.body),
                        msgTag=args.tag or None, routingKey=args.routing_key)
    print(reply["msgId"])
    return 0
