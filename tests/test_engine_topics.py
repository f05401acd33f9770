"""Engine tests for topics: filters, fan-out, strict mode, and deferred delivery on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.clock import FakeClock
from broker.delivery import Pusher, PushSettings, retry_gaps
from broker.engine.events import PushPending
from broker.engine import Broker
from broker.engine.topic import FILTER_ROUTING, check_key, route_matches
from broker.errors import (
    BindingKeyRequired,
    InvalidEndpoint,
    InvalidParameter,
    MessageTooLarge,
    NoMatchingSubscription,
    NoSubscription,
    QueueSubscriptionNeedsSimplified,
    SubscriptionAlreadyExists,
    TopicHasSubscriptions,
    TooManyDelimiters,
    TooManyMessageTags,
)


def words(key: str):
    return check_key(key, "k", wildcards=True)


@pytest.mark.parametrize(
    "binding, key, expected",
    [
        ("1.*.0", "1.abc.0", True),
        ("1.*.0", "1.a.b.0", False),
        ("1.#.0", "1.2.3.4.4.2.2.0", True),
        ("1.#.0", "1.0", True),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("*", "", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("a.#", "a", True),
        ("#.a", "b.a", True),
        ("#.a", "b.a.c", False),
        ("*.#", "", False),
        ("#.#", "x.y", True),
        ("a.*.#.z", "a.b.z", True),
        ("a.*.#.z", "a.z", False),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_route_matching(binding, key, expected):
    assert route_matches(words(binding), words(key)) is expected


def test_key_limits():
    check_key("a." * 15 + "b", "routingKey", wildcards=False)
    with pytest.raises(TooManyDelimiters):
        check_key("a." * 16 + "b", "routingKey", wildcards=False)
    with pytest.raises(InvalidParameter):
        check_key("x" * 65, "routingKey", wildcards=False)
    with pytest.raises(InvalidParameter):
        check_key("a.*", "routingKey", wildcards=False)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def broker(clock):
    b = Broker(clock)
    b.deferred = []
    b.events.subscribe(PushPending, lambda event: b.deferred.append((event.sub, event.msg)))
    return b


def bodies(broker, name):
    return [m.body for m in broker.get_queue(name).take(16)]


def test_tag_fan_out(broker):
    for name in ["all", "ab", "c"]:
        broker.create_queue(name)
    broker.create_topic("t")
    broker.subscribe("t", "s-all", "queue", "all")
    broker.subscribe("t", "s-ab", "queue", "ab", filter_tags=["a", "b"])
    broker.subscribe("t", "s-c", "QUEUE", "c", filter_tags=["c"])
    broker.publish("t", ["1"], ["b", "c"], "")
    broker.publish("t", ["2"], ["z"], "")
    broker.publish("t", ["3"], [], "")
    broker.publish("t", ["4", "5"], ["a"], "")
    assert bodies(broker, "all") == ["1", "2", "3", "4", "5"]
    assert bodies(broker, "ab") == ["1", "4", "5"]
    assert bodies(broker, "c") == ["1"]
    assert broker.deferred == []


def test_routing_fan_out_and_any_binding_key(broker):
    broker.create_queue("orders")
    broker.create_queue("errors")
    broker.create_topic("r", FILTER_ROUTING)
    broker.subscribe("r", "o", "queue", "orders", binding_keys=["order.*", "audit.#"])
    broker.subscribe("r", "e", "queue", "errors", binding_keys=["#.error"])
    for key in ["order.created", "order.eu.created", "audit", "audit.x.y", "job.error", "error", "other"]:
        broker.publish("r", [key], ["ignored-tag"], key)
    assert bodies(broker, "orders") == ["order.created", "audit", "audit.x.y"]
    assert bodies(broker, "errors") == ["job.error", "error"]


def test_publish_validation_changes_nothing(broker):
    broker.create_queue("q")
    broker.create_topic("t", settings={"maxMsgSize": 1024})
    broker.subscribe("t", "s", "queue", "q")
    with pytest.raises(TooManyMessageTags):
        broker.publish("t", ["x"], list("abcdef"), "")
    with pytest.raises(InvalidParameter):
        broker.publish("t", ["x"], ["a" * 17], "")
    with pytest.raises(MessageTooLarge):
        broker.publish("t", ["ok", "x" * 1025], [], "")
    assert bodies(broker, "q") == []


def test_subscription_rules(broker):
    broker.create_queue("q")
    broker.create_topic("t")
    with pytest.raises(QueueSubscriptionNeedsSimplified):
        broker.subscribe("t", "s", "queue", "q", content_format="JSON")
    with pytest.raises(InvalidEndpoint):
        broker.subscribe("t", "s", "queue", "missing")
    with pytest.raises(InvalidEndpoint):
        broker.subscribe("t", "s", "http", "ftp://x")
    sub = broker.subscribe("t", "s", "queue", "q", content_format="simplified")
    with pytest.raises(SubscriptionAlreadyExists):
        broker.subscribe("t", "S", "queue", "q")
    with pytest.raises(QueueSubscriptionNeedsSimplified):  # and the failed change changed nothing
        broker.update_subscription("t", "s", filter_tags=["x"], content_format="JSON")
    assert sub.filter_tags == () and sub.notify_content_format == "SIMPLIFIED"


def test_missing_or_full_queue_defers_and_others_still_get_theirs(broker):
    broker.create_queue("gone")
    broker.create_queue("full", {"maxMsgHeapNum": 1})
    broker.create_queue("fine")
    broker.create_topic("t")
    for name in ["gone", "full", "fine"]:
        broker.subscribe("t", name, "queue", name)
    broker.delete_queue("gone")
    broker.get_queue("full").send(["occupying"])
    ids = broker.publish("t", ["m"], [], "")
    assert bodies(broker, "fine") == ["m"]
    assert [(s.name, m.msg_id) for s, m in broker.deferred] == [("gone", ids[0]), ("full", ids[0])]
    assert broker.get_topic("t").pending == 2


def test_delete_topic_lenient_and_strict(clock):
    lenient = Broker(clock)
    lenient.create_queue("q")
    lenient.create_topic("t")
    sub = lenient.subscribe("t", "s", "queue", "q")
    lenient.delete_topic("t")
    assert not sub.active
    lenient.create_topic("t")
    assert lenient.get_topic("t").subscriptions == {}

    strict = Broker(clock, strict=True)
    strict.create_queue("q")
    strict.create_topic("t")
    strict.subscribe("t", "s", "queue", "q")
    with pytest.raises(TopicHasSubscriptions):
        strict.delete_topic("t")
    strict.unsubscribe("t", "s")
    strict.delete_topic("t")


def test_strict_publish_and_binding_keys(clock):
    strict = Broker(clock, strict=True)
    strict.create_queue("q")
    strict.create_topic("t")
    with pytest.raises(NoSubscription):
        strict.publish("t", ["x"], [], "")
    strict.subscribe("t", "s", "queue", "q", filter_tags=["a"])
    with pytest.raises(NoMatchingSubscription):
        strict.publish("t", ["x"], ["b"], "")
    assert strict.get_queue("q").stats()["activeMsgNum"] == 0
    strict.create_topic("r", FILTER_ROUTING)
    with pytest.raises(BindingKeyRequired):
        strict.subscribe("r", "s", "queue", "q")
    lenient = Broker(clock)
    lenient.create_topic("t")
    assert lenient.publish("t", ["x"], [], "")  # accepted, delivered to nobody


# -- deferred delivery ------------------------------------------------------------------------

def test_retry_schedules():
    assert len(list(retry_gaps("BACKOFF_RETRY"))) == 3
    assert all(10 <= g <= 20 for g in retry_gaps("BACKOFF_RETRY"))
    gaps = list(retry_gaps("EXPONENTIAL_DECAY_RETRY"))
    assert len(gaps) == 176 and gaps[:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert 86_000 < sum(gaps) < 86_400


async def settle(pusher, clock, step=1.0, limit=100_000):
    """Advance the fake clock until every delivery has settled."""
    for _ in range(limit):
        if not pusher.pending:
            return
        await asyncio.sleep(0)
        clock.advance(step)
    raise AssertionError("deliveries never settled")


async def test_queue_copy_is_retried_until_the_queue_exists(clock):
    broker = Broker(clock)
    pusher = Pusher(broker, PushSettings(), clock)
    await pusher.start()
    try:
        broker.create_queue("late")
        broker.create_topic("t")
        sub = broker.subscribe("t", "s", "queue", "late")
        broker.delete_queue("late")
        broker.publish("t", ["hello"], [], "")
        assert sub.pending == 1
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(30)  # several retries fail meanwhile
        await asyncio.sleep(0)
        assert sub.pending == 1
        broker.create_queue("late")
        await settle(pusher, clock)
        assert (sub.pending, sub.delivered, sub.dropped) == (0, 1, 0)
        assert [m.body for m in broker.get_queue("late").take(5)] == ["hello"]
    finally:
        await pusher.close()


async def test_http_push_retries_then_gives_up(clock):
    attempts = []

    async def refuse(request):
        attempts.append(await request.text())
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    async with TestServer(app) as server:
        broker = Broker(clock)
        pusher = Pusher(broker, PushSettings(timeout=5), clock)
        await pusher.start()
        try:
            broker.create_topic("t")
            sub = broker.subscribe("t", "s", "http", str(server.make_url("/hook")), strategy="BACKOFF_RETRY",
                                   content_format="SIMPLIFIED")
            broker.publish("t", ["body"], [], "")
            for _ in range(200):
                await asyncio.sleep(0.01)
                clock.advance(5)
                if not pusher.pending:
                    break
            assert attempts == ["body"] * 4  # the first try and 3 retries
            assert (sub.pending, sub.delivered, sub.dropped) == (0, 0, 1)
        finally:
            await pusher.close()


async def test_unsubscribe_stops_retries(clock):
    broker = Broker(clock)
    pusher = Pusher(broker, PushSettings(), clock)
    await pusher.start()
    try:
        broker.create_topic("t")
        sub = broker.subscribe("t", "s", "http", "http://127.0.0.1:9/nowhere")
        broker.publish("t", ["x"], [], "")
        await asyncio.sleep(0.05)
        broker.unsubscribe("t", "s")
        await settle(pusher, clock)
        assert (sub.delivered, sub.dropped) == (0, 1)
    finally:
        await pusher.close()
