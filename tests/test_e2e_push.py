"""HTTP push to topic subscribers, end to end: a real broker process pushing to a real local
HTTP server (spec §7; issue 4).

The receiver (helpers.Receiver) is a `ThreadingHTTPServer` on 127.0.0.1 that records every
request it gets and answers per path: fail the first N requests (500 or any other status), hang the first N (or all)
requests, or succeed with a chosen 2xx. Tests wait for the receiver's condition variable with
generous timeouts rather than sleeping; retry gaps are scaled down with `--push-retry-scale`.

Brokers: `pusher` (retry scale 0.01, push timeout 1 s) for formats and retries, and
`slow_pusher` (push timeout 30 s) for hanging endpoints, so that a broker that let a hanging
push hold up anything else would be late by far more than any timeout used here (one test
starts its own such broker, since it deliberately ties up hundreds of pushes).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from cmq.subscription import SubscriptionMeta
from cmq.queue import Message as QueueMessage
from cmq.topic import Message

from helpers import (
    Background, BrokerProcess, Receiver, closed_port, queue_meta, run_broker, serve_args, sub_meta, sub_msg_count,
    topic_meta, unique_name, wait_until,
)

APP_ID = 1300000042
NOW_SLACK = 5
WAIT = 15.0  # generous upper bound for anything that should happen "soon"
USER_AGENT = "Qcloud Notification Service Agent"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def pusher() -> Iterator[BrokerProcess]:
    with run_broker(serve_args("--push-retry-scale", "0.01", "--push-timeout", "1", "--app-id", str(APP_ID))) as b:
        yield b


@pytest.fixture(scope="module")
def slow_pusher() -> Iterator[BrokerProcess]:
    # A hung push only gives up after 30 s here: anything it blocked would show.
    with run_broker(serve_args("--push-retry-scale", "0.01", "--push-timeout", "30", "--app-id", str(APP_ID))) as b:
        yield b


# -- SDK helpers ------------------------------------------------------------------------------


def make_topic(account, filter_type: int = 1):
    t = account.get_topic(unique_name("pt"))
    t.create(topic_meta(filter_type))
    return t


def subscribe(account, topic, endpoint: str, *, protocol: str = "http", strategy: str = "EXPONENTIAL_DECAY_RETRY",
              fmt: str = "JSON", tags=(), keys=(), name: str | None = None):
    sub = account.get_subscription(topic.topicName, name or unique_name("ps"))
    sub.create(sub_meta(protocol, endpoint, strategy, fmt, tags, keys))
    return sub


def msg_count(account, sub) -> int:
    return sub_msg_count(account, sub.topicName, sub.subscriptionName)


def wait_msg_count(account, sub, want: int, timeout: float = WAIT) -> None:
    """Poll GetSubscriptionAttributes until msgCount == want (the broker has no event to wait on)."""
    wait_until(lambda: msg_count(account, sub) == want, f"msgCount {want} of {sub.subscriptionName}", timeout, 0.02)


def topic_msg_count(account, topic) -> int:
    return account.get_client().get_topic_attributes({"topicName": topic.topicName})["msgCount"]


def wait_topic_msg_count(account, topic, want: int, timeout: float = WAIT) -> None:
    wait_until(lambda: topic_msg_count(account, topic) == want, f"msgCount {want} of {topic.topicName}", timeout, 0.02)


# -- content formats and headers --------------------------------------------------------------


def test_json_push_body_and_headers(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route() + "?sub=json&x=1"
    sub = subscribe(account, topic, url, fmt="JSON", name="JsonSub")
    body = "h\u00e9llo w\u00f6rld \u4e2d\u6587 ✓ & = + \"quoted\" {not: json}\n"
    before = int(time.time())
    msg_id = topic.publish_message(Message(body, ["tag1", "tag-two"])).msgId
    after = int(time.time())

    [got] = receiver.wait_delivered(url, 1)
    assert got.method == "POST"
    assert got.path == url.split(str(receiver.port), 1)[1]  # the endpoint's path and query, as given
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["x-cmq-request-id"]
    assert got.headers["x-cmq-message-id"] == msg_id
    assert got.headers["x-cmq-message-tag"] == "tag1, tag-two"
    assert int(got.headers["content-length"]) == len(got.body)

    payload = got.json()
    assert set(payload) == {"TopicOwner", "topicName", "subscriptionName", "msgId", "msgBody", "publishTime"}
    assert payload["TopicOwner"] == APP_ID
    assert payload["topicName"] == topic.topicName
    assert payload["subscriptionName"] == "JsonSub"
    assert str(payload["msgId"]) == msg_id
    assert payload["msgBody"] == body
    assert type(payload["publishTime"]) is int
    assert before - NOW_SLACK <= payload["publishTime"] <= after + NOW_SLACK
    wait_msg_count(account, sub, 0)
    assert len(receiver.got(url)) == 1  # delivered once, no retry after a 200


def test_simplified_push_is_the_raw_body(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route()
    sub = subscribe(account, topic, url, fmt="SIMPLIFIED")
    body = '{"looks": "like json"} but \u00fcnicode ✓ & = +'
    msg_id = topic.publish_message(Message(body)).msgId

    [got] = receiver.wait_delivered(url, 1)
    assert got.body == body.encode("utf-8")
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["x-cmq-message-id"] == msg_id
    assert got.headers["x-cmq-request-id"]
    assert got.headers.get("x-cmq-message-tag", "") == ""  # no tags: empty or absent
    wait_msg_count(account, sub, 0)


def test_one_publish_pushes_one_copy_per_matching_subscription(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    q = account.get_queue(unique_name("pq"))
    q.create(queue_meta())
    urls = {
        "json": receiver.route(),
        "simple": receiver.route(),
        "tag-a": receiver.route(),
        "tag-z": receiver.route(),
    }
    subscribe(account, topic, urls["json"], fmt="JSON")
    subscribe(account, topic, urls["simple"], fmt="SIMPLIFIED")
    subscribe(account, topic, urls["tag-a"], fmt="SIMPLIFIED", tags=["a", "b"])
    subscribe(account, topic, urls["tag-z"], fmt="SIMPLIFIED", tags=["z"])
    subscribe(account, topic, q.queue_name, protocol="queue", fmt="SIMPLIFIED")
    topic.publish_message(Message("first", ["b"]))
    topic.publish_message(Message("second", ["c"]))
    # the queue copy is there as soon as the publish is answered
    assert [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)] == ["first", "second"]
    assert sorted(r.json()["msgBody"] for r in receiver.wait_delivered(urls["json"], 2)) == ["first", "second"]
    assert sorted(r.body for r in receiver.wait_delivered(urls["simple"], 2)) == [b"first", b"second"]
    assert [r.body for r in receiver.wait_delivered(urls["tag-a"], 1)] == [b"first"]
    # let every other push settle before checking that nothing more came
    wait_topic_msg_count(account, topic, 0)
    assert len(receiver.got(urls["json"])) == 2
    assert len(receiver.got(urls["simple"])) == 2
    assert len(receiver.got(urls["tag-a"])) == 1
    assert receiver.got(urls["tag-z"]) == []


def test_routing_key_subscription_push(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account, filter_type=2)
    url = receiver.route()
    sub = subscribe(account, topic, url, fmt="SIMPLIFIED", keys=["order.*", "audit.#"])
    for key in ("order.new", "order.new.eu", "audit", "misc"):
        topic.publish_message(Message(key), routingKey=key)
    got = receiver.wait_delivered(url, 2)
    wait_msg_count(account, sub, 0)
    assert sorted(r.body for r in receiver.got(url)) == [b"audit", b"order.new"]
    assert len(got) == 2


def test_batch_publish_pushes_every_message(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route()
    sub = subscribe(account, topic, url, fmt="JSON", tags=["t"])
    bodies = [f"batch-{i:02d}" for i in range(16)]
    msgs = topic.batch_publish_message([Message(b) for b in bodies], msgtag=["t", "u"])
    got = receiver.wait_delivered(url, 16)
    wait_msg_count(account, sub, 0)
    assert len(receiver.got(url)) == 16
    by_id = {r.headers["x-cmq-message-id"]: r for r in got}
    assert set(by_id) == {m.msgId for m in msgs}
    for m, body in zip(msgs, bodies):
        r = by_id[m.msgId]
        assert r.json()["msgBody"] == body
        assert str(r.json()["msgId"]) == m.msgId
        assert r.headers["x-cmq-message-tag"] == "t, u"
    assert len({r.headers["x-cmq-request-id"] for r in got}) == 16


def test_changing_the_content_format_applies_to_later_pushes(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route()
    sub = subscribe(account, topic, url, fmt="JSON")
    topic.publish_message(Message("as json"))
    [first] = receiver.wait_delivered(url, 1)
    assert first.json()["msgBody"] == "as json"
    meta = SubscriptionMeta()
    meta.NotifyContentFormat = "SIMPLIFIED"
    sub.set_attributes(meta)
    topic.publish_message(Message("as text"))
    second = receiver.wait_delivered(url, 2)[1]
    assert second.body == b"as text"


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY"])
@pytest.mark.parametrize("fmt", ["JSON", "SIMPLIFIED"])
def test_failed_push_is_retried_to_success(pusher, receiver, strategy, fmt):
    account = pusher.account()
    topic = make_topic(account)
    # BACKOFF_RETRY has 3 retries: fail the first 3 attempts, the 4th (last) one succeeds.
    url = receiver.route(fail_first=3, fail_statuses=(500, 503, 404))
    sub = subscribe(account, topic, url, strategy=strategy, fmt=fmt)
    msg_id = topic.publish_message(Message("persist", ["x"])).msgId

    receiver.wait_requests(url, 4)
    wait_msg_count(account, sub, 0)
    attempts = receiver.got(url)
    assert [r.status for r in attempts] == [500, 503, 404, 200]
    for r in attempts:
        assert r.headers["x-cmq-message-id"] == msg_id
        assert r.headers["x-cmq-message-tag"] == "x"
        assert r.body == attempts[0].body
    if fmt == "JSON":
        assert attempts[-1].json()["msgBody"] == "persist"
    else:
        assert attempts[-1].body == b"persist"
    # ordered attempts, with a gap between them
    assert all(a.at <= b.at for a, b in zip(attempts, attempts[1:]))


def test_non_2xx_answers_are_failures_and_any_2xx_is_success(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route(fail_first=4, fail_statuses=(302, 400, 429, 300), ok_status=204)
    sub = subscribe(account, topic, url, strategy="EXPONENTIAL_DECAY_RETRY", fmt="SIMPLIFIED")
    topic.publish_message(Message("m"))
    receiver.wait_delivered(url, 1)
    wait_msg_count(account, sub, 0)
    assert [r.status for r in receiver.got(url)] == [302, 400, 429, 300, 204]


def test_backoff_retry_gives_up_after_three_retries(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route(fail_first=1000)
    sub = subscribe(account, topic, url, strategy="BACKOFF_RETRY", fmt="SIMPLIFIED")
    topic.publish_message(Message("doomed"))
    receiver.wait_requests(url, 4)
    wait_msg_count(account, sub, 0)  # dropped: nothing left to deliver
    assert len(receiver.got(url)) == 4  # the first attempt and 3 retries


def test_exponential_decay_keeps_retrying_and_msg_count_returns_to_zero(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route(fail_first=1000)
    sub = subscribe(account, topic, url, strategy="EXPONENTIAL_DECAY_RETRY", fmt="JSON")
    msg_id = topic.publish_message(Message("eventually")).msgId
    receiver.wait_requests(url, 6)  # more than BACKOFF_RETRY would ever try
    assert msg_count(account, sub) == 1
    assert topic_msg_count(account, topic) == 1
    receiver.set_plan(url, fail_first=0)
    [got] = receiver.wait_delivered(url, 1)
    assert str(got.json()["msgId"]) == msg_id
    wait_msg_count(account, sub, 0)
    wait_topic_msg_count(account, topic, 0)


def test_timeout_counts_as_failure_and_is_retried(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route(hang_first=1)  # the first request never gets an answer (push timeout: 1 s)
    sub = subscribe(account, topic, url, strategy="BACKOFF_RETRY", fmt="SIMPLIFIED")
    topic.publish_message(Message("slow start"))
    [got] = receiver.wait_delivered(url, 1)
    assert got.body == b"slow start"
    wait_msg_count(account, sub, 0)
    assert [r.status for r in receiver.got(url)] == [0, 200]


def test_refused_connection_does_not_fail_the_publish_and_is_retried(pusher, receiver):
    account = pusher.account()
    topic = make_topic(account)
    port = closed_port()
    dead_url = f"http://127.0.0.1:{port}/dead"
    healthy = receiver.route()
    dead = subscribe(account, topic, dead_url, strategy="EXPONENTIAL_DECAY_RETRY", fmt="SIMPLIFIED")
    subscribe(account, topic, healthy, fmt="SIMPLIFIED")
    assert topic.publish_message(Message("to both")).msgId
    assert [r.body for r in receiver.wait_delivered(healthy, 1)] == [b"to both"]
    assert msg_count(account, dead) == 1  # still owed to the dead endpoint

    # the endpoint comes up on that port: a later retry reaches it
    late = ThreadingHTTPServer(("127.0.0.1", port), _late_handler())
    late.bodies = []
    late.arrived = threading.Event()
    thread = threading.Thread(target=late.serve_forever, daemon=True)
    thread.start()
    try:
        assert late.arrived.wait(WAIT), "the refused push was never retried"
        assert late.bodies == [b"to both"]
        wait_msg_count(account, dead, 0)
    finally:
        late.shutdown()
        late.server_close()


def _late_handler():
    class Late(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.server.bodies.append(body)
            self.server.arrived.set()

        def log_message(self, *args) -> None:
            pass
    return Late


def test_refused_connection_with_backoff_is_dropped_after_retries(pusher):
    account = pusher.account()
    topic = make_topic(account)
    dead = subscribe(account, topic, f"http://127.0.0.1:{closed_port()}/dead", strategy="BACKOFF_RETRY")
    assert topic.publish_message(Message("lost")).msgId
    wait_msg_count(account, dead, 0)


@pytest.mark.parametrize("how", ["unsubscribe", "delete topic"])
def test_retries_stop_once_the_subscription_is_gone(pusher, receiver, how):
    account = pusher.account()
    topic = make_topic(account)
    url = receiver.route(fail_first=1000)
    sub = subscribe(account, topic, url, strategy="EXPONENTIAL_DECAY_RETRY", fmt="SIMPLIFIED")
    topic.publish_message(Message("orphan"))
    receiver.wait_requests(url, 3)  # early in the schedule: retries 10, 20, 40 ... ms apart
    if how == "unsubscribe":
        sub.delete()
    else:
        topic.delete()
    time.sleep(0.1)  # let an attempt that was already on the wire land
    settled = len(receiver.got(url))
    # A broker still retrying would come back several times within this window (gaps of
    # 80, 160, 320, 640 ms at --push-retry-scale 0.01); proving "never again" needs a wait.
    time.sleep(1.5)
    assert len(receiver.got(url)) == settled, "pushes went on after the subscription was removed"


def test_queue_copy_that_does_not_fit_is_retried_into_the_queue(pusher):
    account = pusher.account()
    topic = make_topic(account)
    q = account.get_queue(unique_name("full"))
    q.create(queue_meta(maxMsgHeapNum=1))
    sub = subscribe(account, topic, q.queue_name, protocol="queue", fmt="SIMPLIFIED")
    q.send_message(QueueMessage("filler"))
    assert topic.publish_message(Message("late")).msgId  # the queue is full: accepted anyway
    assert msg_count(account, sub) == 1
    time.sleep(0.3)  # the copy must outlive several failed retries (10, 20, 40 ... ms apart)
    assert msg_count(account, sub) == 1
    filler = q.receive_message(polling_wait_seconds=0)
    assert filler.msgBody == "filler"
    q.delete_message(filler.receiptHandle)
    # room again: a retry puts the copy in (the long poll wakes when it lands)
    assert q.receive_message(polling_wait_seconds=10).msgBody == "late"
    wait_msg_count(account, sub, 0)


def test_queue_copy_for_a_deleted_queue_lands_when_it_is_recreated(pusher):
    account = pusher.account()
    topic = make_topic(account)
    name = unique_name("gone")
    q = account.get_queue(name)
    q.create(queue_meta())
    sub = subscribe(account, topic, name, protocol="queue", fmt="SIMPLIFIED")
    q.delete()
    assert topic.publish_message(Message("waiting")).msgId
    assert msg_count(account, sub) == 1
    time.sleep(0.3)  # the copy must outlive several failed retries
    q.create(queue_meta())
    assert q.receive_message(polling_wait_seconds=10).msgBody == "waiting"
    wait_msg_count(account, sub, 0)


# -- a slow or dead endpoint holds up nobody --------------------------------------------------


def test_hanging_endpoint_does_not_delay_publisher_or_other_subscriptions(slow_pusher, receiver):
    account = slow_pusher.account()
    topic = make_topic(account)
    q = account.get_queue(unique_name("hq"))
    q.create(queue_meta())
    hanging = receiver.route(hang_first=-1)
    healthy = receiver.route()  # same host and port as the hanging one
    # the hanging subscription comes first, in creation and in name order
    subscribe(account, topic, hanging, fmt="SIMPLIFIED", name="a-hanging")
    subscribe(account, topic, healthy, fmt="SIMPLIFIED", name="b-healthy")
    subscribe(account, topic, q.queue_name, protocol="queue", fmt="SIMPLIFIED", name="c-queue")

    n = 20  # more than one subscription's worth of concurrent pushes
    call = Background(lambda: [topic.publish_message(Message(f"m{i:02d}")).msgId for i in range(n)])
    assert call.wait(WAIT), "publishing blocked while an endpoint hangs"
    assert call.error is None, call.error
    assert call.elapsed < 10, f"{n} publishes took {call.elapsed:.1f}s while an endpoint hangs"
    receiver.wait_requests(hanging, 1)  # it really is hanging on us

    got = receiver.wait_delivered(healthy, n)
    assert sorted(r.body for r in got) == [f"m{i:02d}".encode() for i in range(n)]
    bodies = []
    while len(bodies) < n:
        bodies += [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)]
    assert sorted(bodies) == [f"m{i:02d}" for i in range(n)]
    assert not any(r.ok for r in receiver.got(hanging))


def test_publish_returns_fast_while_the_only_endpoint_hangs(slow_pusher, receiver):
    account = slow_pusher.account()
    topic = make_topic(account)
    hanging = receiver.route(hang_first=-1)
    sub = subscribe(account, topic, hanging, fmt="JSON")
    start = time.monotonic()
    msg_id = topic.publish_message(Message("into the void")).msgId
    batch = topic.batch_publish_message([Message("b1"), Message("b2")])
    elapsed = time.monotonic() - start
    assert msg_id and len(batch) == 2
    got = receiver.wait_requests(hanging, 1)
    assert elapsed < 10, f"publishing took {elapsed:.1f}s while the endpoint hangs"
    assert got[0].headers["x-cmq-message-id"] in {msg_id, batch[0].msgId, batch[1].msgId}
    # still owed: the pushes are in flight, not lost and not counted as delivered
    assert msg_count(account, sub) == 3


def test_hanging_endpoint_does_not_block_other_topics(slow_pusher, receiver):
    account = slow_pusher.account()
    stuck, fine = make_topic(account), make_topic(account)
    hanging = receiver.route(hang_first=-1)
    for i in range(3):
        subscribe(account, stuck, hanging, fmt="SIMPLIFIED", name=f"hang{i}")
    healthy = receiver.route()
    subscribe(account, fine, healthy, fmt="JSON")
    stuck.batch_publish_message([Message(f"s{i}") for i in range(16)])
    receiver.wait_requests(hanging, 1)
    fine.publish_message(Message("unaffected"))
    [got] = receiver.wait_delivered(healthy, 1)
    assert got.json()["msgBody"] == "unaffected"


def test_many_subscriptions_on_one_hanging_endpoint_do_not_starve_a_healthy_one(start_broker, receiver):
    """One slow endpoint, subscribed many times over, still must not hold up another subscription."""
    b = start_broker(args=["--host", "127.0.0.1", "--port", "0", "--push-retry-scale", "0.01",
                           "--push-timeout", "30"])
    account = b.account()
    stuck, fine = make_topic(account), make_topic(account)
    hanging = receiver.route(hang_first=-1)
    for i in range(20):
        subscribe(account, stuck, hanging, fmt="SIMPLIFIED", name=f"hang{i:02d}")
    healthy = receiver.route()
    subscribe(account, fine, healthy, fmt="SIMPLIFIED")
    stuck.batch_publish_message([Message(f"s{i}") for i in range(16)])  # 320 pushes that never end
    receiver.wait_requests(hanging, 150)  # 20 subscriptions x 8 concurrent pushes each, all hanging
    fine.publish_message(Message("unaffected"))
    # a push held back until hung ones time out would come after 30 s
    [got] = receiver.wait_delivered(healthy, 1, timeout=10)
    assert got.body == b"unaffected"
