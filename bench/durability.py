"""What durability costs: `--data-dir` against the in-memory broker, recovery time, disk use.

Three parts, each against real `python -m broker serve` child processes (send_rate.py's helpers):

1. SendMessage throughput, one 100-byte body per request, from 1 and from `--connections`
   concurrent keep-alive connections, against an in-memory broker and a `--data-dir` broker
   (both running, measured in turn: memory then durable at each concurrency). The durable
   broker answers only once the request's records are fsync'ed; concurrent requests share an
   fsync (group commit), so the ratio durable/in-memory is the figure to read.
2. Recovery: a durable broker is filled with `--messages` 100-byte messages in one queue by
   BatchSendMessage(16) from `--connections` connections, then SIGKILLed and restarted
   `--restarts` times (start = the newest snapshot, if compaction wrote one during the fill, plus
   a replay of the log after it), then stopped with SIGTERM and restarted `--restarts` times (start
   = the final snapshot alone). Each start is timed from spawning the process to the first 200 from
   /healthz (the port opens only after recovery), and checked: the queue must hold every message.
3. Disk use: the data directory's size (apparent bytes and allocated blocks, as `du` would count
   them) divided by the messages it holds, after the fill (snapshot + log, as a crash leaves it)
   and after SIGTERM (snapshot only).

The load generator shares the machine with the broker, so throughput figures are a floor, and all
figures vary between runs. This prints numbers and never judges them; it exits 1 only if a request
failed, a restart lost messages, or a SIGTERM did not exit 0.

    python bench/durability.py [--duration 5] [--connections 32] [--messages 1000000] [--restarts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import send_rate  # noqa: E402  (the sibling script's broker, request and report helpers)
from send_rate import (  # noqa: E402
    BATCH, BODY, Tally, batch_body, checked, form, report, row, run_on_uvloop, scenario_post, send_body,
)

import aiohttp  # noqa: E402  (send_rate already told the user if it is missing)

RECORD_HEADER = struct.Struct("<II")  # broker/storage/wal.py: payload length, crc32(payload)
LONG = 900.0  # seconds allowed for a start or a stop with a big data directory


# -- the broker ----------------------------------------------------------------------------------

async def timed_start(*extra: str, cpus: set[int] | None = None) -> tuple[asyncio.subprocess.Process, str, float]:
    """Start a broker (on `cpus` only, if given); its process, base URL, and seconds from spawn
    to a healthy /healthz."""
    send_rate.STARTUP_TIMEOUT = LONG  # recovery of a big directory happens before the port opens
    t0 = time.perf_counter()
    proc, base = await send_rate.start_broker(*extra, cpus=cpus)
    return proc, base, time.perf_counter() - t0


async def kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def terminate(proc: asyncio.subprocess.Process) -> tuple[int, float]:
    """SIGTERM and wait (a final snapshot of a big state takes a while); exit code and seconds."""
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), LONG)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
    return proc.returncode, time.perf_counter() - t0


# -- the data directory --------------------------------------------------------------------------

def disk_use(directory: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the files in `directory`, like `du -b` and `du -B1`."""
    apparent = allocated = 0
    for entry in os.scandir(directory):
        st = entry.stat(follow_symlinks=False)
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


def log_records(directory: Path) -> int:
    """Records in the segments recovery would replay (those from the newest snapshot on)."""
    snaps = sorted(directory.glob("snapshot-*.msgpack"))
    base = snaps[-1].name.split("-")[1].split(".")[0] if snaps else ""
    count = 0
    for seg in sorted(directory.glob("wal-*.log")):
        if seg.name.split("-")[1].split(".")[0] < base:
            continue
        data = seg.read_bytes()
        off = 0
        while off + RECORD_HEADER.size <= len(data):
            length = RECORD_HEADER.unpack_from(data, off)[0]
            if length == 0 or off + RECORD_HEADER.size + length > len(data):
                break
            off += RECORD_HEADER.size + length
            count += 1
    return count


