"""A data directory written by the release (79c5edf, journal format 1) still opens, with everything.

The fixtures in tests/fixtures/release-1-datadir/ were made by that release's own code (make.py
there, which also wrote manifest.json: what a client saw just before the release broker stopped):

- `snapshot/`: stopped with SIGTERM; the state is in `snapshot-*.msgpack`, the log after it is empty;
- `log/`: killed with SIGKILL after every reply; there is no snapshot, the state is in log records.

Each test copies a fixture into tmp_path first (recovery may cut a torn tail or write snapshots:
the committed files are never opened in place) and checks through the official SDKs (CMQ, and
Batch API 3.0) that queues with their attributes, every message (id, body, state, dequeue count,
times, receipt handles still in flight), topics, subscriptions, the pending HTTP pushes (with the
attempts already made) and the Batch environment, template and jobs are back.

Time. The data holds wall-clock times: messages in flight for 12 h, delayed for 1 h, kept 15 days
(the most a queue keeps anything), pushes pending until their topic's retention (1 day) ends. Two
tests per fixture:

- `test_release_datadir_at_its_own_time` runs `python -m broker serve` with `time.time` moved back
  to just after the fixture's stop, so every state is exactly the recorded one, whenever this runs:
  exact counts, "every message is back", receipt handles that still delete, the pushes resuming
  (the one to an endpoint this test opens is delivered; the one to a refusing endpoint gives up
  after exactly the retries it had left);
- `test_release_datadir_today` opens it in-process (`broker.testing.broker_thread`) on the real
  clock; each message's expected state is computed from its recorded times (in flight or delayed
  until its nextVisibleTime, gone after its queue's retention), so it holds on any date, and only
  checks what cannot have changed otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.topic import Message as TopicMessage
from tencentcloud.batch.v20170312 import batch_client, models
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

import broker
from broker.testing import broker_thread

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "release-1-datadir"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
KINDS = ("snapshot", "log")
# The tree under test: the one `broker` was imported from (the subprocess runs the same one).
TREE = Path(broker.__file__).resolve().parent.parent
ANY_ID, ANY_KEY = "AKIDanything", "anything"
DEADLINE = 10.0
SLACK = 2  # seconds of tolerance around a recorded time (times are shown as whole seconds)

QUEUE_SETTINGS = ("queueName", "queueId", "maxMsgHeapNum", "pollingWaitSeconds", "visibilityTimeout", "maxMsgSize",
                  "msgRetentionSeconds", "rewindSeconds", "createTime", "lastModifyTime")
COUNTERS = {"ready": "activeMsgNum", "inflight": "inactiveMsgNum", "delayed": "delayMsgNum", "kept": "rewindMsgNum"}
VOLATILE = ("code", "message", "requestId", "msgCount")  # msgCount: pushes pending, checked on its own
EVENTS_QUEUE = "fx-batch-events"  # gets the interrupted job's JOB_FAILED event after the restart

# `python -m broker` with time.time (and time_ns) moved by a fixed offset, monotonic untouched.
SHIFTED_BROKER = """
import runpy, sys, time
offset = float(sys.argv[1])
real, real_ns = time.time, time.time_ns
time.time = lambda: real() + offset
time.time_ns = lambda: real_ns() + int(offset * 1e9)
sys.argv = ["broker", *sys.argv[2:]]
runpy.run_module("broker", run_name="__main__", alter_sys=True)
"""
LISTENING = re.compile(r"cmq-broker listening on (http://\S+:(\d+))")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # The Batch SDK (requests) honours HTTP_PROXY unless NO_PROXY covers the host.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


# -- the fixture on disk -----------------------------------------------------------------------------


def copy_fixture(kind: str, tmp_path: Path) -> Path:
    source = FIXTURE / kind
    names = sorted(p.name for p in source.iterdir())
    snapshots = [n for n in names if n.startswith("snapshot-")]
    logs = {n: (source / n).stat().st_size for n in names if n.startswith("wal-")}
    if kind == "snapshot":  # recovery starts from the snapshot and replays nothing
        assert len(snapshots) == 1 and sum(logs.values()) == 0, names
    else:  # recovery replays log records onto an empty state
        assert not snapshots and sum(logs.values()) > 0, names
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    return data_dir


# -- clients -----------------------------------------------------------------------------------------


def cmq_call(account: Account, action: str, params: dict) -> dict:
    """An action the SDK has no method for (PeekMessage, a cmq-broker extension), signed by the SDK."""
    client = account.get_client()
    resp = client.request(action, params)
    client.check_status(resp)
    return json.loads(resp.data)


def batch_for(url: str) -> batch_client.BatchClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=url.removeprefix("http://")))
    return batch_client.BatchClient(credential.Credential(ANY_ID, ANY_KEY), "ap-guangzhou", profile)


def bcall(client: batch_client.BatchClient, action: str, params: dict) -> dict:
    req = getattr(models, f"{action}Request")()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        req.from_json_string(json.dumps(params))
    reply = json.loads(getattr(client, action)(req).to_json_string())
    reply.pop("RequestId", None)
    return reply


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.02)
    return result


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    """/metrics as {(name without _total, sorted labels): value}."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+?)(?:_total)?(?:\{(.*)\})?\s+(\S+)", line)
        if m and not line.startswith("#"):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
            out[m.group(1), labels] = float(m.group(3))
    return out


