"""Every topic and subscription method of the official SDK against a real broker process.

Covers: CreateTopic / ListTopic / Get/SetTopicAttributes / DeleteTopic, (Batch)PublishMessage,
Subscribe / ListSubscriptionByTopic / Get/SetSubscriptionAttributes / Unsubscribe /
ClearSubscriptionFilterTags, fan-out to queue subscriptions, tag and routing-key filters (spec §6),
limits and error codes (§3, §4, §8), and the lenient / `--strict` split for the unconfirmed refusals.

Only `cmq` (qcloud-cmq-sdk-py3) talks to the broker. Queue subscriptions are used to observe
fan-out: the issue promises that a queue subscriber has its copy before the publish is
acknowledged, so "nothing arrived" can be checked right after the publish, without waiting.
HTTP push is covered in test_e2e_push.py.
"""

from __future__ import annotations

import json
import time
from typing import Iterator

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.topic import Message, TopicMeta

from helpers import (
    BrokerProcess, drain_bodies, module_code, queue_meta, raw_sub, raw_topic, run_broker, serve_args, server_error,
    sub_meta, topic_meta, unique_name,
)

NOW_SLACK = 5  # seconds of clock slack allowed when comparing broker times with ours


# -- helpers ----------------------------------------------------------------------------------


def codes(exc: CMQServerException) -> tuple[int, int]:
    return exc.code, module_code(exc)


def create_topic(account, prefix: str = "t", filter_type: int = 1, max_msg_size: int | None = None):
    topic = account.get_topic(unique_name(prefix))
    topic.create(topic_meta(filter_type, max_msg_size))
    return topic


def create_queue(account, prefix: str = "sq", **attrs):
    q = account.get_queue(unique_name(prefix))
    q.create(queue_meta(**attrs))
    return q


def subscribe_queue(account, topic, queue, tags=(), keys=(), name: str | None = None):
    sub = account.get_subscription(topic.topicName, name or unique_name("s"))
    sub.create(sub_meta("queue", queue.queue_name, tags=tags, keys=keys))
    return sub


def subscribe_http(account, topic, endpoint: str = "http://127.0.0.1:9/none", name: str | None = None, **kw):
    sub = account.get_subscription(topic.topicName, name or unique_name("h"))
    sub.create(sub_meta("http", endpoint, **kw))
    return sub


@pytest.fixture
def cleanup(account) -> Iterator[list]:
    """Objects (topics, queues) to delete after the test; errors on deletion are ignored."""
    things: list = []
    yield things
    for thing in reversed(things):
        try:
            thing.delete()
        except CMQServerException:
            pass


@pytest.fixture
def topic(account, cleanup):
    t = create_topic(account, "tag")
    cleanup.append(t)
    return t


@pytest.fixture
def routing_topic(account, cleanup):
    t = create_topic(account, "route", filter_type=2)
    cleanup.append(t)
    return t


@pytest.fixture
def new_queue(account, cleanup):
    def make(prefix: str = "sq", **attrs):
        q = create_queue(account, prefix, **attrs)
        cleanup.append(q)
        return q
    return make


@pytest.fixture(scope="module")
def strict_broker() -> Iterator[BrokerProcess]:
    with run_broker(serve_args("--strict")) as b:
        yield b


# -- CreateTopic / GetTopicAttributes / SetTopicAttributes -----------------------------------


def test_create_topic_and_get_attributes(account, cleanup):
    name = unique_name("attrs")
    t = account.get_topic(name)
    before = int(time.time())
    t.create(topic_meta(filter_type=2, max_msg_size=2048))
    after = int(time.time())
    cleanup.append(t)
    meta = t.get_attributes()
    assert meta.topicName == name
    assert meta.filterType == 2
    assert meta.maxMsgSize == 2048
    assert meta.msgRetentionSeconds == 86400
    assert meta.msgCount == 0
    assert before - NOW_SLACK <= meta.createTime <= after + NOW_SLACK
    assert meta.createTime <= meta.lastModifyTime <= after + NOW_SLACK

    raw = raw_topic(account, name, request_id=True)
    assert raw["code"] == 0 and raw["message"] == "" and raw["requestId"]
    assert raw["topicId"].startswith("topic-")
    for key in ("msgCount", "maxMsgSize", "msgRetentionSeconds", "createTime", "lastModifyTime", "filterType"):
        assert type(raw[key]) is int, key


def test_create_topic_with_sdk_defaults_is_a_tag_topic_of_64k(account, cleanup):
    t = account.get_topic(unique_name("dflt"))
    t.create(TopicMeta())
    cleanup.append(t)
    meta = t.get_attributes()
    assert (meta.filterType, meta.maxMsgSize, meta.msgRetentionSeconds) == (1, 65536, 86400)


def test_create_topic_reply_carries_topic_id(account, cleanup):
    name = unique_name("tid")
    reply = account.get_client().request("CreateTopic", {"topicName": name, "filterType": 1})
    cleanup.append(account.get_topic(name))
    body = json.loads(reply.data)
    assert body["code"] == 0
    assert body["topicId"].startswith("topic-")
    assert body["topicId"] == raw_topic(account, name)["topicId"]


def test_create_topic_with_msg_retention_seconds(account, cleanup):
    name = unique_name("ret")
    client = account.get_client()
    client.create_topic({"topicName": name, "filterType": 1, "maxMsgSize": 4096, "msgRetentionSeconds": 3600})
    cleanup.append(account.get_topic(name))
    raw = raw_topic(account, name)
    assert (raw["maxMsgSize"], raw["msgRetentionSeconds"]) == (4096, 3600)
    bad = unique_name("ret")
    with pytest.raises(CMQServerException) as info:
        client.create_topic({"topicName": bad, "filterType": 1, "msgRetentionSeconds": 86401})
    assert info.value.code == 4000
    assert server_error(account.get_topic(bad).get_attributes).code == 4440


