"""Write-ahead log tests: real files in a temporary directory, faults injected through the Wal's
write_fn/sync_fn seams, crashes simulated with SIGKILL on a child process. No engine, no HTTP."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import msgpack
import pytest

from broker.storage import CorruptData, DataDirLocked, Recovered, StorageError, Wal

REPO_ROOT = Path(__file__).resolve().parent.parent


def frame(record) -> bytes:
    """A log record built from the file format, not from the module under test."""
    payload = msgpack.packb(record, use_bin_type=True)
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def snapshot_bytes(state) -> bytes:
    payload = msgpack.packb(state, use_bin_type=True)
    return b"CMQSNAP1" + struct.pack("<IQ", zlib.crc32(payload), len(payload)) + payload


def seg(d: Path, seq: int) -> Path:
    return d / f"wal-{seq:016d}.log"


def snap(d: Path, seq: int) -> Path:
    return d / f"snapshot-{seq:016d}.msgpack"


def files(d: Path) -> dict[str, bytes]:
    """Every data file's bytes (LOCK holds a pid and is not data)."""
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name != "LOCK"}


async def reopen(d: Path, **kw) -> Recovered:
    wal = Wal(d, **kw)
    recovered = wal.open()
    await wal.close()
    return recovered


async def write_records(d: Path, records, **kw) -> None:
    wal = Wal(d, **kw)
    wal.open()
    for r in records:
        wal.append(r)
    await wal.commit()
    await wal.close()


# -- round trip and group commit --------------------------------------------------------------

async def test_round_trip_across_reopen(tmp_path):
    d = tmp_path / "data" / "nested"  # created, parents too
    records = [
        ("send", 1, "q", "héllo ☃", 1.5, None, True),
        ["bin", b"\x00\xff" * 100],
        {"map": {1: "int key", "s": [1, 2, {"deep": False}]}},
        [2**63 - 1, -(2**63), 0.0],
        "x" * 70_000,
    ]
    wal = Wal(d)
    assert wal.open() == Recovered(None, [], 0)
    for r in records:
        wal.append(r)
    assert wal.pending_bytes() == wal.log_bytes() > 0
    await wal.commit()
    assert wal.pending_bytes() == 0
    await wal.close()

    expected = [list(records[0]), *records[1:]]  # msgpack turns tuples into lists
    wal = Wal(d)
    got = wal.open()
    assert got.snapshot is None and got.records == expected and got.truncated_bytes == 0
    assert wal.log_bytes() == seg(d, 0).stat().st_size
    wal.append(["after reopen"])
    await wal.commit()
    await wal.close()
    assert (await reopen(d)).records == expected + [["after reopen"]]


