"""What the end-to-end tests share, one copy of each, built on `broker.testing`.

- Broker processes: `run_broker()` starts `python -m broker serve ...` (or another launcher, such
  as tests/fault_clock.py) exactly as a user would and yields a `BrokerProcess`; conftest.py makes
  fixtures of it. In-process brokers come from `broker.testing` (`broker_thread`,
  `fake_clock_broker`); both kinds hand out SDK clients the same way: `b.account()`,
  `b.batch_client()`.
- SDK clients and calls: `account_for()` / `batch_client_for()` (from broker.testing) for any URL;
  `call()` for a typed API 3.0 action from a dict, `sdk_error()` and `server_error()` for the error
  an action must raise.
- Raw HTTP where the SDKs cannot go: `post_form()` (CMQ), `post_api3()` (unsigned API 3.0).
- Waiting: `wait_until()` polls a check against a deadline (never a fixed sleep);
  `advance_until()` does the same on a fake clock. `Background` runs one blocking call in a thread.
- CMQ objects: `unique_name()`, `queue_meta()`, `topic_meta()`, `sub_meta()`, `counts()`,
  `drain()`, `raw_*()` attribute replies, `module_code()`.
- `Receiver`: a local HTTP server that records what it is sent and answers per URL as told
  (fail first, hang, a chosen 2xx), optionally refusing connections until `open()`.

Batch requests and the events Batch publishes (sinks, decoding, field checks) are in
batch_helpers.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message, QueueMeta
from cmq.subscription import SubscriptionMeta
from cmq.topic import TopicMeta
from tencentcloud.batch.v20170312 import models
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from broker.testing import account_for, batch_client_for

__all__ = [
    "REPO_ROOT", "LISTENING", "STARTUP_TIMEOUT", "STOP_TIMEOUT", "ANY_ID", "ANY_KEY", "REGION", "WAIT",
    "BrokerProcess", "clean_env", "stop_process", "run_broker", "serve_args",
    "account_for", "batch_client_for", "call", "sdk_error", "server_error",
    "post_form", "post_api3", "wait_until", "advance_until", "Background",
    "unique_name", "uid", "queue_meta", "topic_meta", "sub_meta", "counts", "drain", "drain_bodies",
    "raw_queue", "raw_topic", "raw_sub", "sub_msg_count", "module_code", "closed_port",
    "Received", "Plan", "Receiver",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"cmq-broker listening on (http://(\S+):(\d+))")
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
WAIT = 20.0  # the default deadline for anything that should happen "soon"

# Credentials the SDKs need even when the broker does not check signatures.
ANY_ID = "AKIDanything"
ANY_KEY = "anything"
REGION = "ap-guangzhou"  # the broker's default region


# == broker processes ==============================================================================


class BrokerProcess:
    """A running `python -m broker serve` and what it told us about itself."""

    def __init__(self, proc: subprocess.Popen, url: str, stderr_path: Path):
        self.proc = proc
        self.url = url
        self._stderr_path = stderr_path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def account(self, secret_id: str = ANY_ID, secret_key: str = ANY_KEY) -> Account:
        return account_for(self.url, secret_id, secret_key)

    def batch_client(self, region: str = REGION, secret_id: str = ANY_ID, secret_key: str = ANY_KEY):
        return batch_client_for(self.url, region, secret_id, secret_key)

    def __iter__(self):  # so `url, process = broker` works
        return iter((self.url, self.proc))


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any BROKER_* variable (a test must not depend on the
    shell that runs it), unbuffered, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
    """Signal `proc` and wait for it; kill it if it hangs. Returns its exit status (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def serve_args(*extra: str) -> list[str]:
    """`serve` arguments for an ephemeral port on 127.0.0.1, then `extra`."""
    return ["--host", "127.0.0.1", "--port", "0", *extra]


@contextmanager
def run_broker(args: list[str] | None = None, env: dict[str, str] | None = None,
               launcher: list[str] | None = None) -> Iterator[BrokerProcess]:
    """Start `python -m broker serve ARGS` (default: an ephemeral port on 127.0.0.1) and yield it.

    `launcher` replaces `-m broker` (e.g. `[tests/fault_clock.py, OFFSET_FILE]`, which runs the
    broker's main module itself). Fails loudly, with the broker's stderr, if it does not announce
    its port within STARTUP_TIMEOUT seconds. The process is stopped (SIGTERM, then SIGKILL) on exit.
    """
    if args is None:
        args = serve_args()
    stderr_file = tempfile.NamedTemporaryFile(prefix="cmq-broker-", suffix=".stderr", delete=False)
    stderr_path = Path(stderr_file.name)
    proc = subprocess.Popen(
        [sys.executable, *(launcher or ["-m", "broker"]), "serve", *args],
        cwd=REPO_ROOT,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    stderr_file.close()

    found: dict[str, str] = {}
    announced = threading.Event()

    def read_stdout() -> None:
        for line in proc.stdout:  # keep draining so the broker never blocks on a full pipe
            m = LISTENING.search(line)
            if m and not announced.is_set():
                found["url"] = m.group(1)
                announced.set()

    reader = threading.Thread(target=read_stdout, name="broker-stdout", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not announced.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        if not announced.is_set():
            status = proc.poll()
            stop_process(proc, timeout=2)
            reason = f"exited with status {status}" if status is not None else f"said nothing in {STARTUP_TIMEOUT}s"
            pytest.fail(
                f"broker {' '.join(args)} never printed its port ({reason}).\n"
                f"--- broker stderr ---\n{stderr_path.read_text(errors='replace')}",
                pytrace=False,
            )
        yield BrokerProcess(proc, found["url"], stderr_path)
    finally:
        stop_process(proc)
        if proc.stdout:
            proc.stdout.close()
        reader.join(timeout=2)
        stderr_path.unlink(missing_ok=True)


# == SDK calls =====================================================================================


def call(client, action: str, params: dict | None = None) -> dict:
    """Call API 3.0 `action` through the SDK's typed request/response models; the reply as a dict
    (without its RequestId, which differs on every call).

    The request model is filled from `params`; a key the model does not know would be dropped
    silently by the SDK, so its warning is turned into an error here.
    """
    req = getattr(models, f"{action}Request")()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        req.from_json_string(json.dumps(params or {}))
    reply = json.loads(getattr(client, action)(req).to_json_string())
    reply.pop("RequestId", None)
    return reply


def sdk_error(client, action: str, params: dict | None = None) -> TencentCloudSDKException:
    """The TencentCloudSDKException that `call(client, action, params)` must raise."""
    with pytest.raises(TencentCloudSDKException) as info:
        call(client, action, params)
    assert info.value.message, info.value
    return info.value


def server_error(fn, *args, **kwargs) -> CMQServerException:
    """Call `fn` and return the CMQServerException it must raise."""
    with pytest.raises(CMQServerException) as info:
        fn(*args, **kwargs)
    return info.value


# == raw HTTP ======================================================================================

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_form(url: str, **params: str) -> dict:
    """POST one unsigned CMQ request (form-encoded `params`) to /v2/index.php; its JSON reply."""
    data = urlencode(params).encode()
    with _NO_PROXY.open(urllib.request.Request(url + "/v2/index.php", data=data), timeout=10) as resp:
        return json.loads(resp.read())


def post_api3(url: str, action: str, params: Any, region: str = REGION) -> dict:
    """POST one unsigned API 3.0 request (what only raw HTTP can send: lower-case keys, no
    signature); its Response object."""
    body = json.dumps(params).encode()
    headers = {"Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2017-03-12",
               "X-TC-Region": region}
    request = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
    with _NO_PROXY.open(request, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())["Response"]


# == waiting =======================================================================================


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT, every: float = 0.05) -> Any:
    """Call `check` every `every` seconds until it returns something true, and return that; fail
    saying `what` was awaited if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(every)


def advance_until(broker, check: Callable[[], Any], what: str, step: float = 1.0, limit: float = 3600.0) -> Any:
    """`wait_until` on a `broker.testing.fake_clock_broker`: move its clock on by `step` seconds
    between checks, for at most `limit` seconds of its time; no real waiting."""
    moved = 0.0
    while True:
        result = check()
        if result:
            return result
        if moved >= limit:
            raise AssertionError(f"advanced the clock {moved:.0f}s waiting for {what}")
        broker.advance(step)
        moved += step


class Background:
    """Run one blocking SDK call in a thread; `started` is set just before the call is made."""

    def __init__(self, fn: Callable, *args, **kwargs):
        self.started = threading.Event()
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None
        self.started_at = self.finished_at = 0.0

        def run() -> None:
            self.started_at = time.monotonic()
            self.started.set()
            try:
                self.result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the test
                self.error = exc
            finally:
                self.finished_at = time.monotonic()
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.started.wait(5), "background call never started"

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    @property
    def elapsed(self) -> float:
        return self.finished_at - self.started_at


# == CMQ objects ===================================================================================


def unique_name(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def uid() -> str:
    """A short random tag for names that must not clash across tests."""
    return uuid.uuid4().hex[:8]


def queue_meta(**attrs) -> QueueMeta:
    meta = QueueMeta()
    for name, value in attrs.items():
        if not hasattr(meta, name):
            raise AttributeError(f"QueueMeta has no attribute {name}")
        setattr(meta, name, value)
    return meta


def topic_meta(filter_type: int = 1, max_msg_size: int | None = None) -> TopicMeta:
    meta = TopicMeta()
    meta.filterType = filter_type
    if max_msg_size is not None:
        meta.maxMsgSize = max_msg_size
    return meta


def sub_meta(protocol: str = "queue", endpoint: str = "", strategy: str | None = None, fmt: str | None = None,
             tags=(), keys=()) -> SubscriptionMeta:
    """A SubscriptionMeta; `strategy` None keeps the SDK's default (EXPONENTIAL_DECAY_RETRY), `fmt`
    None picks SIMPLIFIED for a queue subscriber (the SDK's JSON default is refused there) and
    JSON for any other."""
    meta = SubscriptionMeta()
    meta.Protocal = protocol
    meta.Endpoint = endpoint
    if strategy is not None:
        meta.NotifyStrategy = strategy
    meta.NotifyContentFormat = fmt if fmt is not None else ("SIMPLIFIED" if protocol == "queue" else "JSON")
    meta.FilterTag = list(tags)
    meta.bindingKey = list(keys)
    return meta


def counts(q) -> tuple[int, int, int]:
    """A queue's (active, inactive, delayed) message counts."""
    meta = q.get_attributes()
    return meta.activeMsgNum, meta.inactiveMsgNum, meta.delayMsgNum


def drain(q, delete: bool = True) -> list[Message]:
    """Receive until the queue says it is empty (7000), without waiting, deleting each batch as
    it comes unless told not to; the messages, in order."""
    got: list[Message] = []
    while True:
        try:
            batch = q.batch_receive_message(16, polling_wait_seconds=0)
        except CMQServerException as exc:
            assert exc.code == 7000, (exc.code, exc.message)
            return got
        got.extend(batch)
        if delete:
            q.batch_delete_message([m.receiptHandle for m in batch])


def drain_bodies(q) -> list[str]:
    """Every body now visible in `q` (received and deleted), in order."""
    return [m.msgBody for m in drain(q)]


def _attributes(reply: dict, request_id: bool) -> dict:
    if not request_id:
        reply.pop("requestId", None)
    return reply


def raw_queue(account: Account, name: str, request_id: bool = False) -> dict:
    """GetQueueAttributes as the broker wrote it (without requestId unless asked)."""
    return _attributes(account.get_client().get_queue_attributes({"queueName": name}), request_id)


def raw_topic(account: Account, name: str, request_id: bool = False) -> dict:
    """GetTopicAttributes as the broker wrote it (without requestId unless asked)."""
    return _attributes(account.get_client().get_topic_attributes({"topicName": name}), request_id)


def raw_sub(account: Account, topic: str, sub: str, request_id: bool = False) -> dict:
    """GetSubscriptionAttributes as the broker wrote it (without requestId unless asked)."""
    return _attributes(account.get_client().get_subscription_attributes(
        {"topicName": topic, "subscriptionName": sub}), request_id)


def sub_msg_count(account: Account, topic: str, sub: str) -> int:
    """How many messages a subscription still has to push."""
    return raw_sub(account, topic, sub)["msgCount"]


def module_code(exc: CMQServerException) -> int:
    """The CMQ module code in front of an error message: `(10120)queue is not exist` → 10120."""
    m = re.match(r"\((\d+)\)", exc.message)
    assert m, f"message {exc.message!r} does not start with (moduleCode)"
    return int(m.group(1))


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (just now)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# == an HTTP endpoint for pushes ===================================================================


@dataclass
class Received:
    method: str
    path: str  # including the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what we answered (0: hung, no answer)
    at: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> dict:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Plan:
    fail_first: int = 0
    fail_statuses: tuple[int, ...] = (500,)  # cycled through while failing
    hang_first: int = 0  # -1: hang every request
    ok_status: int = 200
    seen: int = 0


class Receiver:
    """A `ThreadingHTTPServer` on 127.0.0.1 that records every request and answers per path as
    its `Plan` says: fail the first N (500 or other statuses), hang the first N (or all), then
    answer a chosen 2xx. An unknown path gets 404.

    `listening=False` binds the port (so it stays ours) but refuses connections until `open()`.
    Tests wait on its condition variable with deadlines rather than sleeping.
    """

    def __init__(self, listening: bool = True) -> None:
        self.cond = threading.Condition()
        self.requests: dict[str, list[Received]] = {}
        self.plans: dict[str, Plan] = {}
        self.release = threading.Event()  # ends every hang
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_POST

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request, client_address) -> None:
                pass  # the broker gave up on a hung request: writing the late answer fails

        self.server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.thread: threading.Thread | None = None
        if listening:
            self.open()

    def open(self) -> None:
        """Start accepting connections."""
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        if self.thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def route(self, **plan) -> str:
        """A fresh URL on this receiver that answers according to `plan` (see Plan)."""
        path = "/" + unique_name("hook")
        with self.cond:
            self.plans[path] = Plan(**plan)
            self.requests[path] = []
        return f"http://127.0.0.1:{self.port}{path}"

    def set_plan(self, url: str, **changes) -> None:
        path = self._path(url)
        with self.cond:
            for k, v in changes.items():
                setattr(self.plans[path], k, v)

    def _path(self, url: str) -> str:
        return "/" + url.split("/", 3)[3].split("?")[0]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?")[0]
        with self.cond:
            plan = self.plans.get(path)
            if plan is None:
                status, hang = 404, False
            else:
                n = plan.seen
                plan.seen += 1
                hang = plan.hang_first == -1 or n < plan.hang_first
                if hang:
                    status = 0
                elif n < plan.fail_first:
                    status = plan.fail_statuses[n % len(plan.fail_statuses)]
                else:
                    status = plan.ok_status
            rec = Received(h.command, h.path, {k.lower(): v for k, v in h.headers.items()},
                           body, status, time.monotonic())
            self.requests.setdefault(path, []).append(rec)
            self.cond.notify_all()
        if hang:
            self.release.wait(60)
            h.close_connection = True
            return
        h.send_response(status)
        if status in (301, 302, 303, 307, 308):
            h.send_header("Location", f"http://127.0.0.1:{self.port}{path}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def got(self, url: str) -> list[Received]:
        with self.cond:
            return list(self.requests[self._path(url)])

    def delivered(self, url: str) -> list[Received]:
        return [r for r in self.got(url) if r.ok]

    def wait_requests(self, url: str, n: int, timeout: float = 15.0) -> list[Received]:
        """Wait until `url` has been requested at least `n` times (any outcome)."""
        path = self._path(url)
        with self.cond:
            self.cond.wait_for(lambda: len(self.requests[path]) >= n, timeout)
            got = list(self.requests[path])
        assert len(got) >= n, f"{path}: {len(got)} requests after {timeout}s, expected {n}"
        return got

    def wait_delivered(self, url: str, n: int, timeout: float = 15.0) -> list[Received]:
        """Wait until `url` has answered 2xx at least `n` times."""
        path = self._path(url)
        with self.cond:
            self.cond.wait_for(lambda: sum(r.ok for r in self.requests[path]) >= n, timeout)
            got = [r for r in self.requests[path] if r.ok]
        assert len(got) >= n, f"{path}: {len(got)} deliveries after {timeout}s, expected {n}"
        return got
