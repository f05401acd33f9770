"""Queue semantics seen through the SDK: long polling, visibility, delay, ordering, rewind windows.

The broker runs in process on a fake clock (broker.testing.fake_clock_broker), so time is exact:
a 1 s long poll, visibility timeout or delay ends when the test moves the clock on by 1 s, not
before, and never because the machine was slow. "Returned at once" means returned while the
clock stood still. Each blocking receive in another thread gets its own Account: the SDK's Account
is not thread-safe.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message

from broker.testing import FakeClockBroker, fake_clock_broker

from helpers import Background, counts, queue_meta, server_error, unique_name, wait_until

SETTLE = 0.2  # real seconds to watch a receive that must NOT return (nothing moves the clock meanwhile)


@pytest.fixture(scope="module")
def fb() -> Iterator[FakeClockBroker]:
    with fake_clock_broker(start=time.time()) as b:
        yield b


@pytest.fixture
def account(fb):
    return fb.account()


@pytest.fixture
def make_queue(account):
    """Create a queue with a unique name and the given QueueMeta attributes; deleted afterwards."""
    created = []

    def make(prefix: str = "q", **attrs):
        q = account.get_queue(unique_name(prefix))
        q.create(queue_meta(**attrs))
        created.append(q)
        return q

    yield make
    for q in created:
        try:
            q.delete()
        except CMQServerException:
            pass


def parked(fb: FakeClockBroker) -> int:
    """How many receivers are parked in long polls on the broker now."""
    return fb.call(lambda: fb.engine.parking.count)


def parked_receive(fb: FakeClockBroker, queue_name: str, wait: int = 10, batch: int | None = None) -> Background:
    """Start a long-polling receive on its own connection and wait until it is parked."""
    before = parked(fb)
    q = fb.account().get_queue(queue_name)
    if batch is None:
        call = Background(q.receive_message, polling_wait_seconds=wait)
    else:
        call = Background(q.batch_receive_message, batch, polling_wait_seconds=wait)
    wait_until(lambda: parked(fb) > before or call.done.is_set(), "the receive to park", 10, 0.005)
    assert not call.done.is_set(), f"receive returned before anything was sent: {call.result!r} {call.error!r}"
    return call


def still_waiting(call: Background) -> bool:
    return not call.wait(SETTLE)


# -- long polling -----------------------------------------------------------------------------


def test_long_poll_wakes_up_when_another_client_sends(fb, make_queue):
    q = make_queue("wake")
    receiver = parked_receive(fb, q.queue_name, wait=10)
    sent = q.send_message(Message("wake up"))
    assert receiver.wait(8), "the parked receive did not return after a send"
    assert receiver.error is None, receiver.error
    assert receiver.result.msgId == sent.msgId
    assert receiver.result.msgBody == "wake up"
    assert counts(q) == (0, 1, 0)


def test_batch_long_poll_wakes_up_and_returns_what_is_there(fb, make_queue):
    q = make_queue("bwake")
    receiver = parked_receive(fb, q.queue_name, wait=10, batch=16)
    q.batch_send_message([Message("x"), Message("y")])
    assert receiver.wait(8)
    assert receiver.error is None, receiver.error
    got = list(receiver.result)
    # it need not wait to fill 16; whatever it did not take is still there
    assert 1 <= len(got) <= 2
    assert [m.msgBody for m in got] == ["x", "y"][: len(got)]
    assert counts(q) == (2 - len(got), len(got), 0)


def test_each_parked_receiver_gets_a_different_message(fb, make_queue):
    q = make_queue("fair")
    receivers = [parked_receive(fb, q.queue_name, wait=10) for _ in range(2)]
    q.batch_send_message([Message("one"), Message("two")])
    for r in receivers:
        assert r.wait(8)
        assert r.error is None, r.error
    assert sorted(r.result.msgBody for r in receivers) == ["one", "two"]
    assert counts(q) == (0, 2, 0)


def test_a_parked_long_poll_does_not_block_other_requests(fb, make_queue, account):
    q = make_queue("nonblock")
    receiver = parked_receive(fb, q.queue_name, wait=10)
    started = time.monotonic()
    other = make_queue("other")
    other.send_message(Message("elsewhere"))
    assert other.receive_message(polling_wait_seconds=0).msgBody == "elsewhere"
    assert account.list_queue(searchWord=q.queue_name)[0] == 1
    assert counts(q) == (0, 0, 0)
    assert time.monotonic() - started < 3
    assert not receiver.done.is_set()
    q.send_message(Message("release"))
    assert receiver.wait(8) and receiver.result.msgBody == "release"


def test_long_poll_with_nothing_ends_with_7000_after_its_wait(fb, make_queue):
    q = make_queue("idle")
    for batch in (None, 4):
        call = parked_receive(fb, q.queue_name, wait=1, batch=batch)
        fb.advance(0.9)
        assert still_waiting(call), "a 1 s poll ended before its time"
        fb.advance(0.1)
        assert call.wait(8), "a 1 s poll outlived its wait"
        assert isinstance(call.error, CMQServerException) and call.error.code == 7000, call.error


def test_receive_without_a_wait_uses_the_queue_polling_wait_seconds(fb, make_queue):
    q = make_queue("qwait", pollingWaitSeconds=1)
    call = parked_receive(fb, q.queue_name, wait=None)
    fb.advance(0.9)
    assert still_waiting(call), "queue pollingWaitSeconds=1 but the poll ended sooner"
    fb.advance(0.1)
    assert call.wait(8) and call.error.code == 7000, call.error
    # an explicit 0 in the request beats the queue's setting: answered while the clock stands still
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000


def test_long_poll_wakes_up_when_a_delayed_message_matures(fb, make_queue):
    q = make_queue("dwake")
    q.send_message(Message("soon"), delayTime=1)
    receiver = parked_receive(fb, q.queue_name, wait=10)
    fb.advance(0.9)
    assert still_waiting(receiver), "a message delayed 1 s arrived early"
    fb.advance(0.1)
    assert receiver.wait(8) and receiver.error is None, receiver.error
    assert receiver.result.msgBody == "soon"


def test_long_poll_wakes_up_when_an_in_flight_message_times_out(fb, make_queue):
    q = make_queue("vwake", visibilityTimeout=1)
    q.send_message(Message("again"))
    first = q.receive_message(polling_wait_seconds=0)
    receiver = parked_receive(fb, q.queue_name, wait=10)
    fb.advance(1)
    assert receiver.wait(8) and receiver.error is None, receiver.error
    assert receiver.result.msgId == first.msgId


def test_second_parked_receiver_gets_the_message_when_the_first_lets_it_time_out(fb, make_queue):
    q = make_queue("relay", visibilityTimeout=1)
    first = parked_receive(fb, q.queue_name, wait=10)
    second = parked_receive(fb, q.queue_name, wait=10)
    q.send_message(Message("pass it on"))
    assert first.wait(8) and first.error is None, first.error
    assert first.result.dequeueCount == 1
    # the first receiver never deletes it: after 1 s it must reach the still-parked second one
    assert still_waiting(second)
    fb.advance(1)
    assert second.wait(8), "the second parked receiver was not woken by the visibility timeout"
    assert second.error is None, second.error
    assert (second.result.msgId, second.result.dequeueCount) == (first.result.msgId, 2)


# -- visibility timeout -----------------------------------------------------------------------


def test_visibility_timeout_redelivers_with_higher_dequeue_count_and_new_handle(fb, make_queue):
    q = make_queue("vis", visibilityTimeout=1)
    q.send_message(Message("redeliver me"))
    first = q.receive_message(polling_wait_seconds=0)
    assert first.dequeueCount == 1
    assert counts(q) == (0, 1, 0)
    # invisible until its visibility timeout passes
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000
    fb.advance(0.9)
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000
    fb.advance(0.1)

    second = q.receive_message(polling_wait_seconds=0)
    assert second.msgId == first.msgId
    assert second.msgBody == "redeliver me"
    assert second.dequeueCount == 2
    assert second.receiptHandle != first.receiptHandle
    assert second.firstDequeueTime == first.firstDequeueTime
    assert second.enqueueTime == first.enqueueTime
    assert second.nextVisibleTime >= first.nextVisibleTime

    # the first handle is stale now; the new one works
    assert server_error(q.delete_message, first.receiptHandle).code == 4430
    assert counts(q) == (0, 1, 0)
    q.delete_message(second.receiptHandle)
    assert counts(q) == (0, 0, 0)


def test_handle_expires_with_the_visibility_timeout(fb, make_queue):
    q = make_queue("expire", visibilityTimeout=1)
    q.send_message(Message("m"))
    msg = q.receive_message(polling_wait_seconds=0)
    fb.advance(1.3)
    # the message is visible again and its old handle no longer deletes it
    assert counts(q) == (1, 0, 0)
    assert server_error(q.delete_message, msg.receiptHandle).code == 4430
    assert counts(q) == (1, 0, 0)
    assert q.receive_message(polling_wait_seconds=0).dequeueCount == 2


def test_stale_handle_in_batch_delete_is_reported_while_new_one_deletes(fb, make_queue):
    q = make_queue("bvis", visibilityTimeout=1)
    q.batch_send_message([Message("a"), Message("b")])
    first = q.batch_receive_message(2, polling_wait_seconds=0)
    fb.advance(1.2)
    second = q.batch_receive_message(2, polling_wait_seconds=0)
    assert [(m.msgBody, m.dequeueCount) for m in second] == [("a", 2), ("b", 2)]
    new_a = next(m for m in second if m.msgBody == "a")
    old_a = next(m for m in first if m.msgBody == "a")
    exc = server_error(q.batch_delete_message, [old_a.receiptHandle, new_a.receiptHandle])
    assert exc.code == 6010
    assert [(e["receiptHandle"], e["code"]) for e in exc.data["errorList"]] == [(old_a.receiptHandle, 4430)]
    assert counts(q) == (0, 1, 0)  # "b" is still in flight


# -- delay ------------------------------------------------------------------------------------


def test_delayed_message_is_counted_then_becomes_receivable(fb, make_queue):
    q = make_queue("delayed")
    q.send_message(Message("later"), delayTime=2)
    assert counts(q) == (0, 0, 1)
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000

    receiver = parked_receive(fb, q.queue_name, wait=10)
    fb.advance(1.9)
    assert still_waiting(receiver), "delayTime=2 but the message arrived sooner"
    assert counts(q) == (0, 0, 1)
    fb.advance(0.1)
    assert receiver.wait(8) and receiver.error is None, receiver.error
    assert receiver.result.msgBody == "later"
    assert counts(q) == (0, 1, 0)


def test_batch_send_delay_applies_to_every_message(fb, make_queue):
    q = make_queue("bdelay")
    q.batch_send_message([Message("d1"), Message("d2"), Message("d3")], delayTime=1)
    q.send_message(Message("now"))
    assert counts(q) == (1, 0, 3)
    assert q.receive_message(polling_wait_seconds=0).msgBody == "now"
    fb.advance(1.2)
    assert counts(q) == (3, 1, 0)
    assert [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)] == ["d1", "d2", "d3"]


# -- ordering ---------------------------------------------------------------------------------


def test_messages_are_delivered_oldest_first(make_queue):
    q = make_queue("order")
    bodies = [f"m{i:02d}" for i in range(10)]
    for body in bodies[:4]:
        q.send_message(Message(body))
    q.batch_send_message([Message(b) for b in bodies[4:]])
    got = [q.receive_message(polling_wait_seconds=0).msgBody for _ in bodies]
    assert got == bodies


def test_redelivered_message_goes_before_newer_ones(fb, make_queue):
    q = make_queue("reorder", visibilityTimeout=1)
    q.send_message(Message("old"))
    q.receive_message(polling_wait_seconds=0)
    q.send_message(Message("new"))
    fb.advance(1.2)
    first = q.receive_message(polling_wait_seconds=0)
    assert (first.msgBody, first.dequeueCount) == ("old", 2)
    assert q.receive_message(polling_wait_seconds=0).msgBody == "new"


# -- rewind -----------------------------------------------------------------------------------


def test_rewind_restores_only_messages_enqueued_at_or_after_the_time(fb, make_queue):
    q = make_queue("rwtime", rewindSeconds=600)
    q.send_message(Message("before"))
    # move into the next whole second, so `start` is after "before" and not after "after"
    now = fb.time()
    fb.advance(int(now) + 1.05 - now)
    start = int(fb.time())
    q.send_message(Message("after"))
    got = q.batch_receive_message(16, polling_wait_seconds=0)
    assert [m.msgBody for m in got] == ["before", "after"]
    q.batch_delete_message([m.receiptHandle for m in got])
    assert q.get_attributes().rewindmsgNum == 2

    q.rewindQueue(start)
    meta = q.get_attributes()
    assert (meta.activeMsgNum, meta.rewindmsgNum) == (1, 1)
    assert q.receive_message(polling_wait_seconds=0).msgBody == "after"
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000


def test_rewind_wakes_a_parked_receiver(fb, make_queue):
    q = make_queue("rwwake", rewindSeconds=600)
    start = int(fb.time()) - 1
    q.send_message(Message("replay"))
    q.delete_message(q.receive_message(polling_wait_seconds=0).receiptHandle)
    receiver = parked_receive(fb, q.queue_name, wait=10)
    q.rewindQueue(start)
    assert receiver.wait(8)
    assert receiver.error is None, receiver.error
    assert receiver.result.msgBody == "replay"


def test_deleting_a_queue_answers_its_parked_receivers(fb, account):
    name = "gone-" + str(time.time_ns())
    q = account.get_queue(name)
    q.create(queue_meta())
    receiver = parked_receive(fb, name, wait=10)
    q.delete()
    assert receiver.wait(8), "a receiver parked on a deleted queue was never answered"
    assert isinstance(receiver.error, CMQServerException)
    assert receiver.error.code in (7000, 4440)