def test_create_existing_topic_is_4460_case_insensitively(account, topic):
    for name in (topic.topicName, topic.topicName.upper(), topic.topicName.lower()):
        exc = server_error(account.get_topic(name).create, topic_meta())
        assert codes(exc) == (4460, 10550), name


@pytest.mark.parametrize(
    "bad_name",
    ["", "1starts-with-digit", "-dash-first", "has space", "dot.name", "slash/name", "t" * 65, "主题"],
)
def test_create_topic_with_bad_name_is_4000_10590(account, bad_name):
    exc = server_error(account.get_topic(bad_name).create, topic_meta())
    assert codes(exc) == (4000, 10590)


@pytest.mark.parametrize("meta", [topic_meta(filter_type=3), topic_meta(filter_type=0),
                                  topic_meta(max_msg_size=1023), topic_meta(max_msg_size=65537)],
                         ids=["filterType=3", "filterType=0", "maxMsgSize=1023", "maxMsgSize=65537"])
def test_create_topic_with_bad_attribute_is_4000_and_creates_nothing(account, meta):
    t = account.get_topic(unique_name("badattr"))
    assert server_error(t.create, meta).code == 4000
    assert server_error(t.get_attributes).code == 4440


def test_set_topic_attributes_max_msg_size_then_larger_publish_is_4400(account, topic, new_queue):
    q = new_queue()
    subscribe_queue(account, topic, q)
    created = topic.get_attributes()
    topic.set_attributes(topic_meta(max_msg_size=1024))
    meta = topic.get_attributes()
    assert meta.maxMsgSize == 1024
    assert meta.filterType == 1  # unchanged
    assert meta.createTime == created.createTime
    assert meta.lastModifyTime >= created.lastModifyTime

    topic.publish_message(Message("x" * 1024))
    exc = server_error(topic.publish_message, Message("x" * 1025))
    assert codes(exc) == (4400, 10230)
    # a batch with one body too large is refused as a whole: nothing is delivered
    exc = server_error(topic.batch_publish_message, [Message("ok"), Message("y" * 1025)])
    assert exc.code == 4400
    assert drain_bodies(q) == ["x" * 1024]

    # back up again: the larger message now goes through
    topic.set_attributes(topic_meta(max_msg_size=65536))
    topic.publish_message(Message("z" * 65536))
    assert drain_bodies(q) == ["z" * 65536]
    assert codes(server_error(topic.publish_message, Message("z" * 65537))) == (4400, 10230)


@pytest.mark.parametrize("size", [1023, 65537])
def test_set_topic_attributes_out_of_range_is_4000_and_changes_nothing(topic, size):
    assert server_error(topic.set_attributes, topic_meta(max_msg_size=size)).code == 4000
    assert topic.get_attributes().maxMsgSize == 65536


def test_every_topic_action_on_a_missing_topic_is_4440_10600(account):
    name = unique_name("absent")
    t = account.get_topic(name)
    sub = account.get_subscription(name, "s1")
    calls = {
        "GetTopicAttributes": t.get_attributes,
        "SetTopicAttributes": lambda: t.set_attributes(topic_meta(max_msg_size=2048)),
        "DeleteTopic": t.delete,
        "PublishMessage": lambda: t.publish_message(Message("m")),
        "BatchPublishMessage": lambda: t.batch_publish_message([Message("m")]),
        "ListSubscriptionByTopic": t.list_subscription,
        "Subscribe": lambda: sub.create(sub_meta("http", "http://127.0.0.1:9/x")),
        "GetSubscriptionAttributes": sub.get_attributes,
        "SetSubscriptionAttributes": lambda: sub.set_attributes(sub_meta("http", "", strategy="BACKOFF_RETRY")),
        "Unsubscribe": sub.delete,
        "ClearSubscriptionFilterTags": sub.clearFilterTags,
    }
    got = {}
    for what, call in calls.items():
        try:
            call()
            got[what] = "no error"
        except CMQServerException as exc:
            got[what] = codes(exc)
    assert got == {what: (4440, 10600) for what in calls}


def test_topic_limit_is_4450_10610(start_broker):
    b = start_broker(args=["--host", "127.0.0.1", "--port", "0", "--max-topics", "2"])
    account = b.account()
    account.get_topic("first").create(topic_meta())
    account.get_topic("second").create(topic_meta())
    exc = server_error(account.get_topic("third").create, topic_meta())
    assert codes(exc) == (4450, 10610)
    account.get_topic("first").delete()
    account.get_topic("third").create(topic_meta())


# -- ListTopic --------------------------------------------------------------------------------


def test_list_topic_pages_with_offset_limit_and_next_offset(account, cleanup):
    tag = unique_name("tpage")
    names = []
    for i in range(5):
        t = account.get_topic(f"{tag}-{i}")
        t.create(topic_meta(filter_type=1 + i % 2))
        cleanup.append(t)
        names.append(t.topicName)

    seen, offsets, offset = [], [], ""
    while True:
        total, page, offset = account.list_topic(searchWord=tag, limit=2, offset=offset)
        assert total == 5
        assert 1 <= len(page) <= 2
        for item in page:
            assert set(item) >= {"topicId", "topicName"}
            assert item["topicId"].startswith("topic-")
        seen += [item["topicName"] for item in page]
        offsets.append(offset)
        if offset == "":
            break
        assert len(offsets) < 10, "paging never ends"
    assert offsets == [2, 4, ""]
    assert sorted(seen) == sorted(names)
    assert account.list_topic(searchWord=tag, limit=2, offset=10) == (5, [], "")

    # a piece from the middle of the names matches (substring search), ids are stable and distinct
    total, first, next_offset = account.list_topic(searchWord=tag[4:14], limit=50)
    assert (total, next_offset) == (5, "")
    assert account.list_topic(searchWord=tag[4:14], limit=50)[1] == first
    assert len({item["topicId"] for item in first}) == 5
    assert account.list_topic(searchWord=f"{tag}-3")[:2] == (1, [
        {"topicId": raw_topic(account, f"{tag}-3")["topicId"], "topicName": f"{tag}-3"}])
    assert account.list_topic(searchWord=unique_name("nothing")) == (0, [], "")

    # deleted topics leave the listing
    account.get_topic(f"{tag}-0").delete()
    total, page, _ = account.list_topic(searchWord=tag, limit=50)
    assert total == 4 and f"{tag}-0" not in [item["topicName"] for item in page]


