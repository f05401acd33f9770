"""End-to-end fixtures: real broker processes, driven only through the official CMQ SDK.

A broker is started exactly as a user would start it (`python -m broker serve ...`), its port
parsed from the `cmq-broker listening on http://HOST:PORT` line it prints, and stopped with
SIGTERM at the end. Most tests share one session-wide broker and use unique queue names.
"""

from __future__ import annotations

import logging
import warnings

# cmq/subscription.py imports the deprecated mailcap module (SDK defect; see the spec, section 1).
warnings.filterwarnings("ignore", "The mailcap module", DeprecationWarning)
# The SDK writes CMQ_python_sdk.log into the working directory unless its logger already has a
# handler: give it one before any Account exists.
logging.getLogger("CMQ_python_sdk").addHandler(logging.NullHandler())

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.queue import QueueMeta

REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"cmq-broker listening on (http://(\S+):(\d+))")
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Credentials the SDK needs even when the broker does not check signatures.
ANY_ID = "AKIDanything"
ANY_KEY = "anything"


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
        return Account(self.url, secret_id, secret_key)

    def __iter__(self):  # so `url, process = broker` works
        return iter((self.url, self.proc))


def _clean_env(extra: dict[str, str] | None) -> dict[str, str]:
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


@contextmanager
def run_broker(args: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[BrokerProcess]:
    """Start `python -m broker serve ARGS` (default: an ephemeral port on 127.0.0.1) and yield it.

    Fails loudly, with the broker's stderr, if it does not announce its port within
    STARTUP_TIMEOUT seconds. The process is stopped (SIGTERM, then SIGKILL) on exit.
    """
    if args is None:
        args = ["--host", "127.0.0.1", "--port", "0"]
    stderr_file = tempfile.NamedTemporaryFile(prefix="cmq-broker-", suffix=".stderr", delete=False)
    stderr_path = Path(stderr_file.name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", *args],
        cwd=REPO_ROOT,
        env=_clean_env(env),
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


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerProcess]:
    """One broker, without signature checks, shared by every test that does not need its own."""
    with run_broker() as b:
        yield b
        # A broker that died mid-session explains every later failure: say so.
        if b.proc.poll() is not None:
            pytest.fail(f"the shared broker exited early with status {b.proc.returncode}:\n{b.stderr()}")


@pytest.fixture
def start_broker() -> Iterator[Callable[..., BrokerProcess]]:
    """Start extra brokers inside a test: `start_broker(args=[...], env={...})`; all stopped at the end."""
    stack = []

    def start(args: list[str] | None = None, env: dict[str, str] | None = None) -> BrokerProcess:
        cm = run_broker(args, env)
        b = cm.__enter__()
        stack.append(cm)
        return b

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def account(broker: BrokerProcess) -> Account:
    return broker.account()


def unique_name(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def queue_meta(**attrs) -> QueueMeta:
    meta = QueueMeta()
    for name, value in attrs.items():
        if not hasattr(meta, name):
            raise AttributeError(f"QueueMeta has no attribute {name}")
        setattr(meta, name, value)
    return meta


@pytest.fixture
def make_queue(account: Account):
    """Create a queue with a unique name and the given QueueMeta attributes; deleted afterwards."""
    created = []

    def make(prefix: str = "q", acct: Account | None = None, **attrs):
        q = (acct or account).get_queue(unique_name(prefix))
        q.create(queue_meta(**attrs))
        created.append(q)
        return q

    yield make
    for q in created:
        try:
            q.delete()
        except CMQServerException:
            pass


def server_error(fn, *args, **kwargs) -> CMQServerException:
    """Call `fn` and return the CMQServerException it must raise."""
    with pytest.raises(CMQServerException) as info:
        fn(*args, **kwargs)
    return info.value


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