async def test_misuse_is_refused_plainly(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open the data directory"):
        Wal(tmp_path / "file").open()
    wal = Wal(tmp_path / "d")
    with pytest.raises(RuntimeError):
        wal.append(["before open"])
    wal.open()
    await wal.close()
    with pytest.raises(RuntimeError):
        wal.append(["after close"])


async def test_unpackable_record_is_refused_and_leaves_no_trace(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    with pytest.raises(TypeError):
        wal.append(["bad", object()])
    wal.append(["good"])
    await wal.commit()
    await wal.close()
    assert (await reopen(tmp_path)).records == [["good"]]


async def test_commit_returns_only_after_the_fsync(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    gate = threading.Event()
    real_sync = wal.sync_fn
    wal.sync_fn = lambda fd: (gate.wait(5), real_sync(fd))
    wal.append(["r"])
    committing = asyncio.ensure_future(wal.commit())
    await asyncio.sleep(0.05)
    assert not committing.done() and wal.pending_bytes() > 0
    gate.set()
    await committing
    assert wal.pending_bytes() == 0 and wal.syncs == 1
    await wal.close()


async def test_concurrent_commits_share_fsyncs(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    real_sync = wal.sync_fn

    def slow_sync(fd):  # a disk that takes a millisecond per flush, so commits pile up
        time.sleep(0.001)
        real_sync(fd)

    wal.sync_fn = slow_sync
    n_tasks, rounds = 50, 10
    committed: list[int] = []

    async def client(k: int) -> None:
        for i in range(rounds):
            wal.append([k, i])
            await wal.commit()
            committed.append(k)
            await asyncio.sleep(0)

    await asyncio.gather(*(client(k) for k in range(n_tasks)))
    assert len(committed) == n_tasks * rounds
    assert wal.syncs <= n_tasks * rounds / 10, wal.syncs  # at least ten commits per fsync
    await wal.close()
    got = (await reopen(tmp_path)).records
    assert sorted(map(tuple, got)) == sorted((k, i) for k in range(n_tasks) for i in range(rounds))
    for k in range(n_tasks):  # each client's records in its own order
        assert [i for kk, i in got if kk == k] == list(range(rounds))


# -- recovery: torn tails are cut, damage elsewhere is refused ---------------------------------

RECORDS = [["rec", i, "v" * (i * 7)] for i in range(5)]


async def test_torn_tail_at_every_offset_of_the_last_record_is_cut(tmp_path):
    whole = b"".join(frame(r) for r in RECORDS)
    last_start = len(whole) - len(frame(RECORDS[-1]))
    for cut in range(last_start, len(whole)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        seg(d, 0).write_bytes(whole[:cut])
        wal = Wal(d)
        got = wal.open()
        assert got.records == RECORDS[:-1], cut
        assert got.truncated_bytes == cut - last_start
        assert seg(d, 0).stat().st_size == last_start
        wal.append(["next"])  # appends continue right after the last intact record
        await wal.commit()
        await wal.close()
        assert (await reopen(d)).records == RECORDS[:-1] + [["next"]]


@pytest.mark.parametrize(
    "tail, kept",
    [
        pytest.param(lambda last: last[:-1] + bytes([last[-1] ^ 0xFF]), 4, id="bad-crc-on-last-record"),
        pytest.param(lambda last: last + bytes(4096), 5, id="zeros-after-last-record"),
        pytest.param(lambda last: last[:10] + bytes(len(last) + 500), 4, id="torn-record-then-zeros"),
    ],
)
async def test_other_torn_tails_are_cut(tmp_path, tail, kept):
    good = b"".join(frame(r) for r in RECORDS[:-1])
    seg(tmp_path, 0).write_bytes(good + tail(frame(RECORDS[-1])))
    got = await reopen(tmp_path)
    assert got.records == RECORDS[:kept]
    intact = b"".join(frame(r) for r in RECORDS[:kept])
    assert got.truncated_bytes > 0 and seg(tmp_path, 0).read_bytes() == intact


def damage_in_the_middle(data: bytes, offset: int, how: str) -> bytes:
    if how == "payload-bit":
        i = offset + 8 + 2
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    if how == "length-high-bit":  # the length then points past the end of the file
        i = offset + 3
        return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]
    if how == "length-low-bit":
        return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["payload-bit", "length-high-bit", "length-low-bit"])
async def test_damage_in_the_middle_is_refused_and_nothing_is_touched(tmp_path, how):
    frames = [frame(r) for r in RECORDS]
    offset = len(frames[0]) + len(frames[1])  # record 2 of 5
    seg(tmp_path, 0).write_bytes(damage_in_the_middle(b"".join(frames), offset, how))
    before = files(tmp_path)
    with pytest.raises(CorruptData) as info:
        Wal(tmp_path).open()
    err = info.value
    assert err.path == str(seg(tmp_path, 0)) and err.offset == offset
    assert str(seg(tmp_path, 0)) in err.message and f"offset {offset}" in err.message
    assert files(tmp_path) == before
    with pytest.raises(CorruptData):  # the lock was released: a second try gets the same answer
        Wal(tmp_path).open()


async def test_damage_at_the_end_of_an_older_segment_is_refused(tmp_path):
    older = b"".join(frame(r) for r in RECORDS)
    seg(tmp_path, 0).write_bytes(older[:-3])  # short, but not the last segment: no crash does that
    seg(tmp_path, 1).write_bytes(frame(["newer"]))
    before = files(tmp_path)
    with pytest.raises(CorruptData) as info:
        Wal(tmp_path).open()
    assert info.value.path == str(seg(tmp_path, 0))
    assert info.value.offset == len(older) - len(frame(RECORDS[-1]))
    assert files(tmp_path) == before


async def test_a_missing_segment_is_refused(tmp_path):
    seg(tmp_path, 0).write_bytes(frame(["a"]))
    seg(tmp_path, 2).write_bytes(frame(["c"]))
    with pytest.raises(CorruptData) as info:
        Wal(tmp_path).open()
    assert info.value.path == str(seg(tmp_path, 1))


@pytest.mark.parametrize("where", [0, 5, 12, 30, -1])
async def test_a_damaged_snapshot_is_refused_with_no_fallback(tmp_path, where):
    await write_records(tmp_path, [["a"]])
    wal = Wal(tmp_path)
    wal.open()
    await wal.snapshot({"state": "one", "pad": "p" * 40})  # snapshot 1: a valid, older one
    wal.append(["b"])
    await wal.commit()
    await wal.snapshot({"state": "two", "pad": "p" * 40})  # snapshot 2, the newest
    await wal.close()
    # Put the older snapshot back, as if a crash came before its removal.
    snap(tmp_path, 1).write_bytes(snapshot_bytes({"state": "one", "pad": "p" * 40}))
    data = bytearray(snap(tmp_path, 2).read_bytes())
    data[where] ^= 0x10
    snap(tmp_path, 2).write_bytes(bytes(data))
    before = files(tmp_path)
    with pytest.raises(CorruptData) as info:
        Wal(tmp_path).open()
    assert info.value.path == str(snap(tmp_path, 2))
    assert files(tmp_path) == before  # the older snapshot is not used, and not deleted


async def test_a_short_snapshot_is_refused(tmp_path):
    snap(tmp_path, 1).write_bytes(snapshot_bytes({"x": 1})[:-1])
    with pytest.raises(CorruptData) as info:
        Wal(tmp_path).open()
    assert info.value.path == str(snap(tmp_path, 1))


async def test_leftovers_of_an_interrupted_compaction_are_removed(tmp_path):
    # A crash after snapshot 2 was renamed into place but before the old files were removed,
    # plus the temp file of a later snapshot that never finished.
    seg(tmp_path, 1).write_bytes(frame(["old"]))
    snap(tmp_path, 1).write_bytes(snapshot_bytes("older state"))
    snap(tmp_path, 2).write_bytes(snapshot_bytes("state"))
    seg(tmp_path, 2).write_bytes(frame(["new"]))
    (tmp_path / (snap(tmp_path, 3).name + ".tmp")).write_bytes(b"half a snapshot")
    got = await reopen(tmp_path)
    assert got.snapshot == "state" and got.records == [["new"]]
    assert sorted(files(tmp_path)) == [snap(tmp_path, 2).name, seg(tmp_path, 2).name]


# -- the lock ----------------------------------------------------------------------------------

LOCK_PROBE = """
import sys
from broker.storage import DataDirLocked, Wal
try:
    Wal(sys.argv[1]).open()
except DataDirLocked as exc:
    print("locked:", exc)
else:
    print("opened")
"""


async def test_a_second_wal_on_the_same_directory_is_refused(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    with pytest.raises(DataDirLocked) as info:
        Wal(tmp_path).open()
    assert str(tmp_path) in info.value.message and str(os.getpid()) in info.value.message
    probe = subprocess.run(
        [sys.executable, "-c", LOCK_PROBE, str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert probe.stdout.startswith("locked:"), probe.stdout + probe.stderr
    await wal.close()
    await reopen(tmp_path)  # released on close


# -- compaction --------------------------------------------------------------------------------

async def test_snapshot_replaces_old_segments_and_disk_use_stays_bounded(tmp_path):
    wal = Wal(tmp_path, segment_bytes=8192)
    wal.open()
    count = snapshots = 0
    for _ in range(60):
        for _ in range(40):
            wal.append(["msg", count, "b" * 50])
            count += 1
        await wal.commit()
        if wal.compaction_due():
            await wal.snapshot({"count": count})
            snapshots += 1
            names = sorted(files(tmp_path))
            assert names == [snap(tmp_path, snapshots).name, seg(tmp_path, snapshots).name]
            assert wal.log_bytes() == 0
        size = sum(len(b) for b in files(tmp_path).values())
        assert size < 8192 + 40 * 100, size  # a threshold's worth of log plus one round
    assert snapshots >= 10
    wal.append(["msg", count, "tail"])
    await wal.commit()
    await wal.close()
    got = await reopen(tmp_path)
    base = got.snapshot["count"]
    assert [r[1] for r in got.records] == list(range(base, count + 1))


async def test_appends_during_a_snapshot_land_after_it(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    for i in range(100):
        wal.append(["before", i])
    await wal.commit()
    state = {"items": list(range(300_000))}  # a few MB, so the snapshot write takes a while
    snapshotting = asyncio.ensure_future(wal.snapshot(state))
    await asyncio.sleep(0)  # the snapshot's synchronous step has run: the state is taken
    state["items"].append("changed after the call")  # must not leak into the snapshot
    during = 0
    while not snapshotting.done():
        wal.append(["during", during])
        during += 1
        await wal.commit()
    await snapshotting
    assert during > 0
    wal.append(["after"])
    await wal.commit()
    await wal.close()
    got = await reopen(tmp_path)
    assert got.snapshot == {"items": list(range(300_000))}
    assert got.records == [["during", i] for i in range(during)] + [["after"]]


async def test_a_snapshot_called_while_another_runs_queues_behind_it(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    wal.append(["a"])
    first = asyncio.ensure_future(wal.snapshot({"big": "x" * 2_000_000}))
    await asyncio.sleep(0)
    wal.append(["b"])
    second = asyncio.ensure_future(wal.snapshot("second"))
    await asyncio.sleep(0)
    wal.append(["c"])
    await asyncio.gather(first, second, wal.commit())
    await wal.close()
    got = await reopen(tmp_path)
    assert (got.snapshot, got.records) == ("second", [["c"]])
    assert sorted(files(tmp_path)) == [snap(tmp_path, 2).name, seg(tmp_path, 2).name]


async def test_close_waits_for_a_running_snapshot(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    wal.append(["a"])
    snapshotting = asyncio.ensure_future(wal.snapshot({"big": "x" * 2_000_000}))
    await asyncio.sleep(0)
    wal.append(["b"])
    await wal.close()
    assert snapshotting.done()
    got = await reopen(tmp_path)
    assert got.snapshot == {"big": "x" * 2_000_000} and got.records == [["b"]]


# -- write failures ----------------------------------------------------------------------------

class FailingWrites:
    """Wraps os.pwrite: the next `fail` calls raise ENOSPC, after writing half if `partial`."""

    def __init__(self, partial: bool = False):
        self.fail = 0
        self.partial = partial

    def __call__(self, fd, data, offset):
        if self.fail:
            self.fail -= 1
            if self.partial and len(data) > 1:
                written = os.pwrite(fd, data[: len(data) // 2], offset)
                self.partial_written = written
                self.fail += 1  # the next call, for the rest, fails for real
                self.partial = False
                return written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.pwrite(fd, data, offset)


@pytest.mark.parametrize("partial", [False, True], ids=["nothing-written", "half-written"])
async def test_failed_write_refuses_the_commit_and_retries_later(tmp_path, partial):
    wal = Wal(tmp_path)
    wal.open()
    wal.write_fn = writes = FailingWrites(partial)
    wal.append(["r", 0])
    await wal.commit()
    good_size = seg(tmp_path, 0).stat().st_size

    writes.fail = 1
    wal.append(["r", 1])
    waiting = [asyncio.ensure_future(wal.commit()) for _ in range(5)]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results), results
    assert "No space left on device" in results[0].message
    assert seg(tmp_path, 0).stat().st_size == good_size  # no half batch left behind
    assert wal.pending_bytes() > 0

    wal.append(["r", 2])  # the engine goes on; the queued bytes go out with the next commit
    await wal.commit()
    assert wal.pending_bytes() == 0
    await wal.close()
    assert (await reopen(tmp_path)).records == [["r", 0], ["r", 1], ["r", 2]]


async def test_failed_fsync_rewrites_the_batch_once(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    real_sync, failures = wal.sync_fn, [OSError(errno.EIO, "I/O error")]

    def flaky_sync(fd):
        if failures:
            raise failures.pop()
        real_sync(fd)

    wal.sync_fn = flaky_sync
    wal.append(["a"])
    with pytest.raises(StorageError):
        await wal.commit()
    await wal.commit()  # nothing new appended: the retry is for "a" alone
    await wal.close()
    assert (await reopen(tmp_path)).records == [["a"]]


async def test_a_failure_spanning_a_segment_switch_keeps_order(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    wal.write_fn = writes = FailingWrites()
    wal.append(["old", 1])
    writes.fail = 1
    with pytest.raises(StorageError):
        await wal.commit()
    with pytest.raises(StorageError):  # the disk is still full for the snapshot
        writes.fail = 10
        await wal.snapshot("state")
    wal.append(["new", 2])  # belongs to the segment after the failed snapshot
    writes.fail = 0
    await wal.commit()
    await wal.close()
    got = await reopen(tmp_path)
    assert (got.snapshot, got.records) == (None, [["old", 1], ["new", 2]])
    assert sorted(files(tmp_path)) == [seg(tmp_path, 0).name, seg(tmp_path, 1).name]


async def test_failed_snapshot_keeps_the_log_and_a_later_one_succeeds(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    wal.append(["a"])
    await wal.commit()
    writes = FailingWrites()
    wal.write_fn = writes
    writes.fail = 1  # the log is already flushed, so this hits the snapshot's header
    with pytest.raises(StorageError, match="snapshot"):
        await wal.snapshot("s1")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert wal.log_bytes() > 0
    wal.append(["b"])
    await wal.commit()
    await wal.snapshot("s2")
    wal.append(["c"])
    await wal.close()
    got = await reopen(tmp_path)
    assert (got.snapshot, got.records) == ("s2", [["c"]])


async def test_close_reports_an_unwritable_tail_and_still_unlocks(tmp_path):
    wal = Wal(tmp_path)
    wal.open()
    wal.write_fn = writes = FailingWrites()
    wal.append(["lost, never acknowledged"])
    writes.fail = 100
    with pytest.raises(StorageError):
        await wal.close()
    assert (await reopen(tmp_path)).records == []


# -- crashes -----------------------------------------------------------------------------------

CRASHER = """
import asyncio, sys
from broker.storage import Wal

async def main():
    wal = Wal(sys.argv[1], segment_bytes=4096)
    got = wal.open()
    counter = 0

    async def client():
        nonlocal counter
        while True:
            n = counter
            counter += 1
            wal.append(n)
            await wal.commit()
            print(n + 1, flush=True)  # records 0..n are durable
            if wal.compaction_due():
                await wal.snapshot(counter)  # the state: how many records it covers

    await asyncio.gather(*(client() for _ in range(8)))

asyncio.run(main())
"""


@pytest.mark.parametrize("kill_after", [150, 1500])
async def test_sigkill_loses_nothing_that_was_committed(tmp_path, kill_after):
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    reported = 0
    try:
        for line in child.stdout:
            reported = max(reported, int(line))
            if reported >= kill_after:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    for line in rest.splitlines():
        if line.strip().isdigit():  # a line cut by the kill is not a report
            reported = max(reported, int(line))
    assert reported >= kill_after, "the child died before reporting"
    got = await reopen(tmp_path)
    base = got.snapshot or 0
    assert got.records == list(range(base, base + len(got.records)))  # no gap, no duplicate
    assert base + len(got.records) >= reported
    if kill_after > 1000:
        assert got.snapshot, "compaction should have run"


def test_the_log_knows_no_engine_and_no_http():
    import ast

    for name in ("wal.py", "format.py"):  # the log and its file format; format.py is its only sibling import
        tree = ast.parse((REPO_ROOT / "broker" / "storage" / name).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported.discard(".format")
        assert not [m for m in imported if m.startswith(".") or "engine" in m or "aiohttp" in m or "protocol" in m]
