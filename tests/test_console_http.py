"""The web console over plain HTTP: pages, JSON, changes, sessions, CSRF, escaping, durability.

An in-process broker (server.start on port 0) talked to with aiohttp's client, as a browser
would: cookies, the CSRF token taken from the page, form posts. The browser itself is in
test_console_browser.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import signal

import aiohttp
import pytest
from yarl import URL

from broker.config import Config, add_serve_arguments, build_config
from broker.console.decode import decode, summary
from broker.server import PIPELINE, start

from conftest import run_broker

CSRF = re.compile(r'data-csrf="([^"]+)"')


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


class Browser:
    """An HTTP client that keeps cookies (also for 127.0.0.1) and the page's CSRF token."""

    def __init__(self, url: str):
        self.url = url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def open(self, path: str = "/console/") -> str:
        async with self.http.get(self.url + path) as resp:
            assert resp.status == 200, await resp.text()
            text = await resp.text()
        self.csrf = CSRF.search(text).group(1)
        return text

    async def json(self, path: str, status: int = 200) -> dict:
        async with self.http.get(self.url + "/console/api" + path) as resp:
            assert resp.status == status, await resp.text()
            assert resp.content_type == "application/json"
            return await resp.json()

    async def post(self, path: str, status: int = 200, with_csrf: bool = True, **fields) -> dict:
        data = aiohttp.FormData({**({"csrf": self.csrf} if with_csrf else {}), **fields})
        async with self.http.post(self.url + "/console/api" + path, data=data) as resp:
            body = await resp.json()
            assert resp.status == status, body
            return body

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def broker():
    running = await start(Config(port=0, batch_time_scale=0.02))
    yield running
    await running.stop()


@pytest.fixture
async def browser(broker):
    b = Browser(broker.url)
    await b.open()
    yield b
    await b.close()


# -- decoding (pure) ---------------------------------------------------------------------------

def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_decode_recognises_base64_json_and_batch_events():
    assert decode("hello world")["kind"] == "text"
    assert decode("test")["kind"] == "text"  # valid Base64, but of bytes that are not text
    assert decode('{"a": [1, 2]}') == {"kind": "json", "text": None, "json": '{\n  "a": [\n    1,\n    2\n  ]\n}',
                                       "events": None}
    assert decode("12345678")["kind"] == "text"  # decodes to binary garbage
    plain = decode(b64("héllo there"))
    assert plain["kind"] == "base64" and plain["text"] == "héllo there"
    nested = decode(b64('{"order": 42}'))
    assert nested["kind"] == "base64-json" and json.loads(nested["json"]) == {"order": 42}
    event = {"Events": [{"EventVersion": "1.0", "EventTime": "2026-01-01T00:00:00Z", "Region": "ap-guangzhou",
                         "EventName": "TASK_INSTANCE_FAILED", "EventVars": [{"Name": "k", "Value": "v"}],
                         "Batch": {"JobId": "job-1", "TaskName": "main", "TaskInstanceIndex": 0,
                                   "TaskInstanceState": "FAILED", "ExitCode": 3, "StateReason": "exit 3"}}]}
    info = decode(b64(json.dumps(event)))
    assert info["kind"] == "batch-event"
    [row] = info["events"]
    assert row["name"] == "TASK_INSTANCE_FAILED" and row["state"] == "FAILED" and row["exitCode"] == 3
    assert row["ids"] == {"JobId": "job-1", "TaskName": "main", "TaskInstanceIndex": "0"}
    assert row["vars"] == [{"name": "k", "value": "v"}]
    assert summary(b64(json.dumps(event)))["preview"] == "TASK_INSTANCE_FAILED job-1 main 0"
    assert decode(b64("\x00\x01binary"))["kind"] == "text"  # control characters: not shown as text
    assert decode("{not json")["kind"] == "text"


# -- pages, headers, sessions -----------------------------------------------------------------

async def test_pages_are_served_with_a_session_cookie_and_strict_headers(broker):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(broker.url + "/console") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            page = await resp.text()
        assert 'src="/console/static/console.js"' in page and "http://" not in page.replace(broker.url, "")
        async with http.get(broker.url + "/console/static/console.js") as resp:
            assert resp.status == 200 and resp.content_type == "text/javascript"
            assert "innerHTML" not in await resp.text()  # data reaches the page as text only
        async with http.get(broker.url + "/console/static/../server.py") as resp:
            assert resp.status == 404
        async with http.get(broker.url + "/console/api/overview") as resp:
            assert await resp.json() == {"queues": [], "topics": [], "jobs": [], "jobCount": 0, "envs": []}


