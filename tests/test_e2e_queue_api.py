"""Every queue method of the official SDK against a real broker process.

Only `cmq` (qcloud-cmq-sdk-py3) talks to the broker here; expectations come from
/work/shared/spec/cmq-api.md (sections 1-5) and the SDK's own behaviour.
"""

from __future__ import annotations

import base64
import time

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message

from helpers import counts, module_code, queue_meta, server_error, unique_name

NOW_SLACK = 5  # seconds of clock slack allowed when comparing broker times with ours


# -- CreateQueue / GetQueueAttributes ---------------------------------------------------------


def test_create_with_attributes_and_get_all_fields(account):
    name = unique_name("attrs")
    q = account.get_queue(name)
    before = int(time.time())
    q.create(queue_meta(maxMsgHeapNum=5000, pollingWaitSeconds=3, visibilityTimeout=45,
                        maxMsgSize=2048, msgRetentionSeconds=3600, rewindSeconds=600))
    after = int(time.time())
    try:
        meta = q.get_attributes()
        assert meta.queueName == name
        assert meta.maxMsgHeapNum == 5000
        assert meta.pollingWaitSeconds == 3
        assert meta.visibilityTimeout == 45
        assert meta.maxMsgSize == 2048
        assert meta.msgRetentionSeconds == 3600
        assert meta.rewindSeconds == 600
        assert before - NOW_SLACK <= meta.createTime <= after + NOW_SLACK
        assert meta.createTime <= meta.lastModifyTime <= after + NOW_SLACK
        assert (meta.activeMsgNum, meta.inactiveMsgNum, meta.delayMsgNum) == (0, 0, 0)
        assert meta.rewindmsgNum == 0
        assert meta.minMsgTime == 0
    finally:
        q.delete()


def test_create_with_sdk_defaults(make_queue):
    # QueueMeta() leaves maxMsgHeapNum at -1, so the SDK does not send it: the broker's default applies.
    meta = make_queue("defaults").get_attributes()
    assert meta.maxMsgHeapNum == 100_000_000
    assert meta.pollingWaitSeconds == 0
    assert meta.visibilityTimeout == 30
    assert meta.maxMsgSize == 65536
    assert meta.msgRetentionSeconds == 345600
    assert meta.rewindSeconds == 0
    assert (meta.activeMsgNum, meta.inactiveMsgNum, meta.delayMsgNum, meta.rewindmsgNum) == (0, 0, 0, 0)


def test_create_existing_queue_is_4460_case_insensitively(account, make_queue):
    q = make_queue("Dup")
    assert server_error(account.get_queue(q.queue_name).create, queue_meta()).code == 4460
    assert server_error(account.get_queue(q.queue_name.lower()).create, queue_meta()).code == 4460
    assert server_error(account.get_queue(q.queue_name.upper()).create, queue_meta()).code == 4460


@pytest.mark.parametrize(
    "bad_name",
    ["", "1starts-with-digit", "-dash-first", "has space", "dot.name", "slash/name", "q" * 65, "队列名"],
)
def test_create_with_bad_name_is_4000(account, bad_name):
    assert server_error(account.get_queue(bad_name).create, queue_meta()).code == 4000


def test_longest_valid_name_is_accepted(account):
    name = ("L" + unique_name("x")).ljust(64, "z")
    assert len(name) == 64
    q = account.get_queue(name)
    q.create(queue_meta())
    try:
        assert q.get_attributes().queueName == name
    finally:
        q.delete()


@pytest.mark.parametrize(
    "attrs",
    [
        {"visibilityTimeout": 0},
        {"visibilityTimeout": 43201},
        {"pollingWaitSeconds": 31},
        {"maxMsgSize": 1023},
        {"maxMsgSize": 65537},
        {"msgRetentionSeconds": 59},
        {"maxMsgHeapNum": 1_000_000_001},
        {"rewindSeconds": 7200, "msgRetentionSeconds": 3600},  # rewind longer than retention
    ],
    ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()),
)
def test_create_with_out_of_range_attribute_is_4000_and_creates_nothing(account, attrs):
    q = account.get_queue(unique_name("range"))
    assert server_error(q.create, queue_meta(**attrs)).code == 4000
    assert server_error(q.get_attributes).code == 4440


