"""Stateless fuzzing of the CMQ API 2.0 endpoint (POST/GET /v2/index.php).

Requests come from a grammar of the real action table (each action with its own parameters,
mostly valid values, names in random case, list parameters with odd indices), mutated (junk
and duplicate parameters, dropped ones) and encoded in random ways (percent-encoding right,
wrong or absent, invalid UTF-8, GET or POST or other methods, any Content-Type, an empty
body). Queue and topic names come from a small pool, so calls meet the objects earlier calls
made. Invariant after every call: HTTP 200 with the CMQ JSON envelope (`cmq_reply`), typed
members on the successes we know, and no ERROR in the broker's log.

A second test drives random calls through the official SDK, which must either return or raise
CMQServerException (or its own parameter check): a transport or parsing failure in the SDK means
a reply it cannot read.

Waiting is kept out: `pollingWaitSeconds` only ever reaches the broker as 0 or as an invalid
value, so no call parks in a long poll (long polls are covered by the e2e tests).
"""

from __future__ import annotations

import string
import time
from urllib.parse import parse_qsl, quote, quote_from_bytes, quote_plus

import pytest
from cmq.cmq_exception import CMQClientParameterException, CMQServerException
from cmq.queue import Message, QueueMeta
from cmq.subscription import SubscriptionMeta
from cmq.topic import Message as TopicMessage, TopicMeta
from hypothesis import given, strategies as st

from broker.engine.settings import QUEUE_SETTINGS, TOPIC_SETTINGS
from broker.protocol.cmq.app import ACTIONS as TABLE

ACTIONS = {action.name.lower() for action in TABLE}  # the declared names, as matched (case-insensitively)
from broker.testing import broker_thread

from fuzzing import Http, LogWatch, Request, Tally, budget, cmq_reply, report

PATH = "/v2/index.php"
TALLY, SDK_TALLY = Tally(), Tally()
MAX_BODY = 300_000  # a small request limit, so bodies over it are cheap to send

# Every action with the parameters its handler reads: "?" marks an optional one, ".n" a list.
# Kept in step with the table by test_grammar_covers_every_action.
_QS = [f"?{name}" for name in QUEUE_SETTINGS]
_TS = [f"?{name}" for name in TOPIC_SETTINGS]
SCHEMA: dict[str, list[str]] = {
    "CreateQueue": ["queueName", *_QS],
    "ListQueue": ["?searchWord", "?offset", "?limit"],
    "GetQueueAttributes": ["queueName"],
    "SetQueueAttributes": ["queueName", *_QS],
    "DeleteQueue": ["queueName"],
    "RewindQueue": ["queueName", "startConsumeTime"],
    "PurgeQueue": ["queueName"],
    "SendMessage": ["queueName", "msgBody", "?delaySeconds"],
    "BatchSendMessage": ["queueName", "msgBody.n", "?delaySeconds"],
    "ReceiveMessage": ["queueName", "?pollingWaitSeconds"],
    "BatchReceiveMessage": ["queueName", "numOfMsg", "?pollingWaitSeconds"],
    "DeleteMessage": ["queueName", "receiptHandle"],
    "BatchDeleteMessage": ["queueName", "receiptHandle.n"],
    "PeekMessage": ["queueName", "?numOfMsg"],
    "CreateTopic": ["topicName", "?filterType", *_TS],
    "ListTopic": ["?searchWord", "?offset", "?limit"],
    "GetTopicAttributes": ["topicName"],
    "SetTopicAttributes": ["topicName", *_TS],
    "DeleteTopic": ["topicName"],
    "PublishMessage": ["topicName", "msgBody", "?msgTag.n", "?routingKey"],
    "BatchPublishMessage": ["topicName", "msgBody.n", "?msgTag.n", "?routingKey"],
    "Subscribe": ["topicName", "subscriptionName", "protocol", "endpoint", "?notifyStrategy",
                  "?notifyContentFormat", "?filterTag.n", "?bindingKey.n"],
    "Unsubscribe": ["topicName", "subscriptionName"],
    "ListSubscriptionByTopic": ["topicName", "?searchWord", "?offset", "?limit"],
    "GetSubscriptionAttributes": ["topicName", "subscriptionName"],
    "SetSubscriptionAttributes": ["topicName", "subscriptionName", "?notifyStrategy", "?notifyContentFormat",
                                  "?filterTag.n", "?bindingKey.n"],
    "ClearSubscriptionFilterTags": ["topicName", "subscriptionName"],
}
SIGNING = ["SecretId", "Signature", "SignatureMethod", "Nonce", "Timestamp", "RequestClient", "Region"]
PARAM_NAMES = sorted({p.strip("?").removesuffix(".n") for ps in SCHEMA.values() for p in ps} | set(SIGNING))