async def test_changes_need_the_session_and_its_csrf_token(broker, browser):
    async with aiohttp.ClientSession() as stranger:  # no cookie: another site's form, say
        async with stranger.post(broker.url + "/console/api/queues",
                                 data={"queueName": "q1", "csrf": browser.csrf}) as resp:
            assert resp.status == 403 and (await resp.json())["error"]["code"] == "NoSession"
    missing = await browser.post("/queues", status=403, with_csrf=False, queueName="q1")
    assert missing["error"]["code"] == "BadCsrfToken"
    wrong = await browser.post("/queues", status=403, queueName="q1", csrf="x" * 43)
    assert wrong["error"]["code"] == "BadCsrfToken"
    assert not broker.broker.list_queues()[0]
    reply = await browser.post("/queues", queueName="q1", visibilityTimeout="5")
    assert reply == {"ok": True, "message": "queue q1 created", "goto": "/console/queues/q1"}
    assert broker.broker.get_queue("q1").settings.visibilityTimeout == 5


async def test_the_console_refuses_what_the_api_refuses(browser):
    # Neutral codes (the error's class name), never another protocol's wire code; fields named as the forms do.
    bad_name = (await browser.post("/queues", status=400, queueName="1bad"))["error"]
    assert bad_name["code"] == "InvalidQueueName" and bad_name["message"].startswith("queueName '1bad' is invalid")
    assert (await browser.post("/queues", status=400))["error"] == {
        "code": "MissingParameter", "message": "required parameter queueName is missing"}
    await browser.post("/queues", queueName="dup")
    assert (await browser.post("/queues", status=400, queueName="dup"))["error"]["code"] == "QueueAlreadyExists"
    out_of_range = await browser.post("/queues", status=400, queueName="q2", visibilityTimeout="0")
    assert out_of_range["error"]["code"] == "ParameterOutOfRange"
    assert "visibilityTimeout" in out_of_range["error"]["message"]
    not_a_number = await browser.post("/queues", status=400, queueName="q2", visibilityTimeout="ten")
    assert not_a_number["error"] == {"code": "ParameterWrongType",
                                     "message": "visibilityTimeout must be a whole number, got 'ten'"}
    assert (await browser.post("/queues/nope/send", status=404, msgBody="x"))["error"]["code"] == "QueueNotFound"
    assert (await browser.post("/queues/dup/send", status=400, msgBody=""))["error"] == {  # the engine's, worded
        "code": "EmptyMessage", "message": "msgBody is empty"}
    too_late = await browser.post("/queues/dup/send", status=400, msgBody="x", delaySeconds="3601")
    assert too_late["error"]["message"] == "delaySeconds must be from 0 to 3600, got 3601"
    bad_zone = await browser.post("/jobs", status=400, job_name="j", zone="ap-shanghai-2", instance_type="S5.MEDIUM4")
    assert bad_zone["error"]["code"] == "InvalidZone.MismatchRegion"
    no_topic = await browser.post("/jobs", status=400, job_name="j", zone="ap-guangzhou-3",
                                  instance_type="S5.MEDIUM4", topic="missing", event="JOB_SUCCEED")
    assert no_topic["error"]["code"] == "InvalidBatchParameter.NotificationTopicName"
    not_a_number = await browser.post("/jobs", status=400, job_name="j", zone="ap-guangzhou-3", instances="two")
    assert "instances must be a whole number" in not_a_number["error"]["message"]
    assert (await browser.post("/jobs/job-nothere/delete", status=404))["error"]["code"] == "ResourceNotFound.Job"