def test_get_attributes_reply_has_every_documented_key(account, make_queue):
    # QueueMeta hides some keys; the SDK's client hands back the raw reply.
    q = make_queue("raw", rewindSeconds=60)
    raw = account.get_client().get_queue_attributes({"queueName": q.queue_name})
    expected = {
        "code", "message", "requestId",
        "maxMsgHeapNum", "pollingWaitSeconds", "visibilityTimeout", "maxMsgSize", "msgRetentionSeconds",
        "rewindSeconds", "createTime", "lastModifyTime", "activeMsgNum", "inactiveMsgNum", "delayMsgNum",
        "rewindMsgNum", "rewindmsgNum", "minMsgTime", "queueName", "queueId",
    }
    assert expected <= set(raw), f"missing: {sorted(expected - set(raw))}"
    assert raw["code"] == 0 and raw["message"] == ""
    assert raw["queueName"] == q.queue_name
    assert raw["queueId"].startswith("queue-")
    assert all(type(raw[k]) is int for k in expected - {"message", "requestId", "queueName", "queueId"})


# -- SetQueueAttributes -----------------------------------------------------------------------


def test_set_attributes_changes_what_get_reports(make_queue):
    q = make_queue("set", maxMsgHeapNum=500, visibilityTimeout=10, pollingWaitSeconds=2)
    created = q.get_attributes()
    q.set_attributes(queue_meta(maxMsgHeapNum=700, pollingWaitSeconds=5, visibilityTimeout=120,
                                maxMsgSize=4096, msgRetentionSeconds=7200, rewindSeconds=60))
    meta = q.get_attributes()
    assert (meta.maxMsgHeapNum, meta.pollingWaitSeconds, meta.visibilityTimeout,
            meta.maxMsgSize, meta.msgRetentionSeconds, meta.rewindSeconds) == (700, 5, 120, 4096, 7200, 60)
    assert meta.createTime == created.createTime
    assert meta.lastModifyTime >= created.lastModifyTime


def test_set_attributes_sends_every_sdk_field_so_unset_ones_revert(make_queue):
    # The SDK always sends its five QueueMeta fields, but maxMsgHeapNum only when > 0.
    q = make_queue("revert", maxMsgHeapNum=500, visibilityTimeout=99, pollingWaitSeconds=4, maxMsgSize=1024)
    q.set_attributes(queue_meta(visibilityTimeout=77))
    meta = q.get_attributes()
    assert meta.visibilityTimeout == 77
    assert meta.maxMsgHeapNum == 500  # not sent: unchanged
    assert meta.pollingWaitSeconds == 0  # sent with the SDK default
    assert meta.maxMsgSize == 65536


@pytest.mark.parametrize(
    "attrs",
    [{"visibilityTimeout": 0}, {"pollingWaitSeconds": 31}, {"maxMsgSize": 512},
     {"rewindSeconds": 4000, "msgRetentionSeconds": 3600}],
    ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()),
)
def test_set_attributes_out_of_range_is_4000_and_changes_nothing(make_queue, attrs):
    q = make_queue("setbad", visibilityTimeout=40, pollingWaitSeconds=2)
    assert server_error(q.set_attributes, queue_meta(**attrs)).code == 4000
    meta = q.get_attributes()
    assert (meta.visibilityTimeout, meta.pollingWaitSeconds, meta.maxMsgSize, meta.rewindSeconds) == (40, 2, 65536, 0)


# -- DeleteQueue and missing queues -----------------------------------------------------------


def test_delete_queue(account):
    name = unique_name("del")
    q = account.get_queue(name)
    q.create(queue_meta())
    q.send_message(Message("left behind"))
    q.delete()
    assert server_error(q.get_attributes).code == 4440
    assert server_error(q.delete).code == 4440
    total, listed, _ = account.list_queue(searchWord=name)
    assert (total, listed) == (0, [])


def test_every_action_on_a_missing_queue_is_4440(account):
    q = account.get_queue(unique_name("missing"))
    calls = {
        "get_attributes": lambda: q.get_attributes(),
        "set_attributes": lambda: q.set_attributes(queue_meta()),
        "delete": lambda: q.delete(),
        "rewindQueue": lambda: q.rewindQueue(int(time.time())),
        "send_message": lambda: q.send_message(Message("x")),
        "batch_send_message": lambda: q.batch_send_message([Message("x")]),
        "receive_message": lambda: q.receive_message(polling_wait_seconds=0),
        "batch_receive_message": lambda: q.batch_receive_message(2, polling_wait_seconds=0),
        "delete_message": lambda: q.delete_message("12345678901234567890"),
        "batch_delete_message": lambda: q.batch_delete_message(["12345678901234567890"]),
    }
    got = {}
    for name, call in calls.items():
        try:
            call()
            got[name] = "no error"
        except CMQServerException as exc:
            got[name] = exc.code
    assert got == {name: 4440 for name in calls}