def test_list_topic_limit_over_50_is_4000(account, topic):
    assert server_error(account.list_topic, limit=51).code == 4000


# -- DeleteTopic ------------------------------------------------------------------------------


def test_delete_topic_removes_its_subscriptions(account, new_queue):
    q = new_queue()
    name = unique_name("del")
    t = account.get_topic(name)
    t.create(topic_meta())
    sub = subscribe_queue(account, t, q, name="keeper")
    subscribe_http(account, t, name="pusher")
    t.delete()  # lenient by default: allowed with subscriptions
    assert server_error(t.get_attributes).code == 4440
    assert server_error(sub.get_attributes).code == 4440

    # a new topic of the same name starts without any subscription
    t.create(topic_meta())
    try:
        assert t.list_subscription() == (0, [], "")
        assert codes(server_error(sub.get_attributes)) == (4000, 10560)
        t.publish_message(Message("after recreate"))
        assert drain_bodies(q) == []  # the old subscription no longer delivers
        # and the old names are free again
        subscribe_queue(account, t, q, name="keeper")
        t.publish_message(Message("again"))
        assert drain_bodies(q) == ["again"]
    finally:
        t.delete()


# -- PublishMessage / BatchPublishMessage: fan-out --------------------------------------------


def test_publish_fans_out_one_copy_per_subscription_before_the_reply(account, topic, new_queue):
    queues = [new_queue() for _ in range(3)]
    for q in queues:
        subscribe_queue(account, topic, q)
    # two subscriptions on one queue: that queue gets two copies
    subscribe_queue(account, topic, queues[0])
    body = "fan-out \u00fc\u4e2d ✓ & = + %20 \n end"
    msg = topic.publish_message(Message(body))
    assert isinstance(msg.msgId, str) and msg.msgId
    # no waiting: the copies are there once the publish has been answered
    assert drain_bodies(queues[0]) == [body, body]
    assert drain_bodies(queues[1]) == [body]
    assert drain_bodies(queues[2]) == [body]
    assert topic.get_attributes().msgCount == 0


def test_publish_with_no_subscription_is_accepted_by_default(account, topic):
    # lenient: 6030/10650 is only emitted with --strict
    assert topic.publish_message(Message("nobody listens")).msgId
    assert topic.batch_publish_message([Message("a"), Message("b")])


def test_message_ids_are_distinct(account, topic, new_queue):
    subscribe_queue(account, topic, new_queue())
    ids = [topic.publish_message(Message(f"m{i}")).msgId for i in range(5)]
    ids += [m.msgId for m in topic.batch_publish_message([Message(f"b{i}") for i in range(5)])]
    assert len(set(ids)) == 10


def test_batch_publish_sixteen_fans_out_in_order(account, topic, new_queue):
    q1, q2 = new_queue(), new_queue()
    subscribe_queue(account, topic, q1)
    subscribe_queue(account, topic, q2, tags=["batch"])
    bodies = [f"body-{i:02d}-\u00e9" for i in range(16)]
    msgs = topic.batch_publish_message([Message(b) for b in bodies], msgtag=["batch", "other"])
    assert len(msgs) == 16
    assert len({m.msgId for m in msgs}) == 16
    got1, got2 = drain_bodies(q1), drain_bodies(q2)
    assert sorted(got1) == bodies and sorted(got2) == bodies

    # the batch's tags apply to every message of it: a non-matching batch reaches only the untagged sub
    topic.batch_publish_message([Message("n1"), Message("n2")], msgtag=["nomatch"])
    assert sorted(drain_bodies(q1)) == ["n1", "n2"]
    assert drain_bodies(q2) == []


def test_batch_publish_of_seventeen_is_4000_10370_and_delivers_nothing(account, topic, new_queue):
    q = new_queue()
    subscribe_queue(account, topic, q)
    exc = server_error(topic.batch_publish_message, [Message(f"m{i}") for i in range(17)])
    assert codes(exc) == (4000, 10370)
    assert drain_bodies(q) == []


def test_empty_body_is_4000(topic):
    assert server_error(topic.publish_message, Message("")).code == 4000


def test_unsubscribed_queue_gets_nothing_more(account, topic, new_queue):
    q1, q2 = new_queue(), new_queue()
    s1 = subscribe_queue(account, topic, q1)
    subscribe_queue(account, topic, q2)
    topic.publish_message(Message("both"))
    s1.delete()
    topic.publish_message(Message("only two"))
    assert drain_bodies(q1) == ["both"]
    assert drain_bodies(q2) == ["both", "only two"]
    assert server_error(s1.get_attributes).code == 4000


def test_deleting_a_subscribed_queue_keeps_publishing_working(account, topic, new_queue):
    gone = create_queue(account, "gone")
    alive = new_queue()
    dead_sub = subscribe_queue(account, topic, gone, name="to-gone")
    subscribe_queue(account, topic, alive, name="to-alive")
    gone.delete()
    msg = topic.publish_message(Message("still works"))
    assert msg.msgId
    assert drain_bodies(alive) == ["still works"]
    msgs = topic.batch_publish_message([Message("b1"), Message("b2")])
    assert len(msgs) == 2
    assert sorted(drain_bodies(alive)) == ["b1", "b2"]
    # the subscription itself is still there, pointing at the missing queue
    raw = raw_sub(account, topic.topicName, dead_sub.subscriptionName)
    assert raw["endpoint"] == gone.queue_name
    dead_sub.delete()
    topic.publish_message(Message("after unsubscribe"))
    assert drain_bodies(alive) == ["after unsubscribe"]