async def test_message_bodies_are_data_never_markup(broker, browser):
    evil = "<script>window.__xss=1</script>"
    await browser.post("/queues", queueName="q")
    await browser.post("/queues/q/send", msgBody=evil)
    queue = await browser.json("/queues/q")
    [row] = queue["messages"]
    assert row["preview"] == evil and row["kind"] == "text" and row["state"] == "ready"
    assert (await browser.json(f"/queues/q/messages/{row['id']}"))["body"] == evil
    page = await browser.open("/console/queues/q")
    assert "__xss" not in page  # bodies never reach the HTML: the script fetches them as JSON
    async with browser.http.get(broker.url + "/console/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E") as resp:
        assert resp.status == 404
        text = await resp.text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    async with browser.http.get(broker.url + '/console/queues/x%22onmouseover%3D%22') as resp:
        assert resp.status == 404 and 'x&quot;onmouseover=&quot;' in await resp.text()


async def test_peek_receive_and_delete(broker, browser):
    await browser.post("/queues", queueName="work")
    await browser.post("/queues/work/send", msgBody='{"n": 1}', base64="1")
    await browser.post("/queues/work/send", msgBody="second")
    peeked = (await browser.json("/queues/work?peek=10"))["messages"]
    assert [m["kind"] for m in peeked] == ["base64-json", "text"]
    detail = await browser.json(f"/queues/work/messages/{peeked[0]['id']}")
    assert detail["body"] == b64('{"n": 1}') and json.loads(detail["decoded"]["json"]) == {"n": 1}
    assert (await browser.json("/queues/work"))["active"] == 2  # peeking changed nothing
    got = await browser.post("/queues/work/receive", numOfMsg="1")
    [msg] = got["messages"]
    assert msg["id"] == peeked[0]["id"] and msg["dequeueCount"] == 1 and msg["decoded"]["kind"] == "base64-json"
    state = await browser.json("/queues/work")
    assert (state["active"], state["inactive"]) == (1, 1)
    await browser.post("/queues/work/delete-message", receiptHandle=msg["receiptHandle"])
    again = await browser.post("/queues/work/delete-message", status=400, receiptHandle=msg["receiptHandle"])
    assert again["error"]["code"] == "InvalidReceiptHandle"
    assert (await browser.json(f"/queues/work/messages/{msg['id']}", status=404))["error"]["code"] == "MessageGone"
    assert (await browser.post("/queues/work/receive", numOfMsg="17", status=400))["error"] == {
        "code": "ParameterOutOfRange", "message": "numOfMsg must be from 1 to 16, got 17"}
    assert (await browser.post("/queues/work/purge"))["message"] == "1 message(s) removed"
    await browser.post("/queues/work/delete")
    await browser.json("/queues/work", status=404)


async def test_topics_subscriptions_and_publish(broker, browser):
    await browser.post("/queues", queueName="paid")
    await browser.post("/topics", topicName="orders", filterType="1")
    await browser.post("/topics/orders/subscribe", subscriptionName="to-paid", protocol="queue", endpoint="paid",
                       filterTag="paid, vip")
    bad = await browser.post("/topics/orders/subscribe", status=400, subscriptionName="web", protocol="http",
                             endpoint="ftp://x")
    assert bad["error"]["code"] == "InvalidEndpoint"
    await browser.post("/topics/orders/publish", msgBody="for nobody", msgTag="free")
    await browser.post("/topics/orders/publish", msgBody="order 1", msgTag="vip, eu")
    topic = await browser.json("/topics/orders")
    [sub] = topic["subscriptionList"]
    assert sub["filterTags"] == ["paid", "vip"] and sub["format"] == "SIMPLIFIED" and sub["protocol"] == "queue"
    assert [m["preview"] for m in (await browser.json("/queues/paid"))["messages"]] == ["order 1"]
    overview = await browser.json("/overview")
    assert overview["topics"] == [{"name": "orders", "id": topic["id"], "filterType": "tags", "subscriptions": 1,
                                   "pending": 0}]
    await browser.post("/topics/orders/subscriptions/to-paid/delete")
    assert (await browser.json("/topics/orders"))["subscriptionList"] == []
    await browser.post("/topics/orders/delete")
    await browser.json("/topics/orders", status=404)