def sub_metric(values: dict, name: str, topic: str, sub: str, **extra: str) -> float:
    labels = tuple(sorted({"topic": topic, "subscription": sub, **extra}.items()))
    return values.get((f"cmq_broker_{name}", labels), 0.0)


def contains(actual: Any, expected: Any, where: str = "") -> list[str]:
    """Where `actual` differs from `expected`; keys `expected` lacks (newer fields) are fine."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing")
            else:
                out += contains(actual[key], value, f"{where}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} != {expected!r}"]
        return [d for i, (a, e) in enumerate(zip(actual, expected)) for d in contains(a, e, f"{where}[{i}]")]
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


# -- expectations from the recorded times --------------------------------------------------------------


class Clock:
    """The broker's wall clock during a test is somewhere in [lo, hi]."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.lo = time.time() + offset

    @property
    def hi(self) -> float:
        return time.time() + self.offset

    def side(self, t: float) -> set[str]:
        """{"before"}, {"after"} or both when `t` is too close to the clock to tell."""
        if self.hi < t - SLACK:
            return {"before"}
        if self.lo > t + SLACK:
            return {"after"}
        return {"before", "after"}


def expected_states(msg: dict, attrs: dict, clock: Clock) -> set[str]:
    """What a recorded message may be now: its state, "ready" once its due time passed, "gone" once
    its queue's retention passed."""
    states = set()
    if "before" in clock.side(msg["enqueueTime"] + attrs["msgRetentionSeconds"]):
        if msg["state"] in ("inflight", "delayed"):
            due = clock.side(msg["nextVisibleTime"])
            states |= {msg["state"]} if "before" in due else set()
            states |= {"ready"} if "after" in due else set()
        else:
            states.add(msg["state"])
    if "after" in clock.side(msg["enqueueTime"] + attrs["msgRetentionSeconds"]):
        states.add("gone")
    return states


# -- the checks --------------------------------------------------------------------------------------


def check_batch(bc: batch_client.BatchClient, fx: dict) -> str:
    """Environment, template and jobs are back; the jobs that were running have lost their attempt.
    Returns the interrupted job's id (its JOB_FAILED event goes to EVENTS_QUEUE)."""
    b = fx["batch"]
    [template] = bcall(bc, "DescribeTaskTemplates", {"TaskTemplateIds": [b["template_id"]]})["TaskTemplateSet"]
    assert not contains(template, b["template"]), contains(template, b["template"])

    def env() -> dict:
        e = bcall(bc, "DescribeComputeEnv", {"EnvId": b["env_id"]})
        return e if e["ComputeNodeMetrics"]["RunningCount"] == 2 else {}

    got = wait_until(env, "the environment's two nodes to run again")
    by_id = lambda nodes: sorted(nodes, key=lambda n: n["ComputeNodeId"])  # noqa: E731
    got["ComputeNodeSet"] = by_id(got["ComputeNodeSet"])
    want = {**b["env"], "ComputeNodeSet": by_id(b["env"]["ComputeNodeSet"])}
    assert not contains(got, want), contains(got, want)

    finished = bcall(bc, "DescribeJob", {"JobId": b["finished_job"]})
    assert finished["JobState"] == "SUCCEED"
    assert not contains(finished, b["finished_describe"]), contains(finished, b["finished_describe"])

    # Running when the release stopped: the attempt is lost; no retry left -> FAILED ...
    interrupted = b["interrupted_job"]
    wait_until(lambda: bcall(bc, "DescribeJob", {"JobId": interrupted})["JobState"] == "FAILED",
               "the interrupted job to fail")
    [inst] = bcall(bc, "DescribeTask", {"JobId": interrupted, "TaskName": "long"})["TaskInstanceSet"]
    assert inst["TaskInstanceState"] == "FAILED" and "restart" in inst["StateReason"], inst
    described = bcall(bc, "DescribeJob", {"JobId": interrupted})
    for key in ("JobId", "JobName", "CreateTime", "Zone", "Priority", "Tags"):
        assert described[key] == b["interrupted_describe"][key], key
    # ... one retry left -> run again (at once: batch_time_scale 0) and succeed.
    wait_until(lambda: bcall(bc, "DescribeJob", {"JobId": b["retried_job"]})["JobState"] == "SUCCEED",
               "the interrupted job with a retry left to run again and succeed")
    return interrupted


