"""Durability end to end (issue 6): `python -m broker serve --data-dir DIR` killed with SIGKILL or
stopped with SIGTERM, damaged on disk, and started again on the same directory.

Brokers are real `python -m broker serve` processes (conftest.start_broker) and every request goes
through the official SDKs: CMQ (`cmq.account.Account`, one per thread, as the SDK requires) and, for
the Batch part, `BatchClient` over plain HTTP. The on-disk format is touched only to damage it the
way a crash or a bad disk would (wal.py: a segment is a run of `u32 length | u32 crc32 | msgpack`).

What "acknowledged" means here: the SDK call returned without raising. A call that was cut off by
the kill is "attempted": its effect may or may not be there after the restart, but never twice,
and once a restart has shown it absent it must never appear later.

Waiting is done against deadlines (GetQueueAttributes polled until in-flight messages are visible
again, and so on). The one fixed pause is SETTLE, used only where the broker documents a
background flush (storage/recovery.py FLUSH_INTERVAL) for changes no client waits for: push retry
counts and simulated Batch progress.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message
from cmq.topic import Message as TopicMessage
from cmq.topic import TopicMeta
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from batch_helpers import ZONE, anon_task, named_env
from helpers import (
    ANY_ID, ANY_KEY, REPO_ROOT, STARTUP_TIMEOUT, BrokerProcess, Receiver, account_for, call, clean_env, counts, drain,
    queue_meta, raw_queue, raw_sub, raw_topic, run_broker, serve_args, server_error, stop_process, sub_meta, unique_name,
    wait_until,
)

VISIBILITY = 1  # seconds: in-flight messages of the crash tests come back quickly
DEADLINE = 15.0  # upper bound for anything that should happen "soon"
SETTLE = 0.5  # > the broker's FLUSH_INTERVAL (0.1 s) for changes nobody waits for
RECORD_HEADER = struct.Struct("<II")  # wal.py: payload length, crc32(payload)


# -- a data directory and the brokers started on it ---------------------------------------------


class Node:
    """One --data-dir and the broker processes started on it, one at a time."""

    def __init__(self, start_broker: Callable[..., BrokerProcess], data_dir: Path, *extra: str,
                 env: dict[str, str] | None = None):
        self._start = start_broker
        self.dir = data_dir
        self.extra = list(extra)
        self.env = env
        self.broker: BrokerProcess | None = None

    def args(self) -> list[str]:
        return serve_args("--data-dir", str(self.dir), *self.extra)

    def start(self) -> BrokerProcess:
        assert self.broker is None or self.broker.proc.poll() is not None, "one broker at a time"
        self.broker = self._start(self.args(), self.env)
        return self.broker

    def account(self) -> Account:
        assert self.broker is not None
        return self.broker.account()

    def kill(self) -> None:
        """SIGKILL: no flush, no snapshot, no goodbye."""
        proc = self.broker.proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def term(self) -> int | None:
        """SIGTERM; the exit status (None if it had to be killed)."""
        return stop_process(self.broker.proc, signal.SIGTERM, timeout=DEADLINE)

    def files(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in sorted(self.dir.iterdir())}


def refused_start(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Start a broker on `data_dir` that must refuse to: returns the finished process. One that
    starts after all (it prints its address) is killed and fails the test at once."""
    args = [sys.executable, "-m", "broker", "serve", *serve_args("--data-dir", str(data_dir), *extra)]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=clean_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT)  # a refusing broker exits, which ends the line with nothing
    if not first or first[0]:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the broker on {data_dir} should have refused to start, but "
                    f"{'said ' + repr(first[0]) if first else 'was still running'}; stderr:\n{err}", pytrace=False)
    out, err = proc.communicate(timeout=STARTUP_TIMEOUT)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def fingerprint(directory: Path) -> dict[str, str]:
    """sha256 of every data file (LOCK only holds the pid of whoever last took the lock)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
            if p.name != "LOCK"}


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("snapshot-*.msgpack"))


@dataclass
class Record:
    offset: int
    end: int
    value: Any


def log_records(path: Path) -> tuple[list[Record], int]:
    """The intact records of a segment, and the offset where they end."""
    data = path.read_bytes()
    out, off = [], 0
    while off + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, off)
        end = off + RECORD_HEADER.size + length
        if length == 0 or end > len(data) or zlib.crc32(data[off + RECORD_HEADER.size:end]) != crc:
            break
        out.append(Record(off, end, msgpack.unpackb(data[off + RECORD_HEADER.size:end], raw=False,
                                                    strict_map_key=False)))
        off = end
    return out, off


def replayed_records(stderr: str) -> int:
    """How many log records the last start replayed, from its "recovered ..." log line."""
    found = re.findall(r"from (\d+) log record", stderr)
    assert found, f"no recovery line in the broker's log:\n{stderr}"
    return int(found[-1])


# -- queue helpers ------------------------------------------------------------------------------


def make_queue(account: Account, prefix: str, **attrs):
    q = account.get_queue(unique_name(prefix))
    q.create(queue_meta(**attrs))
    return q


def settled(q, timeout: float = DEADLINE) -> int:
    """Wait until nothing is in flight or delayed; the number of visible messages."""
    deadline = time.monotonic() + timeout
    while True:
        active, inactive, delayed = counts(q)
        if inactive == 0 and delayed == 0:
            return active
        assert time.monotonic() < deadline, f"{q.queue_name}: still {inactive} in flight, {delayed} delayed"
        time.sleep(0.05)


def canonical(items: list) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def bodies(q) -> list[str]:
    return sorted(m.msgBody for m in drain(q))


# == kill -9 under concurrent load ================================================================


class Ledger:
    """What the clients of one queue were told, and what they merely tried."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempted: set[str] = set()  # every body a send was tried with
        self.sent: dict[str, str] = {}  # msgId -> body: acknowledged sends (and those seen since)
        self.received: dict[str, int] = {}  # msgId -> highest acknowledged dequeueCount
        self.delete_tried: set[str] = set()  # msgIds a delete was sent for, acknowledged or not
        self.deleted: set[str] = set()  # msgIds whose delete was acknowledged
        self.gone: set[str] = set()  # bodies of unacknowledged sends a restart showed absent

    def try_send(self, items: list[str]) -> None:
        with self.lock:
            self.attempted.update(items)

    def sent_ok(self, pairs) -> None:
        with self.lock:
            for mid, body in pairs:
                self.sent[str(mid)] = body

    def received_ok(self, msgs) -> None:
        with self.lock:
            for m in msgs:
                mid = str(m.msgId)
                self.received[mid] = max(self.received.get(mid, 0), int(m.dequeueCount))

    def try_delete(self, ids) -> None:
        with self.lock:
            self.delete_tried.update(str(i) for i in ids)

    def deleted_ok(self, ids) -> None:
        with self.lock:
            self.deleted.update(str(i) for i in ids)

    def check(self, drained: list[Message], what: str) -> None:
        """Everything the queue held (all of it, drained) against what the clients were told."""
        ids = [str(m.msgId) for m in drained]
        assert len(ids) == len(set(ids)), f"{what}: a message came back twice: " \
            f"{sorted(i for i in set(ids) if ids.count(i) > 1)[:10]}"
        seen_bodies = [m.msgBody for m in drained]
        assert len(seen_bodies) == len(set(seen_bodies)), f"{what}: one send stored twice"
        acked_bodies = set(self.sent.values())
        for m in drained:
            mid = str(m.msgId)
            assert mid not in self.deleted, f"{what}: message {mid} ({m.msgBody}) was deleted (acknowledged) " \
                                            "and came back"
            if mid in self.sent:
                assert m.msgBody == self.sent[mid], f"{what}: message {mid} has the body {m.msgBody!r}, " \
                                                    f"sent as {self.sent[mid]!r}"
            else:
                assert m.msgBody in self.attempted, f"{what}: message {mid} ({m.msgBody!r}) was never sent"
                assert m.msgBody not in acked_bodies, f"{what}: {m.msgBody!r} stored under a second id {mid}"
                assert m.msgBody not in self.gone, f"{what}: unacknowledged send {m.msgBody!r} was absent " \
                                                   "after an earlier restart and is back now"
            if mid in self.received:
                assert int(m.dequeueCount) > self.received[mid], (
                    f"{what}: message {mid} was received (acknowledged) with dequeueCount "
                    f"{self.received[mid]}, and now comes with {m.dequeueCount}")
        present = set(ids)
        missing = [(mid, body) for mid, body in self.sent.items()
                   if mid not in present and mid not in self.delete_tried]
        assert not missing, f"{what}: {len(missing)} acknowledged, undeleted message(s) lost, e.g. {missing[:5]}"

    def absorb(self, drained: list[Message], deleted: bool) -> None:
        """After a check: what was drained is now known (and deleted, if it was); unacknowledged
        sends that did not show up must never show up later."""
        present = {m.msgBody for m in drained}
        for m in drained:
            self.sent[str(m.msgId)] = m.msgBody
        if deleted:
            self.delete_tried.update(str(m.msgId) for m in drained)
            self.deleted.update(str(m.msgId) for m in drained)
        acked_bodies = set(self.sent.values())
        self.gone |= {b for b in self.attempted if b not in acked_bodies and b not in present}