async def test_a_job_submitted_from_the_form_reports_to_its_topic(broker, browser):
    await browser.post("/queues", queueName="events")
    await browser.post("/topics", topicName="batch")
    await browser.post("/topics/batch/subscribe", subscriptionName="s", protocol="queue", endpoint="events")
    options = await browser.json("/batch/options")
    assert "ap-guangzhou-3" in options["zones"] and "batch" in options["topics"]
    assert "JOB_SUCCEED" in options["jobEvents"] and "COMPUTE_ENV_CREATED" in options["envEvents"]
    data = aiohttp.FormData([("csrf", browser.csrf), ("job_name", "hello"), ("zone", "ap-guangzhou-3"),
                             ("instance_type", "S5.MEDIUM4"), ("instances", "2"), ("exit_code", "0,3"),
                             ("topic", "batch"), ("event", "TASK_INSTANCE_FAILED"), ("event", "JOB_FAILED"),
                             ("event_vars", "team=ops")])
    async with browser.http.post(broker.url + "/console/api/jobs", data=data) as resp:
        reply = await resp.json()
    assert resp.status == 200, reply
    job_id = reply["goto"].rsplit("/", 1)[1]

    async def finished():
        job = await browser.json(f"/jobs/{job_id}")
        return job if job["finished"] else None

    job = await wait_for(finished)
    assert job["state"] == "FAILED" and job["notifications"] == [
        {"topic": "batch", "events": ["TASK_INSTANCE_FAILED", "JOB_FAILED"]}]
    [task] = job["taskList"]
    assert [(i["TaskInstanceState"], i["ExitCode"]) for i in task["Instances"]] == [("SUCCEED", 0), ("FAILED", 3)]
    names = [e["name"] for e in job["timeline"]]
    # Every event of the job, notified or not, its private nodes' too.
    assert {"TASK_INSTANCE_RUNNING", "JOB_FAILED", "COMPUTE_NODE_RUNNING", "COMPUTE_NODE_DELETING"} <= set(names)
    sent = {e["name"]: e["topics"] for e in job["timeline"]}
    assert sent["JOB_FAILED"] == ["batch"] and sent["TASK_INSTANCE_RUNNING"] == []
    messages = (await browser.json("/queues/events"))["messages"]
    assert [m["kind"] for m in messages] == ["batch-event", "batch-event"]
    detail = await browser.json(f"/queues/events/messages/{messages[-1]['id']}")
    [event] = detail["decoded"]["events"]
    assert event["name"] == "JOB_FAILED" and event["ids"] == {"JobId": job_id}
    assert event["vars"] == [{"name": "team", "value": "ops"}] and event["state"] == "FAILED"
    assert (await browser.json("/overview"))["jobs"][0]["id"] == job_id
    await browser.post(f"/jobs/{job_id}/delete")
    await browser.json(f"/jobs/{job_id}", status=404)


async def test_compute_environments_from_the_form(broker, browser):
    await browser.post("/topics", topicName="envs")
    created = await browser.post("/envs", env_name="workers", zone="ap-guangzhou-3", instance_type="S5.MEDIUM4",
                                 desired="2", topic="envs", event="COMPUTE_ENV_CREATED")
    env_id = created["goto"].rsplit("/", 1)[1]

    async def running():
        env = await browser.json(f"/envs/{env_id}")
        return env if [n["ComputeNodeState"] for n in env["nodeList"]] == ["RUNNING", "RUNNING"] else None

    env = await wait_for(running)
    assert env["timeline"][0]["name"] == "COMPUTE_ENV_CREATED" and env["timeline"][0]["topics"] == ["envs"]
    assert (await browser.post(f"/envs/{env_id}/modify", status=400, desired="-1"))["error"]["code"] == \
        "ParameterOutOfRange"
    assert (await browser.post(f"/envs/{env_id}/modify", status=400))["error"]["code"] == "MissingParameter"
    await browser.post(f"/envs/{env_id}/modify", desired="1")
    await browser.post(f"/envs/{env_id}/delete")
    await wait_for(lambda: _gone(browser, f"/console/api/envs/{env_id}"))


async def _gone(browser: Browser, path: str) -> bool:
    async with browser.http.get(browser.url + path) as resp:
        return resp.status == 404


# -- with secrets ---------------------------------------------------------------------------------

