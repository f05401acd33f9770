"""Faults (issue 10): the broker under broken subscribers, a full or failing disk, a wall clock
that jumps, a thousand long polls and a SIGKILL in the middle of them.

Every test starts `python -m broker serve` as a user would (conftest.run_broker, or
tests/fault_clock.py for the clock test) and talks to it with the official CMQ SDK or plain
HTTP. What each test measured is printed (`pytest -s tests/test_faults.py`) and quoted in
docs/robustness.md.

Related tests elsewhere, not repeated here: tests/test_e2e_push.py (hanging endpoints, refused
connections, push timeouts, non-2xx answers), tests/test_wal.py (write and fsync failures
injected at the WAL level), tests/test_e2e_durability.py (kill -9 at crash points under SDK
traffic), tests/test_limits.py (connection, long-poll, parameter, body and header limits).
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import statistics
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message
from cmq.topic import Message as TopicMessage
from cmq.topic import TopicMeta

import helpers
from helpers import (
    REPO_ROOT, Background, BrokerProcess, queue_meta, run_broker, serve_args, sub_meta, sub_msg_count,
    unique_name, wait_until,
)
from fault_endpoint import FaultEndpoint

WAIT = 15.0  # upper bound for anything that should happen "soon"


def report(name: str, **figures) -> None:
    """One line of measured figures, shown with `pytest -s` (docs/robustness.md quotes them)."""
    print(f"\n[faults] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def no_traceback(b: BrokerProcess) -> None:
    err = b.stderr()
    assert "Traceback" not in err, f"the broker logged a traceback:\n{err[-4000:]}"


# -- 1. subscribers that reset, answer garbage or hang ---------------------------------------

RETRYING = ("reset", "garbage", "bad_status", "hang")


def subscribe_http(account: Account, topic: str, name: str, url: str) -> None:
    account.get_subscription(topic, name).create(sub_meta("http", url, "EXPONENTIAL_DECAY_RETRY", "SIMPLIFIED"))


def msg_count(account: Account, topic: str, sub: str) -> int:
    return sub_msg_count(account, topic, sub)


def timed_publishes(topic, bodies: list[str]) -> tuple[list[str], list[float], list[float]]:
    """Publish one by one: message ids, when each publish started, and how long each took."""
    ids, starts, took = [], [], []
    for body in bodies:
        t0 = time.monotonic()
        ids.append(topic.publish_message(TopicMessage(body)).msgId)
        starts.append(t0)
        took.append(time.monotonic() - t0)
    return ids, starts, took


def test_broken_subscribers_are_retried_until_healthy_and_hold_up_nobody():
    endpoint = FaultEndpoint()
    try:
        with run_broker(["--host", "127.0.0.1", "--port", "0", "--push-retry-scale", "0.01",
                         "--push-timeout", "1"]) as b:
            account = b.account()
            topic_name = unique_name("ft")
            topic = account.get_topic(topic_name)
            topic.create(TopicMeta())
            for mode in ("ok", *RETRYING, "endless"):
                subscribe_http(account, topic_name, mode, endpoint.url(mode, mode))

            first, t_first, took_first = timed_publishes(topic, [f"a{i}" for i in range(12)])

            def attempts(mode: str) -> Counter:
                return Counter(a.msg_id for a in endpoint.of(mode))

            # The healthy subscription gets every message at once, whatever the others do.
            assert endpoint.wait(lambda e: {a.msg_id for a in e.of("ok")} >= set(first), WAIT)
            arrived = {a.msg_id: a.at for a in reversed(endpoint.of("ok"))}
            latency = [arrived[m] - t for m, t in zip(first, t_first)]
            assert max(latency) < 1.0, f"healthy pushes took up to {max(latency):.2f}s"

            # Every faulty endpoint has seen each message at least twice: failures are retried.
            assert endpoint.wait(lambda e: all(
                set(first) <= {m for m, n in attempts(mode).items() if n >= 2} for mode in RETRYING), WAIT), \
                {mode: dict(attempts(mode)) for mode in RETRYING}
            # Publishing stays fast while all that retrying goes on.
            second, t_second, took_second = timed_publishes(topic, [f"b{i}" for i in range(12)])
            published = set(first) | set(second)
            for mode in RETRYING:
                assert msg_count(account, topic_name, mode) > 0  # still owed, not given up

            for mode in RETRYING:
                endpoint.set(mode, "ok")
            healed = time.monotonic()

            def delivered(mode: str) -> Counter:
                # a request answered in mode "ok" on a path that was faulty: the retry that worked
                return Counter(a.msg_id for a in endpoint.of(mode) if a.mode == "ok")

            assert endpoint.wait(lambda e: all(set(delivered(m)) >= published for m in RETRYING), WAIT), \
                {m: len(published - set(delivered(m))) for m in RETRYING}
            recovered_in = time.monotonic() - healed
            for mode in ("ok", *RETRYING):
                counts = delivered(mode)
                assert set(counts) == published and max(counts.values()) == 1, (mode, counts)
                wait_until(lambda: msg_count(account, topic_name, mode) == 0, f"{mode}: msgCount back to 0",
                           WAIT, 0.02)
            # A 200 whose body never ends is a 200: delivered once, not retried, not waited for.
            endless = attempts("endless")
            assert set(endless) == published and max(endless.values()) == 1, endless
            wait_until(lambda: msg_count(account, topic_name, "endless") == 0, "endless: msgCount back to 0",
                       WAIT, 0.02)
            no_traceback(b)

            took = took_first + took_second
            tries = {m: sum(attempts(m).values()) for m in RETRYING}
            report("broken subscribers", messages=len(published), subscriptions=6,
                   publish_median_ms=round(statistics.median(took) * 1000, 1),
                   publish_max_ms=round(max(took) * 1000, 1),
                   healthy_push_max_ms=round(max(latency) * 1000, 1),
                   attempts=tries, delivered_after_heal_s=round(recovered_in, 2))
            assert max(took) < 0.5, f"a publish took {max(took):.2f}s while subscribers misbehave"
    finally:
        endpoint.close()


# -- 2. a disk that fills up or refuses writes ------------------------------------------------

BODY_PAD = "x" * 2000  # so the log grows by pages, and a full disk shows within a few sends


class Ledger:
    """Sends to one queue, split by how the broker answered them."""

    def __init__(self, account: Account, queue: str):
        self.q = account.get_queue(queue)
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.messages: set[str] = set()  # what the refusals said

    def send(self, body: str) -> bool:
        try:
            self.q.send_message(Message(body + BODY_PAD))
        except CMQServerException as exc:
            assert exc.code == 6000, (exc.code, exc.message)
            self.refused.append(body)
            self.messages.add(re.sub(r"wal-\d+\.log", "wal-N.log", exc.message))
            return False
        self.acked.append(body)
        return True


def drain(account: Account, queue: str) -> list[str]:
    """Receive and delete everything the queue holds (nothing is in flight at a restart here)."""
    return [m.msgBody.removesuffix(BODY_PAD) for m in helpers.drain(account.get_queue(queue))]


def broker_args(data_dir: Path) -> list[str]:
    return serve_args("--data-dir", str(data_dir))


def refused_while_full(ledger: Ledger, tag: str, fill, more: int) -> float:
    """Fill the disk, send until the broker refuses (a page's slack may take a few more), then
    `more` sends that must all be refused. Returns the slowest refusal, in seconds."""
    fill()
    for i in range(200):
        if not ledger.send(f"{tag}-filling-{i}"):
            break
    else:
        pytest.fail("200 sends after the disk filled up were all acknowledged")
    slowest = 0.0
    for i in range(more):
        t0 = time.monotonic()
        assert not ledger.send(f"{tag}-full-{i}"), "a send was acknowledged while the disk is full"
        slowest = max(slowest, time.monotonic() - t0)
    return slowest


def disk_fault_scenario(data_dir: Path, fill, free, errno_text: str, name: str) -> None:
    """The shared story of the full-disk tests. Phase 1: the disk fills up, sends are refused
    (6000) while reads keep working, space returns, sends are acknowledged again without a
    restart, SIGKILL, restart: every acknowledged send is there. Phase 2: the disk fills up again
    and the broker is killed while it is still full: nothing refused is there after a restart.
    `fill(pid)` and `free(pid)` take and give back the room."""
    queue = unique_name("disk")
    with run_broker(broker_args(data_dir)) as b:
        account = b.account()
        account.get_queue(queue).create(queue_meta())
        one = Ledger(account, queue)
        for i in range(20):
            assert one.send(f"before-{i}")
        slowest = refused_while_full(one, "p1", lambda: fill(b.proc.pid), more=10)
        attrs = account.get_queue(queue).get_attributes()  # reads work on a full disk
        assert attrs.activeMsgNum >= len(one.acked)
        free(b.proc.pid)
        for i in range(10):
            assert one.send(f"after-{i}"), f"still refused after the room came back: {one.messages}"
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(timeout=10)
        no_traceback(b)
        [message] = one.messages  # one clear reason, the same every time
        assert errno_text in message and "not acknowledged" in message, message

    with run_broker(broker_args(data_dir)) as b:
        account = b.account()
        got = drain(account, queue)
        assert len(got) == len(set(got)), "a message came back twice"
        assert set(one.acked) <= set(got), f"acknowledged but lost: {sorted(set(one.acked) - set(got))}"
        assert set(got) <= set(one.acked) | set(one.refused), "a message nobody sent"
        # Refused changes stayed queued in memory and were written once the disk took writes
        # again (README, Durability: "a SendMessage answered with 6000 may still deliver").
        landed = set(got) & set(one.refused)
        assert landed == set(one.refused), "memory and disk disagree after the disk recovered"

        two = Ledger(account, queue)
        for i in range(5):
            assert two.send(f"p2-before-{i}")
        refused_while_full(two, "p2", lambda: fill(b.proc.pid), more=5)
        b.proc.send_signal(signal.SIGKILL)  # while still full: the refused records never reach disk
        b.proc.wait(timeout=10)
        no_traceback(b)
    free(None)

    with run_broker(broker_args(data_dir)) as b:
        got2 = drain(b.account(), queue)
        assert set(two.acked) <= set(got2), f"acknowledged but lost: {sorted(set(two.acked) - set(got2))}"
        assert not set(got2) & set(two.refused), f"refused but there: {sorted(set(got2) & set(two.refused))}"
        assert set(got2) == set(two.acked)
        no_traceback(b)
    report(name, acked=len(one.acked) + len(two.acked), refused=len(one.refused) + len(two.refused),
           refused_that_landed_after_space_returned=len(landed), refused_present_after_kill_while_full=0,
           lost=0, slowest_refusal_ms=round(slowest * 1000, 1), reason=repr(message))


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a small tmpfs, and mounting one needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_refuses_writes_loses_nothing_and_recovers(tmp_path):
    with tmpfs(tmp_path / "fs", "4m") as fs:
        ballast = fs / "ballast"

        def fill(_pid) -> None:
            with open(ballast, "ab", buffering=0) as f:  # unbuffered: nothing left to fail at close
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass  # ENOSPC: full
            assert os.statvfs(fs).f_bavail == 0

        def free(_pid) -> None:
            ballast.unlink(missing_ok=True)

        disk_fault_scenario(fs / "data", fill, free, "No space left on device", "full disk (tmpfs 4 MiB)")


def test_a_file_size_limit_refuses_writes_loses_nothing_and_recovers(tmp_path):
    """The same story without privileges: RLIMIT_FSIZE (`ulimit -f`, systemd's LimitFSIZE=) set
    on the running broker at the log's current size, so its next write fails with EFBIG (Python
    ignores SIGXFSZ), and lifted again to give the room back."""
    data_dir = tmp_path / "data"
    original = resource.getrlimit(resource.RLIMIT_FSIZE)

    def fill(pid: int) -> None:
        [segment] = data_dir.glob("wal-*.log")
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (segment.stat().st_size, original[1]))

    def free(pid: int | None) -> None:
        if pid is not None:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, original)

    disk_fault_scenario(data_dir, fill, free, "File too large", "file size limit (RLIMIT_FSIZE)")


# -- 3. the wall clock jumps ------------------------------------------------------------------

HOUR = 3600.0
LAUNCHER = REPO_ROOT / "tests" / "fault_clock.py"


def broker_with_clock(offset_file: Path, args: list[str]):
    """`python tests/fault_clock.py OFFSET_FILE serve ARGS`: a broker whose time.time() follows
    OFFSET_FILE (see fault_clock.py), started and stopped as every other broker process is."""
    return run_broker(args, launcher=[str(LAUNCHER), str(offset_file)])


def set_offset(path: Path, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(seconds))
    os.replace(tmp, path)  # atomic: the launcher never reads half a number
    time.sleep(0.05)  # it re-reads every 5 ms


def shown_now(account: Account) -> int:
    """The broker's wall clock, as it shows it: the createTime of a queue made just now."""
    name = unique_name("probe")
    account.get_queue(name).create(queue_meta())
    return account.get_client().get_queue_attributes({"queueName": name})["createTime"]


def test_wall_clock_jumps_do_not_move_timeouts_delays_or_retries(tmp_path):
    offset_file = tmp_path / "offset"
    set_offset(offset_file, 0)
    endpoint = FaultEndpoint()
    scale = 0.1  # push retry gaps 0.1, 0.2, 0.4, 0.8, 1.6 s: the first five span both jumps
    try:
        with broker_with_clock(offset_file, serve_args("--push-retry-scale", str(scale), "--push-timeout", "1")) as b:
            account = b.account()
            assert abs(shown_now(account) - time.time()) <= 2
            names = {k: unique_name(k) for k in ("poll", "delay", "vis")}
            account.get_queue(names["poll"]).create(queue_meta())
            account.get_queue(names["delay"]).create(queue_meta())
            account.get_queue(names["vis"]).create(queue_meta(visibilityTimeout=2))
            topic = unique_name("clock")
            account.get_topic(topic).create(TopicMeta())
            subscribe_http(account, topic, "hook", endpoint.url("hook", "reset"))
            account.get_queue(names["vis"]).send_message(Message("v"))

            def receive(queue: str, wait: int):
                return b.account().get_queue(queue).receive_message(wait)

            t0 = time.monotonic()
            poll = Background(receive, names["poll"], 3)
            account.get_queue(names["delay"]).send_message(Message("d"), delayTime=2)
            delay_sent = time.monotonic()
            delayed = Background(receive, names["delay"], 5)
            first = account.get_queue(names["vis"]).receive_message(0)
            vis_taken = time.monotonic()
            back = Background(receive, names["vis"], 5)
            account.get_topic(topic).publish_message(TopicMessage("p"))

            time.sleep(max(0.0, t0 + 0.7 - time.monotonic()))
            set_offset(offset_file, +HOUR)
            ahead = shown_now(account) - time.time()
            time.sleep(max(0.0, t0 + 1.4 - time.monotonic()))
            set_offset(offset_file, -HOUR)  # two hours back in one step
            behind = shown_now(account) - time.time()
            jumps_done = time.monotonic() - t0
            assert abs(ahead - HOUR) <= 2 and abs(behind + HOUR) <= 2, (ahead, behind)  # the jumps took hold
            assert endpoint.wait(lambda e: len(e.of("hook")) >= 5, WAIT)
            endpoint.set("hook", "ok")  # the sixth attempt, 1.6 s after the fifth, succeeds

            for call in (poll, delayed, back):
                assert call.wait(WAIT), "a receive never returned after the clock jumped"
            assert isinstance(poll.error, CMQServerException) and poll.error.code == 7000, poll.error
            assert delayed.error is None and delayed.result.msgBody == "d", delayed.error
            assert back.error is None and back.result.msgBody == "v" and back.result.dequeueCount == 2, back.error
            assert endpoint.wait(lambda e: any(a.mode == "ok" for a in e.of("hook")), WAIT)

            waited = {
                "long poll 3 s": (poll.finished_at - poll.started_at, 3.0),
                "delaySeconds 2": (delayed.finished_at - delay_sent, 2.0),
                "visibilityTimeout 2": (back.finished_at - vis_taken, 2.0),
            }
            at = [a.at for a in endpoint.of("hook")][:6]
            gaps = [round(y - x, 3) for x, y in zip(at, at[1:])]
            expected = [scale * 2 ** i for i in range(5)]
            assert first.msgBody == "v" and jumps_done < 1.9
            for what, (took, want) in waited.items():
                assert want - 0.15 <= took <= want + 0.7, f"{what} took {took:.2f}s across the clock jumps"
            for got, want in zip(gaps, expected, strict=True):
                assert want - 0.02 <= got <= want + 0.4, f"push retry gaps {gaps}, expected {expected}"
            no_traceback(b)
            report("wall clock +1 h then -1 h", **{k.replace(" ", "_"): round(v[0], 2) for k, v in waited.items()},
                   push_gaps=gaps, expected_gaps=[round(g, 2) for g in expected],
                   shown_clock_offsets=[round(ahead), round(behind)])
    finally:
        endpoint.close()


# -- 4. a thousand long polls, senders, and SIGKILL in the middle -----------------------------

RECEIVERS = 1000
QUEUES = 4
SINGLE_SENDERS, BATCH_SENDERS, BATCH = 6, 2, 16
LOAD_SECONDS = 3.0
BROKEN = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)  # what a killed broker causes