# -- ListQueue --------------------------------------------------------------------------------


def test_list_queue_pages_with_offset_limit_and_next_offset(account, make_queue):
    tag = unique_name("page")
    names = sorted(make_queue(f"{tag}-{i}").queue_name for i in range(5))

    seen = []
    offsets = []
    offset = ""
    while True:
        total, page, offset = account.list_queue(searchWord=tag, limit=2, offset=offset)
        assert total == 5
        assert 1 <= len(page) <= 2
        for item in page:
            assert set(item) >= {"queueId", "queueName"}
            assert item["queueId"].startswith("queue-")
        seen += [item["queueName"] for item in page]
        offsets.append(offset)
        if offset == "":
            break
        assert len(offsets) < 10, "paging never ends"
    assert offsets == [2, 4, ""]
    assert account.list_queue(searchWord=tag, limit=2, offset=10) == (5, [], "")  # past the end
    assert sorted(seen) == names
    assert len(set(seen)) == 5  # no queue on two pages

    # queue ids are distinct and stable between calls
    _, first, _ = account.list_queue(searchWord=tag, limit=50)
    _, again, _ = account.list_queue(searchWord=tag, limit=50)
    assert first == again
    assert len({item["queueId"] for item in first}) == 5


def test_list_queue_search_word_matches_inside_names(account, make_queue):
    one = make_queue("srchA").queue_name  # srchA-<16 hex>-...
    hexpart = one.split("-")[1]
    two = account.get_queue(f"other-{hexpart}-two")
    two.create(queue_meta())
    try:
        # a piece from the middle of the unique part matches both queues, nothing else
        total, page, next_offset = account.list_queue(searchWord=hexpart[3:11])
        assert total == 2
        assert next_offset == ""
        assert sorted(item["queueName"] for item in page) == sorted([one, two.queue_name])
        total, page, _ = account.list_queue(searchWord=f"{hexpart}-two")
        assert total == 1 and page[0]["queueName"] == two.queue_name
        total, page, next_offset = account.list_queue(searchWord=unique_name("nothing"))
        assert (total, page, next_offset) == (0, [], "")
    finally:
        two.delete()


def test_list_queue_without_arguments_counts_all_queues(account, make_queue):
    made = {make_queue("all").queue_name for _ in range(3)}
    total, page, next_offset = account.list_queue()
    assert total >= 3
    assert len(page) == min(total, 20)  # the default page size
    assert next_offset == ("" if total <= 20 else 20)
    everything = []
    offset = 0
    while offset != "":
        _, page, offset = account.list_queue(limit=50, offset=offset)
        everything += [item["queueName"] for item in page]
    assert made <= set(everything)
    assert len(everything) == total


# -- SendMessage / ReceiveMessage / DeleteMessage ---------------------------------------------


def test_send_receive_delete_round_trip(make_queue):
    q = make_queue("rt", visibilityTimeout=40)
    sent_at = int(time.time())
    sent = q.send_message(Message("hello world"))
    assert isinstance(sent.msgId, str) and sent.msgId
    assert counts(q) == (1, 0, 0)

    msg = q.receive_message(polling_wait_seconds=0)
    now = int(time.time())
    assert msg.msgId == sent.msgId
    assert msg.msgBody == "hello world"
    assert isinstance(msg.receiptHandle, str) and msg.receiptHandle
    assert msg.dequeueCount == 1
    assert sent_at - NOW_SLACK <= msg.enqueueTime <= now + NOW_SLACK
    assert msg.enqueueTime <= msg.firstDequeueTime <= now + NOW_SLACK
    assert now + 40 - NOW_SLACK <= msg.nextVisibleTime <= now + 40 + NOW_SLACK
    assert counts(q) == (0, 1, 0)

    q.delete_message(msg.receiptHandle)
    assert counts(q) == (0, 0, 0)
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000
    assert server_error(q.delete_message, msg.receiptHandle).code == 4430  # already deleted


