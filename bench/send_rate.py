"""Throughput and latency of the CMQ queue actions, measured over real HTTP.

Starts `python -m broker serve --port 0` as a child process, waits for /healthz, then drives it
from N concurrent keep-alive connections (one aiohttp worker per connection, each a tight loop
of form POSTs whose bodies are encoded once up front). Each scenario runs a warm-up second that
is not counted, then `--duration` measured seconds; only requests that finish inside the
measured window count. Every reply is parsed and its `code` checked: anything but 0 is an
error, and errors are counted from the first request on, warm-up included.

Scenarios:
  send   SendMessage, one 100-byte body per request
  batch  BatchSendMessage, 16 bodies of 100 bytes per request
  cycle  BatchReceiveMessage (numOfMsg=16) then BatchDeleteMessage of the handles it returned,
         on a queue filled beforehand
  publish  PublishMessage, one 100-byte body and an empty routingKey per request, to a topic with
         1 and then 10 queue subscribers (protocol=queue, SIMPLIFIED, no filter), so two rows;
         msgs/s counts the copies put into the subscribed queues (publishes x subscribers).
         Afterwards every queue must hold exactly one copy of each acknowledged publish.

The load generator and the broker run on the same machine and share its cores, so the figures
are a floor for the broker alone and vary from run to run. This prints numbers; it never judges them.

    python bench/send_rate.py [--duration 5] [--connections 32] [--scenario all]

With `all` and both SendMessage and publish run, it also prints the ratio of publish (10
subscribers) to SendMessage in requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

try:
    import aiohttp
except ImportError:  # pragma: no cover - a hint for someone running outside the venv
    sys.exit("aiohttp is missing: run this with the project's venv (pip install -e .)")

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 1.0  # seconds run before measuring, not counted
BODY = "x" * 100  # 100 bytes of UTF-8
BATCH = 16
SUBSCRIBER_COUNTS = (1, 10)  # the publish scenario runs once per count
STARTUP_TIMEOUT = 15.0
_LISTENING = re.compile(r"listening on (http://\S+)")


# -- the broker under test ------------------------------------------------------------------

async def start_broker(*extra: str, cpus: set[int] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    """Start the broker on a free port (with `extra` flags); return it and its base URL once
    /healthz answers. With `cpus`, the broker runs on those cores only (as `taskset` would)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "serve", "--port", "0", "--log-level", "warning", *extra,
        cwd=ROOT,  # so `-m broker` finds the package even without an install
        stdout=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT)
        found = _LISTENING.search(line.decode(errors="replace"))
        if not found:
            raise RuntimeError(f"broker did not print its address (got {line!r}, exit code {proc.returncode})")
        base = found.group(1)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                try:
                    async with session.get(base + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("broker never answered /healthz")
                await asyncio.sleep(0.05)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    return proc, base


async def stop_broker(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


# -- requests ---------------------------------------------------------------------------------

def form(**params) -> bytes:
    return urlencode(params).encode()


async def call(session: aiohttp.ClientSession, url: str, body: bytes) -> dict:
    async with session.post(url, data=body) as resp:
        raw = await resp.read()
    if resp.status != 200:
        return {"code": -resp.status, "message": raw[:200].decode(errors="replace")}
    return json.loads(raw)


async def checked(session: aiohttp.ClientSession, url: str, body: bytes) -> dict:
    reply = await call(session, url, body)
    if reply.get("code") != 0:
        raise RuntimeError(f"setup request failed: {reply}")
    return reply


def send_body(queue: str) -> bytes:
    return form(Action="SendMessage", queueName=queue, msgBody=BODY, delaySeconds=0)


def publish_body(topic: str) -> bytes:
    return form(Action="PublishMessage", topicName=topic, msgBody=BODY, routingKey="")


def batch_body(queue: str) -> bytes:
    params = {"Action": "BatchSendMessage", "queueName": queue, "delaySeconds": 0}
    params.update({f"msgBody.{i}": BODY for i in range(1, BATCH + 1)})
    return form(**params)


# -- measuring --------------------------------------------------------------------------------

@dataclass
class Tally:
    """What the workers saw inside the measured window."""

    start: float = 0.0  # monotonic start of the measured window
    end: float = 0.0
    requests: int = 0
    messages: int = 0
    succeeded: int = 0  # every successful request, warm-up and stragglers included
    errors: int = 0
    empty: int = 0  # receives that found the queue empty (code 7000): not errors, but a dry queue
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    def record(self, t0: float, t1: float, messages: int) -> None:
        self.succeeded += 1
        if self.start <= t0 and t1 <= self.end:  # only whole requests inside the window
            self.requests += 1
            self.messages += messages
            self.latencies.append(t1 - t0)

    def error(self, t0: float, t1: float, what: str) -> None:
        self.errors += 1  # warm-up errors count too: an error is never noise
        self.first_error = self.first_error or what
        if self.start <= t0 and t1 <= self.end:
            self.requests += 1
            self.latencies.append(t1 - t0)


async def drive(session, url, tally: Tally, connections: int, one_request) -> None:
    """Run `connections` workers until the window ends; each calls `one_request` in a loop."""
    clock = time.perf_counter

    async def worker() -> None:
        while True:
            t0 = clock()
            if t0 >= tally.end:
                return
            try:
                await one_request(session, url, tally, t0)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                tally.error(t0, clock(), f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(connections)))


def window(duration: float) -> Tally:
    now = time.perf_counter()
    return Tally(start=now + WARMUP, end=now + WARMUP + duration)


async def scenario_post(session, url, connections, duration, body: bytes, per_request: int) -> Tally:
    tally = window(duration)

    async def one(session, url, tally, t0):
        reply = await call(session, url, body)
        t1 = time.perf_counter()
        if reply.get("code") == 0:
            tally.record(t0, t1, per_request)
        else:
            tally.error(t0, t1, f"code {reply.get('code')}: {reply.get('message')}")

    await drive(session, url, tally, connections, one)
    return tally


async def prefill(session, url, queue: str, seconds: float, connections: int) -> int:
    """Batch-send into `queue` for `seconds`; return how many messages went in.

    Filling for as long as the cycle will run (warm-up included) keeps the queue from running
    dry as long as filling is at least as fast as draining, which holds because a drain costs
    two requests per 16 messages and a fill one.
    """
    body = batch_body(queue)
    end = time.perf_counter() + seconds
    sent = 0

    async def worker():
        nonlocal sent
        while time.perf_counter() < end:
            await checked(session, url, body)
            sent += BATCH

    await asyncio.gather(*(worker() for _ in range(min(connections, 16))))
    return sent


async def scenario_cycle(session, url, connections, duration, queue: str) -> Tally:
    receive = form(Action="BatchReceiveMessage", queueName=queue, numOfMsg=BATCH, pollingWaitSeconds=0)
    delete_prefix = urlencode({"Action": "BatchDeleteMessage", "queueName": queue})
    tally = window(duration)

    async def one(session, url, tally, t0):
        reply = await call(session, url, receive)
        t1 = time.perf_counter()
        code = reply.get("code")
        if code == 7000:  # the queue is empty: count it apart, it means the prefill ran out
            if tally.start <= t0 and t1 <= tally.end:
                tally.empty += 1
            return
        if code != 0:
            tally.error(t0, t1, f"receive: code {code}: {reply.get('message')}")
            return
        tally.record(t0, t1, 0)
        handles = [m["receiptHandle"] for m in reply["msgInfoList"]]
        body = (delete_prefix + "".join(f"&receiptHandle.{i}={h}" for i, h in enumerate(handles, 1))).encode()
        t2 = time.perf_counter()
        reply = await call(session, url, body)
        t3 = time.perf_counter()
        if reply.get("code") == 0:
            tally.record(t2, t3, len(handles))
        else:
            tally.error(t2, t3, f"delete: code {reply.get('code')}: {reply.get('message')}")

    await drive(session, url, tally, connections, one)
    return tally


# -- report -----------------------------------------------------------------------------------

COLUMNS = ("scenario", "conns", "requests", "seconds", "req/s", "msgs/s", "p50 ms", "p99 ms", "errors")
WIDTHS = (24, 5, 9, 7, 9, 9, 7, 7, 6)


def row(cells) -> str:
    first, *rest = cells
    return f"{first:<{WIDTHS[0]}}" + "".join(f" {c:>{w}}" for c, w in zip(rest, WIDTHS[1:]))


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, connections: int, tally: Tally) -> str:
    seconds = tally.end - tally.start
    lat = sorted(tally.latencies)
    return row((
        name,
        connections,
        tally.requests,
        f"{seconds:.1f}",
        f"{tally.requests / seconds:,.0f}",
        f"{tally.messages / seconds:,.0f}",
        f"{percentile(lat, 0.50) * 1000:.2f}",
        f"{percentile(lat, 0.99) * 1000:.2f}",
        tally.errors,
    ))