# -- values: mostly valid, so calls get past the checks, with a share of junk and edges -----------

POOL = ["fz0", "fz1", "FZ1", "fz-2", "Fz_3"]  # shared by queues and topics on purpose
BAD_NAMES = ["", "0fz", "-fz", "f" * 65, "fz 0", "fz.0", "fzé", "ｆｚ", "fz\n", "fz%00"]
INT_EDGES = ["0", "1", "-1", "-0", "15", "16", "17", "60", "1024", "3600", "3601", "43200", "65536",
             "65537", "1296000", "1000000000", "2147483648", "9" * 18, "9" * 19, "1" + "0" * 40,
             "+5", " 5", "5 ", "0x10", "1e3", "1.5", "１２", "٣", "²", "", "NaN", "-"]
JUNK = st.text(max_size=30) | st.text(alphabet=string.printable, max_size=30) | st.binary(max_size=20).map(
    lambda b: b.decode("latin-1"))


def mostly(valid: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`valid` seven times in eight (a call has a few such choices: most calls stay valid)."""
    return st.integers(0, 7).flatmap(lambda k: odd if k == 7 else valid)  # shrinks towards valid


def _sized(n: int) -> str:
    return ("é" * (n // 2)) if n % 7 == 3 else "x" * n


def _in(lo: int, hi: int) -> st.SearchStrategy[str]:
    return mostly(st.integers(lo, hi).map(str), st.sampled_from([str(lo - 1), str(hi + 1), *INT_EDGES]))


ints = st.integers(-3, 40).map(str) | st.sampled_from(INT_EDGES)
names = mostly(st.sampled_from(POOL), st.sampled_from(BAD_NAMES) | JUNK)
bodies = mostly(st.text(min_size=1, max_size=40),
                st.just("") | st.sampled_from([1023, 1024, 1025, 65536, 65537, 70000]).map(_sized)
                | st.text(alphabet="\x00\x7f\u2028\ufeff\U0001f600\"\\<&=+%", max_size=10))
handles = (st.integers(0, 10**22).map(str) | st.text(alphabet=string.digits, min_size=0, max_size=30)
           | st.sampled_from(["", "0", "x" * 11, "-12345678901", "1" * 11, "１" * 12]))
tags = mostly(st.sampled_from(["t1", "t2", "T1", "x" * 16]), st.sampled_from(["", "x" * 17, "标签", "a b"]) | JUNK)
keys = mostly(st.lists(st.sampled_from(["a", "b", "*", "#"]), max_size=4).map(".".join),
              st.lists(st.sampled_from(["a", "", "a*", "##", "é"]), max_size=17).map(".".join) | JUNK)
endpoints = mostly(st.sampled_from(POOL), st.sampled_from(
    ["http://127.0.0.1:1/hook", "https://127.0.0.1:1", "http://", "ftp://x", "http:// 127.0.0.1", "", "x" * 501]))

VALUES = {
    "queuename": names, "topicname": names, "subscriptionname": names,
    "msgbody": bodies, "receipthandle": handles, "msgtag": tags, "filtertag": tags,
    "routingkey": keys, "bindingkey": keys, "endpoint": endpoints,
    "searchword": st.sampled_from(["", "fz", "1", "%", "Z_"]) | JUNK,
    "protocol": mostly(st.sampled_from(["queue", "QUEUE"]), st.sampled_from(["http", "https", "ftp", ""])),
    "notifystrategy": mostly(st.sampled_from(["BACKOFF_RETRY", "exponential_decay_retry"]), st.just("NONE") | JUNK),
    "notifycontentformat": mostly(st.sampled_from(["SIMPLIFIED", "simplified"]), st.sampled_from(["JSON", "XML"])),
    "filtertype": mostly(st.sampled_from(["1", "2"]), st.sampled_from(["0", "3", "x", ""])),
    "delayseconds": mostly(st.sampled_from(["0", "0", "1", "3600"]), ints),
    "numofmsg": _in(1, 16), "offset": _in(0, 30), "limit": _in(1, 50),
    "startconsumetime": mostly(st.integers(-60, 5).map(lambda d: str(int(time.time()) + d)), ints),
    **{name.lower(): _in(lo, hi) for name, (_, lo, hi) in {**QUEUE_SETTINGS, **TOPIC_SETTINGS}.items()},
    "action": st.sampled_from(sorted(ACTIONS)),
}


def value_for(name: str) -> st.SearchStrategy[str]:
    return VALUES.get(name.lower().split(".")[0], ints | JUNK)


def any_case(word: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda fs: "".join(c.swapcase() if f else c for c, f in zip(word, fs)))
    return mostly(st.sampled_from([word, word.lower(), word.upper()]), flips)


INDEX_JUNK = ["x", "", "-1", "01", "１", " 1", "1.5", "99"]


@st.composite
def list_param(draw, base: str) -> list[tuple[str, str]]:
    """`base.i` pairs: 0 to 18 items from 1 (or 0), sometimes with a gap or a junk index."""
    n = draw(st.sampled_from([1, 1, 2, 3, 5, 16]) | st.integers(0, 18))
    start = draw(st.sampled_from([1, 1, 1, 0]))
    indices = [str(i) for i in range(start, start + n)]
    if indices and draw(st.integers(0, 5)) == 5:
        indices[draw(st.integers(0, len(indices) - 1))] = draw(st.sampled_from(INDEX_JUNK))
    return [(f"{draw(any_case(base))}.{i}", draw(value_for(base))) for i in indices]


@st.composite
def grammar_call(draw) -> list[tuple[str, str]]:
    """One action of the table with its parameters, mostly right, sometimes not."""
    action = draw(st.sampled_from(sorted(SCHEMA)))
    pairs = [("Action", draw(any_case(action)))]
    for param in SCHEMA[action]:
        optional = param.startswith("?")
        param = param.lstrip("?")
        if draw(st.integers(0, 9)) >= (4 if optional else 9):
            continue  # left out
        if param.endswith(".n"):
            pairs += draw(list_param(param[:-2]))
        else:
            pairs.append((draw(any_case(param)), draw(value_for(param))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # extras: junk, a known name, or a duplicate
        kind = draw(st.integers(0, 2))
        if kind == 0:
            pairs.append((draw(JUNK), draw(JUNK)))
        elif kind == 1:
            name = draw(st.sampled_from(PARAM_NAMES))
            pairs.append((draw(any_case(name)), draw(value_for(name))))
        else:
            key, value = draw(st.sampled_from(pairs))
            pairs.append((draw(any_case(key)), value))
    return draw(st.permutations(pairs))


@st.composite
def junk_call(draw) -> list[tuple[str, str]]:
    """Parameters with no grammar at all, perhaps with an Action."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAM_NAMES) | JUNK, ints | JUNK), max_size=6))
    if draw(st.booleans()):
        pairs.insert(0, ("Action", draw(st.sampled_from(sorted(SCHEMA)) | JUNK)))
    return pairs


def no_long_polls(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A valid positive pollingWaitSeconds would park the call: make it 0 (see the docstring)."""
    out = []
    for key, value in pairs:
        if key.lower() == "pollingwaitseconds":
            digits = value.removeprefix("-")
            if digits.isascii() and digits.isdigit() and len(digits) <= 18 and 0 < int(value) <= 30:
                value = "0"
        out.append((key, value))
    return out


CORRUPTIONS = ["%", "%z", "%zz", "%f", "%ff", "%c3%28", "%ed%a0%80", "%00", "%e2%82", "&&", "==", "+", "&=&"]
RAW_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xe2\x82"]


@st.composite
def encoded(draw, pairs: list[tuple[str, str]]) -> bytes:
    how = draw(st.sampled_from(["plus"] * 6 + ["quote", "raw", "corrupt", "bytes"]))
    if how == "quote":
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()
    if how == "raw":  # unescaped: '&', '=', '%' and '+' inside values change the meaning
        return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    text = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    if how == "corrupt":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(CORRUPTIONS)) + text[at:]
    data = text.encode()
    if how == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(RAW_BYTES)) + data[at:]
    return data


CONTENT_TYPES = [None, None, "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
                 "application/json", "text/plain; charset=latin-1", "multipart/form-data; boundary=x", "*/*", "x"]


@st.composite
def cmq_request(draw) -> Request:
    kind = draw(st.integers(0, 9))
    if kind < 7:
        pairs = draw(grammar_call())
    elif kind < 9:
        pairs = draw(junk_call())
    else:
        pairs = []
    data = draw(encoded(no_long_polls(pairs)))
    method = draw(st.sampled_from(["POST"] * 10 + ["GET", "GET", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = PATH
    if len(data) > MAX_BODY // 4:
        method = "POST"  # a request line over the limit is refused by HTTP itself (400), before us
    elif method == "GET" or draw(st.integers(0, 9)) == 9:  # in the query string (a POST with no body reads it)
        path = f"{PATH}?{quote_from_bytes(data, safe='=&%+')}"
        data = b"" if method == "GET" or draw(st.booleans()) else data
    headers = {}
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers["Content-Type"] = content_type
    return Request(method, path, data, headers)


# -- checks of successful replies ----------------------------------------------------------------

def _ints(data: dict, *names: str) -> None:
    for name in names:
        assert type(data[name]) is int and data[name] >= 0, (name, data)


def _message(m: dict) -> None:
    assert type(m["msgBody"]) is str and m["msgBody"], m
    assert type(m["msgId"]) is str and type(m["receiptHandle"]) is str, m
    _ints(m, "enqueueTime", "firstDequeueTime", "nextVisibleTime", "dequeueCount")


def check_success(action: str, data: dict) -> None:
    """The members an SDK reads from a success, with their types."""
    if action == "sendmessage":
        assert type(data["msgId"]) is str
    elif action in ("batchsendmessage", "batchpublishmessage"):
        assert data["msgList"] and all(type(m["msgId"]) is str for m in data["msgList"])
    elif action == "receivemessage":
        _message(data)
    elif action == "batchreceivemessage":
        assert 1 <= len(data["msgInfoList"]) <= 16
        for m in data["msgInfoList"]:
            _message(m)
    elif action == "getqueueattributes":
        _ints(data, "activeMsgNum", "inactiveMsgNum", "delayMsgNum", "rewindMsgNum", *QUEUE_SETTINGS)
    elif action in ("listqueue", "listtopic"):
        listed = data["queueList" if action == "listqueue" else "topicList"]
        assert type(data["totalCount"]) is int and len(listed) <= data["totalCount"]
    elif action == "createqueue":
        assert data["queueId"].startswith("queue-")


# -- the broker -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live():
    with LogWatch() as watch, broker_thread(max_request_bytes=MAX_BODY) as b:
        client = Http(b.host, b.port)
        yield b, client, watch
        client.close()
    report("CMQ requests", TALLY)
    report("CMQ through the SDK", SDK_TALLY)


def test_grammar_covers_every_action():
    """A new action in the table must be taught to the fuzzer."""
    assert {a.lower() for a in SCHEMA} == set(ACTIONS)


@budget(ci=500, deep=10000)
@given(st.lists(cmq_request(), min_size=1, max_size=4))
def test_random_requests_get_wellformed_replies(live, requests):
    broker, client, watch = live
    watch.take()  # what an earlier, failed example left
    TALLY["examples"] += 1
    for req in requests:
        reply = client.send(req)
        watch.assert_clean(req)  # first: an internal error's traceback is there
        parsed = cmq_reply(reply, req)
        action = _action_of(req.path, req.body)
        TALLY.call(f"{action if action in ACTIONS else 'other'}: {parsed['code']}")
        if parsed["code"] == 0 and action:
            check_success(action, parsed)


def _action_of(path: str, data: bytes) -> str | None:
    """The action a request named (lower case), as well as a lenient parser can tell."""
    text = (data or path.partition("?")[2].encode()).decode("utf-8", "replace")
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.lower() == "action":
            return value.lower()
    return None


def test_oversized_body_is_a_protocol_error_and_the_connection_goes_on(live):
    broker, client, watch = live
    big = b"Action=SendMessage&queueName=fz0&msgBody=" + b"x" * (MAX_BODY + 10)
    data = cmq_reply(client.request("POST", PATH, big))
    assert data["code"] == 4000 and "larger than the limit" in data["message"]
    data = cmq_reply(client.request("POST", PATH, b"Action=ListQueue"))
    assert data["code"] == 0
    watch.assert_clean()


# -- through the official SDK ---------------------------------------------------------------------

sdk_ints = st.integers(-2, 70000) | st.sampled_from([0, 1, 30, 1024, 65536, 43200, 345600, 1296000, 10**9, 2**31])
sdk_bodies = st.text(min_size=0, max_size=30) | st.sampled_from([1025, 65537]).map(_sized)
sdk_tags = st.lists(tags, max_size=6)


def _setting(name: str) -> st.SearchStrategy[int]:
    _, lo, hi = {**QUEUE_SETTINGS, **TOPIC_SETTINGS}[name]
    return mostly(st.integers(lo, hi), sdk_ints)


def _queue_meta(draw) -> QueueMeta:
    meta = QueueMeta()
    for name in ("maxMsgHeapNum", "visibilityTimeout", "maxMsgSize", "msgRetentionSeconds", "rewindSeconds"):
        if draw(st.booleans()):
            setattr(meta, name, draw(_setting(name)))
    meta.pollingWaitSeconds = 0  # see the module docstring
    return meta


sdk_delays = mostly(st.just(0), st.sampled_from([-1, 1, 3600, 3601]))  # a delayed message is not received here


@st.composite
def sdk_call(draw):
    """(description, fn): one SDK call with random arguments on pool names."""
    name = draw(mostly(st.sampled_from(POOL), st.sampled_from(BAD_NAMES[:4])))
    # Creates, sends and receives come up more often, so that receives find messages.
    op = draw(st.sampled_from([0, 0, 3, 3, 4, 5, 5, 6, 6, 12, 15, 17]) | st.integers(0, 21))

    def q(a):
        return a.get_queue(name)

    def t(a):
        return a.get_topic(name)

    if op == 0:
        meta = _queue_meta(draw)
        return "queue.create", lambda a: q(a).create(meta)
    if op == 1:
        return "queue.get_attributes", lambda a: q(a).get_attributes()
    if op == 2:
        meta = _queue_meta(draw)
        return "queue.set_attributes", lambda a: q(a).set_attributes(meta)
    if op == 3:
        body, delay = draw(sdk_bodies), draw(sdk_delays)
        return "queue.send_message", lambda a: q(a).send_message(Message(body), delay)
    if op == 4:
        msgs, delay = draw(st.lists(sdk_bodies, max_size=17)), draw(sdk_delays)
        return "queue.batch_send_message", lambda a: q(a).batch_send_message([Message(b) for b in msgs], delay)
    if op == 5:
        return "queue.receive_message", lambda a: q(a).receive_message(polling_wait_seconds=0)
    if op == 6:
        n = draw(st.integers(-1, 17))
        return "queue.batch_receive_message", lambda a: q(a).batch_receive_message(n, polling_wait_seconds=0)
    if op == 7:
        handle = draw(handles)
        return "queue.delete_message", lambda a: q(a).delete_message(handle)
    if op == 8:
        hs = draw(st.lists(handles, max_size=17))
        return "queue.batch_delete_message", lambda a: q(a).batch_delete_message(hs)
    if op == 9:
        return "queue.delete", lambda a: q(a).delete()
    if op == 10:
        when = draw(st.integers(-1, 2 * 10**9))
        return "queue.rewindQueue", lambda a: q(a).rewindQueue(when)
    if op == 11:
        search, limit, offset = draw(st.sampled_from(["", "fz"])), draw(st.integers(-1, 60)), draw(
            st.sampled_from(["", 0, 1, 5]))
        return "account.list_queue", lambda a: a.list_queue(search, limit, offset)
    if op == 12:
        meta = TopicMeta()
        meta.maxMsgSize = draw(_setting("maxMsgSize"))
        return "topic.create", lambda a: t(a).create(meta)
    if op == 13:
        return "topic.get_attributes", lambda a: t(a).get_attributes()
    if op == 14:
        return "topic.delete", lambda a: t(a).delete()
    if op == 15:
        body, msg_tags, key = draw(sdk_bodies), draw(sdk_tags), draw(st.sampled_from(["", "a.b", "a.*"]))
        return "topic.publish_message", lambda a: t(a).publish_message(TopicMessage(body, msg_tags), key)
    if op == 16:
        msgs, msg_tags = draw(st.lists(sdk_bodies, max_size=17)), draw(sdk_tags)
        return "topic.batch_publish_message", lambda a: t(a).batch_publish_message(
            [TopicMessage(b) for b in msgs], msg_tags)
    sub_name = draw(st.sampled_from(POOL))
    if op in (17, 18):
        meta = SubscriptionMeta()
        meta.Protocal = draw(st.sampled_from(["queue", "queue", "http"]))
        meta.Endpoint = draw(endpoints)
        meta.NotifyContentFormat = draw(st.sampled_from(["SIMPLIFIED", "JSON"]))
        meta.FilterTag = draw(sdk_tags)
        meta.bindingKey = draw(st.lists(st.sampled_from(["a", "a.*", "#"]), max_size=6))
        if op == 17:
            return "subscription.create", lambda a: a.get_subscription(name, sub_name).create(meta)
        return "subscription.set_attributes", lambda a: a.get_subscription(name, sub_name).set_attributes(meta)
    if op == 19:
        return "subscription.get_attributes", lambda a: a.get_subscription(name, sub_name).get_attributes()
    if op == 20:
        return "subscription.clearFilterTags", lambda a: a.get_subscription(name, sub_name).clearFilterTags()
    return "subscription.delete", lambda a: a.get_subscription(name, sub_name).delete()


@pytest.fixture(scope="module")
def sdk_account(live):
    broker, _, _ = live
    return broker.account()


@budget(ci=100, deep=3000)
@given(st.lists(sdk_call(), min_size=1, max_size=6))
def test_random_sdk_calls_parse(live, sdk_account, calls):
    _, _, watch = live
    watch.take()
    SDK_TALLY["examples"] += 1
    for what, call in calls:
        try:
            call(sdk_account)
            SDK_TALLY.call(f"{what}: 0")
        except CMQServerException as exc:
            assert exc.code != 6000, (what, exc)
            SDK_TALLY.call(f"{what}: {exc.code}")
        except CMQClientParameterException:
            SDK_TALLY.call(f"{what}: refused by the SDK")  # its own check, before anything is sent
        watch.assert_clean(what)


def test_sdk_get_mode_carries_a_big_message(live):
    """Regression: the SDK's GET mode puts the message into the request line; past aiohttp's 8 KiB
    default the broker answered a bare HTTP 400, which the SDK reports as a network error."""
    broker, _, watch = live
    account = broker.account()
    account.get_client().set_method("GET")
    queue = account.get_queue("fzget")
    queue.create(QueueMeta())
    try:
        body = "x" * 60_000
        queue.send_message(Message(body))
        assert queue.receive_message(polling_wait_seconds=0).msgBody == body
    finally:
        queue.delete()
    watch.assert_clean()