@dataclass
class Traffic:
    """SDK client threads hammering one broker until it is killed."""

    url: str
    killed: threading.Event = field(default_factory=threading.Event)  # set just before the SIGKILL
    threads: list[threading.Thread] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # errors while the broker was still alive

    def spawn(self, fn, *args) -> None:
        def run() -> None:
            try:
                fn(account_for(self.url, ANY_ID, ANY_KEY), *args)
            except CMQServerException as exc:
                self.unexpected.append(f"{fn.__name__}: server error {exc.code}: {exc.message}")
            except Exception as exc:  # the broker went away under the call
                if not self.killed.is_set():
                    self.unexpected.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")

        t = threading.Thread(target=run, name=fn.__name__, daemon=True)
        t.start()
        self.threads.append(t)

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=DEADLINE)
            assert not t.is_alive(), f"client thread {t.name} still running after the kill"


def producer(account: Account, queue: str, ledger: Ledger, tag: str, delay_every: int = 0) -> None:
    """SendMessage and BatchSendMessage(4) in turn; every `delay_every`th one delayed by 1 s."""
    q = account.get_queue(queue)
    n = 0
    while True:  # until the kill makes a call raise
        n += 1
        delay = 1 if delay_every and n % delay_every == 0 else 0
        if n % 2:
            body = f"{tag}-{n}"
            ledger.try_send([body])
            msg = q.send_message(Message(body), delayTime=delay)
            ledger.sent_ok([(msg.msgId, body)])
        else:
            batch = [f"{tag}-{n}.{i}" for i in range(4)]
            ledger.try_send(batch)
            msgs = q.batch_send_message([Message(b) for b in batch], delayTime=delay)
            ledger.sent_ok(zip((m.msgId for m in msgs), batch))


