"""The broker side by side with the limit of its stack and with its peers, in one run.

    python bench/suite.py [--rounds 3] [--duration 5] [--quick] [--profile] [--no-peers] [--load auto]

Starts, and keeps running for the whole suite:
  broker (memory)      python -m broker serve --port 0
  broker (--data-dir)  the same with a fresh data directory under a temp dir
  bare aiohttp         bench/baseline.py: one aiohttp route on uvloop that reads the body, parses
                       the form with parse_qsl and returns a fixed 75-byte JSON reply, i.e. the
                       most any handler on this stack can answer
  MiniStack            python -m hypercorn ministack.app:app -b 127.0.0.1:PORT      } from their own
  moto server          python -m moto.server -H 127.0.0.1 -p PORT                   } venv, below
and runs every scenario once per round, the targets in a different order each round, so slow
drifts of a shared machine spread over all of them. Each figure is the median over the rounds,
and each ratio is the ratio of the medians (the range of the per-round ratios beside it).

Scenarios (100-byte bodies, 32 connections unless said):
  SendMessage                  every target; the SQS peers get SQS SendMessage (form POST
                               Action=SendMessage&QueueUrl=..&MessageBody=..&Version=2012-11-05
                               with a SigV4-style Authorization header naming the sqs service,
                               which is how moto picks the SQS backend; signatures are not checked)
  BatchSendMessage(16)         broker, both modes
  PublishMessage, 10 subs      broker, both modes; a topic with 10 queue subscriptions;
                               msgs/s counts copies (publishes x 10)
  BatchReceive(16)+Delete      broker, both modes; from a queue filled just before; wrk with
                               bench/wrk/cycle.lua (each delete needs the receive's handles: the
                               script queues a delete per receive reply and sends it next), or the
                               asyncio client without wrk
  long-poll wake-up            broker (memory); N receivers parked in ReceiveMessage with
                               pollingWaitSeconds=30 on one queue, then messages are sent one at
                               a time: latency = SendMessage sent -> a receiver has its reply
  memory (once)                broker (memory) VmRSS empty and with 1,000,000 queued messages
  start-up (once)              spawn -> first 200 from /healthz: in memory, empty data dir, and a
                               data dir holding 1,000,000 messages (as SIGKILL left it after the
                               fill, and after a clean SIGTERM)

Load generator: wrk (Debian package `wrk`) with bench/wrk/post_form.lua, one thread, a 1 s
warm-up run that is not counted (its bad replies are), then the measured run. Without wrk (or with
--load asyncio) send_rate.py's asyncio client does the same. The cycle uses wrk with
bench/wrk/cycle.lua under the same rule; the long-poll always uses the asyncio client. On a
machine with 2 or more cores every server runs on core 0 and the load generator (this process and
wrk) on core 1, as `taskset -c 0` / `taskset -c 1` would; the CPU columns say how busy each side
was in the measured window ("other" is everything else on the machine, kernel networking included:
a high figure means the run was disturbed).

Peers live in bench/.venv-peers (created from bench/peers-requirements.txt on first use; needs
PyPI). A peer that cannot be installed or started is reported and left out; the rest runs.

--quick runs every scenario once at a small scale (1 round, 1 s windows, 100 parked receivers,
20,000 messages for memory and start-up) as a smoke test. --profile ends the run by sampling the
in-memory broker and the baseline with py-spy (from the peer venv) under SendMessage load and
prints their hottest functions.

It prints figures and marks each target of issue 7 met or missed; it never fails on a figure. The
exit status is 1 only if the broker or the baseline could not be started, one of their requests
failed, a publish lost copies, or a restarted broker came back with the wrong message count.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import send_rate  # noqa: E402  (broker start/stop, request bodies, the asyncio load generator)
import durability  # noqa: E402  (fill, timed restarts, message counts)
from send_rate import (  # noqa: E402
    BATCH, BODY, Tally, batch_body, checked, form, percentile, publish_body, run_on_uvloop, send_body,
)

import aiohttp  # noqa: E402  (send_rate already told the user if it is missing)

ROOT = BENCH.parent
PEER_VENV = BENCH / ".venv-peers"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_REQUIREMENTS = BENCH / "peers-requirements.txt"
WRK_SCRIPT = BENCH / "wrk" / "post_form.lua"
WRK_CYCLE_SCRIPT = BENCH / "wrk" / "cycle.lua"
SQS_VERSION = "2012-11-05"
# moto picks the backend from the service in the credential scope; nothing checks the signature.
SQS_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0")
SQS_HEADERS = {"Authorization": SQS_AUTH, "Content-Type": "application/x-www-form-urlencoded"}
CMQ_OK = '"code":0'  # in every successful CMQ reply; no error code starts with 0
SQS_OK = "<MessageId>"
SUBSCRIBERS = 10
PEER_START_TIMEOUT = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
clock = time.perf_counter

CPUS = os.cpu_count() or 1
PINNED = CPUS >= 2 and hasattr(os, "sched_setaffinity")
SERVER_CPUS = {0} if PINNED else None
LOAD_CPUS = {1} if PINNED else None


def pin_server() -> None:  # preexec_fn of every server process: children and threads inherit it
    if SERVER_CPUS:
        os.sched_setaffinity(0, SERVER_CPUS)


# -- processes ------------------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (hypercorn serves from a worker child), from /proc."""
    children = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes, all their threads included."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (user, nice, system, irq, softirq) since boot."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in parts[:7])
    return (user + nice + system + irq + softirq) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cpu:
    """Cores' worth of CPU used during a window: by the server, the load generator, everything else."""

    server: float = float("nan")
    load: float = float("nan")
    other: float = float("nan")


class Meter:
    def __init__(self, pids: list[int]):
        self.pids = pids

    def start(self):
        return clock(), cpu_seconds(self.pids), machine_busy_seconds()

    def stop(self, mark, load_seconds: float) -> Cpu:
        t0, s0, m0 = mark
        wall = clock() - t0
        server = cpu_seconds(self.pids) - s0
        busy = machine_busy_seconds() - m0
        return Cpu(server / wall, load_seconds / wall, max(0.0, busy - server - load_seconds) / wall)


# -- targets --------------------------------------------------------------------------------------

@dataclass
class Target:
    key: str
    label: str
    kind: str  # "cmq" (the broker), "baseline" or "sqs"
    proc: asyncio.subprocess.Process | None = None
    base: str = ""
    pids: list[int] = field(default_factory=list)
    failed: str = ""  # why it is not measured
    log: Path | None = None

    @property
    def url(self) -> str:
        return self.base + ("/v2/index.php" if self.kind != "sqs" else "/")

    @property
    def up(self) -> bool:
        return self.proc is not None and not self.failed


