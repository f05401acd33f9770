"""Client commands for people: `queue ...`, `topic ...` and `events tail`.

They talk to a running broker over its public CMQ API, through `broker.client.Client`, like any
other client; nothing here imports the server, so they start fast. Output is for humans (aligned
columns, local times, message bodies on one line) unless `--json` asks for one JSON object per
line. Every failure is one `error: ...` line on stderr and exit status 1 (2 for a bad setting);
Ctrl-C exits 130, SIGTERM 143.

`resources.py` holds the queue and topic commands, `events.py` the event tail; this module the
argument parsers and the one place that turns failures into messages and exit statuses.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..client import Client, ClientError, CmqError
from ..config import ClientConfig, build_client_config
from . import resources as r
from .events import tail as events_tail


def run(args: argparse.Namespace) -> int:
    """Run the client command `args` names; the process exit status."""
    try:
        config = build_client_config(args)
        client = Client(config.url, config.secret_id, config.secret_key)
    except (ValueError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C does, so a tail removes its temporary queue either way. Ctrl-C
    # is restored too: a shell starts background jobs with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt, so `events tail` could not be stopped the usual way.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return args.func(client, args)
    except CmqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.code == 4100:
            print("hint: this broker checks signatures: " + (
                "yours do not match its --secret-id/--secret-key" if config.secret_id else
                "give --secret-id and --secret-key (or BROKER_SECRET_ID and BROKER_SECRET_KEY)"), file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as the docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    """Register `queue`, `topic` and `events` under the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the broker (env BROKER_URL; default {ClientConfig.url})")
    common.add_argument("--secret-id", help="SecretId to sign with, if the broker checks (env BROKER_SECRET_ID)")
    common.add_argument("--secret-key", help="SecretKey to sign with (env BROKER_SECRET_KEY)")

    def command(group, name: str, func, help_text: str) -> argparse.ArgumentParser:
        parser = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(func=func)
        return parser

    queue = sub.add_parser("queue", help="list, create and use queues on a running broker")
    qs = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(qs, "list", r.queue_list, "queues with their active, in-flight and delayed message counts")
    p.add_argument("--prefix", help="only queues whose name starts with this")
    p = command(qs, "create", r.queue_create, "create a queue")
    p.add_argument("name")
    for attr in r.QUEUE_ATTRIBUTES:
        flag = "--" + "".join("-" + c.lower() if c.isupper() else c for c in attr)
        p.add_argument(flag, dest=attr, type=int, metavar="N", help=f"the queue's {attr}")
    p = command(qs, "delete", r.queue_delete, "delete a queue and its messages")
    p.add_argument("name")
    p = command(qs, "send", r.queue_send, "send one message; prints its id")
    p.add_argument("name")
    p.add_argument("body", help="the message body; - reads it from stdin")
    p.add_argument("--delay", type=int, metavar="S", help="seconds before it can be received")
    p = command(qs, "receive", r.queue_receive, "receive messages and delete them (unless --keep)")
    p.add_argument("name")
    p.add_argument("-n", type=_positive, default=1, metavar="N", help="receive up to N messages (default 1)")
    p.add_argument("--wait", type=_seconds, default=0, metavar="S",
                   help="wait up to S seconds for a message (default 0: what is there now)")
    p.add_argument("--keep", action="store_true", help="leave them in the queue (they reappear after "
                                                        "the visibility timeout)")
    p.add_argument("--json", action="store_true", help="one JSON object per message, bodies exact")
    p = command(qs, "peek", r.queue_peek, "look at messages without receiving or changing them")
    p.add_argument("name")
    p.add_argument("-n", type=_positive, default=10, metavar="N", help="at most N messages, 1 to 100 (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per message, bodies exact")
    p = command(qs, "purge", r.queue_purge, "delete every message of a queue")
    p.add_argument("name")

    topic = sub.add_parser("topic", help="list, create and publish to topics on a running broker")
    ts = topic.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(ts, "list", r.topic_list, "topics with their filter type and number of subscriptions")
    p.add_argument("--prefix", help="only topics whose name starts with this")
    p = command(ts, "create", r.topic_create, "create a topic (filtering by tags unless --routing)")
    p.add_argument("name")
    p.add_argument("--routing", action="store_true", help="filter by routing key instead of tags")
    p = command(ts, "delete", r.topic_delete, "delete a topic and its subscriptions")
    p.add_argument("name")
    p = command(ts, "publish", r.topic_publish, "publish one message; prints its id")
    p.add_argument("topic")
    p.add_argument("body", help="the message body; - reads it from stdin")
    p.add_argument("--tag", action="append", metavar="T", help="a tag (repeat for more)")
    p.add_argument("--routing-key", metavar="K", help="the routing key, on a routing-key topic")

    events = sub.add_parser("events", help="watch Batch event notifications")
    es = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(es, "tail", events_tail, "print Batch events from a queue (deleting them) or a topic "
                                         "(through a temporary queue), one line each")
    p.add_argument("name", metavar="TOPIC_OR_QUEUE", help="a queue is read first if both exist")
    p.add_argument("--json", action="store_true", help="print each event as one line of raw JSON")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--count", type=_positive, metavar="N", help="stop after N events")
    stop.add_argument("--once", action="store_true", help="stop after one event (--count 1)")
    p.add_argument("--wait", type=_seconds, metavar="S",
                   help="stop when no event came for S seconds (default: keep waiting); "
                        "with --count, fewer than N events is an error")
