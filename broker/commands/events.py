"""`events tail`: Batch event notifications, one readable line each (or raw JSON).

A queue is read directly, and what was printed is deleted. A topic is read through a temporary
queue `tail-<random>` subscribed to it, removed again however the command ends (the `finally`
blocks run on Ctrl-C, and on SIGTERM, which `run` turns into SystemExit), so a tail leaves
nothing behind on the broker.
"""

from __future__ import annotations

import base64
import calendar
import json
import secrets
import sys
import time

from ..client import Client, ClientError
from .resources import MAX_BATCH, delete, local_time, missing_ok, one_line, receive

NAME_WIDTH = 32  # TASK_INSTANCE_FAILED_INTERRUPTED, the longest event name


def decode_events(body: str) -> list[dict] | None:
    """The events of a Batch message body (Base64 of {"Events": [...]}), None if it is not one."""
    try:
        data = json.loads(base64.b64decode(body, validate=True).decode("utf-8"))
    except ValueError:  # bad Base64, bad UTF-8 and bad JSON are all ValueErrors
        return None
    events = data.get("Events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return None
    return events


def _value(v) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if not text or any(c in text for c in ' "=\t\n') else text


def _describe(b: dict) -> tuple[str, list[str]]:
    """(what the event is about, its details as key=value) for each kind of Batch entity."""
    def kv(label: str, key: str) -> str | None:
        return None if b.get(key) in (None, "") else f"{label}={_value(b[key])}"

    job, task, index = b.get("JobId"), b.get("TaskName"), b.get("TaskInstanceIndex")
    if "ComputeNodeId" in b:  # a private node also carries its attempt's job, task and index
        owner = kv("env", "EnvId") or (f"job={job}/{task}/{index}" if job else None)
        return str(b["ComputeNodeId"]), [owner, kv("cvm", "ComputeNodeInstanceId")]
    if "TaskInstanceIndex" in b:
        return f"{job}/{task}/{index}", [kv("exit", "ExitCode"), kv("cvm", "ComputeNodeInstanceId"),
                                         kv("reason", "StateReason")]
    if "TaskName" in b:
        return f"{job}/{task}", [kv("instances", "TaskInstanceNum")]
    if "JobId" in b:
        return str(job), [kv("name", "JobName"), kv("reason", "StateReason")]
    if "EnvId" in b:
        return str(b["EnvId"]), [kv("name", "EnvName"), kv("nodes", "DesiredComputeNodeCount")]
    return "-", [json.dumps(b, ensure_ascii=False)]


def _event_time(text) -> str:
    try:
        return local_time(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return str(text)


def event_line(event: dict) -> str:
    batch = event.get("Batch") if isinstance(event.get("Batch"), dict) else {}
    subject, details = _describe(batch)
    variables = [f"{v.get('Name')}={_value(v.get('Value'))}" for v in event.get("EventVars") or []
                 if isinstance(v, dict)]
    parts = [_event_time(event.get("EventTime")), str(event.get("EventName", "?")).ljust(NAME_WIDTH),
             subject.ljust(24), *filter(None, details)]
    if variables:
        parts.append("vars: " + " ".join(variables))
    return "  ".join(parts).rstrip()


def _print_body(body: str, as_json: bool) -> int:
    """Print a message's events; the number of lines printed."""
    events = decode_events(body)
    if events is None:
        print(json.dumps({"NotAnEvent": body}, ensure_ascii=False) if as_json
              else f"[not a Batch event] {one_line(body)}", flush=True)
        return 1
    for event in events:
        print(json.dumps(event, ensure_ascii=False, separators=(",", ":")) if as_json else event_line(event))
    sys.stdout.flush()
    return len(events)


def _tail(client: Client, queue: str, args) -> int:
    want = 1 if args.once else args.count  # None: until stopped
    seen = 0
    deadline = None if args.wait is None else time.monotonic() + args.wait
    while want is None or seen < want:
        batch = receive(client, queue, MAX_BATCH if want is None else want - seen, deadline)
        if not batch:
            break
        printed: list[str] = []
        try:
            for msg in batch:
                seen += _print_body(msg["msgBody"], args.json)
                printed.append(msg["receiptHandle"])
        finally:  # delete what was shown, also when interrupted half way
            if printed:
                delete(client, queue, printed)
        if deadline is not None:
            deadline = time.monotonic() + args.wait
    if want is not None and seen < want:
        print(f"error: {seen} of {want} events arrived, then none for {args.wait} s", file=sys.stderr)
        return 1
    return 0


def tail(client: Client, args) -> int:
    if missing_ok(client.call, "GetQueueAttributes", queueName=args.name) is not None:
        print(f"tailing queue {args.name} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        return _tail(client, args.name, args)
    topic = missing_ok(client.call, "GetTopicAttributes", topicName=args.name)
    if topic is None:
        raise ClientError(f"no queue or topic named {args.name!r}")
    temp = f"tail-{secrets.token_hex(6)}"
    client.call("CreateQueue", queueName=temp)
    try:
        # Batch events carry no tag and an empty routing key: '#' is what matches them on a
        # routing-key topic, and no filter at all on a tag topic.
        client.call("Subscribe", topicName=args.name, subscriptionName=temp, protocol="queue", endpoint=temp,
                    notifyContentFormat="SIMPLIFIED", bindingKey=["#"] if topic.get("filterType") == 2 else None)
        try:
            print(f"tailing topic {args.name} through temporary queue {temp} (Ctrl-C to stop)",
                  file=sys.stderr, flush=True)
            return _tail(client, temp, args)
        finally:
            _cleanup(client.call, "Unsubscribe", topicName=args.name, subscriptionName=temp)
    finally:
        _cleanup(client.call, "DeleteQueue", queueName=temp)


def _cleanup(call, action: str, **params) -> None:
    try:
        missing_ok(call, action, **params)
    except ClientError as exc:
        print(f"warning: {action} {' '.join(map(str, params.values()))} failed: {exc}", file=sys.stderr)