def check_event(body: str, job_id: str) -> None:
    [event] = json.loads(base64.b64decode(body))["Events"]
    assert (event["EventName"], event["Batch"].get("JobId")) == ("JOB_FAILED", job_id), event


def check_queues(account: Account, fx: dict, clock: Clock, interrupted: str, exact: bool) -> None:
    total, listed, _ = account.list_queue(limit=50)
    assert sorted(q["queueName"] for q in listed) == sorted(fx["queues"]) and total == len(fx["queues"])
    for name in fx["deleted_queues"]:
        with pytest.raises(CMQServerException):
            account.get_client().get_queue_attributes({"queueName": name})
    recovered = recorded = 0
    for name, q in fx["queues"].items():
        want_attrs = q["attributes"]
        attrs = account.get_client().get_queue_attributes({"queueName": name})
        for key in QUEUE_SETTINGS:
            assert attrs[key] == want_attrs[key], (name, key, attrs[key], want_attrs[key])
        peeked = {m["msgId"]: m for m in
                  cmq_call(account, "PeekMessage", {"queueName": name, "numOfMsg": 100})["msgInfoList"]}
        low = {s: 0 for s in COUNTERS}
        high = dict(low)
        for msg in q["messages"]:
            recorded += 1
            states = expected_states(msg, want_attrs, clock)
            if exact:
                assert states == {msg["state"]}, (name, msg, states, "the clock shift did not work")
            for s in states - {"gone"}:
                high[s] += 1
            if len(states) == 1 and "gone" not in states:
                low[next(iter(states))] += 1
            if msg["state"] == "kept":
                continue  # PeekMessage does not show kept messages: counted, and rewound below
            got = peeked.pop(msg["msgId"], None)
            if got is None:
                assert "gone" in states, (name, msg, "lost")
                continue
            recovered += 1
            assert got["state"] in states, (name, got, states)
            for key in ("msgBody", "dequeueCount", "enqueueTime", "firstDequeueTime"):
                assert got[key] == msg[key], (name, key, got, msg)
            if got["state"] == msg["state"] and msg["state"] in ("inflight", "delayed"):
                assert abs(got["nextVisibleTime"] - msg["nextVisibleTime"]) <= 1, (name, got, msg)
        for gone in q["gone"]:
            assert gone["msgId"] not in peeked, (name, gone, "came back")
        if name == EVENTS_QUEUE:  # the event of the job that failed at the restart, and nothing else
            [event] = peeked.values()
            check_event(event["msgBody"], interrupted)
            peeked.clear()
        assert not peeked, (name, "messages the release never had", peeked)
        for state, counter in COUNTERS.items():
            assert low[state] <= attrs[counter] - (name == EVENTS_QUEUE and state == "ready") <= high[state], (
                name, counter, attrs[counter], low[state], high[state])
        if exact and name != EVENTS_QUEUE:
            assert attrs["minMsgTime"] == want_attrs["minMsgTime"], name
    if exact:  # every message is back
        kept = sum(1 for q in fx["queues"].values() for m in q["messages"] if m["state"] == "kept")
        assert recovered + kept == recorded