def consumer(account: Account, queue: str, ledger: Ledger, single: bool, delete_every: int) -> None:
    """Receive (single with a 1 s long poll, or batches of 8 without); delete all but every
    `delete_every`th message received (0: delete none), by DeleteMessage or BatchDeleteMessage."""
    q = account.get_queue(queue)
    n = 0
    while True:  # until the kill makes a call raise
        try:
            msgs = [q.receive_message(polling_wait_seconds=1)] if single else \
                q.batch_receive_message(8, polling_wait_seconds=0)
        except CMQServerException as exc:
            if exc.code != 7000:
                raise
            if not single:
                time.sleep(0.01)  # an empty queue: don't spin
            continue
        ledger.received_ok(msgs)
        doomed = []
        for m in msgs:
            n += 1
            if delete_every and n % delete_every:
                doomed.append(m)
        if len(doomed) > 1 and n % 2:
            ledger.try_delete(m.msgId for m in doomed)
            q.batch_delete_message([m.receiptHandle for m in doomed])
            ledger.deleted_ok(m.msgId for m in doomed)
        else:
            for m in doomed:
                ledger.try_delete([m.msgId])
                q.delete_message(m.receiptHandle)
                ledger.deleted_ok([m.msgId])


KILL_AFTER = (0.3, 0.8, 1.3, 2.0)  # seconds of traffic before each SIGKILL


def test_kill_during_concurrent_sends_receives_and_deletes(start_broker, tmp_path):
    """Four rounds: traffic from six SDK clients, SIGKILL at a different moment each time, restart,
    then check both queues against what the clients were told.

    `churn` gets sends, receives and deletes (two of every three received are deleted; the rest come
    back after VISIBILITY seconds, so dequeue counts climb) and is drained and emptied after each
    restart. `keep` gets sends (some delayed) and receives that never delete, so its messages live
    through every crash; its counts are checked after each restart and its contents at the end.
    """
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    churn = make_queue(account, "churn", visibilityTimeout=VISIBILITY)
    keep = make_queue(account, "keep", visibilityTimeout=VISIBILITY)
    lc, lk = Ledger(), Ledger()
    activity, stats = [], []  # what each round did, for the -s output

    for rnd, kill_after in enumerate(KILL_AFTER):
        traffic = Traffic(node.broker.url)
        traffic.spawn(producer, churn.queue_name, lc, f"c{rnd}a")
        traffic.spawn(producer, churn.queue_name, lc, f"c{rnd}b")
        traffic.spawn(consumer, churn.queue_name, lc, False, 3)
        traffic.spawn(consumer, churn.queue_name, lc, True, 3)
        traffic.spawn(producer, keep.queue_name, lk, f"k{rnd}", 5)
        traffic.spawn(consumer, keep.queue_name, lk, False, 0)
        before = (len(lc.sent), len(lc.deleted), len(lc.received), len(lk.sent))
        time.sleep(kill_after)  # the crash point: how long the traffic runs
        traffic.killed.set()
        node.kill()
        traffic.join()
        assert not traffic.unexpected, f"round {rnd}: errors before the kill: {traffic.unexpected[:5]}"
        after = (len(lc.sent), len(lc.deleted), len(lc.received), len(lk.sent))
        activity.append([b - a for a, b in zip(before, after)])
        assert all(activity[-1]), f"round {rnd}: some client made no progress in {kill_after}s: {activity[-1]}"

        account = node.start().account()
        churn, keep = account.get_queue(churn.queue_name), account.get_queue(keep.queue_name)
        # In-flight messages come back after their visibility timeout, delayed ones when due.
        active = settled(churn)
        keep_active = settled(keep)
        drained = drain(churn)
        assert len(drained) == active, f"round {rnd}: GetQueueAttributes said {active} visible, drained {len(drained)}"
        assert counts(churn) == (0, 0, 0)
        lc.check(drained, f"round {rnd}, churn")
        stats.append((len(drained), sum(str(m.msgId) not in lc.sent for m in drained),
                      max((int(m.dequeueCount) for m in drained), default=0)))
        lc.absorb(drained, deleted=True)
        assert len(lk.sent) <= keep_active <= len(lk.attempted), (
            f"round {rnd}: keep holds {keep_active} messages; {len(lk.sent)} sends were acknowledged, "
            f"{len(lk.attempted)} tried")

    final = drain(keep)
    assert len(final) == keep_active
    lk.check(final, "keep, at the end")
    assert counts(keep) == (0, 0, 0)
    print(f"per round: [churn sent, churn deleted, churn received, keep sent] = {activity}")
    print(f"per restart: (churn drained, of which unacknowledged sends, highest dequeueCount) = {stats}")
    print(f"keep at the end: {len(final)} messages, {sum(str(m.msgId) not in lk.sent for m in final)} unacknowledged, "
          f"highest dequeueCount {max(int(m.dequeueCount) for m in final)}")


