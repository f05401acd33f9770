"""Observability end to end: `/metrics`, the access log and `--log-format json`.

Each test starts its own `python -m broker serve`, drives it with the official CMQ and Batch SDKs
(plain HTTP only where the SDKs cannot go: an action they do not have), scrapes `/metrics` as
Prometheus would, parses it with prometheus-client's own parser, and checks that the figures are
exactly what the test did. Log tests read the broker's stderr after stopping it.
"""

from __future__ import annotations

import datetime
import json
import logging
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message as QueueMessage
from cmq.subscription import SubscriptionMeta
from cmq.topic import Message as TopicMessage, TopicMeta
from prometheus_client.parser import text_string_to_metric_families
from tencentcloud.batch.v20170312 import models
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from helpers import (
    REPO_ROOT, Receiver, batch_client_for, clean_env, post_form, queue_meta, stop_process, wait_until,
)

WAIT = 10.0


# -- helpers ----------------------------------------------------------------------------------

def scrape(url: str) -> dict[tuple, float]:
    """GET /metrics → {(sample name, sorted label pairs): value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def stopped_stderr(broker) -> str:
    """Stop the broker (SIGTERM, so it logs its shutdown) and return everything it wrote to stderr."""
    assert stop_process(broker.proc, signal.SIGTERM) == 0
    return broker.stderr()


# -- /metrics ---------------------------------------------------------------------------------

def test_metrics_count_exactly_what_clients_did(start_broker):
    broker = start_broker(["--port", "0", "--push-retry-scale", "0.001"])
    account = broker.account()
    url = broker.url

    # Queue traffic: 4 sends (one delayed), 2 receives, 1 delete on a queue that keeps deleted
    # messages for rewind.
    queue = account.get_queue("orders")
    queue.create(queue_meta(rewindSeconds=3600))
    for i in range(3):
        queue.send_message(QueueMessage(f"m{i}"))
    queue.send_message(QueueMessage("later"), delayTime=100)
    first = queue.receive_message()
    queue.receive_message()
    queue.delete_message(first.receiptHandle)

    # Errors: a missing queue (its code, whatever the table says) and two unknown actions, which
    # must share one label rather than grow the label set.
    with pytest.raises(CMQServerException) as missing:
        account.get_queue("no-such-queue").send_message(QueueMessage("x"))
    missing_code = str(missing.value.code)
    assert post_form(url, Action="NoSuchAction")["code"] == 4000
    assert post_form(url, Action="AnotherMadeUpOne")["code"] == 4000

    # A topic: two queue subscribers get every message, an HTTP one only "web"-tagged ones,
    # and its endpoint fails the first push.
    for name in ("copy-a", "copy-b"):
        account.get_queue(name).create(queue_meta())
    topic = account.get_topic("events")
    topic.create(TopicMeta())
    for name in ("copy-a", "copy-b"):
        sub = SubscriptionMeta()
        sub.Protocal, sub.Endpoint, sub.NotifyContentFormat = "queue", name, "SIMPLIFIED"
        account.get_subscription("events", name).create(sub)
    with Receiver() as receiver:
        hook = receiver.route(fail_first=1, ok_status=204)  # 500 to the first push, 204 to every later one
        sub = SubscriptionMeta()
        sub.Protocal, sub.Endpoint, sub.FilterTag = "http", hook, ["web"]
        account.get_subscription("events", "hook").create(sub)
        topic.publish_message(TopicMessage("to queues only"))
        topic.publish_message(TopicMessage("to everyone", ["web"]))
        wait_until(lambda: value(scrape(url), "cmq_broker_push_deliveries_total") == 1, "the retried push",
                   WAIT, 0.02)
        assert [r.status for r in receiver.got(hook)] == [500, 204]

    # Batch: one call that works and one the API does not have.
    client = batch_client_for(url)
    assert client.DescribeJobs(models.DescribeJobsRequest()).TotalCount == 0
    with pytest.raises(TencentCloudSDKException) as unknown:
        client.call_json("NoSuchBatchAction", {})
    assert unknown.value.code == "InvalidAction"

    m = scrape(url)

    def requests(api: str, action: str, code: str) -> float | None:
        return value(m, "cmq_broker_requests_total", api=api, action=action, code=code)

    expected = {
        ("cmq", "CreateQueue", "0"): 3, ("cmq", "SendMessage", "0"): 4, ("cmq", "SendMessage", missing_code): 1,
        ("cmq", "ReceiveMessage", "0"): 2, ("cmq", "DeleteMessage", "0"): 1, ("cmq", "unknown", "4000"): 2,
        ("cmq", "CreateTopic", "0"): 1, ("cmq", "Subscribe", "0"): 3, ("cmq", "PublishMessage", "0"): 2,
        ("batch", "DescribeJobs", "0"): 1, ("batch", "unknown", "InvalidAction"): 1,
    }
    for labels, count in expected.items():
        assert requests(*labels) == count, labels
    served = {key for key in m if key[0] == "cmq_broker_requests_total"}
    assert len(served) == len(expected), sorted(served)  # nothing else was counted

    # The latency histogram holds the same requests, in cumulative buckets.
    for (api, action, code), count in expected.items():
        labels = dict(api=api, action=action, code=code)
        assert value(m, "cmq_broker_request_duration_seconds_count", **labels) == count
        assert value(m, "cmq_broker_request_duration_seconds_bucket", le="+Inf", **labels) == count
        assert 0 < value(m, "cmq_broker_request_duration_seconds_sum", **labels) < WAIT * count
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                         if k[0] == "cmq_broker_request_duration_seconds_bucket" and
                         {n: v for n, v in k[1] if n != "le"} == labels)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)

    depth = {state: value(m, "cmq_broker_queue_messages", queue="orders", state=state)
             for state in ("active", "inactive", "delayed", "rewindable")}
    assert depth == {"active": 1, "inactive": 1, "delayed": 1, "rewindable": 1}
    for name in ("copy-a", "copy-b"):
        assert value(m, "cmq_broker_queue_messages", queue=name, state="active") == 2
    assert value(m, "cmq_broker_queues") == 3
    assert value(m, "cmq_broker_topics") == 1

    assert value(m, "cmq_broker_topic_published_messages_total", topic="events") == 2
    assert value(m, "cmq_broker_topic_fanout_copies_total", topic="events", protocol="queue") == 4
    assert value(m, "cmq_broker_topic_fanout_copies_total", topic="events", protocol="http") == 1
    for sub, delivered in (("copy-a", 2), ("copy-b", 2), ("hook", 1)):
        assert value(m, "cmq_broker_subscription_copies_total", topic="events", subscription=sub,
                     outcome="delivered") == delivered
        assert value(m, "cmq_broker_subscription_copies_total", topic="events", subscription=sub,
                     outcome="dropped") == 0
        assert value(m, "cmq_broker_subscription_pending_copies", topic="events", subscription=sub) == 0

    assert value(m, "cmq_broker_push_deliveries_total") == 1
    assert value(m, "cmq_broker_push_failures_total") == 1
    assert value(m, "cmq_broker_push_retries_total") == 1
    assert value(m, "cmq_broker_push_dropped_total") == 0
    assert value(m, "cmq_broker_push_pending") == 0

    assert value(m, "cmq_broker_batch_jobs", state="RUNNING") == 0
    assert value(m, "cmq_broker_batch_compute_nodes", state="RUNNING") == 0
    assert value(m, "cmq_broker_info", version=__import__("broker").__version__) == 1
    assert 0 < value(m, "cmq_broker_uptime_seconds") < 120
    assert not any(k[0].startswith("cmq_broker_wal_") for k in m)  # in memory: no log, no fsync figures

    # Scraping changes nothing it reports: the request counters did not count the scrapes.
    assert scrape(url).get(("cmq_broker_requests_total", (("action", "SendMessage"), ("api", "cmq"),
                                                           ("code", "0")))) == 4


def test_metrics_with_data_dir_and_secrets_show_fsyncs_without_a_signature(start_broker, tmp_path):
    broker = start_broker(["--port", "0", "--data-dir", str(tmp_path / "data"),
                           "--secret-id", "metrics-id", "--secret-key", "metrics-key"])
    queue = broker.account("metrics-id", "metrics-key").get_queue("durable")
    queue.create(queue_meta())
    queue.send_message(QueueMessage("one"))
    queue.send_message(QueueMessage("two"))

    m = scrape(broker.url)  # unsigned, and still served
    assert value(m, "cmq_broker_requests_total", api="cmq", action="SendMessage", code="0") == 2
    count = value(m, "cmq_broker_wal_fsync_duration_seconds_count")
    assert count == 3  # each acknowledged change waited for its own fsync: nothing ran concurrently
    assert value(m, "cmq_broker_wal_fsync_duration_seconds_bucket", le="+Inf") == count
    assert value(m, "cmq_broker_wal_fsync_duration_seconds_sum") > 0
    assert value(m, "cmq_broker_wal_pending_bytes") == 0
    assert value(m, "cmq_broker_wal_log_bytes") > 0

    request = urllib.request.Request(broker.url + "/metrics", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405


def test_every_action_is_labelled_by_its_declared_name():
    """Labels come from the declarations: the documented spelling, whatever case a client sent."""
    from broker.protocol.cmq.app import ACTIONS

    names = ACTIONS.names()
    assert "ListSubscriptionByTopic" in names and len(names) == len(set(n.lower() for n in names)) == 27
    assert ACTIONS.get("listsubscriptionbytopic").name == "ListSubscriptionByTopic"
    assert all(a.name[0].isupper() for a in ACTIONS)


# -- logs ---------------------------------------------------------------------------------------

def test_json_logs_and_access_log_from_the_environment(start_broker):
    broker = start_broker(["--port", "0", "--log-level", "debug"],
                          env={"BROKER_ACCESS_LOG": "1", "BROKER_LOG_FORMAT": "json"})
    queue = broker.account().get_queue("logged")
    queue.create(queue_meta())
    queue.send_message(QueueMessage("hello"))
    urllib.request.urlopen(broker.url + "/healthz", timeout=5).read()
    host, port = broker.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:  # aiohttp logs this one itself
        raw.sendall(b"GARBAGE\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.0 400")
    lines = stopped_stderr(broker).splitlines()

    records = [json.loads(line) for line in lines]  # every line, ours and the libraries', is JSON
    assert len(records) >= 5
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
    assert any(r["logger"] == "broker" and r["message"] == "stopped" for r in records)
    bad = [r for r in records if r["logger"].startswith("aiohttp.")]
    assert bad and "GARBAGE" in json.dumps(bad[0])  # a line of aiohttp's own, multi-line text and all

    access = [r for r in records if r["logger"] == "broker.access"]
    assert [(r["method"], r["path"], r["status"], r["action"], r["code"]) for r in access] == [
        ("POST", "/v2/index.php", 200, "CreateQueue", "0"),
        ("POST", "/v2/index.php", 200, "SendMessage", "0"),
        ("GET", "/healthz", 200, "-", "-"),
        ("UNKNOWN", "/", 400, "-", "-"),  # what aiohttp makes of a request it could not parse
    ]
    assert all(0 <= r["duration_seconds"] < WAIT for r in access)
    assert all(r["duration_seconds"] > 0 for r in access[:2])  # API calls are timed finer than the loop's clock
    assert "SendMessage code=0" in access[1]["message"]


def test_json_lines_carry_extra_fields_and_tracebacks():
    from broker.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("broker.test").makeRecord(
            "broker.test", logging.ERROR, __file__, 1, "failed %s", ("twice",), sys.exc_info(),
            extra={"queue": "orders", "when": datetime.date(2025, 1, 2)})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "ERROR" and out["logger"] == "broker.test" and out["message"] == "failed twice"
    assert out["queue"] == "orders" and out["when"] == "2025-01-02"  # not JSON by nature: written as str()
    assert out["exception"].startswith("Traceback") and "ValueError: boom" in out["exception"]
    assert datetime.datetime.fromisoformat(out["time"]).tzinfo is not None


def test_access_log_is_off_by_default_and_text_is_the_default_format(start_broker):
    quiet = start_broker(["--port", "0"])
    loud = start_broker(["--port", "0", "--access-log", "--log-level", "warning"])
    for broker in (quiet, loud):
        broker.account().get_queue("plain").create(queue_meta())
        with pytest.raises(CMQServerException) as missing:
            broker.account().get_queue("missing").send_message(QueueMessage("x"))

    quiet_lines = stopped_stderr(quiet).splitlines()
    assert quiet_lines and not any('"POST ' in line or "broker.access" in line for line in quiet_lines)
    assert any(" INFO broker: stopped" in line for line in quiet_lines)  # text, not JSON

    loud_lines = stopped_stderr(loud).splitlines()
    access = [line for line in loud_lines if "broker.access" in line]
    # --log-level warning hides other info lines, not the access log asked for explicitly.
    assert len(access) == 2, loud_lines
    assert '"POST /v2/index.php" 200 CreateQueue code=0 ' in access[0]
    assert f'"POST /v2/index.php" 200 SendMessage code={missing.value.code} ' in access[1]
    assert access[1].endswith("ms")
    assert not any(" INFO broker: stopped" in line for line in loud_lines)


def test_an_unknown_log_format_is_refused():
    result = subprocess.run([sys.executable, "-m", "broker", "serve", "--port", "0", "--log-format", "xml"],
                            cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "error: log format must be one of text, json, got 'xml'" in result.stderr