async def start_cmq(target: Target, *extra: str) -> None:
    target.proc, target.base = await send_rate.start_broker(*extra, cpus=SERVER_CPUS)
    target.pids = descendants(target.proc.pid)


async def start_baseline(target: Target) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "baseline.py"), "--port", "0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, preexec_fn=pin_server,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), send_rate.STARTUP_TIMEOUT)).decode(errors="replace")
        found = re.search(r"listening on (http://\S+)", line)
        if not found:
            raise RuntimeError(f"baseline did not print its address (got {line!r})")
        target.proc, target.base = proc, found.group(1)
        async with aiohttp.ClientSession() as session:
            async with session.post(target.url, data=send_body("suite")) as resp:
                if resp.status != 200 or CMQ_OK.encode() not in await resp.read():
                    raise RuntimeError(f"baseline answered {resp.status}")
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    target.pids = descendants(proc.pid)


async def sqs(session: aiohttp.ClientSession, url: str, **params) -> str:
    """One SQS query-protocol call; its XML reply, or RuntimeError on a status other than 200."""
    async with session.post(url, data=form(Version=SQS_VERSION, **params), headers=SQS_HEADERS) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"{params.get('Action')}: HTTP {resp.status}: {text[:300]}")
        return text


async def sqs_create_queue(session, target: Target, name: str) -> str:
    reply = await sqs(session, target.url, Action="CreateQueue", QueueName=name)
    found = re.search(r"<QueueUrl>([^<]+)</QueueUrl>", reply)
    if not found:
        raise RuntimeError(f"CreateQueue: no QueueUrl in {reply[:300]}")
    return found.group(1)


async def start_peer(target: Target, argv: list[str], env: dict[str, str], workdir: Path) -> None:
    port = free_port()
    target.base = f"http://127.0.0.1:{port}"
    target.log = workdir / f"{target.key}.log"
    with open(target.log, "wb") as log:  # the child keeps its own copy of the descriptor
        target.proc = await asyncio.create_subprocess_exec(
            *[a.replace("{port}", str(port)) for a in argv], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            env=env, preexec_fn=pin_server, start_new_session=True,
        )
    deadline = time.monotonic() + PEER_START_TIMEOUT
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            if target.proc.returncode is not None:
                raise RuntimeError(f"exited with code {target.proc.returncode} while starting: {log_tail(target.log)}")
            try:
                queue_url = await sqs_create_queue(session, target, "suite-probe")
                await sqs(session, target.url, Action="SendMessage", QueueUrl=queue_url, MessageBody=BODY)
                await sqs(session, target.url, Action="DeleteQueue", QueueUrl=queue_url)
                break
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"no SQS answer within {PEER_START_TIMEOUT:.0f} s (last: {last[:300]})")
            await asyncio.sleep(0.25)
    await asyncio.sleep(0.5)  # let a hypercorn worker finish forking before its tree is read
    target.pids = descendants(target.proc.pid)