# == receipt handles across a restart =============================================================


def test_receipt_handle_acknowledged_before_a_crash_still_deletes(start_broker, tmp_path):
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    q = make_queue(account, "handle", visibilityTimeout=60)
    short = make_queue(account, "expire", visibilityTimeout=1)
    q.batch_send_message([Message("a"), Message("b")])
    a = q.receive_message(polling_wait_seconds=0)
    assert (a.msgBody, a.dequeueCount) == ("a", 1)
    short.send_message(Message("x"))
    x = short.receive_message(polling_wait_seconds=0)

    node.kill()
    account = node.start().account()
    q, short = account.get_queue(q.queue_name), account.get_queue(short.queue_name)
    assert counts(q) == (1, 1, 0), "a is still in flight, b visible"
    b = q.receive_message(polling_wait_seconds=0)
    assert b.msgBody == "b", "the in-flight message must stay invisible after the restart"
    q.delete_message(a.receiptHandle)  # the handle from before the crash
    assert counts(q) == (0, 1, 0)
    server_error(q.delete_message, a.receiptHandle)  # and only once

    # The same again one crash later, for b's handle, which was given out after the first restart.
    node.kill()
    account = node.start().account()
    q = account.get_queue(q.queue_name)
    assert counts(q) == (0, 1, 0)
    q.delete_message(b.receiptHandle)
    assert counts(q) == (0, 0, 0)

    # A handle whose message's visibility timeout ran out is stale, restart or not.
    short = account.get_queue(short.queue_name)
    assert settled(short) == 1
    server_error(short.delete_message, x.receiptHandle)
    again = short.receive_message(polling_wait_seconds=0)
    assert (again.msgId, again.msgBody, again.dequeueCount) == (x.msgId, "x", 2)

    assert node.term() == 0
    account = node.start().account()
    assert counts(account.get_queue(q.queue_name)) == (0, 0, 0)


# == topics, subscriptions and pending pushes =======================================================


@pytest.fixture
def late_endpoint() -> Iterator[Receiver]:
    """An HTTP endpoint whose port is taken but refuses connections until `open()`."""
    with Receiver(listening=False) as endpoint:
        yield endpoint


