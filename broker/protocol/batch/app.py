"""The Tencent Cloud API 3.0 endpoint for Batch: decode → authenticate → dispatch → render.

`POST /` with a JSON object body; the action, version and region travel in X-TC-* headers and
the request is signed with TC3-HMAC-SHA256 (signature.py). Every reply is HTTP 200 with
`Content-Type: application/json` exactly: the SDK raises a network error on any other status,
and with `; charset=utf-8` appended it silently returns an all-None model instead of raising.

Handlers are `async def handler(sim, params, ctx) -> dict` held in the one `ACTIONS` table;
modules add theirs with `@register("ActionName")` (see __init__.py for which are imported).
A handler returns the response fields; the endpoint adds RequestId and wraps the envelope.
"""

from __future__ import annotations

import json
import logging
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Awaitable, Callable

from aiohttp import web

from ...clock import Clock, RealClock
from ...errors import (
    BrokerError,
    MalformedRequest,
    MethodNotAllowed,
    MissingParameter,
    StorageUnavailable,
    UnknownAction,
    UnsupportedOperation,
    UnsupportedVersion,
)
from ...logs import ACCESS
from ...metrics import LATENCY_BOUNDS, UNKNOWN_ACTION, RequestStats
from .errors import INTERNAL_ERROR, error_reply, error_response
from .signature import verify

log = logging.getLogger("broker.batch")

VERSION = "2017-03-12"


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may need to know about the request besides its parameters."""

    region: str  # X-TC-Region, else the broker's configured region
    request_id: str


Handler = Callable[[Any, dict, Context], Awaitable[dict]]

# Action name (exact, case-sensitive as in API 3.0) → handler.
ACTIONS: dict[str, Handler] = {}

# Actions the SDK has but the simulator deliberately does not offer.
UNSUPPORTED = frozenset({
    "AttachInstances",
    "DetachInstances",
    "DescribeJobMonitorData",
    "DescribeCvmZoneInstanceConfigInfos",
    "DescribeInstanceCategories",
})


def register(action: str) -> Callable[[Handler], Handler]:
    """Decorator: put a handler in ACTIONS under `action`; registering a name twice is a bug."""

    def add(handler: Handler) -> Handler:
        if action in ACTIONS:
            raise RuntimeError(f"Batch action {action} is registered twice")
        ACTIONS[action] = handler
        return handler

    return add


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BatchEndpoint:
    """The aiohttp handler for `POST /`, bound to one simulator and its credentials."""

    def __init__(self, sim: Any, secret_id: str | None, secret_key: str | None, max_body: int,
                 default_region: str, *, clock: Clock | None = None, durability=None, max_skew: float = 300):
        self.sim = sim
        self.max_skew = max_skew  # seconds X-TC-Timestamp may be off: older signed requests are replays
        self.durability = durability  # as in the CMQ endpoint: replies wait for their records
        self.secrets = (secret_id, secret_key) if secret_id and secret_key else None
        self.max_body = max_body
        self.default_region = default_region
        self.clock = clock or RealClock()
        self.stats = RequestStats()  # for /metrics, keyed by (action we know of or None, code; "0" for success)
        self.access_log = False  # True: hand action and code to the access log

    async def handle(self, request: web.Request) -> web.Response:
        started = perf_counter()
        request_id = str(uuid.uuid4())
        code = "0"
        durability = self.durability
        mark = durability.mark() if durability is not None else 0
        try:
            fields = await self._serve(request, request_id)
            if durability is not None and durability.changed_since(mark):
                await durability.commit()
            fields["RequestId"] = request_id
            body = _dumps({"Response": fields})
        except BrokerError as exc:
            reply = error_reply(exc, request_id)
            code = reply["Response"]["Error"]["Code"]
            body = _dumps(reply)
        except Exception:  # a bug of ours: log it, never show a traceback to the client
            log.exception("internal error in Batch request %s (%s)", request_id,
                          request.headers.get("X-TC-Action", "?"))
            code = INTERNAL_ERROR
            body = _dumps(error_response(INTERNAL_ERROR, f"internal error; the broker log has request {request_id}",
                                         request_id))
        self._count(request, code, started)
        return web.Response(body=body.encode(), content_type="application/json")

    def _count(self, request: web.Request, code: str, started: float) -> None:
        elapsed = perf_counter() - started
        action = request.headers.get("X-TC-Action", "").strip()
        known = action if action in ACTIONS or action in UNSUPPORTED else None  # labels stay a closed set
        stat = self.stats[known, code]
        stat[0] += elapsed
        stat[bisect_right(LATENCY_BOUNDS, elapsed) + 1] += 1
        if self.access_log:
            request[ACCESS] = (known or UNKNOWN_ACTION, code, started)

    async def _serve(self, request: web.Request, request_id: str) -> dict:
        if request.method != "POST":
            raise MethodNotAllowed(
                f"method {request.method} is not supported: API 3.0 requests are POST / with a JSON body"
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise MalformedRequest(f"request body is larger than the limit of {self.max_body} bytes") from None
        except ConnectionResetError:  # the client left, or was cut off for sending too slowly
            raise MalformedRequest("the connection closed before the request body arrived") from None
        headers = request.headers
        if self.secrets:
            verify(method=request.method, path=request.rel_url.raw_path, query=request.rel_url.raw_query_string,
                   headers=headers, body=raw, secret_id=self.secrets[0], secret_key=self.secrets[1],
                   now=self.clock.time(), max_skew=self.max_skew)
        action = headers.get("X-TC-Action", "").strip()
        if not action:
            raise MissingParameter("X-TC-Action")
        version = headers.get("X-TC-Version", "").strip()
        if version != VERSION:
            raise UnsupportedVersion(
                f"X-TC-Version {version!r} is not supported: Batch speaks {VERSION}" if version
                else f"X-TC-Version is missing: Batch speaks {VERSION}"
            )
        handler = ACTIONS.get(action)
        if handler is None:
            if action in UNSUPPORTED:
                raise UnsupportedOperation(f"{action} is not offered by this Batch simulator")
            raise UnknownAction(action)
        if self.durability is not None and self.durability.backlogged() and not action.startswith("Describe"):
            raise StorageUnavailable("the data directory has not accepted writes for a while; "
                                     "changes are refused until it does (Describe* calls still work)")
        params = self._params(raw)
        ctx = Context(region=headers.get("X-TC-Region", "").strip() or self.default_region, request_id=request_id)
        fields = await handler(self.sim, params, ctx)
        return dict(fields)  # a copy: the handler may return a dict it keeps

    @staticmethod
    def _params(raw: bytes) -> dict:
        if not raw.strip():
            return {}  # what `{}` would mean; curl users often send nothing
        try:
            params = json.loads(raw, parse_constant=_no_constants)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
            raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
        except RecursionError:  # json.loads recurses once per level: "[[[[..." exhausts the stack
            raise MalformedRequest(f"request body is nested deeper than {MAX_DEPTH} levels") from None
        if not isinstance(params, dict):
            kind = _JSON_KINDS.get(type(params), "value")
            raise MalformedRequest(f"request body must be a JSON object of parameters, got a JSON {kind}")
        if _deeper_than(params, MAX_DEPTH):  # what is kept is echoed and journaled later, recursively too
            raise MalformedRequest(f"request body is nested deeper than {MAX_DEPTH} levels")
        return params


MAX_DEPTH = 32  # levels of JSON objects and arrays in a request; Batch's own models use under 10


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