# -- tag filtering (filterType 1) -------------------------------------------------------------


@pytest.mark.parametrize(
    "filter_tags, msg_tags, delivered",
    [
        (["a", "b"], ["b", "c"], True),
        (["a", "b"], ["c"], False),
        (["a"], [], False),
        ([], ["x", "y"], True),
        ([], [], True),
        (["a", "b", "c", "d", "e"], ["e"], True),
        (["a"], ["A"], False),  # exact, case-sensitive comparison
        (["ab"], ["a"], False),  # whole tags, not prefixes
        (["a"], ["a", "b", "c", "d", "e"], True),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else str(v),
)
def test_tag_filter(account, topic, new_queue, filter_tags, msg_tags, delivered):
    q = new_queue()
    subscribe_queue(account, topic, q, tags=filter_tags)
    topic.publish_message(Message("tagged", msg_tags))
    assert drain_bodies(q) == (["tagged"] if delivered else [])
    # batch publish filters the same way
    topic.batch_publish_message([Message("batched")], msgtag=msg_tags)
    assert drain_bodies(q) == (["batched"] if delivered else [])


def test_tag_filter_picks_among_several_subscriptions(account, topic, new_queue):
    qa, qb, qab, qall = (new_queue(p) for p in ("qa", "qb", "qab", "qall"))
    subscribe_queue(account, topic, qa, tags=["a"])
    subscribe_queue(account, topic, qb, tags=["b"])
    subscribe_queue(account, topic, qab, tags=["a", "b"])
    subscribe_queue(account, topic, qall)
    topic.publish_message(Message("to-a", ["a"]))
    topic.publish_message(Message("to-b", ["b", "zzz"]))
    topic.publish_message(Message("to-none", ["zzz"]))
    topic.publish_message(Message("untagged"))
    assert drain_bodies(qa) == ["to-a"]
    assert drain_bodies(qb) == ["to-b"]
    assert drain_bodies(qab) == ["to-a", "to-b"]
    assert drain_bodies(qall) == ["to-a", "to-b", "to-none", "untagged"]


def test_binding_keys_are_ignored_on_a_tag_topic(account, topic, new_queue):
    q = new_queue()
    subscribe_queue(account, topic, q, keys=["only.this"])
    topic.publish_message(Message("m1"), routingKey="something.else")
    topic.publish_message(Message("m2"))
    assert drain_bodies(q) == ["m1", "m2"]


# -- routing-key filtering (filterType 2) -----------------------------------------------------


@pytest.mark.parametrize(
    "binding_keys, routing_key, delivered",
    [
        (["1.*.0"], "1.abc.0", True),
        (["1.*.0"], "1.a.b.0", False),
        (["1.*.0"], "1.0", False),
        (["1.#.0"], "1.2.3.4.4.2.2.0", True),
        (["1.#.0"], "1.2.3.4.0", True),
        (["1.#.0"], "1.0", True),
        (["1.#.0"], "1.2.3", False),
        (["1.#.0"], "2.1.0", False),
        (["#"], "", True),
        (["#"], "a.b.c", True),
        (["*"], "", False),
        (["*"], "word", True),
        (["*"], "two.words", False),
        (["a.b"], "a.b", True),
        (["a.b"], "a.b.c", False),
        (["a.b"], "a", False),
        (["a.b"], "a.bc", False),
        (["a.#"], "a", True),
        (["#.end"], "end", True),
        (["#.end"], "x.y.end", True),
        (["*.*"], "a.b", True),
        (["*.*"], "a.b.c", False),
        (["x.y", "1.*.0"], "1.z.0", True),  # any binding key may match
        (["x.y", "1.*.0"], "x.y", True),
        (["x.y", "1.*.0"], "q", False),
    ],
    ids=lambda v: "|".join(v) if isinstance(v, list) else repr(v) if isinstance(v, str) else str(v),
)
def test_routing_key_filter(account, routing_topic, new_queue, binding_keys, routing_key, delivered):
    q = new_queue()
    subscribe_queue(account, routing_topic, q, keys=binding_keys)
    routing_topic.publish_message(Message("routed"), routingKey=routing_key)
    assert drain_bodies(q) == (["routed"] if delivered else [])
    routing_topic.batch_publish_message([Message("b1"), Message("b2")], routingKey=routing_key)
    assert sorted(drain_bodies(q)) == (["b1", "b2"] if delivered else [])


def test_routing_picks_among_several_subscriptions(account, routing_topic, new_queue):
    star, hash_, literal = new_queue("star"), new_queue("hash"), new_queue("lit")
    subscribe_queue(account, routing_topic, star, keys=["order.*.created"])
    subscribe_queue(account, routing_topic, hash_, keys=["order.#"])
    subscribe_queue(account, routing_topic, literal, keys=["order.eu.created", "user.login"])
    routing_topic.publish_message(Message("m1"), routingKey="order.eu.created")
    routing_topic.publish_message(Message("m2"), routingKey="order.us.created")
    routing_topic.publish_message(Message("m3"), routingKey="order")
    routing_topic.publish_message(Message("m4"), routingKey="user.login")
    routing_topic.publish_message(Message("m5"), routingKey="order.eu.x.created")
    assert drain_bodies(star) == ["m1", "m2"]
    assert drain_bodies(hash_) == ["m1", "m2", "m3", "m5"]
    assert drain_bodies(literal) == ["m1", "m4"]


def test_routing_subscription_without_binding_key_is_accepted_by_default(account, routing_topic, new_queue):
    # lenient: 4000/10710 is only emitted with --strict
    sub = subscribe_queue(account, routing_topic, new_queue())
    assert raw_sub(account, routing_topic.topicName, sub.subscriptionName)["bindingKey"] in ([], None)


def test_routing_key_limits_on_publish(routing_topic, account, new_queue):
    subscribe_queue(account, routing_topic, new_queue(), keys=["#"])
    ok = [
        "k" * 64,  # 64 bytes
        "\u00e9" * 32,  # 64 bytes in UTF-8
        ".".join(["w"] * 16),  # 15 dots
    ]
    for key in ok:
        routing_topic.publish_message(Message("ok"), routingKey=key)
    bad = {
        "65 bytes": "k" * 65,
        "66 bytes in 33 characters": "\u00e9" * 33,
        "16 dots": ".".join(["w"] * 17),
        "star word": "a.*.b",
        "hash word": "a.#",
        "bare hash": "#",
        "bare star": "*",
    }
    got = {}
    for what, key in bad.items():
        try:
            routing_topic.publish_message(Message("bad"), routingKey=key)
            got[what] = "accepted"
        except CMQServerException as exc:
            got[what] = exc.code
    assert got == {what: 4000 for what in bad}
    exc = server_error(routing_topic.publish_message, Message("bad"), routingKey=".".join(["w"] * 17))
    assert codes(exc) == (4000, 10691)
    # the batch form checks the same way
    assert server_error(routing_topic.batch_publish_message, [Message("b")], routingKey="a.*").code == 4000


def test_binding_key_limits_on_subscribe(account, routing_topic, new_queue):
    q = new_queue()
    subscribe_queue(account, routing_topic, q, keys=["a", "b.*", "c.#", "#", "k" * 64])  # 5 keys, 64 bytes
    subscribe_queue(account, routing_topic, q, keys=[".".join(["*"] * 16)])  # 15 dots
    bad = {
        "6 keys": ["a", "b", "c", "d", "e", "f"],
        "65 bytes": ["k" * 65],
        "66 bytes in 33 characters": ["\u00e9" * 33],
        "16 dots": [".".join(["w"] * 17)],
    }
    got = {}
    for what, keys in bad.items():
        sub = account.get_subscription(routing_topic.topicName, unique_name("bk"))
        try:
            sub.create(sub_meta("queue", q.queue_name, keys=keys))
            got[what] = "accepted"
        except CMQServerException as exc:
            got[what] = exc.code
    assert got == {what: 4000 for what in bad}
    exc = server_error(account.get_subscription(routing_topic.topicName, "six").create,
                       sub_meta("queue", q.queue_name, keys=list("abcdef")))
    assert codes(exc) == (4000, 10680)
    assert routing_topic.list_subscription()[0] == 2  # nothing refused was created


# -- tag limits -------------------------------------------------------------------------------


def test_message_tag_limits(account, topic, new_queue):
    q = new_queue()
    subscribe_queue(account, topic, q)
    topic.publish_message(Message("five tags", ["t1", "t2", "t3", "t4", "t5"]))
    topic.publish_message(Message("sixteen chars", ["x" * 16]))
    exc = server_error(topic.publish_message, Message("six tags", ["t1", "t2", "t3", "t4", "t5", "t6"]))
    assert codes(exc) == (4000, 10720)
    exc = server_error(topic.batch_publish_message, [Message("b")], msgtag=["t1", "t2", "t3", "t4", "t5", "t6"])
    assert codes(exc) == (4000, 10720)
    assert server_error(topic.publish_message, Message("long tag", ["x" * 17])).code == 4000
    assert server_error(topic.batch_publish_message, [Message("b")], msgtag=["x" * 17]).code == 4000
    assert drain_bodies(q) == ["five tags", "sixteen chars"]


def test_filter_tag_limits(account, topic, new_queue):
    q = new_queue()
    subscribe_queue(account, topic, q, tags=["t1", "t2", "t3", "t4", "t5"])
    subscribe_queue(account, topic, q, tags=["y" * 16])
    exc = server_error(account.get_subscription(topic.topicName, unique_name("six")).create,
                       sub_meta("queue", q.queue_name, tags=["t1", "t2", "t3", "t4", "t5", "t6"]))
    assert codes(exc) == (4000, 10490)
    exc = server_error(account.get_subscription(topic.topicName, unique_name("long")).create,
                       sub_meta("queue", q.queue_name, tags=["y" * 17]))
    assert exc.code == 4000
    assert topic.list_subscription()[0] == 2


# -- Subscribe: validation --------------------------------------------------------------------


def test_subscribe_errors(account, topic, new_queue, cleanup):
    q = new_queue()
    taken = subscribe_http(account, topic, name="Taken")

    def sub(name=None, **kw):
        return lambda: account.get_subscription(topic.topicName, name or unique_name("e")).create(sub_meta(**kw))

    cases = {
        "exists": (sub("Taken", protocol="http", endpoint="http://127.0.0.1:9/a"), (4490, 10470)),
        "exists, other case": (sub("tAKEN", protocol="queue", endpoint=q.queue_name), (4490, 10470)),
        "bad name": (sub("9lives", protocol="queue", endpoint=q.queue_name), 4000),
        "name too long": (sub("s" * 65, protocol="queue", endpoint=q.queue_name), 4000),
        "http without http://": (sub(protocol="http", endpoint="127.0.0.1:9/x"), (4000, 10500)),
        "ftp scheme": (sub(protocol="http", endpoint="ftp://127.0.0.1/x"), (4000, 10500)),
        "endpoint > 500 chars": (sub(protocol="http", endpoint="http://h/" + "p" * 492), (4000, 10500)),
        "whitespace in endpoint": (sub(protocol="http", endpoint="http://127.0.0.1:9/a b"), (4510, 10570)),
        "tab in endpoint": (sub(protocol="http", endpoint="http://127.0.0.1:9/a\tb"), (4510, 10570)),
        "bad protocol": (sub(protocol="email", endpoint="a@b.c"), (4000, 10510)),
        "bad strategy": (sub(protocol="http", endpoint="http://127.0.0.1:9/x", strategy="SOMETIMES"), (4000, 10520)),
        "bad format": (sub(protocol="http", endpoint="http://127.0.0.1:9/x", fmt="XML"), (4000, 10530)),
        "queue with JSON (SDK default)": (sub(protocol="queue", endpoint=q.queue_name, fmt="JSON"), (4000, 10640)),
        "missing queue": (sub(protocol="queue", endpoint=unique_name("noqueue")), 4000),
    }
    got, want = {}, {}
    for what, (call, expected) in cases.items():
        want[what] = expected
        try:
            call()
            got[what] = "accepted"
        except CMQServerException as exc:
            got[what] = codes(exc) if isinstance(expected, tuple) else exc.code
    assert got == want
    # nothing refused was created
    total, page, _ = topic.list_subscription(limit=100)
    assert (total, [s["subscriptionName"] for s in page]) == (1, [taken.subscriptionName])


def test_subscribe_accepts_edge_values(account, topic, new_queue):
    q = new_queue()
    # a 500-character endpoint, https, protocol in capitals, the queue name in another case
    subscribe_http(account, topic, endpoint="http://h/" + "p" * 491, name="long-endpoint")
    subscribe_http(account, topic, endpoint="https://example.invalid/hook", name="secure")
    shouty = account.get_subscription(topic.topicName, "shouty")
    shouty.create(sub_meta("HTTP", "http://127.0.0.1:9/x"))
    assert raw_sub(account, topic.topicName, "shouty")["protocol"] == "http"
    upper = account.get_subscription(topic.topicName, "upper-queue")
    upper.create(sub_meta("queue", q.queue_name.upper()))
    topic.publish_message(Message("reaches the queue"))
    assert drain_bodies(q) == ["reaches the queue"]
    # the longest name, and the same subscription name on another topic
    subscribe_http(account, topic, name=("S" + unique_name("x")).ljust(64, "z"))
    other = create_topic(account, "other")
    try:
        subscribe_http(account, other, name="shouty")
    finally:
        other.delete()


def test_subscription_limit_is_4500_10480(account, topic):
    client = account.get_client()
    for i in range(100):
        client.create_subscription({"topicName": topic.topicName, "subscriptionName": f"s{i}",
                                    "protocol": "http", "endpoint": "http://127.0.0.1:9/x"})
    exc = server_error(subscribe_http, account, topic, name="s100")
    assert codes(exc) == (4500, 10480)
    assert topic.list_subscription()[0] == 100


def test_subscribe_reply_carries_subscription_id(account, topic):
    reply = account.get_client().request("Subscribe", {
        "topicName": topic.topicName, "subscriptionName": "withid", "protocol": "http",
        "endpoint": "http://127.0.0.1:9/x"})
    body = json.loads(reply.data)
    assert body["code"] == 0 and body["subscriptionId"].startswith("subsc-")
    _, page, _ = topic.list_subscription(searchWord="withid")
    assert page[0]["subscriptionId"] == body["subscriptionId"]


def test_unsubscribe_missing_subscription_is_4000_10560(account, topic):
    exc = server_error(account.get_subscription(topic.topicName, unique_name("nosub")).delete)
    assert codes(exc) == (4000, 10560)
    sub = subscribe_http(account, topic)
    sub.delete()
    assert codes(server_error(sub.delete)) == (4000, 10560)
    for call in (sub.get_attributes, sub.clearFilterTags,
                 lambda: sub.set_attributes(sub_meta("http", "", strategy="BACKOFF_RETRY"))):
        assert codes(server_error(call)) == (4000, 10560)


# -- ListSubscriptionByTopic ------------------------------------------------------------------


def test_list_subscription_pages_and_searches(account, topic, new_queue):
    q = new_queue()
    tag = unique_name("lp")
    made = {}
    for i in range(5):
        name = f"{tag}-{i}"
        if i % 2:
            subscribe_queue(account, topic, q, name=name)
            made[name] = ("queue", q.queue_name)
        else:
            subscribe_http(account, topic, endpoint=f"http://127.0.0.1:9/p{i}", name=name)
            made[name] = ("http", f"http://127.0.0.1:9/p{i}")
    subscribe_http(account, topic, name="unrelated")

    seen, offsets, offset = [], [], ""
    while True:
        total, page, offset = topic.list_subscription(searchWord=tag, limit=2, offset=offset)
        assert total == 5
        assert 1 <= len(page) <= 2
        seen += page
        offsets.append(offset)
        if offset == "":
            break
        assert len(offsets) < 10, "paging never ends"
    assert offsets == [2, 4, ""]
    assert {item["subscriptionName"]: (item["protocol"], item["endpoint"]) for item in seen} == made
    assert all(item["subscriptionId"].startswith("subsc-") for item in seen)
    assert len({item["subscriptionId"] for item in seen}) == 5
    assert topic.list_subscription(searchWord=tag, limit=2, offset=10) == (5, [], "")

    total, page, next_offset = topic.list_subscription()
    assert (total, len(page), next_offset) == (6, 6, "")
    assert topic.list_subscription(searchWord=tag[3:12].upper())[0] == 5  # substring, any case
    assert topic.list_subscription(searchWord=unique_name("nothing")) == (0, [], "")
    assert server_error(topic.list_subscription, limit=101).code == 4000
    assert server_error(topic.list_subscription, offset=1001).code == 4000


# -- Get/SetSubscriptionAttributes, ClearSubscriptionFilterTags -------------------------------


def test_get_subscription_attributes(account, topic):
    before = int(time.time())
    sub = subscribe_http(account, topic, endpoint="http://127.0.0.1:9/hook?x=1", name="attrs",
                         strategy="BACKOFF_RETRY", fmt="SIMPLIFIED", tags=["a", "b"])
    after = int(time.time())
    meta = sub.get_attributes()
    assert meta.Protocal == "http"
    assert meta.NotifyStrategy == "BACKOFF_RETRY"
    assert meta.NotifyContentFormat == "SIMPLIFIED"
    assert meta.FilterTag == ["a", "b"]
    assert meta.bindingKey == []
    assert meta.TopicOwner == 1250000000

    raw = raw_sub(account, topic.topicName, "attrs")
    assert raw["code"] == 0 and raw["message"] == ""
    assert raw["protocol"] == raw["protocal"] == "http"
    assert raw["endpoint"] == "http://127.0.0.1:9/hook?x=1"
    assert raw["msgCount"] == 0
    assert raw["filterTags"] == raw["filterTag"] == ["a", "b"]
    assert raw["bindingKey"] == []
    assert before - NOW_SLACK <= raw["createTime"] <= after + NOW_SLACK
    assert raw["createTime"] <= raw["lastModifyTime"] <= after + NOW_SLACK


def test_http_subscription_defaults_to_exponential_decay_and_json(account, topic):
    client = account.get_client()
    client.create_subscription({"topicName": topic.topicName, "subscriptionName": "bare",
                                "protocol": "http", "endpoint": "http://127.0.0.1:9/x"})
    raw = raw_sub(account, topic.topicName, "bare")
    assert (raw["notifyStrategy"], raw["notifyContentFormat"]) == ("EXPONENTIAL_DECAY_RETRY", "JSON")


def test_queue_subscription_without_format_is_simplified(account, topic, new_queue):
    q = new_queue()
    account.get_client().create_subscription({"topicName": topic.topicName, "subscriptionName": "bareq",
                                              "protocol": "queue", "endpoint": q.queue_name})
    raw = raw_sub(account, topic.topicName, "bareq")
    assert (raw["protocol"], raw["endpoint"], raw["notifyContentFormat"]) == ("queue", q.queue_name, "SIMPLIFIED")


def test_set_subscription_attributes_round_trip_and_clear_filter_tags(account, topic, new_queue):
    q = new_queue()
    sub = subscribe_queue(account, topic, q, tags=["a", "b"], name="rt")
    created = raw_sub(account, topic.topicName, "rt")

    # a supplied filterTag list replaces the old one
    sub.set_attributes(sub_meta("queue", "", strategy="BACKOFF_RETRY", tags=["c", "d"]))
    raw = raw_sub(account, topic.topicName, "rt")
    assert raw["filterTags"] == ["c", "d"]
    assert raw["notifyStrategy"] == "BACKOFF_RETRY"
    assert raw["notifyContentFormat"] == "SIMPLIFIED"
    assert raw["endpoint"] == q.queue_name and raw["protocol"] == "queue"
    assert raw["createTime"] == created["createTime"]
    assert raw["lastModifyTime"] >= created["lastModifyTime"]
    topic.publish_message(Message("to-a", ["a"]))
    topic.publish_message(Message("to-c", ["c"]))
    assert drain_bodies(q) == ["to-c"]

    # without a list the tags stay
    sub.set_attributes(sub_meta("queue", "", strategy="EXPONENTIAL_DECAY_RETRY"))
    raw = raw_sub(account, topic.topicName, "rt")
    assert (raw["filterTags"], raw["notifyStrategy"]) == (["c", "d"], "EXPONENTIAL_DECAY_RETRY")
    assert sub.get_attributes().FilterTag == ["c", "d"]

    # ClearSubscriptionFilterTags: the subscription then receives everything
    sub.clearFilterTags()
    raw = raw_sub(account, topic.topicName, "rt")
    assert raw["filterTags"] == [] and raw["filterTag"] == []
    assert sub.get_attributes().FilterTag == []
    topic.publish_message(Message("untagged"))
    topic.publish_message(Message("other", ["zzz"]))
    assert drain_bodies(q) == ["untagged", "other"]


def test_set_subscription_attributes_binding_keys_replace(account, routing_topic, new_queue):
    q = new_queue()
    sub = subscribe_queue(account, routing_topic, q, keys=["a.*"], name="keys")
    sub.set_attributes(sub_meta("queue", "", keys=["b.#", "c"]))
    assert raw_sub(account, routing_topic.topicName, "keys")["bindingKey"] == ["b.#", "c"]
    assert sub.get_attributes().bindingKey == ["b.#", "c"]
    for key in ("a.x", "b", "b.x.y", "c", "c.d"):
        routing_topic.publish_message(Message(key), routingKey=key)
    assert drain_bodies(q) == ["b", "b.x.y", "c"]
    # clearing filter tags leaves binding keys alone
    sub.clearFilterTags()
    assert raw_sub(account, routing_topic.topicName, "keys")["bindingKey"] == ["b.#", "c"]
    # too many keys: refused, nothing changes
    exc = server_error(sub.set_attributes, sub_meta("queue", "", keys=list("abcdef")))
    assert codes(exc) == (4000, 10680)
    assert raw_sub(account, routing_topic.topicName, "keys")["bindingKey"] == ["b.#", "c"]


def test_set_subscription_attributes_switches_http_format(account, topic):
    sub = subscribe_http(account, topic, name="fmt")
    sub.set_attributes(sub_meta("http", "", fmt="SIMPLIFIED"))
    assert raw_sub(account, topic.topicName, "fmt")["notifyContentFormat"] == "SIMPLIFIED"
    sub.set_attributes(sub_meta("http", "", fmt="JSON"))
    assert raw_sub(account, topic.topicName, "fmt")["notifyContentFormat"] == "JSON"


def test_set_subscription_attributes_refusals_change_nothing(account, topic, new_queue):
    q = new_queue()
    qsub = subscribe_queue(account, topic, q, tags=["keep"], name="qsub")
    hsub = subscribe_http(account, topic, name="hsub", strategy="BACKOFF_RETRY", tags=["keep"])
    before_q = raw_sub(account, topic.topicName, "qsub")
    before_h = raw_sub(account, topic.topicName, "hsub")
    cases = {
        # the SDK's default meta carries JSON: a queue subscription refuses it
        "queue to JSON": (lambda: qsub.set_attributes(sub_meta("queue", "", fmt="JSON", tags=["new"])), (4000, 10640)),
        "bad strategy": (lambda: hsub.set_attributes(sub_meta("http", "", strategy="NEVER", tags=["new"])), (4000, 10520)),
        "bad format": (lambda: hsub.set_attributes(sub_meta("http", "", fmt="XML", tags=["new"])), (4000, 10530)),
        "six tags": (lambda: hsub.set_attributes(sub_meta("http", "", tags=list("abcdef"))), (4000, 10490)),
        "long tag": (lambda: hsub.set_attributes(sub_meta("http", "", tags=["x" * 17])), (4000, None)),
    }
    got, want = {}, {}
    for what, (call, expected) in cases.items():
        want[what] = expected
        try:
            call()
            got[what] = "accepted"
        except CMQServerException as exc:
            got[what] = (exc.code, module_code(exc) if expected[1] is not None else None)
    assert got == want
    assert raw_sub(account, topic.topicName, "qsub") | {"requestId": ""} == before_q | {"requestId": ""}
    assert raw_sub(account, topic.topicName, "hsub") | {"requestId": ""} == before_h | {"requestId": ""}


# -- strict mode: the unconfirmed refusals ----------------------------------------------------


def test_strict_publish_reaching_nobody_is_6030(strict_broker):
    account = strict_broker.account()
    t = create_topic(account, "strict")
    assert codes(server_error(t.publish_message, Message("nobody"))) == (6030, 10650)
    assert codes(server_error(t.batch_publish_message, [Message("nobody")])) == (6030, 10650)

    q = create_queue(account)
    subscribe_queue(account, t, q, tags=["wanted"])
    assert codes(server_error(t.publish_message, Message("unmatched", ["other"]))) == (6030, 10730)
    assert codes(server_error(t.publish_message, Message("untagged"))) == (6030, 10730)
    assert codes(server_error(t.batch_publish_message, [Message("x")], msgtag=["other"])) == (6030, 10730)
    assert t.publish_message(Message("matched", ["wanted"])).msgId
    assert drain_bodies(q) == ["matched"]


def test_strict_routing_publish_matching_nothing_is_6030_10730(strict_broker):
    account = strict_broker.account()
    t = create_topic(account, "strictroute", filter_type=2)
    assert codes(server_error(t.publish_message, Message("nobody"), routingKey="a.b")) == (6030, 10650)
    q = create_queue(account)
    subscribe_queue(account, t, q, keys=["a.*"])
    assert codes(server_error(t.publish_message, Message("no"), routingKey="b.a")) == (6030, 10730)
    t.publish_message(Message("yes"), routingKey="a.b")
    assert drain_bodies(q) == ["yes"]


def test_strict_routing_subscription_needs_binding_key(strict_broker):
    account = strict_broker.account()
    t = create_topic(account, "strictkey", filter_type=2)
    q = create_queue(account)
    exc = server_error(account.get_subscription(t.topicName, "nokey").create, sub_meta("queue", q.queue_name))
    assert codes(exc) == (4000, 10710)
    exc = server_error(account.get_subscription(t.topicName, "nokeyhttp").create,
                       sub_meta("http", "http://127.0.0.1:9/x"))
    assert codes(exc) == (4000, 10710)
    assert t.list_subscription() == (0, [], "")
    subscribe_queue(account, t, q, keys=["#"])
    # a tag topic needs no binding key, strict or not
    tags = create_topic(account, "strictnokey")
    subscribe_queue(account, tags, q)


def test_strict_delete_topic_with_subscriptions_is_4000_10540(strict_broker):
    account = strict_broker.account()
    t = create_topic(account, "strictdel")
    q = create_queue(account)
    sub = subscribe_queue(account, t, q)
    assert codes(server_error(t.delete)) == (4000, 10540)
    assert t.get_attributes().topicName == t.topicName  # still there
    assert t.list_subscription()[0] == 1
    sub.delete()
    t.delete()
    assert server_error(t.get_attributes).code == 4440


def test_lenient_by_default_for_every_unconfirmed_refusal(account, new_queue):
    """The default broker accepts all that --strict refuses."""
    q = new_queue()
    route = create_topic(account, "lenient", filter_type=2)
    assert route.publish_message(Message("no subscriptions"), routingKey="a").msgId  # not 6030/10650
    assert route.batch_publish_message([Message("no subscriptions")], routingKey="a")
    subscribe_queue(account, route, q, name="nokey")  # not 4000/10710
    route.delete()  # not 4000/10540

    tags = create_topic(account, "lenient")
    subscribe_queue(account, tags, q, tags=["t"])
    assert tags.publish_message(Message("matches nothing", ["u"])).msgId  # not 6030/10730
    assert tags.batch_publish_message([Message("matches nothing")], msgtag=["u"])
    assert drain_bodies(q) == []
    tags.delete()  # not 4000/10540
    for t in (route, tags):
        assert server_error(t.get_attributes).code == 4440