@pytest.mark.parametrize(
    "body",
    ["plain", "spaces + plus & amp = eq % pct ? q # hash", "@starts with at", "ünïcødé 世界 🎉",
     "line\nbreaks\ttabs", '{"json": [1, 2, "three"]}', "a" * 65536],
    ids=["plain", "form-specials", "at-sign", "unicode", "control", "json", "max-size"],
)
def test_message_bodies_come_back_unchanged(make_queue, body):
    q = make_queue("body")
    q.send_message(Message(body))
    assert q.receive_message(polling_wait_seconds=0).msgBody == body


def test_counts_are_exact_across_states(make_queue):
    q = make_queue("counts", visibilityTimeout=60)
    q.batch_send_message([Message(f"ready-{i}") for i in range(4)])
    q.batch_send_message([Message(f"late-{i}") for i in range(3)], delayTime=600)
    assert counts(q) == (4, 0, 3)
    got = q.batch_receive_message(2, polling_wait_seconds=0)
    assert len(got) == 2
    assert counts(q) == (2, 2, 3)
    q.delete_message(got[0].receiptHandle)
    assert counts(q) == (2, 1, 3)


def test_empty_body_is_4000(make_queue):
    q = make_queue("empty")
    assert server_error(q.send_message, Message("")).code == 4000
    assert server_error(q.batch_send_message, [Message("ok"), Message("")]).code == 4000
    assert counts(q) == (0, 0, 0)


def test_message_larger_than_max_msg_size_is_4400(make_queue):
    q = make_queue("big", maxMsgSize=1024)
    q.send_message(Message("x" * 1024))  # exactly the limit is fine
    assert server_error(q.send_message, Message("x" * 1025)).code == 4400
    # the limit is in bytes: 342 three-byte characters are 1026 bytes
    assert server_error(q.send_message, Message("世" * 342)).code == 4400
    assert server_error(q.batch_send_message, [Message("small"), Message("y" * 1025)]).code == 4400
    assert counts(q)[0] == 1


def test_max_msg_heap_num_full_is_4410(make_queue):
    q = make_queue("heap", maxMsgHeapNum=2)
    q.send_message(Message("one"))
    q.send_message(Message("two"))
    assert server_error(q.send_message, Message("three")).code == 4410
    assert server_error(q.batch_send_message, [Message("three")]).code == 4410
    # a received (in-flight) message still counts toward the limit
    msg = q.receive_message(polling_wait_seconds=0)
    assert server_error(q.send_message, Message("three")).code == 4410
    # deleting one makes room for exactly one
    q.delete_message(msg.receiptHandle)
    q.send_message(Message("three"))
    assert server_error(q.send_message, Message("four")).code == 4410
    assert counts(q) == (2, 0, 0)


def test_max_msg_heap_num_of_one_counts_delayed_messages(make_queue):
    q = make_queue("heap1", maxMsgHeapNum=1)
    q.send_message(Message("later"), delayTime=600)
    assert server_error(q.send_message, Message("now")).code == 4410
    assert counts(q) == (0, 0, 1)


def test_messages_kept_for_rewind_do_not_count_toward_max_msg_heap_num(make_queue):
    q = make_queue("heapkept", maxMsgHeapNum=1, rewindSeconds=600)
    q.send_message(Message("one"))
    q.delete_message(q.receive_message(polling_wait_seconds=0).receiptHandle)
    assert q.get_attributes().rewindmsgNum == 1
    q.send_message(Message("two"))  # the deleted one is kept, but it is not stored any more
    assert server_error(q.send_message, Message("three")).code == 4410


def test_receive_from_empty_queue_is_7000(make_queue):
    q = make_queue("none")
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000
    assert server_error(q.batch_receive_message, 16, polling_wait_seconds=0).code == 7000


@pytest.mark.parametrize("bad", ["", "garbage", "12345678901234567890", "-1"])
def test_delete_message_with_bad_handle_is_4430(make_queue, bad):
    q = make_queue("badrh")
    q.send_message(Message("m"))
    q.receive_message(polling_wait_seconds=0)
    assert server_error(q.delete_message, bad).code == 4430
    assert counts(q) == (0, 1, 0)