def log_tail(path: Path | None, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except (OSError, AttributeError):
        return ""


async def stop_target(target: Target) -> int | None:
    proc = target.proc
    if proc is None:
        return None
    if target.kind != "sqs":
        return await send_rate.stop_broker(proc)
    tree = descendants(proc.pid) if proc.returncode is None else []
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    for pid in tree[1:]:  # a worker left behind by its parent: ours, by id
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode


# -- peers' venv ----------------------------------------------------------------------------------

def peer_versions() -> dict[str, str]:
    code = ("import importlib.metadata as m, json; n=('moto','ministack','hypercorn','py-spy','Werkzeug','Flask');"
            "v={}\nfor x in n:\n  try: v[x]=m.version(x)\n  except Exception: pass\nprint(json.dumps(v))")
    out = subprocess.run([str(PEER_PYTHON), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def ensure_peers(workdir: Path) -> tuple[dict[str, str], str]:
    """Create bench/.venv-peers from peers-requirements.txt if it is missing; (versions, problem)."""
    if not PEER_PYTHON.exists():
        print(f"setting up {PEER_VENV} (pip install -r {PEER_REQUIREMENTS}) ...", flush=True)
        log = workdir / "peers-install.log"
        with open(log, "w") as out:
            made = subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], stdout=out, stderr=subprocess.STDOUT)
            if made.returncode == 0:
                made = subprocess.run([str(PEER_PYTHON), "-m", "pip", "install", "-q", "-r", str(PEER_REQUIREMENTS)],
                                      stdout=out, stderr=subprocess.STDOUT, timeout=900)
        if made.returncode != 0:
            shutil.rmtree(PEER_VENV, ignore_errors=True)  # so that the next run tries again
            return {}, f"could not set up {PEER_VENV.name}: {log_tail(log, 3)}"
    try:
        return peer_versions(), ""
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {}, f"{PEER_VENV.name} is unusable: {exc}"


# -- measurements ---------------------------------------------------------------------------------

@dataclass
class Run:
    requests: int
    seconds: float
    messages: int
    p50: float  # seconds
    p99: float
    errors: int
    first_error: str
    cpu: Cpu
    load: str  # "wrk" or "asyncio"
    empty: int = 0  # receives that found the queue empty
    round: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def mps(self) -> float:
        return self.messages / self.seconds if self.seconds else float("nan")


async def wrk_once(url: str, body_file: Path | None, expect: str, auth: str, conns: int, seconds: int,
                   script: Path = WRK_SCRIPT, **env_extra: str) -> dict:
    env = dict(os.environ, WRK_EXPECT=expect, WRK_AUTH=auth, **env_extra)
    if body_file is not None:
        env["WRK_BODY_FILE"] = str(body_file)
    proc = await asyncio.create_subprocess_exec(
        WRK, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await proc.communicate()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT "):])
    raise RuntimeError(f"wrk printed no result (exit {proc.returncode}): {(out + err).decode(errors='replace')[-400:]}")


def child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def post_load(target: Target, body: bytes, per_request: int, args, workdir: Path) -> Run:
    """Drive `target` with one fixed form POST from `args.connections` connections."""
    expect = SQS_OK if target.kind == "sqs" else CMQ_OK
    auth = SQS_AUTH if target.kind == "sqs" else ""
    meter = Meter(target.pids)
    if args.load == "wrk":
        body_file = workdir / "body.txt"
        body_file.write_bytes(body)
        warm = await wrk_once(target.url, body_file, expect, auth, args.connections, max(1, round(send_rate.WARMUP)))
        mark, c0 = meter.start(), child_cpu()
        got = await wrk_once(target.url, body_file, expect, auth, args.connections, args.duration)
        cpu = meter.stop(mark, child_cpu() - c0)
        bad = warm["bad"] + warm["errors"] + got["bad"] + got["errors"]
        first = got["first_bad"] or warm["first_bad"] or (f"socket errors: {got}" if got["errors"] else "")
        good = got["requests"] - got["bad"]
        return Run(got["requests"], got["seconds"], good * per_request, got["p50_us"] / 1e6, got["p99_us"] / 1e6,
                   bad, first, cpu, "wrk")
    # the asyncio client of send_rate.py, checking replies the same way as the Lua script
    headers = SQS_HEADERS if target.kind == "sqs" else None
    tally = send_rate.window(args.duration)
    want = expect.encode()

    async def one(session, url, tally, t0):
        async with session.post(url, data=body) as resp:
            raw = await resp.read()
        t1 = clock()
        if resp.status == 200 and want in raw:
            tally.record(t0, t1, per_request)
        else:
            tally.error(t0, t1, f"{resp.status} {raw[:160].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        sampler = asyncio.create_task(sample(meter, tally.start, tally.end))
        await send_rate.drive(session, target.url, tally, args.connections, one)
        cpu = await sampler
    return from_tally(tally, cpu)


async def sample(meter: Meter, start: float, end: float) -> Cpu:
    """Server and own CPU over [start, end] on the perf_counter clock."""
    await asyncio.sleep(max(0.0, start - clock()))
    mark, p0 = meter.start(), time.process_time()
    await asyncio.sleep(max(0.0, end - clock()))
    return meter.stop(mark, time.process_time() - p0)


def from_tally(tally: Tally, cpu: Cpu) -> Run:
    lat = sorted(tally.latencies)
    return Run(tally.requests, tally.end - tally.start, tally.messages, percentile(lat, 0.5), percentile(lat, 0.99),
               tally.errors, tally.first_error, cpu, "asyncio", tally.empty)


def cmq_session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=120))


async def run_send(target: Target, rnd: int, args, workdir: Path) -> Run:
    if target.kind == "sqs":
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            queue_url = await sqs_create_queue(session, target, f"suite-send-{rnd}")
            body = form(Action="SendMessage", QueueUrl=queue_url, MessageBody=BODY, Version=SQS_VERSION)
            result = await post_load(target, body, 1, args, workdir)
            await sqs(session, target.url, Action="DeleteQueue", QueueUrl=queue_url)
        return result
    if target.kind == "baseline":
        return await post_load(target, send_body(f"suite-send-{rnd}"), 1, args, workdir)
    queue = f"suite-send-{rnd}"
    async with cmq_session(4) as session:
        await checked(session, target.url, form(Action="CreateQueue", queueName=queue))
        result = await post_load(target, send_body(queue), 1, args, workdir)
        await checked(session, target.url, form(Action="DeleteQueue", queueName=queue))
    return result


async def run_batch(target: Target, rnd: int, args, workdir: Path) -> Run:
    queue = f"suite-batch-{rnd}"
    async with cmq_session(4) as session:
        await checked(session, target.url, form(Action="CreateQueue", queueName=queue))
        result = await post_load(target, batch_body(queue), BATCH, args, workdir)
        await checked(session, target.url, form(Action="DeleteQueue", queueName=queue))
    return result


async def run_publish(target: Target, rnd: int, args, workdir: Path, notes: list[str]) -> Run:
    topic, queues = f"suite-topic-{rnd}", [f"suite-sub-{rnd}-{i}" for i in range(1, SUBSCRIBERS + 1)]
    async with cmq_session(4) as session:
        url = target.url
        await checked(session, url, form(Action="CreateTopic", topicName=topic))
        for queue in queues:
            await checked(session, url, form(Action="CreateQueue", queueName=queue))
            await checked(session, url, form(Action="Subscribe", topicName=topic, subscriptionName=queue,
                                             protocol="queue", endpoint=queue, notifyContentFormat="SIMPLIFIED"))
        result = await post_load(target, publish_body(topic), SUBSCRIBERS, args, workdir)
        held = [(await checked(session, url, form(Action="GetQueueAttributes", queueName=q)))["activeMsgNum"]
                for q in queues]
        await checked(session, url, form(Action="DeleteTopic", topicName=topic))
        for queue in queues:
            await checked(session, url, form(Action="DeleteQueue", queueName=queue))
    # Every acknowledged publish put one copy in each queue before it was answered; requests still
    # in flight when the load generator stopped may have added more, never fewer.
    if len(set(held)) != 1 or held[0] < result.messages // SUBSCRIBERS:
        result.errors += 1
        result.first_error = result.first_error or (
            f"the {SUBSCRIBERS} queues hold {held} copies after {result.messages // SUBSCRIBERS:,} counted publishes")
    return result


async def run_cycle(target: Target, rnd: int, args, workdir: Path, notes: list[str]) -> Run:
    queue = f"suite-cycle-{rnd}"
    meter = Meter(target.pids)
    async with cmq_session(args.connections) as session:
        url = target.url
        await checked(session, url, form(Action="CreateQueue", queueName=queue))
        # wrk's warm-up is whole seconds (at least 1), the asyncio client's send_rate.WARMUP
        warmup = max(1, round(send_rate.WARMUP)) if args.load == "wrk" else send_rate.WARMUP
        t0 = clock()
        filled = await send_rate.prefill(session, url, queue, warmup + args.duration, args.connections)
        notes.append(f"round {rnd}, {target.label}: cycle queue pre-filled with {filled:,} messages "
                     f"in {clock() - t0:.1f} s")
        if args.load == "wrk":
            result = await wrk_cycle(target, queue, warmup, args, meter)
            await checked(session, url, form(Action="DeleteQueue", queueName=queue))
            return result
        start = clock() + send_rate.WARMUP  # the window scenario_cycle is about to set
        sampler = asyncio.create_task(sample(meter, start, start + args.duration))
        tally = await send_rate.scenario_cycle(session, url, args.connections, args.duration, queue)
        cpu = await sampler
        await checked(session, url, form(Action="DeleteQueue", queueName=queue))
    return from_tally(tally, cpu)


async def wrk_cycle(target: Target, queue: str, warmup: int, args, meter: Meter) -> Run:
    """BatchReceive(16) + BatchDelete driven by wrk with bench/wrk/cycle.lua: a 1 s warm-up run, not
    counted (its bad replies are), then the measured run. msgs = messages deleted in the measured
    run, as cycle.lua estimates them (exact to within one batch when every receive returns 16)."""
    env = {"WRK_QUEUE": queue, "WRK_BATCH": str(BATCH)}
    warm = await wrk_once(target.url, None, "", "", args.connections, warmup, WRK_CYCLE_SCRIPT, **env)
    mark, c0 = meter.start(), child_cpu()
    got = await wrk_once(target.url, None, "", "", args.connections, args.duration, WRK_CYCLE_SCRIPT, **env)
    cpu = meter.stop(mark, child_cpu() - c0)
    bad = warm["bad"] + warm["errors"] + got["bad"] + got["errors"]
    first = got["first_bad"] or warm["first_bad"] or (f"socket errors: {got}" if got["errors"] or warm["errors"] else "")
    return Run(got["requests"], got["seconds"], got["msgs"], got["p50_us"] / 1e6, got["p99_us"] / 1e6,
               bad, first, cpu, "wrk", got["empty"])


@dataclass
class Wakeups:
    latencies: list[float]  # seconds, send start -> a receiver has the message
    parked: int
    errors: int
    first_error: str
    cpu: Cpu


async def run_longpoll(target: Target, rnd: int, args) -> Wakeups:
    """`args.receivers` receivers parked on one queue; messages sent one at a time."""
    queue, url = f"suite-longpoll-{rnd}", target.url
    receive = form(Action="ReceiveMessage", queueName=queue, pollingWaitSeconds=30)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future] = {}
    parked = errors = 0
    first_error = ""
    stopping = False

    async def on_sent(session, ctx, params):
        nonlocal parked
        parked += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_sent)

    async def receiver(session):
        nonlocal errors, first_error
        while not stopping:
            reply = await send_rate.call(session, url, receive)
            t = clock()
            code = reply.get("code")
            if code == 0:
                fut = waiting.get(int(reply["msgBody"][:10]))
                if fut is not None and not fut.done():
                    fut.set_result(t)
            elif code != 7000:  # 7000: 30 s passed with no message, park again
                errors += 1
                first_error = first_error or f"receive: {reply}"
                await asyncio.sleep(0.1)

    timeout = aiohttp.ClientTimeout(total=120)
    async with cmq_session(4) as control, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout, trace_configs=[trace]
    ) as parking:
        await checked(control, url, form(Action="CreateQueue", queueName=queue, visibilityTimeout=3600))
        tasks = [asyncio.create_task(receiver(parking)) for _ in range(args.receivers)]
        deadline = clock() + 30
        while parked < args.receivers and clock() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the last requests sent are also read and parked by the broker
        meter = Meter(target.pids)
        latencies, mark, p0 = [], None, 0.0
        warm = max(5, args.wakeups // 10)
        for i in range(warm + args.wakeups):
            if i == warm:
                mark, p0 = meter.start(), time.process_time()
            fut = waiting[i] = loop.create_future()
            body = form(Action="SendMessage", queueName=queue, msgBody=f"{i:010d}" + BODY[10:], delaySeconds=0)
            t0 = clock()
            reply = await send_rate.call(control, url, body)
            if reply.get("code") != 0:
                errors += 1
                first_error = first_error or f"send: {reply}"
                continue
            try:
                t1 = await asyncio.wait_for(fut, 10)
            except asyncio.TimeoutError:
                errors += 1
                first_error = first_error or f"message {i} reached no receiver within 10 s"
                continue
            if i >= warm:
                latencies.append(t1 - t0)
        cpu = meter.stop(mark, time.process_time() - p0)
        # Release every receiver with a message of its own, then let them go.
        stopping = True
        for start in range(0, args.receivers + BATCH, BATCH):
            await checked(control, url, form(Action="BatchSendMessage", queueName=queue, delaySeconds=0,
                                             **{f"msgBody.{j}": "9" * 10 + BODY[10:] for j in range(1, BATCH + 1)}))
        done, pending = await asyncio.wait(tasks, timeout=15)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await checked(control, url, form(Action="DeleteQueue", queueName=queue))
    return Wakeups(latencies, parked, errors, first_error, cpu)


# -- memory and start-up (once per suite) ---------------------------------------------------------

async def memory_scenario(args, notes: list[str]) -> dict:
    target = Target("rss", "broker (memory)", "cmq")
    await start_cmq(target)
    try:
        await asyncio.sleep(0.5)
        empty = status_kib(target.proc.pid, "VmRSS") * 1024
        seconds, latencies, errors = await durability.fill(target.base, "suite-rss", args.messages, args.connections)
        held = await durability.held(target.base, "suite-rss")
        await asyncio.sleep(1.0)
        full = status_kib(target.proc.pid, "VmRSS") * 1024
        peak = status_kib(target.proc.pid, "VmHWM") * 1024
    finally:
        await stop_target(target)
    notes.append(f"memory: {args.messages:,} messages sent by BatchSendMessage(16) over {args.connections} "
                 f"connections in {seconds:.1f} s ({args.messages / seconds:,.0f} msgs/s), {errors} errors; "
                 f"the queue holds {held:,}")
    return {"empty": empty, "full": full, "peak": peak, "held": held, "errors": errors,
            "per_msg": (full - empty) / held if held else float("nan")}


async def startup_scenario(args, workdir: Path, notes: list[str]) -> tuple[list[tuple[str, list[float], str]], bool]:
    rows, failed = [], False
    times = []
    for _ in range(args.restarts):
        proc, _, took = await durability.timed_start(cpus=SERVER_CPUS)
        times.append(took)
        await send_rate.stop_broker(proc)
    rows.append(("in memory", times, ""))
    times = []
    for i in range(args.restarts):
        proc, _, took = await durability.timed_start("--data-dir", str(workdir / f"empty-{i}"), cpus=SERVER_CPUS)
        times.append(took)
        await send_rate.stop_broker(proc)
    rows.append(("empty data dir", times, ""))

    directory, queue = workdir / "startup", "suite-startup"
    proc, base, _ = await durability.timed_start("--data-dir", str(directory), cpus=SERVER_CPUS)
    seconds, _, errors = await durability.fill(base, queue, args.messages, args.connections)
    expected = await durability.held(base, queue)
    notes.append(f"start-up: data dir filled with {expected:,} messages by BatchSendMessage(16) in {seconds:.1f} s "
                 f"({errors} errors)")
    await durability.settle(directory)
    await durability.kill(proc)

    async def restarts(label: str, stop) -> None:
        nonlocal failed
        times, files = [], durability.describe(directory)
        for _ in range(args.restarts):
            p, b, took = await durability.timed_start("--data-dir", str(directory), cpus=SERVER_CPUS)
            times.append(took)
            count = await durability.held(b, queue)
            if count != expected:
                failed = True
                notes.append(f"start-up {label}: the queue held {count:,} messages, expected {expected:,}")
            await stop(p)
        rows.append((label, times, files))

    await restarts(f"{expected:,} msgs, after SIGKILL", durability.kill)
    p, _, _ = await durability.timed_start("--data-dir", str(directory), cpus=SERVER_CPUS)
    code, took = await durability.terminate(p)
    notes.append(f"start-up: SIGTERM of the broker holding {expected:,} messages took {took:.1f} s (exit {code})")
    failed |= code != 0
    await restarts(f"{expected:,} msgs, after SIGTERM", durability.kill)
    return rows, failed


# -- profile --------------------------------------------------------------------------------------

ROOT_FRAMES = ("_run_module_as_main", "_run_code", "<module>", "main", "Runner.run", "run")
AREAS = (  # by the file of the innermost Python frame of a sample
    ("the server's own code (broker/, or baseline.py's handler)", ("broker/", "baseline.py")),
    ("aiohttp (HTTP parsing, routing, response writing; socket writes)", ("aiohttp/", "multidict/", "yarl/", "propcache/")),
    ("json encoding", ("json/",)),
    ("form parsing (urllib)", ("urllib/",)),
)


def parse_frame(frame: str) -> tuple[str, str, bool]:
    """(function, file, is_python) of one py-spy frame such as `Queue.send (broker/engine/queue.py:170)`."""
    found = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    name, where = (found.group(1), found.group(2)) if found else (frame, "")
    return name, where, where.endswith(".py") or where.startswith("<frozen")


def summarise_profile(raw: Path, top: int = 12) -> list[str]:
    """Where the samples of py-spy's raw (collapsed) output went: by area, and by function.

    A sample is charged to its innermost Python function, native code it called included (a socket
    write is charged to the aiohttp function that wrote). Samples with no Python frame above the
    program's root frames are the event loop itself: uvloop's C code, epoll, socket reads, and the
    C HTTP parser, named by their innermost native function."""
    own, broker_total, loop_native, areas = (collections.Counter() for _ in range(4))
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [parse_frame(f) for f in stack.split(";")]
        python = [(name, where) for name, where, is_py in frames if is_py]
        inner = next(((name, where) for name, where in reversed(python) if name not in ROOT_FRAMES), None)
        if inner is None:
            native = [name for name, _, is_py in frames if not is_py]
            leaf = native[-1] if native else "(native frames not sampled)"
            loop_native[leaf if not leaf.startswith("0x") else "(unnamed native code)"] += n
            areas["event loop: uvloop C code, epoll, socket reads, C HTTP parser"] += n
            own["(event loop, C)"] += n
            continue
        name, where = inner
        own[f"{name} ({where.rsplit('/', 1)[-1]})"] += n
        areas[next((label for label, prefixes in AREAS if any(p in where for p in prefixes)), "other Python")] += n
        seen = set()
        for fname, fwhere in python:
            if ("broker/" in fwhere or fwhere.endswith("baseline.py")) and fname not in seen and fname not in ROOT_FRAMES:
                seen.add(fname)
                broker_total[f"{fname} ({fwhere.rsplit('/', 1)[-1]})"] += n
    if not total:
        return ["  (no samples)"]
    out = [f"  {total:,} samples; by area (innermost Python frame's package):"]
    out += [f"    {v / total:6.1%}  {label}" for label, v in areas.most_common()]
    out.append("  hottest functions, self (with the native code they call) | the server's own functions, total")
    left, right = own.most_common(top), broker_total.most_common(top)
    for i in range(max(len(left), len(right))):
        a = f"{left[i][1] / total:6.1%}  {left[i][0][:58]}" if i < len(left) else ""
        b = f"{right[i][1] / total:6.1%}  {right[i][0][:52]}" if i < len(right) else ""
        out.append(f"    {a:<66} | {b}")
    if loop_native:
        out.append("  inside the event loop's own share: " + ", ".join(
            f"{name} {v / total:.1%}" for name, v in loop_native.most_common(6)))
    return out


async def profile(targets: list[Target], args, workdir: Path) -> list[str]:
    pyspy = PEER_VENV / "bin" / "py-spy"
    if not pyspy.exists():
        return [f"profile: py-spy is not in {PEER_VENV.name} (pip install py-spy there)"]
    out = []
    seconds = max(3, args.duration)
    for target in targets:
        if not target.up:
            continue
        raw = workdir / f"profile-{target.key}.txt"
        for native in (["--native"], []):  # native frames show the C under the Python; not every build can
            spy = await asyncio.create_subprocess_exec(
                str(pyspy), "record", "--pid", str(target.proc.pid), "--duration", str(seconds), "--rate", "200",
                "--format", "raw", "-o", str(raw), *native,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            load = asyncio.create_task(run_send(target, 90 + len(native), argparse.Namespace(
                **{**vars(args), "duration": seconds + 1}), workdir))
            _, err = await spy.communicate()
            result = await load
            if spy.returncode == 0 and raw.exists():
                break
        out.append(f"{target.label} under SendMessage, py-spy {'--native ' if native else ''}at 200 Hz "
                   f"(sampling pauses the process: {result.rps:,.0f} req/s meanwhile):")
        if spy.returncode != 0 or not raw.exists():
            out.append(f"  py-spy failed (exit {spy.returncode}): {err.decode(errors='replace').strip()[-300:]}")
            continue
        out.extend(summarise_profile(raw))
        if args.profile_dir:
            dest = Path(args.profile_dir)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, dest / raw.name)
            out.append(f"  collapsed stacks: {dest / raw.name}")
    return out


# -- report ---------------------------------------------------------------------------------------

def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def k(v: float) -> str:
    return "-" if v != v else f"{v:,.0f}"


def pct(v: float) -> str:
    return "-" if v != v else f"{v * 100:.0f}%"


def ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:.2f}"


