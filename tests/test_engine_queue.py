"""Engine unit tests: queues on a fake clock, no HTTP."""

from __future__ import annotations

import asyncio

import pytest

from broker.clock import FakeClock
from broker.engine import Broker
from broker.errors import (
    EmptyMessage,
    InvalidQueueName,
    InvalidReceiptHandle,
    InvalidRewindTime,
    MessageTooLarge,
    ParameterOutOfRange,
    QueueAlreadyExists,
    QueueFull,
    QueueLimitExceeded,
    QueueNotFound,
    RewindDisabled,
)
from broker.engine.broker import Limits


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def broker(clock):
    return Broker(clock)


def counts(queue):
    s = queue.stats()
    return s["activeMsgNum"], s["inactiveMsgNum"], s["delayMsgNum"]


def test_send_receive_delete(broker):
    q = broker.create_queue("orders")
    [m] = q.send(["hello"])
    assert counts(q) == (1, 0, 0)
    [got] = q.take(1)
    assert got.id == m.id and got.body == "hello" and got.dequeue_count == 1
    assert counts(q) == (0, 1, 0)
    q.delete(got.receipt_handle)
    assert counts(q) == (0, 0, 0)
    with pytest.raises(InvalidReceiptHandle):
        q.delete(got.receipt_handle)


def test_oldest_first_including_redelivered(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 5})
    first, second = q.send(["a", "b"])
    [got] = q.take(1)
    assert got is first
    q.send(["c"])
    clock.advance(5)  # "a" becomes visible again and is older than "b" and "c"
    assert [m.body for m in q.take(3)] == ["a", "b", "c"]


def test_visibility_timeout_redelivers_and_stale_handle_is_refused(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 10})
    q.send(["x"])
    [first] = q.take(1)
    old_handle = first.receipt_handle
    clock.advance(9.9)
    assert q.take(1) == []
    assert counts(q) == (0, 1, 0)
    clock.advance(0.1)
    assert counts(q) == (1, 0, 0)
    with pytest.raises(InvalidReceiptHandle):  # expired, even before anyone received it again
        q.delete(old_handle)
    [again] = q.take(1)
    assert again.dequeue_count == 2 and again.receipt_handle != old_handle
    with pytest.raises(InvalidReceiptHandle):  # stale: a later receiver holds it
        q.delete(old_handle)
    assert counts(q) == (0, 1, 0)
    q.delete(again.receipt_handle)
    assert counts(q) == (0, 0, 0)


def test_first_dequeue_time_is_kept(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 1})
    q.send(["x"])
    [m] = q.take(1)
    first = m.first_dequeue_time
    clock.advance(3)
    [m] = q.take(1)
    assert m.first_dequeue_time == first and m.dequeue_count == 2


def test_delay(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 100})
    q.send(["later"], delay=30)
    q.send(["now"])
    assert counts(q) == (1, 0, 1)
    assert [m.body for m in q.take(5)] == ["now"]
    clock.advance(29)
    assert q.take(5) == [] and counts(q) == (0, 1, 1)
    clock.advance(1)
    assert counts(q) == (1, 1, 0)
    assert [m.body for m in q.take(5)] == ["later"]


def test_retention_expires_every_state(broker, clock):
    q = broker.create_queue("q", {"msgRetentionSeconds": 60, "visibilityTimeout": 100})
    q.send(["ready"])
    q.send(["inflight"])
    q.take(1)  # "ready" is now in flight
    q.send(["delayed"], delay=100)
    clock.advance(59)
    assert counts(q) == (1, 1, 1)
    clock.advance(1)
    assert counts(q) == (0, 0, 0)
    assert q.take(5) == []


def test_heap_limit_is_all_or_nothing(broker):
    q = broker.create_queue("q", {"maxMsgHeapNum": 3})
    q.send(["a", "b"])
    with pytest.raises(QueueFull):
        q.send(["c", "d"])
    assert counts(q) == (2, 0, 0)
    q.send(["c"])
    with pytest.raises(QueueFull):
        q.send(["e"])
    [m] = q.take(1)
    q.delete(m.receipt_handle)
    q.send(["e"])


def test_body_checks(broker):
    q = broker.create_queue("q", {"maxMsgSize": 1024})
    with pytest.raises(EmptyMessage):
        q.check_body("")
    q.check_body("x" * 1024)
    with pytest.raises(MessageTooLarge):
        q.check_body("x" * 1025)
    q.check_body("é" * 512)  # 1024 bytes
    with pytest.raises(MessageTooLarge):
        q.check_body("é" * 513)  # 1026 bytes, though only 513 characters


def test_names_and_limits(clock):
    broker = Broker(clock, Limits(max_queues=2))
    for bad in ["", "1abc", "a b", "a" * 65, "tab\t", "ünï"]:
        with pytest.raises(InvalidQueueName):
            broker.create_queue(bad)
    broker.create_queue("Alpha")
    with pytest.raises(QueueAlreadyExists):
        broker.create_queue("ALPHA")
    assert broker.get_queue("alpha").name == "Alpha"
    broker.create_queue("b-2_x")
    with pytest.raises(QueueLimitExceeded):
        broker.create_queue("c")
    broker.delete_queue("alpha")
    with pytest.raises(QueueNotFound):
        broker.get_queue("Alpha")
    broker.create_queue("c")