@pytest.mark.parametrize("delay", [-1, 3601, 4000])
def test_send_with_out_of_range_delay_is_4000(make_queue, delay):
    q = make_queue("delay")
    assert server_error(q.send_message, Message("m"), delayTime=delay).code == 4000
    assert server_error(q.batch_send_message, [Message("m")], delayTime=delay).code == 4000
    assert counts(q) == (0, 0, 0)


def test_receive_with_out_of_range_polling_wait_is_4000(make_queue):
    q = make_queue("poll")
    q.send_message(Message("m"))
    assert server_error(q.receive_message, polling_wait_seconds=31).code == 4000
    assert server_error(q.batch_receive_message, 2, polling_wait_seconds=31).code == 4000
    assert counts(q) == (1, 0, 0)


# -- batches ----------------------------------------------------------------------------------


def test_batch_send_receive_delete(make_queue):
    q = make_queue("batch")
    bodies = [f"body-{i}" for i in range(12)]  # past 10, so msgBody.10 sorts before msgBody.2
    sent = q.batch_send_message([Message(b) for b in bodies])
    assert len(sent) == 12
    assert len({m.msgId for m in sent}) == 12
    assert counts(q) == (12, 0, 0)

    got = q.batch_receive_message(16, polling_wait_seconds=0)
    assert [m.msgBody for m in got] == bodies  # all available, oldest first
    assert [m.msgId for m in got] == [m.msgId for m in sent]
    assert all(m.dequeueCount == 1 for m in got)
    assert len({m.receiptHandle for m in got}) == 12
    assert counts(q) == (0, 12, 0)

    q.batch_delete_message([m.receiptHandle for m in got])
    assert counts(q) == (0, 0, 0)


def test_batch_receive_returns_at_most_num_of_msg(make_queue):
    q = make_queue("some")
    q.batch_send_message([Message(f"m{i}") for i in range(5)])
    first = q.batch_receive_message(3, polling_wait_seconds=0)
    assert [m.msgBody for m in first] == ["m0", "m1", "m2"]
    rest = q.batch_receive_message(3, polling_wait_seconds=0)
    assert [m.msgBody for m in rest] == ["m3", "m4"]
    assert server_error(q.batch_receive_message, 3, polling_wait_seconds=0).code == 7000


def test_batches_of_seventeen_are_4000(make_queue):
    q = make_queue("b17")
    assert server_error(q.batch_send_message, [Message(f"m{i}") for i in range(17)]).code == 4000
    assert counts(q) == (0, 0, 0)
    q.batch_send_message([Message(f"m{i}") for i in range(16)])  # 16 is the limit, and fine
    assert server_error(q.batch_receive_message, 17, polling_wait_seconds=0).code == 4000
    assert server_error(q.batch_receive_message, 0, polling_wait_seconds=0).code == 4000
    got = q.batch_receive_message(16, polling_wait_seconds=0)
    assert len(got) == 16
    handles = [m.receiptHandle for m in got]
    assert server_error(q.batch_delete_message, handles + [handles[0]]).code == 4000
    assert counts(q) == (0, 16, 0)  # the rejected batch deleted nothing
    q.batch_delete_message(handles)
    assert counts(q) == (0, 0, 0)


def test_batch_delete_partial_failure_is_6010_with_error_list(make_queue):
    q = make_queue("partial")
    q.batch_send_message([Message("a"), Message("b")])
    got = q.batch_receive_message(2, polling_wait_seconds=0)
    bogus = "99999999999999999999"
    exc = server_error(q.batch_delete_message, [got[0].receiptHandle, bogus, got[1].receiptHandle])
    assert exc.code == 6010
    errors = exc.data["errorList"]
    assert len(errors) == 1
    assert errors[0]["receiptHandle"] == bogus
    assert errors[0]["code"] == 4430
    assert isinstance(errors[0]["message"], str)
    assert counts(q) == (0, 0, 0)  # the valid handles were deleted anyway


def test_batch_delete_all_failed_is_6020(make_queue):
    q = make_queue("allfail")
    q.send_message(Message("a"))
    msg = q.receive_message(polling_wait_seconds=0)
    q.delete_message(msg.receiptHandle)
    bad = [msg.receiptHandle, "11111111111111111111"]
    exc = server_error(q.batch_delete_message, bad)
    assert exc.code == 6020
    assert sorted(e["receiptHandle"] for e in exc.data["errorList"]) == sorted(bad)
    assert all(e["code"] == 4430 for e in exc.data["errorList"])


