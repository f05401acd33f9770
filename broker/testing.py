"""Isolated in-process brokers for tests and scripts, with or without pytest.

Two ways to run one, both on a free port of 127.0.0.1 unless told otherwise, both ignoring the
`BROKER_*` environment variables (a test must not depend on the shell that runs it):

    async with running_broker(**settings) as b:   # in the caller's running event loop
        ...
    with broker_thread(**settings) as b:          # on its own event loop, in a daemon thread
        ...

Settings are `broker.config.Config` field names (`secret_id`, `secret_key`, `data_dir`,
`batch_time_scale`, `strict`, ...), checked exactly as the command line checks them.

Why two: the official SDKs (CMQ and Batch) block on their HTTP calls. A blocking call made from
the thread that runs the broker's event loop waits forever for a reply that loop can no longer
produce. Sync code (an ordinary test, a script) uses `broker_thread`; async code uses
`running_broker` and talks to it asynchronously (aiohttp), or moves SDK calls off the loop with
`asyncio.to_thread`.

A third, `fake_clock_broker`, is `broker_thread` on a `broker.clock.FakeClock`: the broker's time
(visibility timeouts, delays, the Batch simulator's steps) moves only when the caller says
`b.advance(seconds)`, so hours of queue time pass in milliseconds and nothing depends on how busy
the machine is.

All yield a handle with `url`, `host`, `port`, `config`, `engine` (the in-process `Broker`,
for assertions), `batch` (the Batch simulator), `account()` and `batch_client()`. Startup errors
(a bad setting, a port in use, a locked or damaged data directory) are raised to the caller;
leaving the block stops the broker the way SIGTERM does and leaves no task, thread or socket
behind.

For a broker this module did not start (`python -m broker serve`, a container), `account_for(url)`
and `batch_client_for(url)` make the same SDK clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import threading
from argparse import Namespace
from contextlib import asynccontextmanager, contextmanager
from dataclasses import fields
from typing import Any, AsyncIterator, Callable, Iterator

from .config import Config, build_config
from .server import start

log = logging.getLogger("broker.testing")

__all__ = ["BrokerHandle", "ThreadedBroker", "FakeClockBroker", "make_config", "running_broker", "broker_thread",
           "fake_clock_broker", "account_for", "batch_client_for"]

# The SDKs insist on credentials even when the broker checks none.
PLACEHOLDER_ID = "AKIDcmqbrokertesting"
PLACEHOLDER_KEY = "cmq-broker-testing"
STOP_TIMEOUT = 30.0  # a stop lets in-flight requests finish for up to 10 s; this is well past that
DEFAULT_REGION = "ap-guangzhou"  # the broker's own default (Config.region)


def account_for(url: str, secret_id: str = PLACEHOLDER_ID, secret_key: str = PLACEHOLDER_KEY):
    """A `cmq.account.Account` for the broker at `url` (http://HOST:PORT), signing with the given
    SecretId and SecretKey (any pair when the broker checks no signatures).

    The SDK writes `CMQ_python_sdk.log` into the working directory unless its logger already has a
    handler; this gives it a NullHandler first, so tests leave no such file behind.
    """
    try:
        from cmq.account import Account
    except ImportError:
        raise ImportError("account() needs the CMQ SDK: pip install qcloud-cmq-sdk-py3") from None
    sdk_log = logging.getLogger("CMQ_python_sdk")
    if not sdk_log.handlers:
        sdk_log.addHandler(logging.NullHandler())
    return Account(url, secret_id, secret_key)


def batch_client_for(url: str, region: str = DEFAULT_REGION, secret_id: str = PLACEHOLDER_ID,
                     secret_key: str = PLACEHOLDER_KEY):
    """A `tencentcloud.batch.v20170312.batch_client.BatchClient` for the broker at `url`
    (http://HOST:PORT), over plain HTTP, in `region`."""
    try:
        from tencentcloud.batch.v20170312.batch_client import BatchClient
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
    except ImportError:
        raise ImportError("batch_client() needs the Batch SDK: pip install tencentcloud-sdk-python-batch") from None
    endpoint = url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
    return BatchClient(Credential(secret_id, secret_key), region, profile)


def make_config(settings: dict[str, Any]) -> Config:
    """A `Config` from keyword settings, on an ephemeral port, validated like the command line's.

    Raises TypeError for an unknown name and ValueError for a bad value.
    """
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown broker setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {"host": "127.0.0.1", "port": 0, **settings}
    # build_config reads strings (flags and variables are text): feeding it text reuses every check
    # it makes instead of keeping a second copy of them here.
    raw = {name: _as_text(value) for name, value in values.items() if value is not None}
    try:
        return build_config(Namespace(**raw), environ={})
    except ValueError as exc:
        raise ValueError(f"invalid broker setting: {exc}") from None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


class BrokerHandle:
    """What a test needs from a running broker: where it is, and clients pointed at it."""

    def __init__(self, running, config: Config):
        self._running = running
        self.config = config
        self.url: str = running.url  # http://127.0.0.1:PORT
        self.host: str = running.host
        self.port: int = running.port

    @property
    def engine(self):
        """The in-process `broker.engine.Broker` (queues and topics), for assertions."""
        return self._running.broker

    @property
    def batch(self):
        """The in-process Batch simulator (`broker.batchsim.BatchSim`)."""
        return self._running.batch

    def _credentials(self, secret_id: str | None, secret_key: str | None) -> tuple[str, str]:
        return (secret_id or self.config.secret_id or PLACEHOLDER_ID,
                secret_key or self.config.secret_key or PLACEHOLDER_KEY)

    def account(self, secret_id: str | None = None, secret_key: str | None = None):
        """A `cmq.account.Account` for this broker, signing with the broker's own SecretId and
        SecretKey unless others are given (any pair when authentication is off).

        The SDK writes `CMQ_python_sdk.log` into the working directory unless its logger already
        has a handler; this gives it a NullHandler first, so tests leave no such file behind.
        """
        return account_for(self.url, *self._credentials(secret_id, secret_key))

    def batch_client(self, region: str | None = None, secret_id: str | None = None,
                     secret_key: str | None = None):
        """A `tencentcloud.batch.v20170312.batch_client.BatchClient` for this broker, over plain
        HTTP, in the broker's region unless another is given."""
        return batch_client_for(self.url, region or self.config.region,
                                *self._credentials(secret_id, secret_key))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


@asynccontextmanager
async def running_broker(**settings: Any) -> AsyncIterator[BrokerHandle]:
    """Run a broker in the current event loop for the duration of the block.

    Do not call the (blocking) official SDKs from this loop: the broker could never answer them.
    Use aiohttp, `asyncio.to_thread(sdk_call, ...)`, or `broker_thread` instead.
    """
    config = make_config(settings)
    running = await start(config)
    try:
        yield BrokerHandle(running, config)
    except BaseException:
        try:
            await running.stop()
        except Exception:  # the block's own error is the one worth raising
            log.exception("stopping the broker at %s failed", running.url)
        raise
    await running.stop()


class ThreadedBroker(BrokerHandle):
    """A broker on its own event loop in a daemon thread (see `broker_thread`)."""

    def __init__(self, running, config: Config, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        super().__init__(running, config)
        self.loop = loop
        self._thread = thread

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = 30.0) -> Any:
        """Run `fn(*args)` on the broker's loop and return its result (awaited if it is awaitable).

        The engine belongs to that loop's thread; reading or changing it from another thread
        races with requests in flight, so go through this: `b.call(b.engine.get_queue, "q")`.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("call() from the broker's own thread would wait on itself; use the engine directly")

        async def run() -> Any:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class FakeClockBroker(ThreadedBroker):
    """A threaded broker whose time moves only by `advance()` (see `fake_clock_broker`)."""

    def __init__(self, running, config: Config, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 clock):
        super().__init__(running, config, loop, thread)
        self.clock = clock  # a broker.clock.FakeClock

    def advance(self, seconds: float) -> None:
        """Move the broker's time on by `seconds`, on its own loop (where its timers live): each
        timer that falls due fires at its own instant, in order; then the tasks those timers
        started take a few turns before this returns."""
        async def run() -> None:
            self.clock.advance(seconds)
            for _ in range(3):
                await asyncio.sleep(0)

        self.call(run)

    def time(self) -> float:
        """The broker's wall clock (Unix seconds), as it shows it to clients."""
        return self.call(self.clock.time)


@contextmanager
def broker_thread(**settings: Any) -> Iterator[ThreadedBroker]:
    """Run a broker on its own event loop (uvloop when installed) in a daemon thread, for sync code.

    This is the one to use with the official SDKs, which block on every call. The block's
    exception, if any, wins over an error while stopping.
    """
    with _threaded(make_config(settings), None, ThreadedBroker) as broker:
        yield broker


@contextmanager
def fake_clock_broker(start: float | None = None, **settings: Any) -> Iterator[FakeClockBroker]:
    """`broker_thread` on a `broker.clock.FakeClock` (its wall clock starting at `start`, Unix
    seconds, if given): nothing that waits or expires happens until `b.advance(seconds)`.

    Long polls wait on that clock too: a blocking ReceiveMessage with a polling wait returns only
    when another thread advances the clock (or a message arrives).
    """
    from .clock import FakeClock

    config = make_config(settings)
    clock = FakeClock() if start is None else FakeClock(start)
    with _threaded(config, clock, FakeClockBroker) as broker:
        yield broker


@contextmanager
def _threaded(config: Config, clock, handle: type) -> Iterator[Any]:
    ready: concurrent.futures.Future = concurrent.futures.Future()
    stopped: concurrent.futures.Future = concurrent.futures.Future()

    async def lifetime() -> None:
        running = await (start(config) if clock is None else start(config, clock))
        stop = asyncio.Event()
        ready.set_result((running, asyncio.get_running_loop(), stop))
        await stop.wait()
        await running.stop()

    def run() -> None:
        try:
            # Runner's close cancels leftover tasks and shuts down async generators and the
            # default executor, so the thread ends with nothing of the broker still alive.
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(lifetime())
        except BaseException as exc:  # handed to the caller's thread
            (stopped if ready.done() else ready).set_exception(exc)
        else:
            stopped.set_result(None)

    thread = threading.Thread(target=run, name="cmq-broker", daemon=True)
    thread.start()
    try:
        running, loop, stop = ready.result()
    except BaseException:
        # A failed start ends its thread: wait for it. An interrupted wait (Ctrl-C) leaves the
        # daemon thread behind rather than hang on a broker that may still be starting.
        if ready.done() and ready.exception() is not None:
            thread.join()
        raise
    try:
        yield handle(running, config, loop, thread) if clock is None else handle(running, config, loop, thread, clock)
    except BaseException:
        _stop_thread(loop, stop, thread, stopped, running.url, quiet=True)
        raise
    _stop_thread(loop, stop, thread, stopped, running.url, quiet=False)


def _stop_thread(loop, stop: asyncio.Event, thread: threading.Thread, stopped: concurrent.futures.Future,
                 url: str, quiet: bool) -> None:
    try:
        loop.call_soon_threadsafe(stop.set)
    except RuntimeError:  # the loop is already closed: the thread died, and `stopped` says why
        pass
    thread.join(STOP_TIMEOUT)
    if quiet:  # the block's own error is the one worth raising
        if stopped.done() and stopped.exception() is not None:
            log.error("stopping the broker at %s failed", url, exc_info=stopped.exception())
        return
    if thread.is_alive():
        raise RuntimeError(f"the broker at {url} did not stop within {STOP_TIMEOUT:.0f} s")
    stopped.result()