def test_settings_validation(broker):
    with pytest.raises(ParameterOutOfRange) as info:
        broker.create_queue("q", {"visibilityTimeout": 0})
    assert info.value.param == "visibilityTimeout"
    with pytest.raises(ParameterOutOfRange):
        broker.create_queue("q", {"msgRetentionSeconds": 100, "rewindSeconds": 200})
    q = broker.create_queue("q", {"pollingWaitSeconds": 5})
    broker.set_queue_attributes("q", {"visibilityTimeout": 99})
    assert q.settings.visibilityTimeout == 99 and q.settings.pollingWaitSeconds == 5


def test_list_is_sorted_paged_and_searchable(broker):
    for name in ["delta", "alpha", "charlie", "bravo", "alphabet"]:
        broker.create_queue(name)
    total, page = broker.list_queues("", 1, 2)
    assert total == 5 and [q.name for q in page] == ["alphabet", "bravo"]
    total, page = broker.list_queues("ALPHA", 0, 20)
    assert total == 2 and [q.name for q in page] == ["alpha", "alphabet"]


def test_rewind_replays_deleted_messages(broker, clock):
    q = broker.create_queue("q", {"rewindSeconds": 3600})
    start = int(clock.time())
    q.send(["a", "b"])
    for m in q.take(2):
        q.delete(m.receipt_handle)
    assert q.stats()["rewindMsgNum"] == 2 and counts(q) == (0, 0, 0)
    clock.advance(10)
    q.send(["c"])
    assert q.rewind(start) == 2
    assert [m.body for m in q.take(5)] == ["a", "b", "c"]
    with pytest.raises(InvalidRewindTime):
        q.rewind(start - 7200)


def test_rewind_disabled_and_turning_it_off_discards(broker):
    q = broker.create_queue("q")
    with pytest.raises(RewindDisabled):
        q.rewind(0)
    broker.set_queue_attributes("q", {"rewindSeconds": 60})
    q.send(["a"])
    [m] = q.take(1)
    q.delete(m.receipt_handle)
    assert q.stats()["rewindMsgNum"] == 1
    broker.set_queue_attributes("q", {"rewindSeconds": 0})
    assert q.stats()["rewindMsgNum"] == 0


def test_garbage_handles(broker):
    q = broker.create_queue("q")
    for bad in ["", "abc", "12", "٣" * 12, "1" * 40, "-1" + "0" * 10]:
        with pytest.raises(InvalidReceiptHandle):
            q.delete(bad)


def test_handles_of_another_queue_are_refused(broker):
    a, b = broker.create_queue("a"), broker.create_queue("b")
    a.send(["x"])
    [m] = a.take(1)
    with pytest.raises(InvalidReceiptHandle):
        b.delete(m.receipt_handle)
    a.delete(m.receipt_handle)


# -- long polling ---------------------------------------------------------------------------

async def test_parked_receiver_gets_a_send_directly(broker):
    q = broker.create_queue("q")
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    assert not task.done()
    q.send(["hi"])
    [m] = await asyncio.wait_for(task, 1)  # woken by the send, not by the fake clock
    assert m.body == "hi" and counts(q) == (0, 1, 0)


async def test_waiters_are_served_in_order_and_each_gets_its_own(broker):
    q = broker.create_queue("q")
    tasks = [asyncio.create_task(q.receive(2, 30)) for _ in range(3)]
    await asyncio.sleep(0)
    q.send(["1", "2", "3"])
    q.send(["4"])
    results = [[m.body for m in await asyncio.wait_for(t, 1)] for t in tasks]
    assert results == [["1", "2"], ["3"], ["4"]]


async def test_poll_times_out_empty(broker, clock):
    q = broker.create_queue("q")
    task = asyncio.create_task(q.receive(1, 5))
    await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    assert await asyncio.wait_for(task, 1) == []
    assert not q._waiters  # nothing left parked


async def test_parked_receiver_wakes_for_delayed_and_redelivered(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 3})
    q.send(["d"], delay=2)
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    clock.advance(2)
    [m] = await asyncio.wait_for(task, 1)
    assert m.body == "d"
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    clock.advance(3)  # visibility timeout of the first delivery
    [m] = await asyncio.wait_for(task, 1)
    assert m.body == "d" and m.dequeue_count == 2


async def test_cancelled_receiver_does_not_swallow_messages(broker):
    q = broker.create_queue("q")
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    q.send(["x"])
    assert counts(q) == (1, 0, 0)
    assert not q._waiters


async def test_close_releases_waiters(broker):
    q = broker.create_queue("q")
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    broker.close()
    assert await asyncio.wait_for(task, 1) == []
    assert await asyncio.wait_for(q.receive(1, 30), 1) == []  # no new parking while stopping


