"""Typed engine events and their codec: replaying the records of a run rebuilds the same state
(engine and storage/codec.py only, no files)."""

from __future__ import annotations

import copy

from broker.clock import FakeClock
from broker.engine import Broker
from broker.engine import events as E
from broker.storage.codec import empty_state, encode, replay


def record_into(broker, records):
    """Record the broker's events as the log would (each encoded by the codec)."""
    broker.events.set_recorder(lambda event: records.append(encode(event)))


def hold_pushes(broker):
    """A deliverer that has not got round to its pushes yet."""
    broker.events.subscribe(E.PushPending, lambda event: None)


def comparable(state):
    state = copy.deepcopy(state)
    state.pop("next_id")
    return state


def busy_broker(clock, records):
    b = Broker(clock)
    record_into(b, records)
    hold_pushes(b)
    q = b.create_queue("orders", {"visibilityTimeout": 10, "rewindSeconds": 600})
    b.create_queue("gone")
    b.delete_queue("gone")
    b.create_queue("audit")
    q.send(["a", "b", "c"])
    q.send(["later"], delay=50)
    got = q.take(2)
    q.delete(got[0].receipt_handle)  # kept for rewind
    b.set_queue_attributes("orders", {"pollingWaitSeconds": 3, "rewindSeconds": 600})
    b.create_topic("events", 2)
    b.subscribe("events", "to-audit", "queue", "audit", binding_keys=["job.#"])
    b.subscribe("events", "hook", "http", "http://127.0.0.1:9/x", filter_tags=None, binding_keys=["#"])
    b.update_subscription("events", "hook", strategy="BACKOFF_RETRY")
    b.publish("events", ["job done"], [], "job.done")  # audit gets a copy; the hook a pending push
    clock.advance(5)
    return b


def test_replay_rebuilds_what_dump_shows():
    clock = FakeClock()
    records: list[tuple] = []
    b = busy_broker(clock, records)
    rebuilt = replay(empty_state(), records)
    assert comparable(rebuilt)["queues"] == comparable(b.dump())["queues"]
    assert comparable(rebuilt)["topics"] == comparable(b.dump())["topics"]
    [pending] = rebuilt["pending"].values()
    assert pending[:4] == ["events", "hook", pending[2], "job done"]


def test_load_restores_states_counts_and_handles():
    clock = FakeClock()
    records: list[tuple] = []
    b = busy_broker(clock, records)
    inflight = [m for m in b.get_queue("orders")._messages.values() if m.dequeue_count and m.state == 2]
    [held] = inflight
    fresh = Broker(clock)
    resumed = fresh.load(replay(empty_state(), records))
    q = fresh.get_queue("orders")
    assert q.stats() == b.get_queue("orders").stats() == {
        "activeMsgNum": 1, "inactiveMsgNum": 1, "delayMsgNum": 1, "rewindMsgNum": 1}
    assert q.settings.pollingWaitSeconds == 3
    q.delete(held.receipt_handle)  # a handle given out before the restart still works
    assert [m.body for m in fresh.get_queue("audit").take(5)] == ["job done"]
    [(sub, msg, attempts)] = resumed
    assert (sub.name, msg.body, attempts, sub.pending) == ("hook", "job done", 0, 1)
    assert fresh.get_subscription("events", "hook").notify_strategy == "BACKOFF_RETRY"
    assert fresh.next_message_id() > max(m.id for m in b.get_queue("orders")._messages.values())


def test_inflight_past_its_timeout_comes_back_visible_with_its_count():
    clock = FakeClock()
    records: list[tuple] = []
    b = Broker(clock)
    record_into(b, records)
    q = b.create_queue("q", {"visibilityTimeout": 30})
    q.send(["x"])
    [m] = q.take(1)
    later = FakeClock(start=clock.time() + 60)  # the broker was down for a minute
    fresh = Broker(later)
    fresh.load(replay(empty_state(), records))
    [again] = fresh.get_queue("q").take(1)
    assert again.dequeue_count == 2 and again.receipt_handle != m.receipt_handle


def test_snapshot_then_more_records():
    clock = FakeClock()
    records: list[tuple] = []
    b = busy_broker(clock, records)
    snapshot = copy.deepcopy(b.dump())
    del records[:]
    b.get_queue("orders").send(["after"])
    b.unsubscribe("events", "hook")
    state = replay(snapshot, records)
    assert comparable(state)["queues"] == comparable(b.dump())["queues"]
    assert list(state["topics"]["events"]["subs"]) == ["to-audit"]


async def test_sliced_packing_gives_the_same_bytes():
    import msgpack

    from broker.storage.recovery import PACK_SLICE, pack

    clock = FakeClock()
    b = busy_broker(clock, [])
    q = b.get_queue("audit")
    for i in range(0, PACK_SLICE * 2 + 5, 16):
        q.send([f"m{i + j}" for j in range(16)])
    state = b.dump()
    state["batch"] = {"jobs": {}, "envs": {}, "templates": {}}
    assert await pack(state) == msgpack.packb(state, use_bin_type=True)


def test_events_are_typed_and_the_recorder_sees_them_first():
    clock = FakeClock()
    b = Broker(clock)
    seen: list = []
    b.events.set_recorder(seen.append)
    order: list = []
    b.events.subscribe(E.PushPending, lambda event: order.append((len(seen), event.msg.body)))
    q = b.create_queue("q")
    q.send(["a"])
    q.delete(q.take(1)[0].receipt_handle)
    b.create_topic("t")
    b.subscribe("t", "hook", "http", "http://127.0.0.1:9/x")
    b.publish("t", ["x"], [], "")
    kinds = [type(e) for e in seen]
    assert kinds == [E.QueueCreated, E.MessagesSent, E.MessagesReceived, E.MessagesDeleted, E.TopicCreated,
                     E.SubscriptionCreated, E.PushPending]
    assert order == [(7, "x")]  # the subscriber ran after the recorder had the event
    assert encode(seen[1])[:2] == ("ms", "q")


def test_without_a_deliverer_deferred_copies_are_dropped_and_settled():
    clock = FakeClock()
    b = Broker(clock)
    records: list = []
    record_into(b, records)
    b.create_topic("t")
    b.subscribe("t", "hook", "http", "http://127.0.0.1:9/x")
    b.publish("t", ["x"], [], "")
    sub = b.get_subscription("t", "hook")
    assert (sub.pending, sub.dropped) == (0, 1)
    assert [r[0] for r in records[-2:]] == ["pp", "ps"]
    assert replay(empty_state(), records)["pending"] == {}