def header(proc_pid: int, base: str, args) -> str:
    try:
        import uvloop  # noqa: F401

        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    cores = os.cpu_count()
    return "\n".join((
        f"cmq-broker bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"broker: pid {proc_pid} at {base} ({sys.executable} -m broker serve, Python {platform.python_version()})",
        f"client: pid {os.getpid()} on the same machine, aiohttp {aiohttp.__version__}, {loop_name}",
        f"machine: {cores} cores shared by the broker and this load generator, so they compete for CPU;",
        f"         figures are indicative only. Warm-up {WARMUP:.0f} s, then {args.duration:g} s measured per scenario;",
        f"         {len(BODY)}-byte bodies; latency is per HTTP request.",
    ))


# -- main -------------------------------------------------------------------------------------

async def run(args) -> int:
    proc, base = await start_broker()
    url = base + "/v2/index.php"
    print(header(proc.pid, base, args), flush=True)
    print(flush=True)
    print(row(COLUMNS), flush=True)
    notes, failed = [], False
    wanted = args.scenario
    rates: dict[str, float] = {}  # req/s by scenario name, for the ratio at the end
    try:
        connector = aiohttp.TCPConnector(limit=args.connections)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            def account(name: str, tally: Tally) -> None:
                nonlocal failed
                print(report(name, args.connections, tally), flush=True)
                rates[name] = tally.requests / (tally.end - tally.start)
                if tally.errors:
                    failed = True
                    notes.append(f"{name}: {tally.errors} errors, first: {tally.first_error}")
                if tally.empty:
                    notes.append(
                        f"{name}: {tally.empty} receives found the queue empty (the prefill ran out), "
                        "so its msgs/s understates the broker"
                    )

            async def scenario(name: str, queue: str, measure) -> None:
                # A fresh queue per scenario, deleted after it, so one's leftovers don't weigh on the next.
                await checked(session, url, form(Action="CreateQueue", queueName=queue))
                tally = await measure(queue)
                await checked(session, url, form(Action="DeleteQueue", queueName=queue))
                account(name, tally)

            async def publish(subscribers: int) -> str:
                # A fresh topic and fresh queues (default maxMsgHeapNum, 100M, so they never fill).
                nonlocal failed
                name = f"PublishMessage({subscribers} sub{'s' if subscribers > 1 else ''})"
                topic, queues = "bench-topic", [f"bench-sub-{i}" for i in range(1, subscribers + 1)]
                await checked(session, url, form(Action="CreateTopic", topicName=topic))
                for queue in queues:
                    await checked(session, url, form(Action="CreateQueue", queueName=queue))
                    await checked(session, url, form(
                        Action="Subscribe", topicName=topic, subscriptionName=queue, protocol="queue",
                        endpoint=queue, notifyContentFormat="SIMPLIFIED",
                    ))
                tally = await scenario_post(
                    session, url, args.connections, args.duration, publish_body(topic), subscribers
                )
                # Fan-out to queues happens before the publish is answered, so the copies are all
                # there the moment the last reply is in: no waiting.
                held = []
                for queue in queues:
                    reply = await checked(session, url, form(Action="GetQueueAttributes", queueName=queue))
                    held.append(reply["activeMsgNum"])
                await checked(session, url, form(Action="DeleteTopic", topicName=topic))
                for queue in queues:
                    await checked(session, url, form(Action="DeleteQueue", queueName=queue))
                account(name, tally)
                if any(n != tally.succeeded for n in held):
                    failed = True
                    notes.append(f"{name}: {tally.succeeded:,} publishes acknowledged, but the queues hold "
                                 f"{', '.join(f'{n:,}' for n in held)} copies")
                else:
                    notes.append(f"{name}: each of {subscribers} queue(s) holds {tally.succeeded:,} copies, "
                                 "one per acknowledged publish (warm-up included)")
                return name

            async def send(queue):
                return await scenario_post(session, url, args.connections, args.duration, send_body(queue), 1)

            async def batch(queue):
                return await scenario_post(session, url, args.connections, args.duration, batch_body(queue), BATCH)

            async def cycle(queue):
                t0 = time.perf_counter()
                count = await prefill(session, url, queue, WARMUP + args.duration, args.connections)
                notes.append(f"cycle: queue pre-filled with {count:,} messages in {time.perf_counter() - t0:.1f} s")
                return await scenario_cycle(session, url, args.connections, args.duration, queue)

            if wanted in ("send", "all"):
                await scenario("SendMessage", "bench", send)
            if wanted in ("batch", "all"):
                await scenario(f"BatchSendMessage({BATCH})", "bench", batch)
            if wanted in ("cycle", "all"):
                await scenario(f"BatchRecv+Delete({BATCH})", "bench", cycle)
            if wanted in ("publish", "all"):
                names = [await publish(n) for n in SUBSCRIBER_COUNTS]
                if "SendMessage" in rates:
                    ratio = rates[names[-1]] / rates["SendMessage"]
                    notes.append(f"{names[-1]} runs at {ratio:.2f}x the SendMessage request rate "
                                 f"({rates[names[-1]]:,.0f} vs {rates['SendMessage']:,.0f} req/s)")
    finally:
        code = await stop_broker(proc)
    notes.append(f"broker exited with code {code} after SIGTERM")
    print(flush=True)
    for note in notes:
        print(note, flush=True)
    return 1 if failed or code != 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure cmq-broker send/receive/publish throughput over HTTP.")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per scenario (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument(
        "--scenario", choices=("send", "batch", "cycle", "publish", "all"), default="all", help="what to run (default all)"
    )
    args = parser.parse_args()
    if args.duration <= 0 or args.connections < 1:
        parser.error("--duration must be positive and --connections at least 1")
    return run_on_uvloop(run(args))


def run_on_uvloop(coro):
    """Run `coro` to completion on uvloop when it is installed (as the broker runs)."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


if __name__ == "__main__":
    sys.exit(main())
