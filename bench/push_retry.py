"""HTTP push to topic subscribers: retry schedules, and latency to a healthy endpoint.

Starts `python -m broker serve --port 0 --push-retry-scale 0.01 --push-timeout 1` as a child
process, and in this process an aiohttp HTTP receiver on a free port. The receiver answers 500
to the first K attempts at each message and 200 from then on (K is part of the endpoint's path,
so each subscription gets its own K). For every row it creates a topic, subscribes the receiver
(protocol=http, JSON, no filter tags) with the row's notifyStrategy, publishes M messages one
after another, and waits until GetSubscriptionAttributes reports msgCount 0, i.e. every copy
was delivered or given up.

Per message it records when PublishMessage was sent and when each push arrived at the
receiver, all on this process's monotonic clock. Reported:
  total   publish sent -> arrival of the successful push (p50, p99, max over the messages)
  gaps    arrival of one attempt -> arrival of the next, pooled per retry number across the
          rows of a strategy, next to the broker's schedule times the scale:
            BACKOFF_RETRY            3 retries, each gap uniform in 10-20 s, then dropped
            EXPONENTIAL_DECAY_RETRY  1, 2, 4, ... 256 s, then 512 s (176 retries in all)
A last row pushes to an endpoint that never fails (K = 0) and reports the publish-to-delivery
latency. Every push is checked (method, headers, JSON envelope); a bad one, a missing or
duplicate delivery, or a wrong attempt count is reported and makes the exit status 1.

The receiver, the publisher and the broker share the machine's cores, so latencies include
scheduling noise. This prints numbers; it never judges them.

    python bench/push_retry.py [--messages 20] [--healthy 1000] [--scale 0.01] [--timeout 1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send_rate import BODY, checked, form, percentile, run_on_uvloop, start_broker, stop_broker  # noqa: E402

import aiohttp  # noqa: E402  (send_rate already checked that it is installed)
from aiohttp import web  # noqa: E402

BACKOFF, EXPONENTIAL = "BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY"
BACKOFF_RETRIES, BACKOFF_GAP = 3, (10.0, 20.0)  # as documented for CMQ, in seconds
EXPONENTIAL_GAPS = [2.0**i for i in range(9)] + [512.0] * 167
ROWS = [(BACKOFF, k) for k in (1, 2, 3, 4)] + [(EXPONENTIAL, k) for k in (1, 3, 6, 9)]
USER_AGENT = "Qcloud Notification Service Agent"
clock = time.perf_counter


# -- the receiver -------------------------------------------------------------------------------

@dataclass
class Receiver:
    """Counts attempts per (path, message id) and fails the first K of each."""

    attempts: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    successes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    problems: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        arrived = clock()
        fail_first = int(request.match_info["k"])
        msg_id = request.headers.get("x-cmq-message-id", "")
        key = (request.path, msg_id)
        self.attempts[key].append(arrived)
        self.check(request, await request.read(), msg_id)
        if len(self.attempts[key]) <= fail_first:
            return web.Response(status=500, text="failing on purpose")
        self.successes[key] += 1
        return web.Response(text="ok")

    def check(self, request: web.Request, raw: bytes, msg_id: str) -> None:
        def problem(what: str) -> None:
            if len(self.problems) < 10:
                self.problems.append(f"{request.path} message {msg_id or '?'}: {what}")

        if not msg_id:
            problem("no x-cmq-message-id header")
        if request.content_type != "text/plain":
            problem(f"Content-Type {request.content_type!r}")
        if request.headers.get("User-Agent") != USER_AGENT:
            problem(f"User-Agent {request.headers.get('User-Agent')!r}")
        if not request.headers.get("x-cmq-request-id"):
            problem("no x-cmq-request-id header")
        try:
            body = json.loads(raw)
        except ValueError:
            problem(f"body is not JSON: {raw[:80]!r}")
            return
        expected = {"msgId": msg_id, "msgBody": BODY, "topicName": request.match_info["topic"],
                    "subscriptionName": "receiver"}
        for name, value in expected.items():
            if body.get(name) != value:
                problem(f"{name} is {str(body.get(name))[:40]!r}, expected {value[:40]!r}")
        if not isinstance(body.get("publishTime"), int) or not isinstance(body.get("TopicOwner"), int):
            problem(f"publishTime/TopicOwner not integers: {body.get('publishTime')!r}/{body.get('TopicOwner')!r}")


async def start_receiver(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{topic}/{k}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


# -- one row --------------------------------------------------------------------------------

@dataclass
class Row:
    strategy: str
    fail_first: int
    messages: int
    delivered: int = 0
    attempts: int = 0
    totals: list[float] = field(default_factory=list)  # seconds, delivered messages only
    gaps: list[list[float]] = field(default_factory=list)  # per message: gaps between its attempts
    problems: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0


def expected_attempts(strategy: str, fail_first: int) -> tuple[int, bool]:
    """(attempts the broker should make, whether the message ends up delivered)."""
    retries = BACKOFF_RETRIES if strategy == BACKOFF else len(EXPONENTIAL_GAPS)
    if fail_first <= retries:
        return fail_first + 1, True
    return retries + 1, False


def expected_total(strategy: str, fail_first: int, scale: float) -> str:
    """The scheduled delay before the successful attempt, in ms (network time not included)."""
    attempts, delivered = expected_attempts(strategy, fail_first)
    if not delivered:
        return f"dropped after {attempts} attempts"
    if strategy == BACKOFF:
        lo, hi = (fail_first * g * scale * 1000 for g in BACKOFF_GAP)
        return f"{lo:,.0f}-{hi:,.0f}"
    return f"{sum(EXPONENTIAL_GAPS[:fail_first]) * scale * 1000:,.0f}"


async def run_row(session, url, base, receiver: Receiver, strategy: str, fail_first: int, count: int,
                  scale: float, timeout: float) -> Row:
    topic = f"{'backoff' if strategy == BACKOFF else 'exp'}-k{fail_first}"
    endpoint = f"{base}/{topic}/{fail_first}"
    path = f"/{topic}/{fail_first}"
    await checked(session, url, form(Action="CreateTopic", topicName=topic))
    await checked(session, url, form(
        Action="Subscribe", topicName=topic, subscriptionName="receiver", protocol="http",
        endpoint=endpoint, notifyStrategy=strategy, notifyContentFormat="JSON",
    ))
    body = form(Action="PublishMessage", topicName=topic, msgBody=BODY, routingKey="")
    sent: dict[str, float] = {}
    for _ in range(count):
        t0 = clock()
        reply = await checked(session, url, body)
        sent[reply["msgId"]] = t0

    # Wait until the broker has settled every copy (msgCount 0), within the schedule plus slack.
    attempts, delivered = expected_attempts(strategy, fail_first)
    gaps = [BACKOFF_GAP[1]] * (attempts - 1) if strategy == BACKOFF else EXPONENTIAL_GAPS[: attempts - 1]
    deadline = clock() + sum(gaps) * scale + (attempts + 1) * timeout + 10
    status = form(Action="GetSubscriptionAttributes", topicName=topic, subscriptionName="receiver")
    while (await checked(session, url, status))["msgCount"] > 0:
        if clock() > deadline:
            break
        await asyncio.sleep(0.02)
    settled = clock()
    await asyncio.sleep(max(0.2, 2 * BACKOFF_GAP[1] * scale))  # would catch a stray extra attempt
    await checked(session, url, form(Action="DeleteTopic", topicName=topic))

    row = Row(strategy, fail_first, count, settle_seconds=settled - min(sent.values()))
    if settled > deadline:
        row.problems.append(f"copies still pending {deadline - min(sent.values()):.1f} s after the first publish")
    for msg_id, t0 in sent.items():
        times = receiver.attempts.get((path, msg_id), [])
        row.attempts += len(times)
        if len(times) != attempts:
            row.problems.append(f"message {msg_id}: {len(times)} attempts, expected {attempts}")
        row.gaps.append([b - a for a, b in zip(times, times[1:])])
        ok = receiver.successes.get((path, msg_id), 0)
        if ok > 1:
            row.problems.append(f"message {msg_id}: delivered {ok} times")
        if ok:
            row.delivered += 1
            row.totals.append(times[fail_first] - t0)
    if delivered and row.delivered != count:
        row.problems.append(f"{count - row.delivered} of {count} messages never delivered")
    stray = {m for (p, m) in receiver.attempts if p == path} - set(sent)
    if stray:
        row.problems.append(f"{len(stray)} pushes for unknown message ids")
    return row


# -- report -----------------------------------------------------------------------------------

COLUMNS = ("strategy", "fail", "delivered", "attempts", "p50 ms", "p99 ms", "max ms", "scheduled ms")
WIDTHS = (24, 4, 10, 8, 9, 9, 9, 24)


def line(cells) -> str:
    first, *rest = cells
    return f"{first:<{WIDTHS[0]}}" + "".join(f" {c:>{w}}" for c, w in zip(rest, WIDTHS[1:]))


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:,.1f}"


def summary(row: Row, scheduled: str, name: str | None = None) -> str:
    totals = sorted(row.totals)
    return line((
        name or row.strategy,
        row.fail_first,
        f"{row.delivered}/{row.messages}",
        row.attempts,
        ms(percentile(totals, 0.50)),
        ms(percentile(totals, 0.99)),
        ms(totals[-1] if totals else float("nan")),
        scheduled,
    ))


def gap_table(rows: list[Row], scale: float) -> list[str]:
    out = [
        "gaps between attempts, ms: each retry's gap pooled over a strategy's rows",
        f"{'strategy':<24} {'retry':>5} {'gaps':>5} {'scheduled':>11} {'min':>9} {'p50':>9} {'max':>9}",
    ]
    for strategy in (BACKOFF, EXPONENTIAL):
        pooled: dict[int, list[float]] = defaultdict(list)
        for row in rows:
            if row.strategy == strategy:
                for gaps in row.gaps:
                    for i, gap in enumerate(gaps):
                        pooled[i].append(gap)
        for i in sorted(pooled):
            if strategy == BACKOFF:
                scheduled = f"{BACKOFF_GAP[0] * scale * 1000:,.0f}-{BACKOFF_GAP[1] * scale * 1000:,.0f}"
            else:
                scheduled = f"{EXPONENTIAL_GAPS[i] * scale * 1000:,.0f}"
            gaps = sorted(pooled[i])
            out.append(f"{strategy:<24} {i + 1:>5} {len(gaps):>5} {scheduled:>11} {ms(gaps[0]):>9} "
                       f"{ms(statistics.median(gaps)):>9} {ms(gaps[-1]):>9}")
    return out


# -- main -------------------------------------------------------------------------------------

async def run(args) -> int:
    receiver = Receiver()
    receiver_runner, base = await start_receiver(receiver)
    proc, broker_base = await start_broker(
        "--push-retry-scale", f"{args.scale:g}", "--push-timeout", f"{args.timeout:g}"
    )
    url = broker_base + "/v2/index.php"
    print("\n".join((
        f"cmq-broker push bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"broker: pid {proc.pid} at {broker_base}, --push-retry-scale {args.scale:g} --push-timeout {args.timeout:g}",
        f"receiver and publisher: pid {os.getpid()}, aiohttp {aiohttp.__version__}, "
        f"Python {platform.python_version()}, receiver at {base}",
        f"machine: {os.cpu_count()} cores shared by broker, receiver and publisher; figures are indicative.",
        f"{args.messages} messages per retry row, published one after another; the receiver answers 500 to the",
        "first `fail` attempts at each message, then 200. Delay = PublishMessage sent -> successful push arrived.",
    )), flush=True)
    print(flush=True)
    print(line(COLUMNS), flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for strategy, k in ROWS:
                row = await run_row(session, url, base, receiver, strategy, k, args.messages, args.scale, args.timeout)
                rows.append(row)
                print(summary(row, expected_total(strategy, k, args.scale)), flush=True)
                notes.extend(f"{strategy} fail {k}: {p}" for p in row.problems[:5])
            healthy = await run_row(session, url, base, receiver, EXPONENTIAL, 0, args.healthy, args.scale, args.timeout)
            print(summary(healthy, "0", name="healthy endpoint"), flush=True)
            notes.extend(f"healthy: {p}" for p in healthy.problems[:5])
            notes.append(f"healthy: {args.healthy} messages published one after another; all were delivered "
                         f"{healthy.settle_seconds:.2f} s after the first publish was sent")
    finally:
        code = await stop_broker(proc)
        await receiver_runner.cleanup()
    print(flush=True)
    for text in gap_table(rows, args.scale):
        print(text, flush=True)
    print(flush=True)
    notes.extend(f"receiver: {p}" for p in receiver.problems)
    failed = any(r.problems for r in rows + [healthy]) or bool(receiver.problems)
    notes.append(f"broker exited with code {code} after SIGTERM")
    for note in notes:
        print(note, flush=True)
    return 1 if failed or code != 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure cmq-broker HTTP push retries and delivery latency.")
    parser.add_argument("--messages", type=int, default=20, help="messages per retry row (default 20)")
    parser.add_argument("--healthy", type=int, default=1000, help="messages to the healthy endpoint (default 1000)")
    parser.add_argument("--scale", type=float, default=0.01, help="the broker's --push-retry-scale (default 0.01)")
    parser.add_argument("--timeout", type=float, default=1.0, help="the broker's --push-timeout (default 1)")
    args = parser.parse_args()
    if args.messages < 1 or args.healthy < 1 or args.scale <= 0 or args.timeout <= 0:
        parser.error("--messages and --healthy must be at least 1, --scale and --timeout positive")
    return run_on_uvloop(run(args))


if __name__ == "__main__":
    sys.exit(main())