def check_topics(account: Account, fx: dict) -> None:
    total, listed, _ = account.list_topic(limit=50)
    assert sorted(t["topicName"] for t in listed) == sorted(fx["topics"]) and total == len(fx["topics"])
    for name in fx["deleted_topics"]:
        with pytest.raises(CMQServerException):
            account.get_client().get_topic_attributes({"topicName": name})
    for topic, t in fx["topics"].items():
        attrs = account.get_client().get_topic_attributes({"topicName": topic})
        want = {k: v for k, v in t["attributes"].items() if k not in VOLATILE}
        assert not contains(attrs, want), (topic, contains(attrs, want))
        total, subs, _ = account.get_topic(topic).list_subscription(limit=50)
        assert sorted(s["subscriptionName"] for s in subs) == sorted(t["subscriptions"]), topic
        for sub, recorded in t["subscriptions"].items():
            attrs = account.get_client().get_subscription_attributes({"topicName": topic, "subscriptionName": sub})
            want = {k: v for k, v in recorded.items() if k not in VOLATILE}
            assert not contains(attrs, want), (topic, sub, contains(attrs, want))
    for topic, subs in fx["deleted_subscriptions"].items():
        for sub in subs:
            with pytest.raises(CMQServerException):
                account.get_client().get_subscription_attributes({"topicName": topic, "subscriptionName": sub})


def sub_pending(account: Account, topic: str, sub: str) -> int:
    return account.get_client().get_subscription_attributes({"topicName": topic, "subscriptionName": sub})["msgCount"]


# -- at the fixture's own time -------------------------------------------------------------------------


class Hook:
    """The fixture's push endpoint (a fixed port), listening, if that port is free here."""

    def __init__(self, port: int):
        self.got: list[tuple[str, dict, bytes]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with hook.cond:
                    hook.got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    hook.cond.notify_all()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, msg_id: str, timeout: float = DEADLINE) -> list:
        """The pushes of message `msg_id` received, once there is one (or after `timeout`)."""
        def mine() -> list:
            return [g for g in self.got if g[1].get("x-cmq-message-id") == msg_id]

        with self.cond:
            self.cond.wait_for(mine, timeout)
            return mine()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hook_endpoint(port: int) -> Iterator[Hook | None]:
    try:
        hook = Hook(port)
    except OSError:  # the port is taken on this machine: the delivery cannot be watched
        yield None
        return
    try:
        yield hook
    finally:
        hook.close()