def test_topics_subscriptions_and_a_pending_push_survive_a_kill(start_broker, tmp_path, late_endpoint):
    # BACKOFF_RETRY waits 10-20 s x 0.1 between its 3 retries: the push is still pending after the
    # restart, and the endpoint is opened well before the retries run out.
    node = Node(start_broker, tmp_path / "data", "--push-retry-scale", "0.1", "--push-timeout", "2")
    account = node.start().account()
    tagged, routed = account.get_topic(unique_name("tt")), account.get_topic(unique_name("tr"))
    meta = TopicMeta()
    meta.maxMsgSize = 4096
    tagged.create(meta)
    meta = TopicMeta()
    meta.filterType = 2
    routed.create(meta)
    meta = tagged.get_attributes()
    meta.maxMsgSize = 2048
    tagged.set_attributes(meta)
    qa, qb = make_queue(account, "suba"), make_queue(account, "subb", maxMsgSize=8192, rewindSeconds=600)
    hook = late_endpoint.route() + "?x=1"
    subs = {
        (tagged.topicName, "to-queue"): sub_meta("queue", qa.queue_name, "EXPONENTIAL_DECAY_RETRY", tags=["a", "b"]),
        (tagged.topicName, "to-http"): sub_meta("http", hook, "BACKOFF_RETRY", "JSON", tags=["a"]),
        (routed.topicName, "routed"): sub_meta("queue", qb.queue_name, "EXPONENTIAL_DECAY_RETRY", keys=["x.#"]),
    }
    for (topic, name), meta in subs.items():
        account.get_subscription(topic, name).create(meta)
    account.get_subscription(tagged.topicName, "to-queue").set_attributes(
        sub_meta("queue", qa.queue_name, "BACKOFF_RETRY", tags=["a", "b"]))
    published = tagged.publish_message(TopicMessage("pending push", ["a"]))
    node.kill()  # at once: the push failed once at most (the endpoint refuses connections)

    def snapshot_of(acct: Account) -> dict:
        return {
            "topics": {t: raw_topic(acct, t) for t in (tagged.topicName, routed.topicName)},
            "subs": {f"{t}/{s}": raw_sub(acct, t, s) for t, s in subs},
            "queues": {q: raw_queue(acct, q) for q in (qa.queue_name, qb.queue_name)},
            "listed": canonical(acct.list_topic()[1]), "by_topic": {
                t: canonical(acct.get_topic(t).list_subscription()[1]) for t in (tagged.topicName, routed.topicName)},
        }

    # Compare what a client sees before and after one more restart (the push is still pending).
    account = node.start().account()
    first = snapshot_of(account)
    assert first["subs"][f"{tagged.topicName}/to-http"]["msgCount"] == 1, "the push is no longer pending"
    assert first["subs"][f"{tagged.topicName}/to-http"]["endpoint"] == hook
    assert first["subs"][f"{tagged.topicName}/to-http"]["filterTags"] == ["a"]
    assert first["subs"][f"{tagged.topicName}/to-queue"]["notifyStrategy"] == "BACKOFF_RETRY"
    assert first["subs"][f"{routed.topicName}/routed"]["bindingKey"] == ["x.#"]
    assert first["topics"][tagged.topicName]["maxMsgSize"] == 2048
    assert first["topics"][routed.topicName]["filterType"] == 2
    assert first["queues"][qb.queue_name]["maxMsgSize"] == 8192
    assert first["queues"][qb.queue_name]["rewindSeconds"] == 600
    node.kill()
    account = node.start().account()
    assert snapshot_of(account) == first

    # The queue copy made at publish time is there; filters and bindings still route.
    got = account.get_queue(qa.queue_name).receive_message(polling_wait_seconds=0)
    assert (got.msgBody, got.dequeueCount) == ("pending push", 1)
    account.get_topic(routed.topicName).publish_message(TopicMessage("routed"), routingKey="x.y")
    assert account.get_queue(qb.queue_name).receive_message(polling_wait_seconds=0).msgBody == "routed"
    account.get_topic(tagged.topicName).publish_message(TopicMessage("b only", ["b"]))
    assert account.get_queue(qa.queue_name).receive_message(polling_wait_seconds=0).msgBody == "b only"

    # The endpoint comes up: the push from before both crashes is delivered, once.
    late_endpoint.open()
    got = late_endpoint.wait_delivered(hook, 1, DEADLINE)
    assert len(got) == 1, f"the push pending since before the crashes was not delivered: {got}"
    path, payload = got[0].path, got[0].json()
    assert path == hook.split(str(late_endpoint.port), 1)[1]  # the endpoint's path and query, as given
    assert (str(payload["msgId"]), payload["msgBody"]) == (str(published.msgId), "pending push")
    assert (payload["topicName"], payload["subscriptionName"]) == (tagged.topicName, "to-http")
    wait_until(lambda: raw_sub(account, tagged.topicName, "to-http")["msgCount"] == 0,
               "the delivered push to be no longer counted as pending", DEADLINE)
    time.sleep(SETTLE)  # the settled push is flushed in the background
    node.kill()
    account = node.start().account()
    assert raw_sub(account, tagged.topicName, "to-http")["msgCount"] == 0
    assert len(late_endpoint.got(hook)) == 1, "a delivered push was delivered again after a restart"


# == damage on disk =================================================================================


def send_each(q, items: list[str]) -> None:
    for body in items:
        q.send_message(Message(body))


TORN = ["cut the last record short", "cut inside its header", "append a partial record", "append zeros"]


