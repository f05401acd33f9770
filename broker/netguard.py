"""Connection limits: how many clients may be connected, and how long a request may take to arrive.

aiohttp bounds what one request may hold (header line and field sizes, header count, body size)
but not how many connections are open, nor how slowly a request may trickle in: a client sending
one byte a second keeps its connection, its buffers and a file descriptor forever. Async code
never blocks a worker on it, but enough such clients exhaust descriptors and memory. So:

- `GuardedSite` opens the listener with a protocol factory that refuses a connection beyond
  `max_connections` with a short `503` and closes it (before reading anything, so the reply cannot
  be in the protocol's own format: the request is not known yet).
- Every accepted connection notes when the first byte of a request that has not fully arrived
  (headers and body) came in; a sweeper closes connections whose request has been arriving for
  longer than `request_timeout`. Idle keep-alive connections are aiohttp's `keepalive_timeout`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("broker.net")

SWEEP_EVERY = 1.0  # seconds between looks for slow requests


def _refusal(limit: int) -> bytes:
    body = json.dumps({
        "code": 6000, "message": f"(10050)too many connections: the broker accepts at most {limit}; retry later",
        "Response": {"Error": {"Code": "RequestLimitExceeded",
                               "Message": f"too many connections: the broker accepts at most {limit}"}},
    }).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


class _Refuse(asyncio.Protocol):
    def __init__(self, reply: bytes):
        self.reply = reply

    def connection_made(self, transport) -> None:
        transport.write(self.reply)
        transport.close()


class _Watched(RequestHandler):
    """aiohttp's request handler, noting since when a request has been arriving."""

    __slots__ = ("_guard", "_arriving_since", "_body")

    def __init__(self, guard: "ConnectionGuard", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._arriving_since = 0.0  # monotonic time of the first byte of an incomplete request; 0 = none
        self._body = None  # the body stream of the newest request while it is still arriving

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._guard.live.add(self)

    def connection_lost(self, exc) -> None:
        self._guard.live.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a request's headers completed in this chunk
            body = self._messages[-1][1] if self._messages else None
            self._body = None if body is None or body.is_eof() else body
        elif self._body is not None and self._body.is_eof():  # this chunk ended the body
            self._body = None
        elif not self._arriving_since:  # body bytes, or the first bytes of the next request
            self._arriving_since = time.monotonic()
            return
        else:
            return
        if self._body is None:
            self._arriving_since = 0.0  # headers and body are all here
        elif not self._arriving_since:
            self._arriving_since = time.monotonic()


class ConnectionGuard:
    """Counts live connections and closes those whose request is too slow to arrive."""

    def __init__(self, server: web.Server, max_connections: int, request_timeout: float):
        self.server = server
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.live: set[_Watched] = set()
        self.refused = 0
        self.timed_out = 0
        self._refusal = _refusal(max_connections)
        self._sweeper: asyncio.Task | None = None

    def __call__(self) -> asyncio.Protocol:
        if len(self.live) >= self.max_connections:
            self.refused += 1
            return _Refuse(self._refusal)
        server = self.server
        return _Watched(self, server, loop=server._loop, **server._kwargs)

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            deadline = time.monotonic() - self.request_timeout
            for conn in [c for c in self.live if c._arriving_since and c._arriving_since < deadline]:
                self.timed_out += 1
                log.info("closing a connection whose request took over %.0f s to arrive", self.request_timeout)
                self.live.discard(conn)
                conn.force_close()
                if conn.transport is not None:
                    conn.transport.close()


class _BadRequestsAreNotErrors(logging.Filter):
    """aiohttp logs a request it cannot parse (a header over its size limits, a broken request
    line) as an error with a traceback, although the client got its 400 and nothing is wrong
    here: make that one informational line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"refused a malformed request ({exc.code}): {str(exc.message)[:200]}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_bad_requests() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestsAreNotErrors) for f in logger.filters):
        logger.addFilter(_BadRequestsAreNotErrors())


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a `ConnectionGuard`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int,
                 request_timeout: float, backlog: int = 1024):
        super().__init__(runner, host, port, backlog=backlog)
        self.guard: ConnectionGuard | None = None
        self._limits = (max_connections, request_timeout)

    async def start(self) -> None:
        quiet_bad_requests()
        # BaseSite.start registers the site with the runner; the listener is opened here, as
        # TCPSite does, but with the guard as the protocol factory.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(server, *self._limits)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
        self.guard.start()

    async def stop(self) -> None:
        if self.guard is not None:
            await self.guard.close()
        await super().stop()
