"""Shared machinery of the protocol fuzz tests (test_fuzz_cmq.py, test_fuzz_cmq_model.py,
test_fuzz_batch.py; docs/robustness.md, section Fuzzing, says what they generate and check).

- Example counts: Hypothesis profiles `ci` (the default: small, derandomized, so CI is stable and
  a failure reproduces on the next run) and `deep` (thousands of examples, random, with the
  example database in .hypothesis/ so a failure found once is replayed first next time).
  `FUZZ_PROFILE=deep` picks the deep one; `FUZZ_EXAMPLES=N` runs N examples in every fuzz test
  whatever the profile. Each test states its own ci and deep budgets with `budget()`.
- Brokers in-process (broker.testing): on their own event loop in a daemon thread, with a real
  clock (`broker_thread`) or a `FakeClock` the tests move by hand (`fake_clock_broker`), so
  visibility timeouts and delays happen exactly when a model says they do.
- `Http`: a keep-alive http.client connection sending raw bytes (~1 ms a call).
- `Tally` and `report()`: what a test generated, printed at the end of its module (pytest -s).
- Reply checks: `cmq_reply()` and `batch_reply()` assert the protocol envelope.
- `LogWatch`: ERROR records of the broker's and aiohttp's loggers. Every one is a bug here (an
  "internal error in request", a failed simulator step, a crashed push), so tests assert none.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from hypothesis import HealthCheck, event, settings
from hypothesis.errors import InvalidArgument

from broker.testing import FakeClockBroker, fake_clock_broker  # noqa: F401 (the fuzz tests import them from here)

# -- example counts ----------------------------------------------------------------------------

PROFILE = os.environ.get("FUZZ_PROFILE", "ci").strip() or "ci"
if PROFILE not in ("ci", "deep"):
    raise RuntimeError(f"FUZZ_PROFILE must be ci or deep, got {PROFILE!r}")
_EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "").strip()
if _EXAMPLES and not (_EXAMPLES.isdigit() and int(_EXAMPLES) > 0):
    raise RuntimeError(f"FUZZ_EXAMPLES must be a positive integer, got {_EXAMPLES!r}")

_COMMON = dict(
    deadline=None,  # a call crosses threads and sockets: its time says nothing about a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("deep", **_COMMON)
settings.load_profile(PROFILE)


def budget(ci: int, deep: int, **extra: Any) -> settings:
    """Settings for one fuzz test: `ci` or `deep` examples by profile, unless FUZZ_EXAMPLES says."""
    n = int(_EXAMPLES) if _EXAMPLES else (deep if PROFILE == "deep" else ci)
    return settings(max_examples=n, **extra)


# -- brokers ------------------------------------------------------------------------------------

# `fake_clock_broker` and `FakeClockBroker`, imported above, are broker.testing's: a broker whose
# time moves only by `advance()`, on its own loop in a daemon thread (with `call()`, `time()`,
# `clock`, and SDK clients like every handle there).

# -- HTTP ---------------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] | None = None

    def __repr__(self) -> str:  # failing examples can hold megabytes: show their start
        def cut(x):
            r = repr(x)
            return r if len(r) <= 400 else f"{r[:400]}... ({len(x)} long)"
        return f"Request({self.method} {cut(self.path)} body={cut(self.body)} headers={self.headers})"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Http:
    """One keep-alive connection. A request that finds the reused connection closed by the
    server (as after a body over the size limit) is sent once more on a fresh one, as every
    HTTP client does; `reconnects` counts those."""

    def __init__(self, host: str, port: int, timeout: float = 15.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.reconnects = 0

    def send(self, req: Request) -> Reply:
        return self.request(req.method, req.path, req.body, req.headers)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        for attempt in (1, 2):
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body=body if body or method not in ("GET", "HEAD") else None,
                                  headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.conn.close()
                return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if not reused or attempt == 2:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def form(pairs: list[tuple[str, str]]) -> bytes:
    """A form body, encoded as the SDK encodes it."""
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode()


# -- reply checks -------------------------------------------------------------------------------

_MODULE_PREFIX = re.compile(r"\(\d+\)")


def cmq_reply(reply: Reply, context: Any = None) -> dict:
    """The CMQ envelope: HTTP 200, JSON object, int code, str message and requestId; an error
    says its module code first, "(10110)..."; never code 6000, our "internal error"."""
    where = f" for {context!r}" if context is not None else ""
    assert reply.status == 200, f"HTTP {reply.status}{where}: {reply.body[:300]!r}"
    assert reply.headers.get("content-type", "").startswith("application/json"), f"{reply.headers}{where}"
    data = json.loads(reply.body.decode("utf-8"))
    assert isinstance(data, dict), f"not a JSON object{where}: {data!r}"
    code, message, request_id = data.get("code"), data.get("message"), data.get("requestId")
    assert type(code) is int, f"code {code!r}{where}"
    assert type(message) is str and type(request_id) is str and request_id, f"{data}{where}"
    if code:
        assert _MODULE_PREFIX.match(message), f"error message without its module code{where}: {data}"
        assert code != 6000, f"internal error{where}: {data}"
    return data


def batch_reply(reply: Reply, context: Any = None) -> dict:
    """The API 3.0 envelope: HTTP 200, Content-Type exactly application/json (the SDK misreads
    anything else), {"Response": {..., "RequestId"}}; an error has string Code and Message and
    nothing else beside RequestId; never InternalError. Returns the Response object."""
    where = f" for {context!r}" if context is not None else ""
    assert reply.status == 200, f"HTTP {reply.status}{where}: {reply.body[:300]!r}"
    assert reply.headers.get("content-type") == "application/json", f"{reply.headers}{where}"
    data = json.loads(reply.body.decode("utf-8"))
    assert isinstance(data, dict) and list(data) == ["Response"], f"{data!r:.300}{where}"
    response = data["Response"]
    assert isinstance(response, dict) and type(response.get("RequestId")) is str and response["RequestId"], \
        f"{response!r:.300}{where}"
    if "Error" in response:
        error = response["Error"]
        assert set(response) == {"Error", "RequestId"}, f"{response!r:.300}{where}"
        assert isinstance(error, dict) and type(error.get("Code")) is str and type(error.get("Message")) is str, \
            f"{response}{where}"
        assert error["Code"] != "InternalError", f"internal error{where}: {response}"
    return response


def batch_error(response: dict) -> str | None:
    error = response.get("Error")
    return error["Code"] if error else None


# -- logs ---------------------------------------------------------------------------------------

class LogWatch(logging.Handler):
    """Collects ERROR records of the `broker` and `aiohttp` loggers while installed."""

    LOGGERS = ("broker", "aiohttp")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)

    def take(self) -> list[str]:
        with self._lock_records:
            taken, self.records = self.records, []
        return [self.format(r) for r in taken]

    def assert_clean(self, context: Any = None) -> None:
        errors = self.take()
        assert not errors, f"the broker logged errors{f' after {context!r}' if context is not None else ''}:\n" + \
            "\n".join(errors)

    def __enter__(self) -> "LogWatch":
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


class Tally(Counter):
    """What a fuzz test generated: "examples" (or "runs" and "steps" of a state machine), and
    calls by their outcome ("Action: code"), printed by `report()` at the end of the module."""

    def call(self, outcome: str) -> None:
        self[outcome] += 1
        try:
            event(outcome)  # also in --hypothesis-show-statistics
        except InvalidArgument:  # outside a Hypothesis test (a state machine's teardown)
            pass


def report(title: str, tally: Tally) -> None:
    """Print a tally (seen with pytest -s)."""
    counts = ", ".join(f"{tally[k]} {k}" for k in ("examples", "runs", "steps") if tally[k])
    calls = {k: n for k, n in tally.items() if ":" in k}
    print(f"\n{title}: {counts}, {sum(calls.values())} calls")
    for key, n in sorted(calls.items()):
        print(f"  {n:7d}  {key}")
