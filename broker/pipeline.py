"""The one request pipeline: decode → run the declared action → durability → stats → log → render.

Theory of operation
-------------------
Every protocol (CMQ API 2.0, each API 3.0 service, the console's changes) declares its actions
once, as `Action` rows collected in an `ActionTable`: the name (which is also the metric label),
the handler, and whether it writes. Everything else is derived from those rows: dispatch,
"still served while the disk refuses writes", the closed set of metric labels.

A protocol is a small object with `decode` and `render`/`render_error` (see `Protocol`); it knows
its wire format and nothing else. `Pipeline.handler(protocol)` is the transport's request handler
for it, and runs the same steps for all of them:

1. `decode(call)`: read and authenticate the request, find the action, build the handler's
   arguments. It records what it learns on the `Call` (api, action, region), so stats and the
   access log can name the action even when a later step fails.
2. refuse a writing action while the data directory is backlogged (reads still work);
3. run the handler;
4. if anything was journaled since the request began, wait until it is on disk (errors too: a
   partly applied batch is durable before its reply goes out); a failed write turns the reply
   into StorageUnavailable;
5. render the result or the error in the protocol's own format (HTTP 200 and a JSON error for
   the APIs; the console has its own small error → status table);
6. count the request by (api, action label, result code), and hand it to the access log.

A bug of ours (any exception that is not a BrokerError) is logged with the request id and
rendered as the protocol's internal error: never a traceback to the client.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from itertools import count
from time import perf_counter
from typing import Any, Awaitable, Callable, Iterable, Iterator, Protocol as _Protocol

from .errors import BrokerError, InternalError, StorageUnavailable
from .logs import ACCESS

log = logging.getLogger("broker.pipeline")

# Seconds. A served request takes tens of microseconds; a long poll up to 30 s.
LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                  1.0, 2.5, 5.0, 10.0, 30.0)

UNKNOWN_ACTION = "unknown"  # the label of a request whose action is not declared


def _new_entry() -> list:
    return [0.0] + [0] * (len(LATENCY_BOUNDS) + 1)


class RequestStats(defaultdict):
    """(action, code) → [seconds summed, requests per latency bucket (not cumulative)...].

    The pipeline updates an entry inline: `s = stats[action, code]; s[0] += t;
    s[bisect_right(LATENCY_BOUNDS, t) + 1] += 1`. `action` must come from a closed set (a
    declared action's name, or UNKNOWN_ACTION) so that no client can create label values without end.
    """

    def __init__(self) -> None:
        super().__init__(_new_entry)


BACKLOG_MESSAGE = ("the data directory has not accepted writes for a while; changes are refused until it does "
                   "(reads still work)")


@dataclass(frozen=True, slots=True)
class Action:
    """One action, declared once. `name` is its documented spelling and its metric label."""

    name: str
    handler: Callable[..., Awaitable[Any]] | None  # None: known, but deliberately not offered
    writes: bool = True  # False: changes nothing, so it is served while the disk refuses writes


class ActionTable:
    """The actions of one protocol (or API 3.0 service), looked up by name."""

    def __init__(self, api: str, actions: Iterable[Action], *, case_sensitive: bool = True):
        self.api = api  # the `api` label of its metrics
        self.case_sensitive = case_sensitive
        self._by_key: dict[str, Action] = {}
        for action in actions:
            key = action.name if case_sensitive else action.name.lower()
            if key in self._by_key:
                raise ValueError(f"{api} action {action.name} is declared twice")
            self._by_key[key] = action

    def get(self, name: str) -> Action | None:
        return self._by_key.get(name if self.case_sensitive else name.lower())

    def finder(self) -> Callable[[str], Action | None]:
        """The lookup itself, for hot paths: takes the name as stored (lower case when the
        table is case-insensitive)."""
        return self._by_key.get

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[Action]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def names(self) -> list[str]:
        return [a.name for a in self._by_key.values()]


class Call:
    """One request as it goes through the pipeline: what decoding learned about it so far."""

    __slots__ = ("id", "started", "api", "action", "region", "http")

    def __init__(self, request_id: str, started: float, api: str, http: Any):
        # (The pipeline's handler fills these in itself, without this call: it is the hot path.)
        self.id = request_id
        self.started = started
        self.api = api  # metric label of the API; an API 3.0 request sets it to its service
        self.action: Action | None = None  # known once decoding found it
        self.region = ""  # API 3.0: X-TC-Region (or the default)
        self.http = http  # the transport's request object (aiohttp's), for decode only


class Protocol(_Protocol):
    api: str  # default metric label (before decoding knows better)

    async def decode(self, call: Call) -> tuple[Action, tuple]:
        """Read the request; return the action and its handler's positional arguments. Set
        `call.action` (and `call.api` where it depends on the request) as soon as known."""

    def render(self, result: Any, call: Call) -> tuple[Any, Any]:
        """(transport response, result code for stats) of a success."""

    def render_error(self, error: BrokerError, call: Call) -> tuple[Any, Any]:
        """(transport response, result code for stats) of a failure."""


def request_ids() -> Iterator[str]:
    """Request ids, one way for every protocol: UUID-shaped (API 3.0 clients parse them as
    UUIDs), unique per process start, and cheap: a random prefix and a counter."""
    prefix = os.urandom(10).hex()
    head = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}-{prefix[16:20]}-"
    return map(f"{head}{{:012x}}".format, count(1))


class Pipeline:
    """Runs every API request and console change of one broker (see the module docstring)."""

    def __init__(self, durability: Any = None, access_log: bool = False):
        # With --data-dir: mark() / changed_since(mark) / commit() / backlogged(), so that a reply
        # that acknowledges a change goes out only once the change is on disk.
        self.durability = durability
        self.access_log = access_log  # True: hand action and code to the access log
        self.stats: dict[str, RequestStats] = defaultdict(RequestStats)  # api → (label, code) → counts
        self._ids = request_ids()

    def handler(self, protocol: Protocol) -> Callable[[Any], Awaitable[Any]]:
        """The transport's request handler for `protocol`: every step of the module docstring.
        (One closure per protocol, with what it uses bound as locals: this is the hot path.)"""
        decode, render, render_error = protocol.decode, protocol.render, protocol.render_error
        api, ids, durability, stats = protocol.api, self._ids, self.durability, self.stats
        own_stats = stats[api]  # the protocol's own api label: most requests count here
        access_log = self.access_log

        new_call = Call.__new__

        async def handle(http: Any) -> Any:
            call = new_call(Call)  # as Call(...) would, without a Python call
            call.id, call.started, call.api, call.action, call.region, call.http = (
                next(ids), perf_counter(), api, None, "", http)
            mark = durability.mark() if durability is not None else 0
            error = result = None
            try:
                action, args = await decode(call)
                call.action = action
                if durability is not None and action.writes and durability.backlogged():
                    raise StorageUnavailable(BACKLOG_MESSAGE)
                result = await action.handler(*args)
            except BrokerError as exc:
                error = exc
            except Exception:  # a bug of ours: log it, never show a traceback to the client
                log.exception("internal error in request %s (%s %s)", call.id, call.api,
                              call.action.name if call.action else "?")
                error = InternalError(call.id)
            if durability is not None and durability.changed_since(mark):
                try:
                    await durability.commit()
                except BrokerError as exc:
                    error = exc
            if error is None:
                response, code = render(result, call)
            else:
                response, code = render_error(error, call)
            # Count it: (api, action label, code) → latency histogram (metrics.py shows it).
            elapsed = perf_counter() - call.started
            action = call.action
            label = action.name if action is not None else UNKNOWN_ACTION
            stat = (own_stats if call.api is api else stats[call.api])[label, code]
            stat[0] += elapsed
            stat[bisect_right(LATENCY_BOUNDS, elapsed) + 1] += 1
            if access_log and http is not None:
                http[ACCESS] = (label, str(code), call.started)
            return response

        return handle