def spread(values) -> str:
    values = [v for v in values if v == v]
    if len(values) < 2:
        return ""
    if max(values) < 10_000:
        return f"{min(values):,.0f}-{max(values):,.0f}"
    return f"{min(values) / 1000:,.1f}k-{max(values) / 1000:,.1f}k"


TABLE = ("{:<34} {:>7} {:>9} {:>10} {:>15} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6}")
TABLE_HEAD = TABLE.format("scenario / target", "load", "req/s", "msgs/s", "msgs/s range", "p50 ms", "p99 ms",
                          "server", "loadgen", "other", "errors")


def progress(rnd: int, scenario: str, target: Target, run: Run) -> str:
    return (f"  round {rnd} {scenario:<22} {target.label:<20} {run.load:<7} {k(run.rps):>8} req/s {k(run.mps):>9} "
            f"msgs/s  p50 {ms(run.p50)} p99 {ms(run.p99)} ms  cpu server {pct(run.cpu.server)} "
            f"loadgen {pct(run.cpu.load)} other {pct(run.cpu.other)}  errors {run.errors}")


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "broker"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        if not head:
            return "(not a git checkout)"
        return head + (" + uncommitted changes under broker/" if dirty else "")
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def wrk_version() -> str:
    try:
        out = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


# -- main -----------------------------------------------------------------------------------------