async def test_with_secrets_the_console_needs_a_login():
    running = await start(Config(port=0, secret_id="AKIDconsole", secret_key="s3cret"))
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    url = running.url
    try:
        async with http.get(url + "/console/queues/x?a=1", allow_redirects=False) as resp:
            assert resp.status == 303
            location = URL(resp.headers["Location"])
            assert location.path == "/console/login" and location.query["next"] == "/console/queues/x?a=1"
            assert "Set-Cookie" not in resp.headers
        async with http.get(url + "/console/api/overview") as resp:
            assert resp.status == 401
        async with http.post(url + "/console/api/queues", data={"queueName": "q"}) as resp:
            assert resp.status == 401
        for wrong in ({"secret_id": "AKIDconsole", "secret_key": "guess"}, {"secret_id": "other", "secret_key": "s3cret"}):
            async with http.post(url + "/console/login", data=wrong, allow_redirects=False) as resp:
                assert resp.status == 401 and "Wrong SecretId or SecretKey" in await resp.text()
                assert "Set-Cookie" not in resp.headers
        login = {"secret_id": "AKIDconsole", "secret_key": "s3cret", "next": "https://evil.example/"}
        async with http.post(url + "/console/login", data=login, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/console/"  # never off-site
            assert "HttpOnly" in resp.headers["Set-Cookie"]
        async with http.get(url + "/console/") as resp:
            page = await resp.text()
        assert resp.status == 200 and 'action="/console/logout"' in page
        csrf = CSRF.search(page).group(1)
        async with http.post(url + "/console/api/queues", data={"queueName": "q"}) as resp:
            assert resp.status == 403  # logged in, but no CSRF token
        async with http.post(url + "/console/api/queues", data={"queueName": "q", "csrf": csrf}) as resp:
            assert resp.status == 200
        async with http.post(url + "/console/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(url + "/console/api/overview") as resp:
            assert resp.status == 401
    finally:
        await http.close()
        await running.stop()


async def test_no_console_flag():
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert build_config(parser.parse_args(["--no-console"]), {}).no_console
    assert build_config(parser.parse_args([]), {"BROKER_NO_CONSOLE": "1"}).no_console
    assert not build_config(parser.parse_args([]), {}).no_console
    running = await start(Config(port=0, no_console=True))
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/console", "/console/", "/console/api/overview", "/console/static/console.js"):
                async with http.get(running.url + path) as resp:
                    assert resp.status == 404, path
            async with http.get(running.url + "/healthz") as resp:
                assert resp.status == 200
    finally:
        await running.stop()


# -- durability -----------------------------------------------------------------------------------

async def test_console_changes_go_through_the_request_pipeline(tmp_path):
    """Counted under api "console" by result code; refused while the disk is backlogged, reads still served."""
    running = await start(Config(port=0, data_dir=str(tmp_path)))
    browser = Browser(running.url)
    try:
        await browser.open()
        await browser.post("/queues", queueName="q")
        await browser.post("/queues", status=400, queueName="q")
        await browser.post("/queues", status=403, with_csrf=False, queueName="forged")
        stats = running.app[PIPELINE].stats["console"]
        counted = {key: sum(entry[1:]) for key, entry in stats.items()}
        assert counted == {("CreateQueue", 0): 1, ("CreateQueue", "QueueAlreadyExists"): 1,
                           ("CreateQueue", "BadCsrfToken"): 1}
        durability = running.app[PIPELINE].durability
        durability.backlogged = lambda: True  # as when the disk has refused writes for a while
        refused = await browser.post("/queues/q/send", status=503, msgBody="x")
        assert refused["error"]["code"] == "StorageUnavailable"
        assert (await browser.json("/queues/q"))["active"] == 0  # reads are still served
        del durability.backlogged
        await browser.post("/queues/q/send", msgBody="x")
        assert (await browser.json("/queues/q"))["active"] == 1
    finally:
        await browser.close()
        await running.stop()


async def test_console_changes_are_on_disk_before_the_reply(tmp_path):
    """A console change acknowledged just before a kill -9 is there after the restart."""
    args = ["--port", "0", "--data-dir", str(tmp_path)]
    with run_broker(args) as b:
        browser = Browser(b.url)
        try:
            await browser.open()
            await browser.post("/queues", queueName="kept")
            await browser.post("/queues/kept/send", msgBody="survives")
        finally:
            await browser.close()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(5)
    with run_broker(args) as b:
        browser = Browser(b.url)
        try:
            await browser.open()
            assert [m["preview"] for m in (await browser.json("/queues/kept"))["messages"]] == ["survives"]
        finally:
            await browser.close()