def describe(directory: Path) -> str:
    parts = []
    for p in sorted(directory.iterdir()):
        if p.name != "LOCK":
            parts.append(f"{p.name} {p.stat().st_size / 1e6:,.1f} MB")
    return ", ".join(parts) or "empty"


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path`, from /proc/mounts (best effort)."""
    try:
        best, kind = "", "?"
        real = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                _, mount, fstype, *_ = line.split()
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, kind = mount, fstype
        return kind
    except OSError:
        return "?"


def fsync_latency(directory: Path, samples: int = 200) -> tuple[float, float]:
    """p50 and p99 seconds of a 4 KiB append + fdatasync, the floor under one durable request."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    took = []
    try:
        block = b"\0" * 4096
        for _ in range(samples):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            took.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    took.sort()
    return took[len(took) // 2], took[min(len(took) - 1, int(0.99 * len(took)))]


# -- the parts -----------------------------------------------------------------------------------

async def throughput(args, workdir: Path, notes: list[str]) -> tuple[list[tuple[str, int, Tally]], bool]:
    memory, memory_base, _ = await timed_start()
    durable, durable_base, _ = await timed_start("--data-dir", str(workdir / "send"))
    results, failed = [], False
    try:
        for connections in sorted({1, args.connections}):
            for name, base in (("memory", memory_base), ("--data-dir", durable_base)):
                url = base + "/v2/index.php"
                connector = aiohttp.TCPConnector(limit=connections)
                async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:
                    queue = f"bench-{connections}"
                    await checked(s, url, form(Action="CreateQueue", queueName=queue))
                    tally = await scenario_post(s, url, connections, args.duration, send_body(queue), 1)
                    await checked(s, url, form(Action="DeleteQueue", queueName=queue))
                label = f"SendMessage ({name})"
                print(report(label, connections, tally), flush=True)
                results.append((name, connections, tally))
                if tally.errors:
                    failed = True
                    notes.append(f"{label}, {connections} conns: {tally.errors} errors, first: {tally.first_error}")
    finally:
        for proc in (memory, durable):
            code, _ = await terminate(proc)
            if code != 0:
                failed = True
                notes.append(f"a throughput broker exited with code {code} after SIGTERM")
    return results, failed


async def fill(base: str, queue: str, messages: int, connections: int) -> tuple[float, list[float], int]:
    """BatchSendMessage(16) until `messages` are in; seconds, request latencies, errors."""
    url = base + "/v2/index.php"
    body = batch_body(queue)
    requests = -(-messages // BATCH)
    last = messages - (requests - 1) * BATCH
    last_body = form(**{"Action": "BatchSendMessage", "queueName": queue, "delaySeconds": 0,
                        **{f"msgBody.{i}": BODY for i in range(1, last + 1)}})
    issued, latencies, errors = 0, [], 0

    async def worker(session) -> None:
        nonlocal issued, errors
        while issued < requests:
            issued += 1
            payload = last_body if issued == requests else body
            t0 = time.perf_counter()
            reply = await send_rate.call(session, url, payload)
            latencies.append(time.perf_counter() - t0)
            if reply.get("code") != 0:
                errors += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=LONG)) as session:
        await checked(session, url, form(Action="CreateQueue", queueName=queue))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        return time.perf_counter() - t0, latencies, errors


async def held(base: str, queue: str) -> int:
    async with aiohttp.ClientSession() as session:
        reply = await checked(session, base + "/v2/index.php", form(Action="GetQueueAttributes", queueName=queue))
    return reply["activeMsgNum"] + reply["inactiveMsgNum"] + reply["delayMsgNum"]


async def settle(directory: Path, timeout: float = 120.0) -> None:
    """Let a compaction that the fill started finish, so the kill finds a steady directory."""
    deadline = time.monotonic() + timeout
    while any(directory.glob("snapshot-*.tmp")) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def recovery(args, workdir: Path, notes: list[str]) -> bool:
    directory = workdir / "recovery"
    queue = "bench-recovery"
    failed = False
    proc, base, empty_start = await timed_start("--data-dir", str(directory))
    seconds, latencies, errors = await fill(base, queue, args.messages, args.connections)
    latencies.sort()
    requests = len(latencies)
    print(f"fill: {args.messages:,} messages by {requests:,} BatchSendMessage requests (16 bodies each) "
          f"over {args.connections} connections in {seconds:.1f} s: {args.messages / seconds:,.0f} msgs/s, "
          f"request p50 {send_rate.percentile(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {send_rate.percentile(latencies, 0.99) * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms, "
          f"{errors} errors", flush=True)
    if errors:
        failed = True
        notes.append(f"fill: {errors} BatchSendMessage requests failed")
    stored = await held(base, queue)
    expected = args.messages if not errors else stored
    await settle(directory)

    rows = [("empty data dir", empty_start, "-", "-")]
    sizes = {}

    async def restarts(label: str) -> list[float]:
        nonlocal failed
        times = []
        for _ in range(args.restarts):
            replay, files = log_records(directory), describe(directory)
            p, b, took = await timed_start("--data-dir", str(directory))
            times.append(took)
            count = await held(b, queue)
            if count != expected:
                failed = True
                notes.append(f"{label}: the queue held {count:,} messages after the restart, expected {expected:,}")
            await kill(p)
            rows.append((label, took, f"{replay:,}", files))
        return times

    await kill(proc)
    sizes["after the fill, as SIGKILL left it"] = disk_use(directory)
    killed = await restarts("after SIGKILL")

    p, b, _ = await timed_start("--data-dir", str(directory))
    code, stop_seconds = await terminate(p)
    if code != 0:
        failed = True
        notes.append(f"SIGTERM of the full broker: exit code {code}")
    notes.append(f"SIGTERM of the broker holding {expected:,} messages took {stop_seconds:.1f} s "
                 "(flush, final snapshot, exit)")
    sizes["after SIGTERM (snapshot)"] = disk_use(directory)
    termed = []
    for _ in range(args.restarts):
        replay, files = log_records(directory), describe(directory)
        p, b, took = await timed_start("--data-dir", str(directory))
        termed.append(took)
        count = await held(b, queue)
        if count != expected:
            failed = True
            notes.append(f"after SIGTERM: the queue held {count:,} messages after the restart, expected {expected:,}")
        code, _ = await terminate(p)
        if code != 0:
            failed = True
            notes.append(f"SIGTERM after a restart: exit code {code}")
        rows.append(("after SIGTERM", took, f"{replay:,}", files))

    print(flush=True)
    print(f"{'start (spawn to healthy /healthz)':<34} {'seconds':>8} {'replayed':>9}  data directory it started from",
          flush=True)
    for label, took, replay, files in rows:
        print(f"{label:<34} {took:>8.2f} {replay:>9}  {files}", flush=True)
    for label, times in (("after SIGKILL", killed), ("after SIGTERM", termed)):
        notes.append(f"start {label}: min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
                     f"max {max(times):.2f} s over {len(times)} restarts; the queue held {stored:,} messages")

    print(flush=True)
    print(f"{'disk use per queued 100-byte message':<52} {'apparent':>12} {'allocated':>12} {'B/msg':>7} "
          f"{'alloc B/msg':>11}", flush=True)
    for label, (apparent, allocated) in sizes.items():
        print(f"{label:<52} {apparent / 1e6:>9,.1f} MB {allocated / 1e6:>9,.1f} MB "
              f"{apparent / expected:>7.1f} {allocated / expected:>11.1f}", flush=True)
    return failed


# -- main ----------------------------------------------------------------------------------------

async def run(args) -> int:
    parent = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="cmq-durability-", dir=parent))
    notes: list[str] = []
    try:
        p50, p99 = fsync_latency(workdir)
        try:
            import uvloop  # noqa: F401

            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
        print(f"cmq-broker durability bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
        print(f"broker: {sys.executable} -m broker serve, Python {platform.python_version()}; client: this process, "
              f"aiohttp {aiohttp.__version__}, {loop_name}; {os.cpu_count()} cores shared by both")
        print(f"data directories under {workdir} ({filesystem(workdir)}); a 4 KiB append + fdatasync there takes "
              f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
        print(f"throughput: warm-up {send_rate.WARMUP:.0f} s, then {args.duration:g} s measured per row; "
              f"{len(BODY)}-byte bodies; latency per HTTP request")
        print(flush=True)
        print(row(send_rate.COLUMNS), flush=True)
        results, failed = await throughput(args, workdir, notes)
        rate = {(name, conns): t.requests / (t.end - t.start) for name, conns, t in results}
        for conns in sorted({c for _, c in rate}):
            m, d = rate[("memory", conns)], rate[("--data-dir", conns)]
            print(f"durable / in-memory at {conns} connection{'s' if conns > 1 else ''}: {d / m:.2f} "
                  f"({d:,.0f} vs {m:,.0f} req/s)", flush=True)
        print(flush=True)
        failed |= await recovery(args, workdir, notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(flush=True)
    for note in notes:
        print(note, flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure what --data-dir costs: throughput, recovery time, disk use.")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per throughput row (default 5)")
    parser.add_argument("--connections", type=int, default=32,
                        help="concurrent connections for the many-clients row and the fill (default 32)")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to recover (default 1000000)")
    parser.add_argument("--restarts", type=int, default=3, help="timed restarts of each kind (default 3)")
    parser.add_argument("--dir", default="", help="where to make the data directories (default: the temp dir)")
    args = parser.parse_args()
    if args.duration <= 0 or args.connections < 1 or args.messages < 1 or args.restarts < 1:
        parser.error("--duration must be positive; --connections, --messages and --restarts at least 1")
    return run_on_uvloop(run(args))


if __name__ == "__main__":
    sys.exit(main())