def test_error_replies_carry_the_documented_module_codes(account, make_queue):
    q = make_queue("codes", maxMsgSize=1024, maxMsgHeapNum=1)
    empty = make_queue("codes-empty")
    missing = account.get_queue(unique_name("absent"))
    cases = {
        "queue missing": (lambda: missing.get_attributes(), 4440, 10100),
        "queue exists": (lambda: account.get_queue(q.queue_name).create(queue_meta()), 4460, 10210),
        "bad name": (lambda: account.get_queue("9lives").create(queue_meta()), 4000, 10020),
        "empty body": (lambda: q.send_message(Message("")), 4000, 10120),
        "too large": (lambda: q.send_message(Message("x" * 1025)), 4400, 10230),
        "no message": (lambda: empty.receive_message(polling_wait_seconds=0), 7000, 10200),
        "bad handle": (lambda: q.delete_message("123456789012345678901"), 4430, 10260),
        "rewind off": (lambda: q.rewindQueue(int(time.time())), 6050, 10670),
        "batch > 16": (lambda: q.batch_send_message([Message("m")] * 17), 4000, 10370),
    }
    q.send_message(Message("fills the heap"))
    cases["heap full"] = (lambda: q.send_message(Message("one more")), 4410, 10240)
    got, want = {}, {}
    for what, (call, code, module) in cases.items():
        want[what] = (code, module)
        try:
            call()
            got[what] = "no error"
        except CMQServerException as exc:
            got[what] = (exc.code, module_code(exc))
            assert exc.request_id, f"{what}: error reply without requestId"
    assert got == want


def test_batch_delete_error_replies_carry_module_codes(make_queue):
    q = make_queue("bcodes")
    q.batch_send_message([Message("a"), Message("b")])
    got = q.batch_receive_message(2, polling_wait_seconds=0)
    partial = server_error(q.batch_delete_message, [got[0].receiptHandle, "1" * 20])
    assert (partial.code, module_code(partial)) == (6010, 10150)
    failed = server_error(q.batch_delete_message, [got[0].receiptHandle, "1" * 20])
    assert (failed.code, module_code(failed)) == (6020, 10290)
    assert [module_code(CMQServerException(e["message"], "")) for e in failed.data["errorList"]] == [10260, 10260]


def test_rewind_out_of_window_has_module_code_10680(make_queue):
    q = make_queue("rwcode", rewindSeconds=60)
    exc = server_error(q.rewindQueue, int(time.time()) - 3600)
    assert (exc.code, module_code(exc)) == (4000, 10680)


def test_configured_limits_max_queues_and_max_request_bytes(start_broker):
    b = start_broker(args=["--host", "127.0.0.1", "--port", "0", "--max-queues", "2", "--max-request-bytes", "4096"])
    account = b.account()
    account.get_queue("first").create(queue_meta())
    q = account.get_queue("second")
    q.create(queue_meta())
    exc = server_error(account.get_queue("third").create, queue_meta())
    assert (exc.code, module_code(exc)) == (4450, 10220)
    # a request body over --max-request-bytes is refused with a normal error reply (HTTP 200)
    exc = server_error(q.send_message, Message("z" * 5000))
    assert (exc.code, module_code(exc)) == (4000, 10420)
    q.send_message(Message("z" * 1000))
    assert q.receive_message(polling_wait_seconds=0).msgBody == "z" * 1000
    # deleting one makes room again
    account.get_queue("first").delete()
    account.get_queue("third").create(queue_meta())


# -- encoding and GET -------------------------------------------------------------------------


def test_set_encoding_sends_and_receives_bytes(account, make_queue):
    q = make_queue("enc")
    q.set_encoding(True)
    payload = bytes(range(256))
    q.send_message(Message(payload))
    q.batch_send_message([Message(b"first"), Message("zweite \u00fc".encode())])
    msg = q.receive_message(polling_wait_seconds=0)
    assert msg.msgBody == payload
    assert [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)] == [b"first", "zweite \u00fc".encode()]

    # on the wire the body is base64 text: a client without encoding sees exactly that
    q.send_message(Message(b"\x00\xffraw"))
    plain = account.get_queue(q.queue_name)
    assert plain.receive_message(polling_wait_seconds=0).msgBody == base64.b64encode(b"\x00\xffraw").decode()