def test_torn_tail_is_cut_and_everything_before_it_stays(start_broker, tmp_path):
    """A crash in the middle of a write leaves a torn record at the end of the newest segment.
    Each round adds one acknowledged message as the last record, kills the broker, damages the end
    of the log, and restarts; later rounds prove the broker went on writing at the right place."""
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    q = make_queue(account, "torn")
    expected = [f"m{i}" for i in range(10)]
    send_each(q, expected)
    for case in TORN:
        last = f"last: {case}"
        q.send_message(Message(last))
        node.kill()
        [segment] = segments(node.dir)[-1:]
        records, end = log_records(segment)
        size = segment.stat().st_size
        assert end == size, f"{segment.name}: {size - end} bytes after the last intact record before any damage"
        tail = records[-1]
        assert tail.value[0] == "ms" and tail.value[2][0][1] == last, f"the last record is {tail.value!r}"
        with open(segment, "r+b") as f:
            if case == "cut the last record short":
                f.truncate(size - 3)
            elif case == "cut inside its header":
                f.truncate(tail.offset + 5)
            elif case == "append a partial record":
                f.seek(size)
                f.write(RECORD_HEADER.pack(1000, 12345) + b"half a record")
            else:
                f.seek(size)
                f.write(bytes(4096))
        if not case.startswith("cut"):  # a cut took the acknowledged message with it: not expected back
            expected.append(last)
        b = node.start()
        q = b.account().get_queue(q.queue_name)
        assert counts(q) == (len(expected), 0, 0), case
        assert segment.stat().st_size == (tail.offset if case.startswith("cut") else size), \
            f"{case}: the torn bytes were not cut off"
        assert "torn" in b.stderr(), f"{case}: the broker did not say it cut a torn tail:\n{b.stderr()}"
    # The tail of every round was cut where it should have been: a last restart finds a clean log.
    node.kill()
    assert log_records(segments(node.dir)[-1])[1] == segments(node.dir)[-1].stat().st_size
    account = node.start().account()
    q = account.get_queue(q.queue_name)
    assert bodies(q) == sorted(expected)


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory) -> Path:
    """A data directory holding a snapshot and a segment with several records after it (built once;
    each case damages a copy)."""
    data = tmp_path_factory.mktemp("pristine") / "data"
    args = serve_args("--data-dir", str(data))
    with run_broker(args) as b:
        q = make_queue(b.account(), "fixed")
        send_each(q, [f"before {i}" for i in range(5)])
        assert stop_process(b.proc) == 0
    with run_broker(args) as b:
        q = b.account().get_queue(q.queue_name)
        send_each(q, [f"after {i}" for i in range(8)])
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
    return data


CORRUPT = ["a payload byte of a middle record", "the length of a middle record", "a byte of the snapshot"]