class Load:
    """The ledger of the load test: what was attempted, acknowledged, deleted, drained."""

    def __init__(self, url: str, session: aiohttp.ClientSession):
        self.url = url + "/v2/index.php"
        self.session = session
        self.attempted: set[str] = set()  # sent, whatever the outcome
        self.acked: set[str] = set()  # sends answered code 0
        self.deleting: set[str] = set()  # received, and a delete sent (the kill may cut its reply off)
        self.deleted: set[str] = set()  # ... and that delete answered code 0
        self.unexpected: Counter = Counter()  # replies other than 0, 7000 and stale deletes
        self.stale_deletes = 0  # delete of a message whose visibility timeout had passed
        self.requests = 0
        self.killed = False
        # Until every receiver is parked, all_parked's own probe may hold the last slot for a
        # moment and push a receiver out: only then is a refusal expected.
        self.parking = True

    async def call(self, **form) -> dict:
        async with self.session.post(self.url, data=form) as resp:
            self.requests += 1
            return await resp.json(content_type=None)

    async def receiver(self, queue: str) -> None:
        while not self.killed:
            try:
                got = await self.call(Action="ReceiveMessage", queueName=queue, pollingWaitSeconds=10)
                if got["code"] == 7000:
                    continue
                if got["code"] == 6000 and self.parking and "--max-long-polls" in got["message"]:
                    await asyncio.sleep(0.05)
                    continue
                if got["code"] != 0:
                    self.unexpected[f"receive {got['code']}: {got['message']}"] += 1
                    continue
                self.deleting.add(got["msgBody"])
                done = await self.call(Action="DeleteMessage", queueName=queue, receiptHandle=got["receiptHandle"])
            except BROKEN:
                return
            if done["code"] == 0:
                self.deleted.add(got["msgBody"])
            elif done["code"] == 4410:  # receipt handle no longer valid (it came back visible)
                self.stale_deletes += 1
            else:
                self.unexpected[f"delete {done['code']}: {done['message']}"] += 1

    async def sender(self, name: str, queue: str, batch: int) -> None:
        n = 0
        while not self.killed:
            bodies = [f"{name}-{n + k}" for k in range(batch)]
            n += batch
            self.attempted.update(bodies)
            if batch == 1:
                form = {"Action": "SendMessage", "queueName": queue, "msgBody": bodies[0]}
            else:
                form = {"Action": "BatchSendMessage", "queueName": queue,
                        **{f"msgBody.{i}": body for i, body in enumerate(bodies, 1)}}
            try:
                got = await self.call(**form)
            except BROKEN:
                return
            if got["code"] == 0:
                self.acked.update(bodies)
            else:
                self.unexpected[f"send {got['code']}: {got['message']}"] += 1

    async def all_parked(self, queue: str, timeout: float) -> bool:
        """True once a further long poll is refused: every slot of --max-long-polls is taken."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await self.call(Action="ReceiveMessage", queueName=queue, pollingWaitSeconds=1)
            if got["code"] == 6000 and "--max-long-polls" in got["message"]:
                self.parking = False
                return True
            await asyncio.sleep(0.05)
        return False

    async def drain(self, queues: list[str], timeout: float) -> Counter:
        """Receive and delete until every queue is empty, in-flight messages included (they come
        back once their visibility timeout passes); the queues side by side."""
        drained: Counter = Counter()
        deadline = time.monotonic() + timeout

        async def one(queue: str) -> None:
            while True:
                got = await self.call(Action="BatchReceiveMessage", queueName=queue, numOfMsg=16,
                                      pollingWaitSeconds=1)
                if got["code"] == 0:
                    drained.update(m["msgBody"] for m in got["msgInfoList"])
                    handles = {f"receiptHandle.{i}": m["receiptHandle"] for i, m in enumerate(got["msgInfoList"], 1)}
                    assert (await self.call(Action="BatchDeleteMessage", queueName=queue, **handles))["code"] == 0
                    continue
                assert got["code"] == 7000, got
                attrs = await self.call(Action="GetQueueAttributes", queueName=queue)
                if attrs["activeMsgNum"] + attrs["inactiveMsgNum"] + attrs["delayMsgNum"] == 0:
                    return
                assert time.monotonic() < deadline, f"{queue} never drained: {attrs}"

        await asyncio.gather(*(one(q) for q in queues))
        return drained


async def test_a_thousand_long_polls_and_senders_survive_sigkill(tmp_path):
    data_dir = tmp_path / "data"
    args = [*broker_args(data_dir), "--max-long-polls", str(RECEIVERS)]
    queues = [unique_name(f"load{i}") for i in range(QUEUES)]
    connector = aiohttp.TCPConnector(limit=0)  # one connection per parked receiver
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        with run_broker(args) as b:
            load = Load(b.url, session)
            for queue in queues:
                assert (await load.call(Action="CreateQueue", queueName=queue, visibilityTimeout=2))["code"] == 0
            t0 = time.monotonic()
            receivers = [asyncio.create_task(load.receiver(queues[i % QUEUES])) for i in range(RECEIVERS)]
            assert await load.all_parked(queues[0], timeout=WAIT), "the receivers never all parked"
            parked_in = time.monotonic() - t0
            senders = [asyncio.create_task(load.sender(f"s{j}", queues[j % QUEUES], 1))
                       for j in range(SINGLE_SENDERS)]
            senders += [asyncio.create_task(load.sender(f"b{j}", queues[j % QUEUES], BATCH))
                        for j in range(BATCH_SENDERS)]
            before = load.requests
            await asyncio.sleep(LOAD_SECONDS)
            b.proc.send_signal(signal.SIGKILL)  # in the middle of all of it
            load.killed = True
            rate = (load.requests - before) / LOAD_SECONDS
            b.proc.wait(timeout=10)
            await asyncio.wait_for(asyncio.gather(*receivers, *senders), WAIT)
            no_traceback(b)
            at_kill = (len(load.attempted), len(load.acked), len(load.deleted), len(load.deleting - load.deleted))

        with run_broker(args) as b:
            load.url = b.url + "/v2/index.php"
            t_drain = time.monotonic()
            drained = await load.drain(queues, timeout=WAIT)
            drained_in = time.monotonic() - t_drain
            no_traceback(b)

    assert not load.unexpected, load.unexpected
    assert max(drained.values(), default=1) == 1, "a message came back twice"
    # A delete cut off by the kill may or may not have happened: only the others must account.
    lost = load.acked - load.deleting - set(drained)
    assert not lost, f"{len(lost)} acknowledged sends lost: {sorted(lost)[:10]}"
    assert not (load.deleted & set(drained)), f"{len(load.deleted & set(drained))} deleted messages came back"
    assert set(drained) <= load.attempted and load.deleted <= load.attempted, "messages nobody sent"
    assert at_kill[1] > 500 and at_kill[2] > 500, f"too little load to mean anything: {at_kill}"
    report("1000 long polls + senders + SIGKILL", receivers=RECEIVERS, queues=QUEUES,
           senders=f"{SINGLE_SENDERS} SendMessage + {BATCH_SENDERS} BatchSendMessage({BATCH})",
           all_parked_after_s=round(parked_in, 2), load_s=LOAD_SECONDS, requests_per_s=round(rate),
           attempted=at_kill[0], acked=at_kill[1], deleted=at_kill[2], stale_deletes=load.stale_deletes,
           deletes_cut_off=at_kill[3], sends_cut_off=at_kill[0] - at_kill[1], drained_after_restart=len(drained),
           drained_in_s=round(drained_in, 2), lost=0, resurrected=0)