def test_get_method_drives_every_queue_action(account):
    account.get_client().set_method("GET")
    name = unique_name("get")
    q = account.get_queue(name)
    q.create(queue_meta(visibilityTimeout=60, rewindSeconds=60))
    try:
        assert account.list_queue(searchWord=name)[0] == 1
        q.set_attributes(queue_meta(visibilityTimeout=61, rewindSeconds=60))
        assert q.get_attributes().visibilityTimeout == 61
        q.send_message(Message("via GET: a+b=c & d%e @"))
        q.batch_send_message([Message("g1"), Message("g2")])
        msg = q.receive_message(polling_wait_seconds=0)
        assert msg.msgBody == "via GET: a+b=c & d%e @"
        q.delete_message(msg.receiptHandle)
        batch = q.batch_receive_message(16, polling_wait_seconds=0)
        assert [m.msgBody for m in batch] == ["g1", "g2"]
        q.batch_delete_message([m.receiptHandle for m in batch])
        assert counts(q) == (0, 0, 0)
        q.rewindQueue(int(time.time()) - 30)
        assert counts(q) == (3, 0, 0)
        rewound = q.batch_receive_message(16, polling_wait_seconds=0)
        assert [m.msgBody for m in rewound] == ["via GET: a+b=c & d%e @", "g1", "g2"]
        q.batch_delete_message([m.receiptHandle for m in rewound])
        assert server_error(q.receive_message, polling_wait_seconds=31).code == 4000
        assert server_error(q.delete_message, "bogus").code == 4430
        q.set_encoding(True)
        q.send_message(Message(b"\x00bytes over GET\xff"))
        assert q.receive_message(polling_wait_seconds=0).msgBody == b"\x00bytes over GET\xff"
    finally:
        q.delete()
    assert server_error(q.get_attributes).code == 4440


# -- RewindQueue ------------------------------------------------------------------------------


def test_rewind_brings_deleted_messages_back(make_queue):
    q = make_queue("rewind", rewindSeconds=3600, visibilityTimeout=60)
    start = int(time.time()) - 1
    q.batch_send_message([Message(f"r{i}") for i in range(3)])
    got = q.batch_receive_message(16, polling_wait_seconds=0)
    q.batch_delete_message([m.receiptHandle for m in got])
    meta = q.get_attributes()
    assert (meta.activeMsgNum, meta.inactiveMsgNum, meta.rewindmsgNum) == (0, 0, 3)
    assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000

    q.rewindQueue(start)
    meta = q.get_attributes()
    assert (meta.activeMsgNum, meta.rewindmsgNum) == (3, 0)
    again = q.batch_receive_message(16, polling_wait_seconds=0)
    assert [m.msgBody for m in again] == ["r0", "r1", "r2"]
    assert [m.msgId for m in again] == [m.msgId for m in got]
    q.batch_delete_message([m.receiptHandle for m in again])
    assert q.get_attributes().rewindmsgNum == 3


def test_rewound_messages_come_back_in_enqueue_order_before_newer_ones(make_queue):
    q = make_queue("rworder", rewindSeconds=600)
    start = int(time.time()) - 1
    q.batch_send_message([Message("A"), Message("B"), Message("C")])
    a = q.receive_message(polling_wait_seconds=0)
    assert a.msgBody == "A"
    q.delete_message(a.receiptHandle)  # B and C are still waiting
    q.send_message(Message("D"))
    q.rewindQueue(start)
    got = [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)]
    assert got == ["A", "B", "C", "D"]


def test_rewind_on_queue_without_rewind_seconds_is_6050(make_queue):
    q = make_queue("norewind")
    assert server_error(q.rewindQueue, int(time.time()) - 10).code == 6050


def test_rewind_to_before_the_rewind_window_is_4000(make_queue):
    q = make_queue("oldrewind", rewindSeconds=600)
    assert server_error(q.rewindQueue, int(time.time()) - 7200).code == 4000


def test_turning_rewind_off_discards_kept_messages(make_queue):
    q = make_queue("rewoff", rewindSeconds=600)
    q.send_message(Message("x"))
    q.delete_message(q.receive_message(polling_wait_seconds=0).receiptHandle)
    assert q.get_attributes().rewindmsgNum == 1
    q.set_attributes(queue_meta(rewindSeconds=0))
    assert q.get_attributes().rewindmsgNum == 0
    assert server_error(q.rewindQueue, int(time.time()) - 10).code == 6050
