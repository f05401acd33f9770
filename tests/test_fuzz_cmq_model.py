"""Stateful fuzzing of CMQ: random sequences of valid and invalid calls, checked against a model.

The model is a plain description of what CMQ promises. Per queue: each message is ready,
delayed (not visible until a due time), in flight (received, with its latest receipt handle,
visible again at a due time) or kept (deleted, held for RewindQueue). Per topic: its filter
type and subscriptions (a queue, filter tags or binding keys). Each step is one operation,
drawn by weight: queue and topic management, sends, publishes, receives, deletes with live,
stale and junk receipt handles, rewinds, purges, invalid calls, time passing. Each calls the
broker over HTTP (sends, receives, deletes and counters also through the official SDK) and
checks what the model predicts: the reply code, the bodies received (oldest visible first, as
the broker promises), their ids and dequeue counts, which handles of a batch delete fail.

Invariants after every step: GetQueueAttributes' activeMsgNum, inactiveMsgNum, delayMsgNum and
rewindMsgNum equal the model's, and the broker logged no error. At the end every queue is
drained (time moved past every timeout and delay) and the bodies received must be exactly the
model's: nothing accepted is lost, nothing appears twice.

Time is the broker's own FakeClock, moved only by the model, so visibility timeouts and delays
happen exactly when the model says. Retention is exercised by one rule that sets it to its
minimum (60 s) and moves time past it; otherwise it is the default 4 days, which no run reaches.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message as SdkMessage
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from fuzzing import Http, LogWatch, Tally, budget, cmq_reply, fake_clock_broker, form, report

READY, DELAYED, INFLIGHT, KEPT = "ready", "delayed", "inflight", "kept"
BIG_HEAP = 100_000_000  # the default maxMsgHeapNum
DEFAULT_RETENTION = 345_600

# Codes of the CMQ error table (broker/protocol/cmq/errors.py) that the model predicts.
OK, INVALID, TOO_LARGE, FULL, BAD_HANDLE, NOT_FOUND, EXISTS, EXISTS_SUB, NO_MESSAGE = \
    0, 4000, 4400, 4410, 4430, 4440, 4460, 4490, 7000
REWIND_OFF, PARTIAL, ALL_FAILED = 6050, 6010, 6020


@dataclass
class Msg:
    seq: int  # order of arrival in its queue: the broker's ids grow the same way
    body: str
    state: str
    due: float = 0.0  # when a DELAYED or INFLIGHT message becomes READY
    dequeues: int = 0
    handle: str = ""  # the latest receipt handle
    msg_id: str = ""  # learnt from SendMessage's reply, or at the first receive of a topic's copy


@dataclass
class Q:
    name: str  # as created; lookups ignore case
    vt: int = 30
    max_size: int = 65536
    max_heap: int = BIG_HEAP
    rewind: int = 0
    msgs: dict[int, Msg] = field(default_factory=dict)
    subscribers: int = 0  # subscriptions that copy into this queue
    next_seq: int = 0

    def stored(self) -> int:
        return sum(m.state != KEPT for m in self.msgs.values())

    def count(self, state: str) -> int:
        return sum(m.state == state for m in self.msgs.values())

    def ready(self) -> list[Msg]:
        return sorted((m for m in self.msgs.values() if m.state == READY), key=lambda m: m.seq)


@dataclass
class Sub:
    queue: str  # lower-case queue name
    tags: tuple[str, ...] = ()
    keys: tuple[tuple[str, ...], ...] = ()


@dataclass
class T:
    name: str
    routing: bool
    max_size: int = 65536
    subs: dict[str, Sub] = field(default_factory=dict)  # by lower-case name, in creation order


def route_match(binding: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """RabbitMQ topic matching, written the obvious (exponential, tiny inputs) way."""
    if not binding:
        return not key
    head, rest = binding[0], binding[1:]
    if head == "#":
        return route_match(rest, key) or (bool(key) and route_match(binding, key[1:]))
    return bool(key) and head in ("*", key[0]) and route_match(rest, key[1:])


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


RUNS = itertools.count(1)
STATS = Tally()  # shown by report() (pytest -s)
QNAMES = ["q0", "q1", "q2", "q3"]
TNAMES = ["t0", "t1", "t2"]
SNAMES = ["s0", "s1", "s2"]
TAGS = ["red", "green", "blue"]
WORDS = ["a", "b", "c"]

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
sizes = st.sampled_from([0] * 12 + [1500, 70000])  # extra bytes: over 1024 (a small maxMsgSize), over 64 KiB
case = st.sampled_from([str, str.upper, str.lower, str.swapcase])
delays = st.sampled_from([0] * 6 + [1, 2, 5, 30])
advances = st.sampled_from([0, 1, 1, 2, 5, 30, 61])
msg_tags = st.lists(st.sampled_from(TAGS), max_size=3, unique=True)
routing_keys = st.lists(st.sampled_from(WORDS), max_size=3).map(tuple)
binding_keys = st.lists(st.lists(st.sampled_from(WORDS + ["*", "#"]), min_size=1, max_size=3).map(tuple),
                        min_size=1, max_size=2)


class CmqModel(RuleBasedStateMachine):
    env = None  # (broker, http, account, watch), set by the test

    @initialize(vts=st.lists(st.sampled_from([1, 5, 600, 600, 600]), min_size=2, max_size=3),
                routing=st.booleans(), tags=msg_tags)
    def start(self, vts, routing, tags):
        """A run starts with a few queues and a topic copying into the first, so most rules find
        something to act on; the rules create and delete more."""
        STATS["runs"] += 1
        self.broker, self.http, self.account, self.watch = self.env
        self.failed = False
        self.prefix = f"m{next(RUNS)}x"
        self.broker.advance(1)  # a fresh millisecond: no id of an earlier run shares this run's times
        self.now = self.broker.call(self.broker.clock.monotonic)
        self.start_wall = int(self.broker.time())
        self.queues: dict[str, Q] = {}
        self.topics: dict[str, T] = {}
        self.bodies = itertools.count()
        self.stale: list[tuple[str, str]] = []  # (queue key, handle) no longer valid
        for key, vt in zip(QNAMES, vts):
            self.make_queue(key, str, vt, None)
        self.make_topic(TNAMES[0], str, routing, None)
        self.subscribe_queue(self.topics[f"{self.prefix}t0".lower()], self.queues[f"{self.prefix}q0".lower()],
                             SNAMES[0], tags, [("#",)])

    # -- plumbing --------------------------------------------------------------------------

    def call(self, action: str, **params) -> dict:
        pairs = [("Action", action)]
        for name, value in params.items():
            if isinstance(value, list):
                pairs += [(f"{name}.{i}", str(v)) for i, v in enumerate(value, 1)]
            else:
                pairs.append((name, str(value)))
        reply = cmq_reply(self.http.request("POST", "/v2/index.php", form(pairs)), (action, params))
        STATS.call(f"{action}: {reply['code']}")
        return reply

    def expect(self, reply: dict, code: int, what: str = "") -> None:
        assert reply["code"] == code, f"{what or 'call'}: expected code {code}, got {reply}"

    def qname(self, key: str, variant) -> str:
        """This run's name for a queue, spelt with `variant` (names ignore case)."""
        return variant(f"{self.prefix}{key}")

    def body(self, draw_text: str, extra: int) -> str:
        return f"{next(self.bodies)}:{draw_text}" + "x" * extra

    def advance(self, seconds: float) -> None:
        self.broker.advance(seconds)
        self.now += seconds
        for q in self.queues.values():
            for m in q.msgs.values():
                if m.state in (DELAYED, INFLIGHT) and m.due <= self.now:
                    m.state, m.due = READY, 0.0

    def add(self, q: Q, body: str, delay: int) -> Msg:
        seq, q.next_seq = q.next_seq, q.next_seq + 1
        m = Msg(seq, body, DELAYED if delay else READY, self.now + delay if delay else 0.0)
        q.msgs[seq] = m
        return m

    def take(self, q: Q, got: dict) -> None:
        """The model's side of one received message; `got` is the broker's."""
        ready = q.ready()
        assert ready, f"the broker returned {got} but the model has nothing visible"
        m = ready[0]
        assert got["msgBody"] == m.body, f"expected the oldest visible body {m.body!r}, got {got['msgBody']!r}"
        if m.msg_id:
            assert got["msgId"] == m.msg_id, (got, m)
        m.msg_id = got["msgId"]
        if m.handle:
            self.stale.append((q.name.lower(), m.handle))
        m.dequeues += 1
        assert got["dequeueCount"] == m.dequeues, (got, m)
        m.state, m.due, m.handle = INFLIGHT, self.now + q.vt, got["receiptHandle"]

    def delete_one(self, q: Q, handle: str) -> bool:
        for m in q.msgs.values():
            if m.state == INFLIGHT and m.handle == handle:
                self.stale.append((q.name.lower(), handle))
                if q.rewind:
                    m.state = KEPT
                else:
                    del q.msgs[m.seq]
                return True
        return False

    # -- queues ----------------------------------------------------------------------------

    def create_queue(self, data):
        self.make_queue(data.draw(st.sampled_from(QNAMES)), data.draw(case),
                        data.draw(st.sampled_from([None, 1, 5, 600])), data.draw(st.sampled_from([None, None, 0, 43200])))

    def make_queue(self, key, variant, vt, rewind):
        name = self.qname(key, variant)
        params = {"queueName": name}
        if vt is not None:
            params["visibilityTimeout"] = vt
        if rewind is not None:
            params["rewindSeconds"] = rewind
        reply = self.call("CreateQueue", **params)
        if name.lower() in self.queues:
            return self.expect(reply, EXISTS)
        self.expect(reply, OK)
        self.queues[name.lower()] = Q(name, vt=vt or 30, rewind=rewind or 0)

    def delete_queue(self, data):
        key = data.draw(st.sampled_from(sorted(self.queues)))
        for t in self.topics.values():  # a copy for a missing queue would wait for a retry: take it away first
            for sub_key, sub in list(t.subs.items()):
                if sub.queue == key:
                    self.expect(self.call("Unsubscribe", topicName=t.name, subscriptionName=sub_key), OK)
                    del t.subs[sub_key]
        self.expect(self.call("DeleteQueue", queueName=data.draw(case)(self.queues[key].name)), OK)
        del self.queues[key]

    def set_queue_attributes(self, data):
        vt = data.draw(st.sampled_from([None, 1, 2, 600]))
        size = data.draw(st.sampled_from([None, 1024, 65536]))
        heap = data.draw(st.sampled_from([None, None, 1, 3, BIG_HEAP]))
        rewind = data.draw(st.sampled_from([None, 0, 43200]))
        bad = data.draw(st.sampled_from([None] * 5 + [("visibilityTimeout", 0), ("maxMsgSize", 1023),
                                                      ("rewindSeconds", -1), ("msgRetentionSeconds", 59),
                                                      ("visibilityTimeout", "x")]))
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        if q.subscribers and heap not in (None, BIG_HEAP):
            heap = None  # a full queue would defer a topic's copy to a retry: keep the model exact
        changes = {k: v for k, v in (("visibilityTimeout", vt), ("maxMsgSize", size), ("maxMsgHeapNum", heap),
                                     ("rewindSeconds", rewind)) if v is not None}
        if bad:
            changes[bad[0]] = bad[1]
        reply = self.call("SetQueueAttributes", queueName=q.name, **changes)
        if bad:
            return self.expect(reply, INVALID, "a bad attribute value")
        self.expect(reply, OK)
        q.vt, q.max_size, q.max_heap = vt or q.vt, size or q.max_size, heap or q.max_heap
        if rewind is not None:
            q.rewind = rewind
            if not rewind:  # kept messages are dropped with the rewind window
                q.msgs = {s: m for s, m in q.msgs.items() if m.state != KEPT}
        assert reply["visibilityTimeout"] == q.vt and reply["maxMsgHeapNum"] == q.max_heap, reply

    def expire_by_retention(self, data):
        """msgRetentionSeconds at its minimum, and time past it: every message of the queue goes."""
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        reply = self.call("SetQueueAttributes", queueName=q.name, msgRetentionSeconds=60)
        if q.rewind > 60:  # rewindSeconds may not exceed msgRetentionSeconds
            return self.expect(reply, INVALID)
        self.expect(reply, OK)
        self.advance(61)
        q.msgs.clear()
        self.check_counters(q)
        self.expect(self.call("SetQueueAttributes", queueName=q.name, msgRetentionSeconds=DEFAULT_RETENTION), OK)

    def rewind_queue(self, data):
        valid = data.draw(st.booleans())
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        start = self.start_wall - 1 if valid else int(self.broker.time()) + 100
        reply = self.call("RewindQueue", queueName=q.name, startConsumeTime=start)
        if not q.rewind:
            return self.expect(reply, REWIND_OFF)
        if not valid:
            return self.expect(reply, INVALID)
        self.expect(reply, OK)
        for m in q.msgs.values():
            if m.state == KEPT:
                m.state = READY

    def purge_queue(self, data):
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        reply = self.call("PurgeQueue", queueName=q.name)
        self.expect(reply, OK)
        assert reply["purged"] == len(q.msgs), (reply, len(q.msgs))
        q.msgs.clear()

    # -- messages --------------------------------------------------------------------------

    def pick(self, data) -> tuple[Q | None, str]:
        """A queue of the model (any spelling), or now and then one that does not exist."""
        if not self.queues or data.draw(st.integers(0, 9)) == 9:
            return None, f"{self.prefix}nosuch"
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        return q, data.draw(case)(q.name)

    def send(self, data):
        text, extra, delay, sdk = data.draw(texts), data.draw(sizes), data.draw(delays), data.draw(st.booleans())
        q, name = self.pick(data)
        body = self.body(text, extra)
        if sdk:
            try:
                msg_id, code = self.account.get_queue(name).send_message(SdkMessage(body), delay).msgId, OK
            except CMQServerException as exc:
                msg_id, code = None, exc.code
            STATS.call(f"SendMessage (SDK): {code}")
        else:
            reply = self.call("SendMessage", queueName=name, msgBody=body, delaySeconds=delay)
            msg_id, code = reply.get("msgId"), reply["code"]
        if q is None:
            assert code == NOT_FOUND, code
        elif utf8_len(body) > q.max_size:
            assert code == TOO_LARGE, code
        elif q.stored() + 1 > q.max_heap:
            assert code == FULL, code
        else:
            assert code == OK and isinstance(msg_id, str), (code, msg_id)
            self.add(q, body, delay).msg_id = msg_id

    def batch_send(self, data):
        texts_, extra, delay = data.draw(st.lists(texts, min_size=1, max_size=16)), data.draw(sizes), data.draw(delays)
        q, name = self.pick(data)
        bodies = [self.body(t, extra if i == 0 else 0) for i, t in enumerate(texts_)]
        reply = self.call("BatchSendMessage", queueName=name, msgBody=bodies, delaySeconds=delay)
        if q is None:
            return self.expect(reply, NOT_FOUND)
        if any(utf8_len(b) > q.max_size for b in bodies):
            return self.expect(reply, TOO_LARGE)
        if q.stored() + len(bodies) > q.max_heap:
            return self.expect(reply, FULL)
        self.expect(reply, OK)
        assert len(reply["msgList"]) == len(bodies), reply
        for body, sent in zip(bodies, reply["msgList"]):
            self.add(q, body, delay).msg_id = sent["msgId"]

    def receive(self, data):
        sdk = data.draw(st.booleans())
        q, name = self.pick(data)
        if sdk:
            try:
                m = self.account.get_queue(name).receive_message(polling_wait_seconds=0)
                got, code = {"msgBody": m.msgBody, "msgId": m.msgId, "receiptHandle": m.receiptHandle,
                             "dequeueCount": m.dequeueCount}, OK
            except CMQServerException as exc:
                got, code = None, exc.code
            STATS.call(f"ReceiveMessage (SDK): {code}")
        else:
            reply = self.call("ReceiveMessage", queueName=name, pollingWaitSeconds=0)
            got, code = reply, reply["code"]
        if q is None:
            assert code == NOT_FOUND, code
        elif not q.ready():
            assert code == NO_MESSAGE, (code, got)
        else:
            assert code == OK, code
            self.take(q, got)

    def batch_receive(self, data):
        n = data.draw(st.sampled_from([1, 2, 16, 0, 17]) | st.integers(1, 16) | st.integers(1, 16))
        q, name = self.pick(data)
        reply = self.call("BatchReceiveMessage", queueName=name, numOfMsg=n, pollingWaitSeconds=0)
        if q is None:
            return self.expect(reply, NOT_FOUND)
        if not 1 <= n <= 16:
            return self.expect(reply, INVALID)
        ready = len(q.ready())
        if not ready:
            return self.expect(reply, NO_MESSAGE)
        self.expect(reply, OK)
        assert len(reply["msgInfoList"]) == min(n, ready), (reply, ready)
        for got in reply["msgInfoList"]:
            self.take(q, got)

    def handles(self, data, q: Q) -> list[str]:
        """Receipt handles of the queue: live ones (of messages in flight), stale ones (of
        messages deleted, received again or timed out since) and junk."""
        key = q.name.lower()
        live = [m.handle for m in q.msgs.values() if m.state == INFLIGHT]
        stale = [h for k, h in self.stale if k == key]
        kinds = ["live"] * 4 * bool(live) + ["stale"] * bool(stale) + ["junk"]
        out = []
        for _ in range(data.draw(st.sampled_from([1, 1, 2, 3]) | st.integers(1, 16))):
            kind = data.draw(st.sampled_from(kinds))
            if kind == "live":
                out.append(data.draw(st.sampled_from(live)))
            elif kind == "stale":
                out.append(data.draw(st.sampled_from(stale)))
            else:
                out.append(data.draw(st.sampled_from(["", "0", "12345678901", "x" * 20, "9" * 30])))
        return out

    def busy_queue(self, data) -> Q:
        """A queue with messages in flight when there is one (so deletes can succeed)."""
        busy = sorted(k for k, q in self.queues.items() if q.count(INFLIGHT))
        return self.queues[data.draw(st.sampled_from(busy or sorted(self.queues)))]

    def delete(self, data):
        sdk = data.draw(st.booleans())
        q = self.busy_queue(data)
        handle = self.handles(data, q)[0]
        if sdk:
            try:
                self.account.get_queue(q.name).delete_message(handle)
                code = OK
            except CMQServerException as exc:
                code = exc.code
            STATS.call(f"DeleteMessage (SDK): {code}")
        else:
            code = self.call("DeleteMessage", queueName=q.name, receiptHandle=handle)["code"]
        expected = OK if self.delete_one(q, handle) else BAD_HANDLE
        assert code == expected, (handle, code, expected)

    def batch_delete(self, data):
        q = self.busy_queue(data)
        handles = self.handles(data, q)
        reply = self.call("BatchDeleteMessage", queueName=q.name, receiptHandle=handles)
        failed = [h for h in handles if not self.delete_one(q, h)]
        if not failed:
            return self.expect(reply, OK)
        self.expect(reply, ALL_FAILED if len(failed) == len(handles) else PARTIAL)
        assert [e["receiptHandle"] for e in reply["errorList"]] == failed, (reply, failed)
        assert all(e["code"] == BAD_HANDLE for e in reply["errorList"]), reply

    def delete_stale(self, data):
        """Deletes when nothing may be in flight: stale and junk handles."""
        if data.draw(st.booleans()):
            self.delete(data)
        else:
            self.batch_delete(data)

    def peek(self, data):
        """PeekMessage shows the oldest messages in every state but kept, changing nothing."""
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        reply = self.call("PeekMessage", queueName=q.name, numOfMsg=100)
        self.expect(reply, OK)
        live = sorted((m for m in q.msgs.values() if m.state != KEPT), key=lambda m: m.seq)[:100]
        assert [(m["msgBody"], m["state"]) for m in reply["msgInfoList"]] == [(m.body, m.state) for m in live]

    def bad_parameter(self, data):
        """Invalid calls change nothing (the counters invariant checks that)."""
        which = data.draw(st.sampled_from(["numOfMsg", "delaySeconds", "msgBody", "queueName"]))
        name = self.queues[data.draw(st.sampled_from(sorted(self.queues)))].name if self.queues else "nosuch"
        if which == "numOfMsg":
            reply = self.call("BatchReceiveMessage", queueName=name, numOfMsg=data.draw(st.sampled_from(["", "x", 99])))
        elif which == "delaySeconds":
            reply = self.call("SendMessage", queueName=name, msgBody="b", delaySeconds=data.draw(
                st.sampled_from([-1, 3601, "1.5"])))
        elif which == "msgBody":
            reply = self.call("BatchSendMessage", queueName=name, **{"msgBody.1": "a", "msgBody.3": "c"})
        else:
            reply = self.call("SendMessage", queueName=data.draw(st.sampled_from(["", "0q", "q" * 65])), msgBody="b")
        assert reply["code"] in (INVALID, NOT_FOUND), reply

    # -- topics ----------------------------------------------------------------------------

    def create_topic(self, data):
        self.make_topic(data.draw(st.sampled_from(TNAMES)), data.draw(case), data.draw(st.booleans()),
                        data.draw(st.sampled_from([None, 1024])))

    def make_topic(self, key, variant, routing, size):
        name = variant(f"{self.prefix}{key}")
        params = {"topicName": name, "filterType": 2 if routing else 1}
        if size:
            params["maxMsgSize"] = size
        reply = self.call("CreateTopic", **params)
        if name.lower() in self.topics:
            return self.expect(reply, EXISTS)
        self.expect(reply, OK)
        self.topics[name.lower()] = T(name, routing, size or 65536)

    def delete_topic(self, data):
        key = data.draw(st.sampled_from(sorted(self.topics)))
        self.expect(self.call("DeleteTopic", topicName=self.topics[key].name), OK)
        for sub in self.topics.pop(key).subs.values():
            if sub.queue in self.queues:
                self.queues[sub.queue].subscribers -= 1

    def subscribe(self, data):
        sub_name, tags, keys = data.draw(st.sampled_from(SNAMES)), data.draw(msg_tags), data.draw(binding_keys)
        fmt, missing_queue = data.draw(st.sampled_from(["SIMPLIFIED"] * 5 + ["JSON"])), data.draw(st.integers(0, 9))
        t = self.topics[data.draw(st.sampled_from(sorted(self.topics)))]
        q = self.queues[data.draw(st.sampled_from(sorted(self.queues)))]
        if q.max_heap != BIG_HEAP:
            return  # copies for a full queue wait for a retry: see set_queue_attributes
        endpoint = f"{self.prefix}nosuch" if missing_queue == 9 else data.draw(case)(q.name)
        self.subscribe_queue(t, q, sub_name, tags, keys, endpoint, fmt)

    def subscribe_queue(self, t: T, q: Q, sub_name: str, tags, keys, endpoint: str | None = None,
                        fmt: str = "SIMPLIFIED") -> None:
        missing_queue = endpoint is not None and endpoint.lower() != q.name.lower()
        params = {"topicName": t.name, "subscriptionName": sub_name, "protocol": "queue",
                  "endpoint": endpoint or q.name, "notifyContentFormat": fmt}
        if t.routing:
            params["bindingKey"] = [".".join(k) for k in keys]
        elif tags:
            params["filterTag"] = tags
        reply = self.call("Subscribe", **params)
        if missing_queue or fmt != "SIMPLIFIED":
            return self.expect(reply, INVALID)
        if sub_name in t.subs:
            return self.expect(reply, EXISTS_SUB)
        self.expect(reply, OK)
        t.subs[sub_name] = Sub(q.name.lower(), tuple(tags), tuple(keys) if t.routing else ())
        q.subscribers += 1

    def change_filter_tags(self, data):
        sub_name, tags, clear = data.draw(st.sampled_from(SNAMES)), data.draw(msg_tags), data.draw(st.booleans())
        t = self.topics[data.draw(st.sampled_from(sorted(self.topics)))]
        if clear:
            reply = self.call("ClearSubscriptionFilterTags", topicName=t.name, subscriptionName=sub_name)
        else:
            reply = self.call("SetSubscriptionAttributes", topicName=t.name, subscriptionName=sub_name,
                              filterTag=tags)
        if sub_name not in t.subs:
            return self.expect(reply, INVALID)  # SubscriptionNotFound is 4000 in CMQ's table
        if not clear and not tags:
            return self.expect(reply, OK)  # no filterTag given: nothing to change
        self.expect(reply, OK)
        t.subs[sub_name].tags = () if clear else tuple(tags)

    def unsubscribe(self, data):
        sub_name = data.draw(st.sampled_from(SNAMES))
        t = self.topics[data.draw(st.sampled_from(sorted(self.topics)))]
        reply = self.call("Unsubscribe", topicName=t.name, subscriptionName=sub_name)
        if sub_name not in t.subs:
            return self.expect(reply, INVALID)
        self.expect(reply, OK)
        sub = t.subs.pop(sub_name)
        if sub.queue in self.queues:
            self.queues[sub.queue].subscribers -= 1

    def publish(self, data):
        texts_, extra = data.draw(st.lists(texts, min_size=1, max_size=16)), data.draw(sizes)
        tags, key, batch = data.draw(msg_tags), data.draw(routing_keys), data.draw(st.booleans())
        t = self.topics[data.draw(st.sampled_from(sorted(self.topics)))]
        bodies = [self.body(x, extra if i == 0 else 0) for i, x in enumerate(texts_ if batch else texts_[:1])]
        params = {"topicName": t.name, "msgBody": bodies if batch else bodies[0], "routingKey": ".".join(key)}
        if tags:
            params["msgTag"] = tags
        reply = self.call("BatchPublishMessage" if batch else "PublishMessage", **params)
        if any(utf8_len(b) > t.max_size for b in bodies):
            return self.expect(reply, TOO_LARGE)
        self.expect(reply, OK)
        for sub in t.subs.values():
            if t.routing:
                matched = any(route_match(b, key) for b in sub.keys) if sub.keys else True
            else:
                matched = not sub.tags or bool(set(sub.tags) & set(tags))
            q = self.queues[sub.queue]
            if matched and all(utf8_len(b) <= q.max_size for b in bodies):  # too large for the queue: dropped
                for body in bodies:
                    self.add(q, body, 0)

    # -- the one rule: an operation drawn by weight, so that the message flow (send, receive,
    # delete) is most of a run. (Separate rules would let Hypothesis's swarm testing switch
    # off, say, every send for a whole run, which leaves nothing to receive.) ---------------

    WEIGHTS = {"send": 3, "batch_send": 2, "publish": 2, "receive": 3, "batch_receive": 2, "peek": 1,
               "delete": 3, "batch_delete": 2, "delete_stale": 1, "advance_time": 3, "bad_parameter": 1,
               "create_queue": 2, "set_queue_attributes": 1, "delete_queue": 1, "purge_queue": 1,
               "rewind_queue": 1, "expire_by_retention": 1,
               "create_topic": 1, "delete_topic": 1, "subscribe": 2, "unsubscribe": 1, "change_filter_tags": 1}
    OPS = [op for op, weight in WEIGHTS.items() for _ in range(weight)]

    def possible(self, op: str) -> bool:
        if op == "subscribe":
            return bool(self.topics and self.queues)
        if op in ("delete_topic", "change_filter_tags", "unsubscribe", "publish"):
            return bool(self.topics)
        if op in ("delete", "batch_delete"):  # with nothing in flight, only `delete_stale` tries
            return any(q.count(INFLIGHT) for q in self.queues.values())
        if op in ("delete_queue", "set_queue_attributes", "purge_queue", "rewind_queue", "expire_by_retention",
                  "delete_stale", "peek"):
            return bool(self.queues)
        return True

    @rule(data=st.data())
    def step(self, data):
        op = data.draw(st.sampled_from([op for op in self.OPS if self.possible(op)]), label="op")
        self.failed = True  # until the step ends well: a failed run's teardown only cleans up
        getattr(self, op)(data)
        self.failed = False

    def advance_time(self, data):
        self.advance(data.draw(advances))

    # -- invariants and the end ------------------------------------------------------------

    def check_counters(self, q: Q, sdk: bool = False) -> None:
        if sdk:
            meta = self.account.get_queue(q.name).get_attributes()
            STATS.call("GetQueueAttributes (SDK): 0")
            seen = (meta.activeMsgNum, meta.inactiveMsgNum, meta.delayMsgNum, meta.rewindmsgNum)
        else:
            reply = self.call("GetQueueAttributes", queueName=q.name)
            self.expect(reply, OK)
            seen = (reply["activeMsgNum"], reply["inactiveMsgNum"], reply["delayMsgNum"], reply["rewindMsgNum"])
        expected = (q.count(READY), q.count(INFLIGHT), q.count(DELAYED), q.count(KEPT))
        assert seen == expected, f"queue {q.name}: (active, inactive, delayed, kept) is {seen}, model says {expected}"

    @invariant()
    def counters_match(self):
        if not hasattr(self, "queues"):
            return
        STATS["steps"] += 1
        self.failed = True
        for i, q in enumerate(self.queues.values()):
            self.check_counters(q, sdk=i == 1)
        self.watch.assert_clean()
        self.failed = False

    def teardown(self):
        if not hasattr(self, "queues"):
            return
        try:
            if not self.failed:
                self.drain_and_compare()
        finally:  # the next run starts from an empty broker, whatever happened
            for t in self.topics.values():
                self.call("DeleteTopic", topicName=t.name)
            for q in self.queues.values():
                self.call("DeleteQueue", queueName=q.name)

    def drain_and_compare(self) -> None:
        """Nothing accepted is lost, nothing appears twice: past every timeout and delay, the
        queue gives back exactly the model's messages, oldest first."""
        longest = max((m.due for q in self.queues.values() for m in q.msgs.values()), default=self.now)
        self.advance(max(0.0, longest - self.now) + 1)
        for q in self.queues.values():
            received = []
            while True:
                reply = self.call("BatchReceiveMessage", queueName=q.name, numOfMsg=16, pollingWaitSeconds=0)
                if reply["code"] == NO_MESSAGE:
                    break
                self.expect(reply, OK)
                received += [m["msgBody"] for m in reply["msgInfoList"]]
            expected = [m.body for m in sorted(q.msgs.values(), key=lambda m: m.seq) if m.state != KEPT]
            assert Counter(received) == Counter(expected), \
                f"queue {q.name}: drained {len(received)} bodies, the model has {len(expected)}; " \
                f"missing {list((Counter(expected) - Counter(received)).elements())[:5]}, " \
                f"unexpected {list((Counter(received) - Counter(expected)).elements())[:5]}"
            assert received == expected, f"queue {q.name}: drained out of order"
        self.watch.assert_clean("the drain")


@pytest.fixture(scope="module")
def model_env():
    with LogWatch() as watch, fake_clock_broker() as broker:
        http = Http(broker.host, broker.port)
        account = broker.account()
        yield broker, http, account, watch
        http.close()


def test_cmq_against_the_model(model_env):
    CmqModel.env = model_env
    STATS.clear()
    run_state_machine_as_test(CmqModel, settings=budget(ci=100, deep=2000, stateful_step_count=50))
    report("CMQ model", STATS)


def test_route_match_of_the_model():
    """The model's own matcher, against cases the README states."""
    assert route_match(("#",), ())
    assert not route_match(("*",), ())
    assert route_match(("a", "#"), ("a",)) and route_match(("a", "#"), ("a", "b", "c"))
    assert route_match(("*", "b"), ("a", "b")) and not route_match(("*", "b"), ("a", "c"))
    assert route_match(("#", "c"), ("a", "b", "c")) and not route_match(("#", "c"), ("a", "b"))