@pytest.mark.parametrize("case", CORRUPT)
def test_damage_in_the_middle_stops_the_start_and_touches_nothing(damaged_dir, tmp_path, case):
    data = tmp_path / "data"
    shutil.copytree(damaged_dir, data)
    [segment], [snap] = segments(data), snapshots(data)
    records, end = log_records(segment)
    assert len(records) == 8 and end == segment.stat().st_size
    if case == "a byte of the snapshot":
        path, offset = snap, None
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x01
    else:
        path, victim = segment, records[len(records) // 2]
        offset = victim.offset
        blob = bytearray(path.read_bytes())
        if case == "the length of a middle record":
            blob[victim.offset + 3] ^= 0x80  # the length's high byte: it now runs past the end
        else:
            blob[(victim.offset + RECORD_HEADER.size + victim.end) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    before = fingerprint(data)

    result = refused_start(data)
    assert result.returncode != 0
    assert "listening" not in result.stdout
    assert path.name in result.stderr, f"the message does not name the damaged file:\n{result.stderr}"
    if offset is not None:
        assert f"offset {offset}" in result.stderr, f"the message does not name offset {offset}:\n{result.stderr}"
    else:
        assert "offset" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert fingerprint(data) == before, "a refused start changed the data directory"

    # The damage, and nothing else, was the reason: the undamaged copy starts.
    shutil.rmtree(data)
    shutil.copytree(damaged_dir, data)
    with run_broker(serve_args("--data-dir", str(data))) as b:
        [listed] = b.account().list_queue()[1]
        assert counts(b.account().get_queue(listed["queueName"])) == (13, 0, 0)


# == snapshots: SIGTERM, compaction, crash after it ===================================================


def assert_compacted(node: Node) -> None:
    """After a clean stop: one snapshot and the (empty) segment it starts, nothing else."""
    files = node.files()
    assert len(snapshots(node.dir)) == 1 and len(segments(node.dir)) == 1, \
        f"a clean stop should leave one snapshot and one segment: {files}"
    [snap], [segment] = snapshots(node.dir), segments(node.dir)
    assert snap.name.split("-")[1].split(".")[0] == segment.name.split("-")[1].split(".")[0], files
    assert files[segment.name] < 1024, f"a clean stop left a {files[segment.name]}-byte log to replay: {files}"
    assert set(files) <= {"LOCK", snap.name, segment.name}, files


def test_sigterm_restart_brings_everything_back(start_broker, tmp_path):
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    q = make_queue(account, "term", visibilityTimeout=60, maxMsgSize=2048, msgRetentionSeconds=7200,
                   pollingWaitSeconds=3, rewindSeconds=600, maxMsgHeapNum=5000)
    q.batch_send_message([Message(f"ready {i}") for i in range(4)])
    q.send_message(Message("delayed"), delayTime=120)
    in_flight = q.batch_receive_message(2, polling_wait_seconds=0)
    gone = q.receive_message(polling_wait_seconds=0)
    q.delete_message(gone.receiptHandle)  # kept for rewind
    topic = account.get_topic(unique_name("tterm"))
    topic.create(TopicMeta())
    account.get_subscription(topic.topicName, "s").create(sub_meta("queue", q.queue_name, "BACKOFF_RETRY"))
    attrs = raw_queue(account, q.queue_name)
    assert (attrs["activeMsgNum"], attrs["inactiveMsgNum"], attrs["delayMsgNum"], attrs["rewindMsgNum"]) == (1, 2, 1, 1)
    topic_attrs, sub_attrs = raw_topic(account, topic.topicName), raw_sub(account, topic.topicName, "s")

    assert node.term() == 0, node.broker.stderr()
    assert_compacted(node)
    b = node.start()
    assert replayed_records(b.stderr()) == 0
    account = b.account()
    assert raw_queue(account, q.queue_name) == attrs
    assert raw_topic(account, topic.topicName) == topic_attrs
    assert raw_sub(account, topic.topicName, "s") == sub_attrs
    q = account.get_queue(q.queue_name)
    for m in in_flight:  # their handles still work
        q.delete_message(m.receiptHandle)
    last = q.receive_message(polling_wait_seconds=0)
    assert (last.msgBody, last.dequeueCount) == ("ready 3", 1)
    assert counts(q) == (0, 1, 1)
    q.rewindQueue(int(time.time()) - 60)  # the message deleted before the stop, and the two just now
    assert counts(q) == (3, 1, 1)
    assert sorted(m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)) == [
        "ready 0", "ready 1", "ready 2"]


def test_compaction_then_crash(start_broker, tmp_path):
    """Snapshot (by SIGTERM), more traffic on top of it, SIGKILL: the restart needs the snapshot
    and the log after it, and loses nothing. A second snapshot replaces the first."""
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    q = make_queue(account, "compact", visibilityTimeout=60)
    for i in range(20):
        q.batch_send_message([Message(f"a{i}.{j}") for j in range(16)])
    expected = {f"a{i}.{j}" for i in range(20) for j in range(16)}
    for m in q.batch_receive_message(16, polling_wait_seconds=0):
        q.delete_message(m.receiptHandle)
        expected.discard(m.msgBody)
    held = q.batch_receive_message(16, polling_wait_seconds=0)  # in flight across everything below
    log_before = node.files()[segments(node.dir)[-1].name]

    assert node.term() == 0
    assert_compacted(node)
    assert log_before > 10_000, "the log held the traffic before the snapshot"
    first_snapshot = snapshots(node.dir)[0].name

    account = node.start().account()
    assert replayed_records(node.broker.stderr()) == 0
    q = account.get_queue(q.queue_name)
    for i in range(10):
        q.batch_send_message([Message(f"b{i}.{j}") for j in range(16)])
    expected |= {f"b{i}.{j}" for i in range(10) for j in range(16)}
    for m in q.batch_receive_message(16, polling_wait_seconds=0):
        q.delete_message(m.receiptHandle)
        expected.discard(m.msgBody)
    q.delete_message(held[0].receiptHandle)  # a handle from before the snapshot
    expected.discard(held[0].msgBody)
    node.kill()
    assert [p.name for p in snapshots(node.dir)] == [first_snapshot]

    b = node.start()
    assert replayed_records(b.stderr()) > 10, "the records after the snapshot were replayed"
    q = b.account().get_queue(q.queue_name)
    assert counts(q) == (len(expected) - 15, 15, 0)
    q.batch_delete_message([m.receiptHandle for m in held[1:]])
    expected -= {m.msgBody for m in held[1:]}
    assert node.term() == 0
    assert_compacted(node)
    assert snapshots(node.dir)[0].name != first_snapshot, "the newer snapshot replaced the first"

    account = node.start().account()
    assert bodies(account.get_queue(q.queue_name)) == sorted(expected)


# == the data directory lock =========================================================================


def test_a_second_broker_on_the_same_data_dir_refuses_to_start(start_broker, tmp_path):
    node = Node(start_broker, tmp_path / "data")
    account = node.start().account()
    q = make_queue(account, "locked")
    q.send_message(Message("before"))

    result = refused_start(node.dir)
    assert result.returncode != 0
    assert "listening" not in result.stdout
    message = result.stderr.lower()
    assert str(node.dir).lower() in message and ("in use" in message or "lock" in message), result.stderr
    assert str(node.broker.proc.pid) in result.stderr, "the message names the broker holding the lock"
    assert "Traceback" not in result.stderr, result.stderr

    # The first one never noticed.
    assert node.broker.proc.poll() is None
    q.send_message(Message("after"))
    assert bodies(q) == ["after", "before"]
    q.send_message(Message("kept"))
    assert node.term() == 0
    account = node.start().account()  # the lock went with the first broker
    assert bodies(account.get_queue(q.queue_name)) == ["kept"]


# == Batch ============================================================================================


def job_state(client, job_id: str) -> str:
    return call(client, "DescribeJob", {"JobId": job_id})["JobState"]


def running_nodes(client, env_id: str) -> int:
    return call(client, "DescribeComputeEnv", {"EnvId": env_id})["ComputeNodeMetrics"]["RunningCount"]


def test_batch_jobs_and_compute_envs_survive_restarts(start_broker, tmp_path, no_proxy):
    node = Node(start_broker, tmp_path / "data", "--batch-time-scale", "0.1")
    client = node.start().batch_client()
    env_id = call(client, "CreateComputeEnv",
                   {"Placement": {"Zone": ZONE}, "ComputeEnv": named_env("keep-env", 2)})["EnvId"]
    done = call(client, "SubmitJob", {"Placement": {"Zone": ZONE}, "Job": {
        "JobName": "finished", "Tasks": [
            anon_task("first"),
            {"TaskName": "on-env", "TaskInstanceNum": 2, "EnvId": env_id,
             "Application": {"DeliveryForm": "LOCAL", "Command": "true"}}],
        "Dependences": [{"StartTask": "first", "EndTask": "on-env"}]}})["JobId"]
    # Running when the broker dies: persist.py says the attempt is lost, and with no retries left
    # the instance fails with a reason that says so.
    long_task = anon_task("long", MaxRetryCount=0, EnvVars=[{"Name": "BATCH_SIM_DURATION", "Value": "100"}])
    long = call(client, "SubmitJob", {"Placement": {"Zone": ZONE}, "Job": {
        "JobName": "interrupted", "Tasks": [long_task]}})["JobId"]
    wait_until(lambda: job_state(client, done) == "SUCCEED", "the first job to succeed")
    wait_until(lambda: running_nodes(client, env_id) == 2, "both nodes of the environment to run")
    wait_until(lambda: call(client, "DescribeTask", {"JobId": long, "TaskName": "long"})[
        "TaskInstanceSet"][0]["TaskInstanceState"] == "RUNNING", "the long job to run")
    job_before = call(client, "DescribeJob", {"JobId": done})
    env_before = call(client, "DescribeComputeEnv", {"EnvId": env_id})
    time.sleep(SETTLE)  # simulator progress is flushed in the background, not on a reply

    node.kill()
    client = node.start().batch_client()
    assert call(client, "DescribeJob", {"JobId": done}) == job_before
    env = call(client, "DescribeComputeEnv", {"EnvId": env_id})
    assert (env["EnvName"], env["DesiredComputeNodeCount"]) == ("keep-env", 2)
    assert {n["ComputeNodeId"] for n in env["ComputeNodeSet"]} == \
        {n["ComputeNodeId"] for n in env_before["ComputeNodeSet"]}
    wait_until(lambda: running_nodes(client, env_id) == 2, "the nodes to come back running")
    wait_until(lambda: job_state(client, long) == "FAILED", "the interrupted job to fail")
    [inst] = call(client, "DescribeTask", {"JobId": long, "TaskName": "long"})["TaskInstanceSet"]
    assert inst["TaskInstanceState"] == "FAILED" and "restart" in inst["StateReason"], inst

    assert node.term() == 0
    client = node.start().batch_client()
    assert call(client, "DescribeJob", {"JobId": done}) == job_before
    assert job_state(client, long) == "FAILED"
    assert call(client, "DescribeComputeEnv", {"EnvId": env_id})["DesiredComputeNodeCount"] == 2


def test_batch_acknowledged_submit_and_create_survive_an_immediate_kill(start_broker, tmp_path, no_proxy):
    """SubmitJob and CreateComputeEnv answered with an id are acknowledged changes like any CMQ
    write: a SIGKILL right after the reply must not lose them (issue 6: nothing acknowledged is lost)."""
    node = Node(start_broker, tmp_path / "data", "--batch-time-scale", "0.1")
    client = node.start().batch_client()
    env_id = call(client, "CreateComputeEnv",
                   {"Placement": {"Zone": ZONE}, "ComputeEnv": named_env("fresh", 1)})["EnvId"]
    job_id = call(client, "SubmitJob", {"Placement": {"Zone": ZONE}, "Job": {
        "JobName": "fresh", "Tasks": [anon_task("t")]}})["JobId"]
    node.kill()
    client = node.start().batch_client()
    missing = []
    for action, params in (("DescribeComputeEnv", {"EnvId": env_id}), ("DescribeJob", {"JobId": job_id})):
        try:
            call(client, action, params)
        except TencentCloudSDKException as exc:
            missing.append(f"{action} {params}: {exc.code}")
    assert not missing, f"acknowledged Batch creations lost by a kill: {missing}"