def refuses(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def shifted_broker(data_dir: Path, offset: float, *args: str) -> Iterator[str]:
    """`python -m broker serve` of the tree under test, its wall clock moved by `offset` seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    stderr = data_dir.parent / "broker.stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SHIFTED_BROKER, repr(offset), "serve", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir), *args],
            cwd=TREE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        url = None
        for line in proc.stdout:  # the announcement is the first line
            if m := LISTENING.search(line):
                url = m.group(1)
                break
        assert url, f"the broker did not start:\n{stderr.read_text()}"
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining
        yield url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, f"the broker did not stop cleanly:\n{stderr.read_text()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.mark.parametrize("kind", KINDS)
def test_release_datadir_at_its_own_time(kind: str, tmp_path: Path) -> None:
    fx = MANIFEST["fixtures"][kind]
    data_dir = copy_fixture(kind, tmp_path)
    pushes = fx["pending_pushes"]
    hook_info = fx["hook"]
    # The broker's clock starts 2 s after the release's stop: every recorded state is still current.
    offset = fx["stopped_at"] + 2 - time.time()
    clock = Clock(offset)
    with hook_endpoint(hook_info["port"]) as hook, \
            shifted_broker(data_dir, offset, "--push-retry-scale", "0.001", "--push-timeout", "2",
                           "--batch-time-scale", "0") as url:
        account = Account(url, ANY_ID, ANY_KEY)
        interrupted = check_batch(batch_for(url), fx)
        check_queues(account, fx, clock, interrupted, exact=True)
        check_topics(account, fx)

        # The pending pushes resume where they were (retry gaps x0.001 here). The one to the
        # endpoint that listens now is delivered, once, as it was published before the stop.
        to_hook, to_refused = pushes["to-hook"], pushes["to-refused"]
        if hook is not None:
            # (Filtered by message id: the other fixture's broker pushes to the same port.)
            assert hook.wait(to_hook["msgId"]), "the push pending since the release stopped was not delivered"
            wait_until(lambda: sub_pending(account, "fx-tags", "to-hook") == 0, "the delivered push to settle")
            got = hook.wait(to_hook["msgId"])
            assert len(got) == 1, f"the pending push was delivered {len(got)} times: {got}"
            [(path, headers, body)] = got
            assert hook_info["url"].endswith(path), path
            payload = json.loads(body)
            assert (payload["msgId"], payload["msgBody"], payload["topicName"], payload["subscriptionName"]) == (
                to_hook["msgId"], to_hook["body"], to_hook["topic"], "to-hook"), payload
            assert abs(payload["publishTime"] - to_hook["published_at"]) <= SLACK, payload
            assert headers.get("x-cmq-message-tag") == "red", headers
        # The one to the refusing endpoint gives up after the retries it had left: BACKOFF_RETRY
        # makes 3, and the release had made `attempts` of them already.
        wait_until(lambda: sub_pending(account, "fx-tags", "to-refused") == 0, "the refused push to give up")
        m = metrics(url)
        assert sub_metric(m, "subscription_copies", "fx-tags", "to-refused", outcome="dropped") == 1
        if hook is not None and refuses(1):
            assert sub_metric(m, "subscription_copies", "fx-tags", "to-hook", outcome="delivered") == 1
            assert m["cmq_broker_push_failures", ()] == 3 - to_refused["attempts"], \
                "the refused push did not resume with the attempts it had made"
            assert m["cmq_broker_push_retries", ()] == (3 - to_refused["attempts"]) + 1

        # Receipt handles handed out by the release still delete their in-flight message.
        for name, q in fx["queues"].items():
            for msg in q["messages"]:
                if msg["state"] == "inflight":
                    account.get_queue(name).delete_message(msg["receiptHandle"])
        # Kept messages come back with RewindQueue, as they were.
        kept = [m for m in fx["queues"]["fx-rewind"]["messages"] if m["state"] == "kept"]
        rewind = account.get_queue("fx-rewind")
        rewind.rewindQueue(min(m["enqueueTime"] for m in kept))
        peeked = {m["msgId"]: m for m in cmq_call(account, "PeekMessage", {"queueName": "fx-rewind"})["msgInfoList"]}
        for msg in kept:
            got = peeked[msg["msgId"]]
            assert (got["state"], got["msgBody"], got["dequeueCount"]) == ("ready", msg["msgBody"], msg["dequeueCount"])
        # The oldest visible message of fx-main is delivered a third time.
        main = account.get_queue("fx-main").receive_message(polling_wait_seconds=0)
        assert (main.msgBody, main.dequeueCount) == ("visible again, second delivery", 3)
        # Filters and bindings still route.
        account.get_topic("fx-route").publish_message(TopicMessage("order paid"), routingKey="order.paid")
        account.get_topic("fx-route").publish_message(TopicMessage("not routed"), routingKey="order.paid.late")
        bodies = [m["msgBody"] for m in cmq_call(account, "PeekMessage", {"queueName": "fx-sub-route"})["msgInfoList"]]
        assert bodies[-1] == "order paid" and "not routed" not in bodies


# -- today ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_release_datadir_today(kind: str, tmp_path: Path) -> None:
    fx = MANIFEST["fixtures"][kind]
    data_dir = copy_fixture(kind, tmp_path)
    clock = Clock()
    # Push retries pushed far out: the pending ones stay pending while this looks.
    with broker_thread(data_dir=data_dir, push_retry_scale=1_000_000, batch_time_scale=0) as b:
        account = b.account(ANY_ID, ANY_KEY)
        interrupted = check_batch(b.batch_client(secret_id=ANY_ID, secret_key=ANY_KEY), fx)
        check_queues(account, fx, clock, interrupted, exact=False)
        check_topics(account, fx)
        m = metrics(b.url)
        for sub, push in fx["pending_pushes"].items():
            # A push past its topic's retention may be dropped on its next try (or at load).
            may_drop = "after" in clock.side(push["published_at"] + 86_400)
            assert sub_pending(account, push["topic"], sub) in ({0, 1} if may_drop else {1}), sub
            if not may_drop:
                assert sub_metric(m, "subscription_pending_copies", push["topic"], sub) == 1, sub