WRK = shutil.which("wrk") or ""


async def run(args) -> int:
    failed = False
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="cmq-suite-"))
    started = datetime.datetime.now().astimezone()
    revision = git_state()
    try:
        import uvloop

        loop_name = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop_name = "asyncio (no uvloop)"

    versions, peer_problem = ({}, "left out (--no-peers)") if args.no_peers else ensure_peers(workdir)
    targets = {
        "memory": Target("memory", "broker (memory)", "cmq"),
        "durable": Target("durable", "broker (--data-dir)", "cmq"),
        "baseline": Target("baseline", "bare aiohttp", "baseline"),
        "ministack": Target("ministack", "MiniStack (SQS)", "sqs"),
        "moto": Target("moto", "moto server (SQS)", "sqs"),
    }
    peer_env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "AWS_"))}
    ministack_env = dict(peer_env, IOT_MTLS_ENABLED="0", SFTP_ENABLED="0")  # no extra listeners
    starts = {
        "memory": start_cmq(targets["memory"]),
        "durable": start_cmq(targets["durable"], "--data-dir", str(workdir / "durable")),
        "baseline": start_baseline(targets["baseline"]),
    }
    if peer_problem:
        for key in ("ministack", "moto"):
            targets[key].failed = peer_problem
    for key, needs in (("ministack", ("ministack", "hypercorn")), ("moto", ("moto",))):
        missing = [n for n in needs if n not in versions]
        if not targets[key].failed and missing:
            targets[key].failed = (f"{', '.join(missing)} not installed in {PEER_VENV.name} "
                                   f"(pip install -r {PEER_REQUIREMENTS.name} there)")
    if not targets["ministack"].failed:
        starts["ministack"] = start_peer(
            targets["ministack"], [str(PEER_PYTHON), "-m", "hypercorn", "ministack.app:app", "-b", "127.0.0.1:{port}"],
            ministack_env, workdir)
    if not targets["moto"].failed:
        starts["moto"] = start_peer(
            targets["moto"], [str(PEER_PYTHON), "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"], peer_env, workdir)
    outcomes = await asyncio.gather(*starts.values(), return_exceptions=True)
    for key, outcome in zip(starts, outcomes):
        if isinstance(outcome, BaseException):
            targets[key].failed = f"did not start: {type(outcome).__name__}: {outcome}"
            if key in ("memory", "durable", "baseline"):
                failed = True
            elif targets[key].proc is not None:
                await stop_target(targets[key])  # a peer that never answered: stop it now
    rounds = {key: collections.defaultdict(list) for key in targets}  # key -> scenario -> [Run]
    wakeups: list[Wakeups] = []
    try:
        print(f"cmq-broker suite, {started:%Y-%m-%d %H:%M %Z}", flush=True)
        print(f"machine: {CPUS} cores ({cpu_model()}), Python {platform.python_version()}, {loop_name}, "
              f"aiohttp {aiohttp.__version__}; broker at {revision}", flush=True)
        if PINNED:
            print("pinning: every server on core 0 and the load generator on core 1 (like taskset -c 0 / -c 1); "
                  "nothing else is kept off those cores", flush=True)
        else:
            print(f"pinning: none ({CPUS} core(s)): servers and load generator share the CPU", flush=True)
        print(f"load: {'wrk (' + wrk_version() + '), 1 thread, ' if args.load == 'wrk' else 'asyncio client of send_rate.py, '}"
              f"{args.connections} connections, {send_rate.WARMUP:g} s warm-up + {args.duration} s measured per row, "
              f"{args.rounds} round(s); cycle: {'wrk, bench/wrk/cycle.lua' if args.load == 'wrk' else 'asyncio client'}; "
              "long-poll: asyncio client", flush=True)
        if args.load_note:
            print(f"      {args.load_note}", flush=True)
        print("peers: " + (peer_problem or ", ".join(f"{n} {v}" for n, v in versions.items())), flush=True)
        for t in targets.values():
            where = f"pid {t.proc.pid} at {t.base}" if t.up else f"NOT MEASURED: {t.failed}"
            print(f"  {t.label:<20} {where}", flush=True)
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        print(flush=True)

        def keep(rnd, scenario, target, result):
            nonlocal failed
            result.round = rnd
            rounds[target.key][scenario].append(result)
            print(progress(rnd, scenario, target, result), flush=True)
            if result.errors:
                notes.append(f"round {rnd}, {scenario}, {target.label}: {result.errors} errors, first: "
                             f"{result.first_error}")
                if target.kind != "sqs":
                    failed = True
            if result.cpu.other > 0.10:
                notes.append(f"round {rnd}, {scenario}, {target.label}: other processes used {pct(result.cpu.other)} "
                             "of a core in the measured window, so this row was disturbed")
            if result.empty:
                notes.append(f"round {rnd}, {scenario}, {target.label}: {result.empty} receives found the queue "
                             "empty (the prefill ran out), so msgs/s understates the broker")

        async def guarded(rnd, scenario, target, coro):
            nonlocal failed
            try:
                keep(rnd, scenario, target, await coro)
            except Exception as exc:  # a peer that dies mid-run is reported, and the suite goes on
                notes.append(f"round {rnd}, {scenario}, {target.label}: {type(exc).__name__}: {exc}")
                print(f"  round {rnd} {scenario:<22} {target.label:<20} FAILED: {exc}", flush=True)
                if target.kind == "sqs":
                    if target.proc is not None and target.proc.returncode is not None:
                        target.failed = f"exited with code {target.proc.returncode} during the run: {log_tail(target.log)}"
                else:
                    failed = True

        order = ["baseline", "memory", "durable", "ministack", "moto"]
        brokers = ["memory", "durable"]
        for rnd in range(1, args.rounds + 1):
            print(f"round {rnd} of {args.rounds}", flush=True)
            shift = rnd - 1

            def rotated(keys):
                keys = [k for k in keys if targets[k].up]
                return keys[shift % len(keys):] + keys[:shift % len(keys)] if keys else []

            for key in rotated(order):
                await guarded(rnd, "SendMessage", targets[key], run_send(targets[key], rnd, args, workdir))
            for key in rotated(brokers):
                await guarded(rnd, f"BatchSendMessage({BATCH})", targets[key], run_batch(targets[key], rnd, args, workdir))
            for key in rotated(brokers):
                await guarded(rnd, f"Publish({SUBSCRIBERS} subs)", targets[key],
                              run_publish(targets[key], rnd, args, workdir, notes))
            for key in rotated(brokers):
                await guarded(rnd, f"BatchRecv+Delete({BATCH})", targets[key],
                              run_cycle(targets[key], rnd, args, workdir, notes))
            if targets["memory"].up:
                try:
                    w = await run_longpoll(targets["memory"], rnd, args)
                    wakeups.append(w)
                    lat = sorted(w.latencies)
                    print(f"  round {rnd} long-poll wake-up      {targets['memory'].label:<20} {len(lat)} wake-ups with "
                          f"{args.receivers:,} receivers parked: p50 {ms(percentile(lat, 0.5))} ms, p99 "
                          f"{ms(percentile(lat, 0.99))} ms, max {ms(lat[-1] if lat else float('nan'))} ms  "
                          f"cpu server {pct(w.cpu.server)} loadgen {pct(w.cpu.load)}  errors {w.errors}", flush=True)
                    if w.errors:
                        failed = True
                        notes.append(f"round {rnd}, long-poll: {w.errors} errors, first: {w.first_error}")
                except Exception as exc:
                    failed = True
                    notes.append(f"round {rnd}, long-poll: {type(exc).__name__}: {exc}")
                    print(f"  round {rnd} long-poll FAILED: {exc}", flush=True)

        profile_lines = []
        if args.profile:
            print("profiling (py-spy) ...", flush=True)
            profile_lines = await profile([targets["memory"], targets["baseline"]], args, workdir)
    finally:
        for t in targets.values():
            if t.proc is not None:
                code = await stop_target(t)
                if t.kind == "cmq" and code != 0:
                    failed = True
                    notes.append(f"{t.label} exited with code {code} after SIGTERM")

    print(f"memory: filling an in-memory broker with {args.messages:,} messages ...", flush=True)
    memory = None
    try:
        memory = await memory_scenario(args, notes)
    except Exception as exc:
        failed = True
        notes.append(f"memory: {type(exc).__name__}: {exc}")
    print(f"start-up: {args.restarts} timed starts each, and a data dir of {args.messages:,} messages ...", flush=True)
    startup_rows = []
    try:
        startup_rows, bad = await startup_scenario(args, workdir, notes)
        failed |= bad
    except Exception as exc:
        failed = True
        notes.append(f"start-up: {type(exc).__name__}: {exc}")
    shutil.rmtree(workdir, ignore_errors=True)

    # -- the table -----------------------------------------------------------------------------
    def median_run(key, scenario):
        runs = rounds[key].get(scenario, [])
        if not runs:
            return None
        return {
            "rps": med([r.rps for r in runs]), "mps": med([r.mps for r in runs]),
            "p50": med([r.p50 for r in runs]), "p99": med([r.p99 for r in runs]),
            "server": med([r.cpu.server for r in runs]), "load": med([r.cpu.load for r in runs]),
            "other": med([r.cpu.other for r in runs]), "errors": sum(r.errors for r in runs),
            "range": spread([r.mps for r in runs]), "gen": runs[0].load, "runs": runs,
        }

    print(flush=True)
    print(f"RESULTS: medians over {args.rounds} round(s); {len(BODY)}-byte bodies; {args.connections} connections; "
          "CPU columns in cores' worth (100% = one core busy) over the measured window", flush=True)
    print(TABLE_HEAD, flush=True)
    scenario_rows = [
        ("SendMessage", ["baseline", "memory", "durable", "ministack", "moto"]),
        (f"BatchSendMessage({BATCH})", brokers),
        (f"Publish({SUBSCRIBERS} subs)", brokers),
        (f"BatchRecv+Delete({BATCH})", brokers),
    ]
    titles = {"SendMessage": "SendMessage", f"BatchSendMessage({BATCH})": f"BatchSendMessage({BATCH})",
              f"Publish({SUBSCRIBERS} subs)": f"PublishMessage, {SUBSCRIBERS} queue subs (msgs = copies)",
              f"BatchRecv+Delete({BATCH})": f"BatchReceive({BATCH}) + BatchDelete (msgs = deleted)"}
    for scenario, keys in scenario_rows:
        print(titles[scenario], flush=True)
        for key in keys:
            t = targets[key]
            m = median_run(key, scenario)
            if m is None:
                print(f"  {t.label:<32} not measured: {t.failed or 'failed, see notes'}", flush=True)
                continue
            print(TABLE.format(f"  {t.label}", m["gen"], k(m["rps"]), k(m["mps"]), m["range"], ms(m["p50"]),
                               ms(m["p99"]), pct(m["server"]), pct(m["load"]), pct(m["other"]), m["errors"]), flush=True)

    lp50 = lp99 = float("nan")
    if wakeups:
        per50 = [percentile(sorted(w.latencies), 0.5) for w in wakeups]
        per99 = [percentile(sorted(w.latencies), 0.99) for w in wakeups]
        lp50, lp99 = med(per50), med(per99)
        pooled = sorted(x for w in wakeups for x in w.latencies)
        print(f"long-poll wake-up, broker (memory), {args.receivers:,} receivers parked, one message at a time, "
              f"{len(pooled):,} wake-ups in all", flush=True)
        print(f"  send start -> receiver has the reply: median over rounds p50 {ms(lp50)} ms, p99 {ms(lp99)} ms "
              f"(per round p99: {', '.join(ms(x) for x in per99)} ms; pooled p50 {ms(percentile(pooled, 0.5))}, "
              f"p99 {ms(percentile(pooled, 0.99))}, max {ms(pooled[-1]) if pooled else '-'} ms)", flush=True)
    if memory:
        print(f"memory, broker (memory), VmRSS: empty {memory['empty'] / 2**20:,.1f} MiB, with {memory['held']:,} "
              f"queued {len(BODY)}-byte messages {memory['full'] / 2**20:,.1f} MiB (peak {memory['peak'] / 2**20:,.1f}"
              f" MiB): {memory['per_msg']:,.0f} bytes per message", flush=True)
    if startup_rows:
        print("start-up, spawn -> first 200 from /healthz, seconds (median, min-max)", flush=True)
        for label, times, files in startup_rows:
            print(f"  {label:<32} {med(times):6.2f}  ({min(times):.2f}-{max(times):.2f})"
                  + (f"  from {files}" if files else ""), flush=True)

    # -- the targets of issue 7 ------------------------------------------------------------------
    def rate(key, scenario, what="rps"):
        m = median_run(key, scenario)
        return m[what] if m else float("nan")

    def per_round(a, b, scenario_a="SendMessage", scenario_b="SendMessage"):
        ra = {r.round: r.rps for r in rounds[a].get(scenario_a, [])}
        rb = {r.round: r.rps for r in rounds[b].get(scenario_b, [])}
        ratios = [ra[i] / rb[i] for i in ra if i in rb and rb[i]]
        if len(ratios) < 2:
            return ""
        return f"; rounds {min(ratios):.2f}-{max(ratios):.2f}"

    send = rate("memory", "SendMessage")
    checks = []

    def ratio_check(name, a, b, goal, detail):
        value = a / b if b else float("nan")
        checks.append((name, value, f"{value:,.2f}x ({k(a)} vs {k(b)} req/s{detail})" if value == value else "-",
                       f">= {goal:g}x", value >= goal if value == value else None))

    ratio_check("SendMessage vs bare aiohttp", send, rate("baseline", "SendMessage"), 0.8,
                per_round("memory", "baseline"))
    v = rate("memory", f"BatchSendMessage({BATCH})", "mps")
    checks.append((f"BatchSendMessage({BATCH}) msgs/s", v, k(v), ">= 150,000", v >= 150_000 if v == v else None))
    v = rate("memory", f"BatchRecv+Delete({BATCH})", "mps")
    checks.append(("receive + delete msgs/s", v, k(v), ">= 100,000", v >= 100_000 if v == v else None))
    ratio_check(f"publish ({SUBSCRIBERS} subs) vs SendMessage", rate("memory", f"Publish({SUBSCRIBERS} subs)"), send,
                0.5, per_round("memory", "memory", f"Publish({SUBSCRIBERS} subs)", "SendMessage"))
    checks.append((f"long-poll p99, {args.receivers:,} parked", lp99, f"{ms(lp99)} ms", "<= 5 ms",
                   lp99 <= 0.005 if lp99 == lp99 else None))
    v = memory["per_msg"] if memory else float("nan")
    checks.append(("RSS per queued message", v, f"{v:,.0f} B" if v == v else "-", "<= 300 B",
                   v <= 300 if v == v else None))
    ratio_check("--data-dir vs memory, SendMessage", rate("durable", "SendMessage"), send, 0.5,
                per_round("durable", "memory"))
    ratio_check("broker vs MiniStack, SendMessage", send, rate("ministack", "SendMessage"), 5,
                per_round("memory", "ministack"))
    ratio_check("broker vs moto server, SendMessage", send, rate("moto", "SendMessage"), 100,
                per_round("memory", "moto"))
    print(flush=True)
    print(f"TARGETS (issue 7){' - a --quick run: small scale, read the verdicts loosely' if args.quick else ''}",
          flush=True)
    print(f"{'target':<36} {'measured':<58} {'goal':<11} verdict", flush=True)
    for name, _, shown, goal, ok in checks:
        verdict = "not measured" if ok is None else ("met" if ok else "MISSED")
        print(f"{name:<36} {shown:<58} {goal:<11} {verdict}", flush=True)

    if profile_lines:
        print(flush=True)
        print("PROFILE", flush=True)
        for line in profile_lines:
            print(line, flush=True)
    print(flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"took {(datetime.datetime.now().astimezone() - started).total_seconds():.0f} s", flush=True)
    for t in targets.values():
        if t.failed:
            notes.append(f"{t.label}: not measured: {t.failed}")
    if git_state() != revision:
        notes.append(f"the broker's tree changed during the run (at the start: {revision}; at the end: {git_state()}): "
                     "brokers started late (memory, start-up) may have run other code")
    for note in notes:
        print(note, flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="The broker beside a bare aiohttp handler, MiniStack and moto, in one run.")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--duration", type=int, default=None, help="measured seconds per row (default 5; 1 with --quick)")
    parser.add_argument("--connections", type=int, default=32, help="connections of the load (default 32)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: every scenario once, small")
    parser.add_argument("--load", choices=("auto", "wrk", "asyncio"), default="auto",
                        help="load generator for the fixed-body rows (default auto: wrk if installed)")
    parser.add_argument("--no-peers", action="store_true", help="leave out MiniStack and moto")
    parser.add_argument("--setup-peers", action="store_true", help=f"only create {PEER_VENV.name} and exit")
    parser.add_argument("--profile", action="store_true", help="end with a py-spy profile of the broker and baseline")
    parser.add_argument("--profile-dir", default="", help="keep py-spy's collapsed stacks in this directory")
    parser.add_argument("--receivers", type=int, default=None, help="parked long-poll receivers (default 1000)")
    parser.add_argument("--wakeups", type=int, default=None, help="measured wake-ups per round (default 500)")
    parser.add_argument("--messages", type=int, default=None,
                        help="queued messages for the memory and start-up rows (default 1000000)")
    args = parser.parse_args()
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (1 if quick else 5)
    args.receivers = args.receivers or (100 if quick else 1000)
    args.wakeups = args.wakeups or (50 if quick else 500)
    args.messages = args.messages or (20_000 if quick else 1_000_000)
    args.restarts = 2 if quick else 3
    if min(args.rounds, args.duration, args.connections, args.receivers, args.wakeups, args.messages) < 1:
        parser.error("every count must be at least 1")
    if quick:
        send_rate.WARMUP = 0.5  # the asyncio client's warm-up; wrk's is 1 s, its shortest
    if args.setup_peers:
        scratch = Path(tempfile.mkdtemp(prefix="cmq-suite-"))
        versions, problem = ensure_peers(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        print(problem or f"{PEER_VENV}: " + ", ".join(f"{n} {v}" for n, v in versions.items()))
        return 1 if problem else 0
    args.load_note = ""
    if args.load == "auto":
        args.load = "wrk" if WRK else "asyncio"
        if not WRK:
            args.load_note = ("wrk is not installed (apt-get install -y wrk): the asyncio client is the load "
                              "generator, and at these rates it may be the bottleneck")
    elif args.load == "wrk" and not WRK:
        parser.error("--load wrk: wrk is not installed (apt-get install -y wrk)")
    if PINNED:
        os.sched_setaffinity(0, LOAD_CPUS)  # this process and wrk: the load generator's core
    return run_on_uvloop(run(args))


if __name__ == "__main__":
    sys.exit(main())