async def test_delete_queue_releases_waiters(broker):
    q = broker.create_queue("q")
    task = asyncio.create_task(q.receive(1, 30))
    await asyncio.sleep(0)
    broker.delete_queue("q")
    assert await asyncio.wait_for(task, 1) == []


# -- scale ---------------------------------------------------------------------------

def test_a_large_queue_stays_consistent(broker, clock):
    q = broker.create_queue("big", {"visibilityTimeout": 10})
    n = 200_000
    for i in range(0, n, 16):
        q.send([str(j) for j in range(i, i + 16)])
    assert counts(q) == (n, 0, 0)
    taken = q.take(16)
    assert [m.body for m in taken] == [str(j) for j in range(16)]
    for m in taken[:8]:
        q.delete(m.receipt_handle)
    clock.advance(10)
    assert counts(q) == (n - 8, 0, 0)
    assert [m.body for m in q.take(3)] == ["8", "9", "10"]


def test_ids_carry_the_enqueue_time_and_stay_unique_in_bursts(broker, clock):
    q = broker.create_queue("q")
    sent = q.send([str(i) for i in range(16)] * 400)  # 6,400 messages within one millisecond
    ids = [m.id for m in sent]
    assert ids == sorted(set(ids))
    assert abs(sent[0].enqueue_time - clock.time()) < 0.002
    clock.advance(2.5)
    [later] = q.send(["later"])
    assert abs(later.enqueue_time - clock.time()) < 0.002 and later.id > ids[-1]


def test_receive_mixes_fresh_and_returned_messages_oldest_first(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 5})
    q.send(["a", "b"])
    q.send(["late"], delay=3)
    [a] = q.take(1)  # "a" leaves the fresh messages; "b" stays there
    q.send(["c"])
    clock.advance(5)  # "late" and "a" are visible again, among the fresh "b" and "c"
    assert [m.body for m in q.take(10)] == ["a", "b", "late", "c"]


def test_peek_changes_nothing_and_shows_every_state(broker, clock):
    q = broker.create_queue("q", {"visibilityTimeout": 30, "rewindSeconds": 600})
    a, b, c, d = q.send(["a", "b", "c", "d"])
    [late] = q.send(["late"], delay=60)
    [taken] = q.take(1)  # a: in flight
    [second] = q.take(1)  # b: in flight, then deleted (kept for rewind)
    q.delete(second.receipt_handle)
    before = q.stats()
    peeked = q.peek(10)
    assert [m.body for m in peeked] == ["a", "c", "d", "late"]
    assert [m.state for m in peeked] == [2, 0, 0, 1]  # in flight, ready, ready, delayed
    assert [m.body for m in q.peek(10, include_kept=True)] == ["a", "b", "c", "d", "late"]
    assert [m.body for m in q.peek(2)] == ["a", "c"]
    assert q.stats() == before
    assert [m.dequeue_count for m in q.take(5)] == [1, 1]  # c and d were never dequeued by peek


def test_purge_removes_every_state_and_is_journaled(broker, clock):
    from broker.storage.codec import empty_state, encode, replay

    records = []
    broker.events.set_recorder(lambda event: records.append(encode(event)))
    q = broker.create_queue("q", {"rewindSeconds": 600})
    q.send(["a", "b", "c"])
    q.send(["later"], delay=60)
    [got] = q.take(1)
    q.delete(q.take(1)[0].receipt_handle)
    assert q.purge() == 4
    assert counts(q) == (0, 0, 0) and q.stats()["rewindMsgNum"] == 0
    assert q.take(5) == [] and q.peek(5, include_kept=True) == []
    with pytest.raises(InvalidReceiptHandle):
        q.delete(got.receipt_handle)
    clock.advance(100)
    assert q.take(5) == []  # the delayed message is gone too, not just hidden
    assert replay(empty_state(), records)["queues"][q.key]["messages"] == {}
    q.send(["after"])
    assert [m.body for m in q.take(5)] == ["after"]


async def test_parked_long_polls_are_bounded_over_all_queues(clock):
    from broker.errors import TooManyLongPolls

    b = Broker(clock, Limits(max_long_polls=2))
    q1, q2 = b.create_queue("a"), b.create_queue("b")
    parked = [asyncio.ensure_future(q1.receive(1, 30)), asyncio.ensure_future(q2.receive(1, 30))]
    await asyncio.sleep(0)
    with pytest.raises(TooManyLongPolls):
        await q1.receive(1, 30)
    assert await q1.receive(1, 0) == []  # no wait: never parks, never refused
    q1.send(["x"])
    assert [m.body for m in await parked[0]] == ["x"]
    waiting = asyncio.ensure_future(q1.receive(1, 30))  # the slot freed by the woken receiver
    await asyncio.sleep(0)
    assert not waiting.done()
    q2.close(), q1.close()
    assert await parked[1] == [] and await waiting == []
    assert b.parking.count == 0
