"""Fixtures: real broker processes and in-process brokers, driven through the official SDKs.

A broker process is started exactly as a user would start it (`python -m broker serve ...`, see
helpers.run_broker), its port parsed from the `cmq-broker listening on http://HOST:PORT` line it
prints, and stopped with SIGTERM at the end. Most tests share one session-wide broker and use
unique queue names; the Batch tests share another with simulated time x0.1. Tests that need no
process of their own (error tables, listings) use an in-process broker from `broker.testing`.

The plain functions and classes are in helpers.py (and batch_helpers.py); test modules import
them from there.
"""

from __future__ import annotations

import logging
import time
import warnings

# cmq/subscription.py imports the deprecated mailcap module (SDK defect; see the spec, section 1).
warnings.filterwarnings("ignore", "The mailcap module", DeprecationWarning)
# The SDK writes CMQ_python_sdk.log into the working directory unless its logger already has a
# handler: give it one before any Account exists.
logging.getLogger("CMQ_python_sdk").addHandler(logging.NullHandler())

from typing import Callable, Iterator

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException

from broker.testing import fake_clock_broker

from batch_helpers import TIME_SCALE, Sink
from helpers import BrokerProcess, queue_meta, run_broker, serve_args, unique_name
from helpers import REPO_ROOT  # noqa: F401 (test_batch_transport.py and test_console_http.py import it from here)


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


# -- Batch ------------------------------------------------------------------------------------------


@pytest.fixture
def no_proxy(monkeypatch):
    """The Batch SDK (requests) honours HTTP_PROXY unless NO_PROXY covers the host."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture(scope="session")
def batch_broker() -> Iterator[BrokerProcess]:
    """The Batch tests' broker process: no signature checks, every simulated delay x0.1."""
    with run_broker(serve_args("--batch-time-scale", TIME_SCALE)) as b:
        yield b
        if b.proc.poll() is not None:
            pytest.fail(f"the Batch broker exited early with status {b.proc.returncode}:\n{b.stderr()}")


@pytest.fixture
def bc(batch_broker, no_proxy):
    """A Batch SDK client for `batch_broker`."""
    return batch_broker.batch_client()


@pytest.fixture
def sinks(batch_broker) -> Iterator[Callable[..., Sink]]:
    """Make event sinks (topic + subscribed queue) on `batch_broker`; all deleted afterwards."""
    made: list[Sink] = []

    def make(prefix: str = "bt", account: Account | None = None) -> Sink:
        sink = Sink(account or batch_broker.account(), prefix)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.delete()


@pytest.fixture(scope="module")
def batch_inproc():
    """An in-process broker on a fake clock (starting now), for Batch tests that need no process
    and no waiting: the simulator moves only by `batch_inproc.advance(seconds)`."""
    with fake_clock_broker(start=time.time()) as b:
        yield b
