"""The codec: engine events as log records, and records replayed onto the snapshot's plain state.

This is the only place that knows how an engine event looks on disk (design.md rule 14). A
record is a tuple whose first item names the change; the shapes are those every released
version wrote, so any old data directory still opens:

    qc name-key, dump-of-queue           qu key, settings, modified      qd key      qp key (purge)
    ms key, [[id, body, enqueued, visible_at (0 = now)], ...]            send
    mr key, [[id, dequeue_count, first_dequeue, visible_until], ...]     receive
    md key, [id, ...], kept                                              delete (kept for rewind)
    rw key, [id, ...]                                                    rewind: kept -> visible
    tc key, dump-of-topic   tu key, settings, modified   td key
    sc topic-key, sub-key, dump-of-subscription   su topic-key, sub-key, dump   sd topic-key, sub-key
    pp pending-key, [topic-key, sub-key, msg_id, body, tags, published, attempts]   a push waits
    pa pending-key, attempts                                             it failed once more
    ps pending-key                                                       it settled

The plain state (what `Broker.dump` produces, a snapshot holds and `Broker.load` reads) is
{"v", "next_id", "queues": {key: queue}, "topics": {key: topic}, "pending": {key: [...]}}, a
queue's messages being {id: [body, enqueued, dequeue_count, first_dequeue, visible_at, kept]}.
Other parts of the broker (the Batch simulator) own their records and their part of the state;
see `Part` in recovery.py.

Times are wall-clock seconds: on recovery an in-flight message whose visibility timeout passed
while the broker was down is simply visible again.
"""

from __future__ import annotations

from typing import Any, Callable

from ..engine import events as E
from ..engine.broker import SNAPSHOT_VERSION
from ..engine.events import pending_key


def _sub_key(sub: Any, msg: Any) -> str:
    return pending_key(sub.topic.name.lower(), sub.name.lower(), msg.msg_id)


# event type → its record
ENCODERS: dict[type, Callable[[Any], tuple]] = {
    E.MessagesSent: lambda e: ("ms", e.key, e.messages),
    E.MessagesReceived: lambda e: ("mr", e.key, e.messages),
    E.MessagesDeleted: lambda e: ("md", e.key, e.ids, e.kept),
    E.MessagesRewound: lambda e: ("rw", e.key, e.ids),
    E.QueueCreated: lambda e: ("qc", e.key, e.queue),
    E.QueueUpdated: lambda e: ("qu", e.key, e.settings, e.modified),
    E.QueueDeleted: lambda e: ("qd", e.key),
    E.QueuePurged: lambda e: ("qp", e.key),
    E.TopicCreated: lambda e: ("tc", e.key, e.topic),
    E.TopicUpdated: lambda e: ("tu", e.key, e.settings, e.modified),
    E.TopicDeleted: lambda e: ("td", e.key),
    E.SubscriptionCreated: lambda e: ("sc", e.topic_key, e.key, e.subscription),
    E.SubscriptionUpdated: lambda e: ("su", e.topic_key, e.key, e.subscription),
    E.SubscriptionDeleted: lambda e: ("sd", e.topic_key, e.key),
    E.PushPending: lambda e: ("pp", _sub_key(e.sub, e.msg),
                              [e.sub.topic.name.lower(), e.sub.name.lower(), e.msg.msg_id, e.msg.body,
                               list(e.msg.tags), e.msg.publish_time, e.attempts]),
    E.PushAttempted: lambda e: ("pa", _sub_key(e.sub, e.msg), e.attempts),
    E.PushSettled: lambda e: ("ps", _sub_key(e.sub, e.msg)),
}


def encode(event: Any) -> tuple:
    return ENCODERS[type(event)](event)


def empty_state() -> dict[str, Any]:
    return {"v": SNAPSHOT_VERSION, "next_id": 0, "queues": {}, "topics": {}, "pending": {}}


# -- replay: one function per record kind, each applying it to the plain state --------------------

def _sent(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        msgs = q["messages"]
        next_id = state["next_id"]
        for mid, body, enqueued, visible_at in r[2]:
            msgs[mid] = [body, enqueued, 0, 0, visible_at, False]
            if mid >= next_id:
                next_id = mid + 1
        state["next_id"] = next_id


def _received(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        msgs = q["messages"]
        for mid, count, first, until in r[2]:
            m = msgs.get(mid)
            if m is not None:
                m[2], m[3], m[4] = count, first, until


def _deleted(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        msgs = q["messages"]
        for mid in r[2]:
            if r[3]:
                m = msgs.get(mid)
                if m is not None:
                    m[4], m[5] = 0, True
            else:
                msgs.pop(mid, None)


def _rewound(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        for mid in r[2]:
            m = q["messages"].get(mid)
            if m is not None:
                m[4], m[5] = 0, False


def _queue_updated(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        q["settings"], q["modified"] = r[2], r[3]
        if not r[2].get("rewindSeconds"):
            q["messages"] = {k: m for k, m in q["messages"].items() if not m[5]}


def _purged(state: dict, r: tuple) -> None:
    q = state["queues"].get(r[1])
    if q is not None:
        q["messages"] = {}


def _topic_updated(state: dict, r: tuple) -> None:
    t = state["topics"].get(r[1])
    if t is not None:
        t["settings"], t["modified"] = r[2], r[3]


def _subscription_saved(state: dict, r: tuple) -> None:
    t = state["topics"].get(r[1])
    if t is not None:
        t["subs"][r[2]] = r[3]


def _subscription_deleted(state: dict, r: tuple) -> None:
    t = state["topics"].get(r[1])
    if t is not None:
        t["subs"].pop(r[2], None)


def _push_attempted(state: dict, r: tuple) -> None:
    p = state["pending"].get(r[1])
    if p is not None:
        p[6] = r[2]


REPLAY: dict[str, Callable[[dict, tuple], None]] = {
    "ms": _sent,
    "mr": _received,
    "md": _deleted,
    "rw": _rewound,
    "qc": lambda state, r: state["queues"].__setitem__(r[1], r[2]),
    "qu": _queue_updated,
    "qd": lambda state, r: state["queues"].pop(r[1], None),
    "qp": _purged,
    "tc": lambda state, r: state["topics"].__setitem__(r[1], r[2]),
    "tu": _topic_updated,
    "td": lambda state, r: state["topics"].pop(r[1], None),
    "sc": _subscription_saved,
    "su": _subscription_saved,
    "sd": _subscription_deleted,
    "pp": lambda state, r: state["pending"].__setitem__(r[1], r[2]),
    "pa": _push_attempted,
    "ps": lambda state, r: state["pending"].pop(r[1], None),
}


def replay(state: dict[str, Any], records) -> dict[str, Any]:
    """Apply engine records, in order, to a plain state (modified in place and returned)."""
    for record in records:
        apply = REPLAY.get(record[0])
        if apply is None:
            raise ValueError(f"unknown journal record {record[0]!r}")
        apply(state, record)
    return state
