"""Signatures (flags and environment), /healthz, and shutdown on SIGTERM/SIGINT.

Auth tests use their own broker started with --secret-id/--secret-key; every SDK signing mode
(HmacSHA1, HmacSHA256, POST, GET, bytes bodies) must be accepted with the right key and refused
with 4100 otherwise.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message

from helpers import (
    REPO_ROOT, Background, account_for, clean_env, queue_meta, run_broker, serve_args, server_error, unique_name,
)

SECRET_ID = "AKIDtest"
SECRET_KEY = "secret"

MODES = [("sha1", "POST"), ("sha256", "POST"), ("sha1", "GET"), ("sha256", "GET")]
MODE_IDS = [f"{s}-{m}" for s, m in MODES]


@pytest.fixture(scope="module")
def auth_broker():
    with run_broker(serve_args("--secret-id", SECRET_ID, "--secret-key", SECRET_KEY)) as b:
        yield b


def signed_account(url: str, secret_id: str, secret_key: str, sign: str = "sha1", method: str = "POST") -> Account:
    account = account_for(url, secret_id, secret_key)
    if sign != "sha1":
        account.set_sign(sign)
    if method != "POST":
        account.get_client().set_method(method)
    return account


def exercise_every_queue_action(account: Account) -> None:
    """The whole queue API once, with bodies that stress the signature (form specials, '@', UTF-8, bytes)."""
    name = unique_name("signed")
    q = account.get_queue(name)
    q.create(queue_meta(visibilityTimeout=60, rewindSeconds=600, maxMsgHeapNum=1000))
    try:
        total, listed, _ = account.list_queue(searchWord=name, limit=5, offset=0)
        assert total == 1 and listed[0]["queueName"] == name
        q.set_attributes(queue_meta(visibilityTimeout=61, rewindSeconds=600, maxMsgHeapNum=1000))
        assert q.get_attributes().visibilityTimeout == 61

        start = int(time.time()) - 1
        bodies = ["a+b=c & d%20e", "@looks like a file", "ünïcødé 世界", "x_y.z"]
        for body in bodies:
            q.send_message(Message(body))
        batch = [f"b{i}" for i in range(12)]  # msgBody.10 sorts before msgBody.2
        q.batch_send_message([Message(b) for b in batch], delayTime=0)
        one = q.receive_message(polling_wait_seconds=0)
        assert one.msgBody == bodies[0]
        q.delete_message(one.receiptHandle)
        many = q.batch_receive_message(16, polling_wait_seconds=1)
        assert [m.msgBody for m in many] == bodies[1:] + batch
        q.batch_delete_message([m.receiptHandle for m in many])
        assert server_error(q.receive_message, polling_wait_seconds=0).code == 7000
        q.rewindQueue(start)
        assert q.get_attributes().activeMsgNum == len(bodies) + len(batch)

        q.set_encoding(True)
        q.send_message(Message(b"\x00\x01 bytes \xfe\xff"))
        q.batch_send_message([Message(b"bin-1"), Message(b"bin-2")])
        q.set_attributes(queue_meta(visibilityTimeout=61, maxMsgHeapNum=1000))  # rewind off
        q.set_encoding(False)
        assert q.get_attributes().activeMsgNum == len(bodies) + len(batch) + 3
    finally:
        q.delete()


# -- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("sign", "method"), MODES, ids=MODE_IDS)
def test_right_key_works_in_every_signing_mode(auth_broker, sign, method):
    exercise_every_queue_action(signed_account(auth_broker.url, SECRET_ID, SECRET_KEY, sign, method))


@pytest.mark.parametrize(("sign", "method"), MODES, ids=MODE_IDS)
def test_bytes_bodies_round_trip_with_signatures(auth_broker, sign, method):
    account = signed_account(auth_broker.url, SECRET_ID, SECRET_KEY, sign, method)
    q = account.get_queue(unique_name("bytes"))
    q.create(queue_meta())
    try:
        q.set_encoding(True)
        q.send_message(Message(bytes(range(256))))
        q.batch_send_message([Message(b"\xffone"), Message(b"two\x00")])
        assert q.receive_message(polling_wait_seconds=0).msgBody == bytes(range(256))
        assert [m.msgBody for m in q.batch_receive_message(4, polling_wait_seconds=0)] == [b"\xffone", b"two\x00"]
    finally:
        q.delete()


@pytest.mark.parametrize(("sign", "method"), MODES, ids=MODE_IDS)
def test_bytes_message_without_encoding_is_signed_as_the_sdk_does(auth_broker, sign, method):
    # Message(b"...") with encoding off: the SDK signs str(bytes) but sends the raw UTF-8.
    account = signed_account(auth_broker.url, SECRET_ID, SECRET_KEY, sign, method)
    q = account.get_queue(unique_name("rawbytes"))
    q.create(queue_meta())
    try:
        q.send_message(Message("caf\u00e9 \u4e16\u754c".encode()))
        q.batch_send_message([Message(b"plain ascii"), Message("\u00fc".encode())])
        got = [m.msgBody for m in q.batch_receive_message(16, polling_wait_seconds=0)]
        assert got == ["caf\u00e9 \u4e16\u754c", "plain ascii", "\u00fc"]
    finally:
        q.delete()


@pytest.mark.parametrize(("sign", "method"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize(
    ("secret_id", "secret_key"),
    [(SECRET_ID, "wrong"), ("AKIDother", SECRET_KEY), ("akidtest", SECRET_KEY), (SECRET_ID, "")],
    ids=["wrong-key", "wrong-id", "id-case", "empty-key"],
)
def test_wrong_credentials_are_4100(auth_broker, sign, method, secret_id, secret_key):
    good = auth_broker.account(SECRET_ID, SECRET_KEY)
    q_good = good.get_queue(unique_name("victim"))
    q_good.create(queue_meta())
    try:
        q_good.send_message(Message("private"))
        bad = signed_account(auth_broker.url, secret_id, secret_key, sign, method)
        q_bad = bad.get_queue(q_good.queue_name)
        fresh = bad.get_queue(unique_name("never"))
        calls = {
            "list_queue": lambda: bad.list_queue(),
            "create": lambda: fresh.create(queue_meta()),
            "get_attributes": lambda: q_bad.get_attributes(),
            "send_message": lambda: q_bad.send_message(Message("intruder")),
            "receive_message": lambda: q_bad.receive_message(polling_wait_seconds=0),
            "delete": lambda: q_bad.delete(),
        }
        got = {}
        for what, call in calls.items():
            try:
                call()
                got[what] = "accepted"
            except CMQServerException as exc:
                got[what] = exc.code
        assert got == {what: 4100 for what in calls}
        # and none of it happened
        assert server_error(good.get_queue(fresh.queue_name).get_attributes).code == 4440
        meta = q_good.get_attributes()
        assert (meta.activeMsgNum, meta.inactiveMsgNum) == (1, 0)
    finally:
        q_good.delete()


def test_auth_failures_carry_module_codes(auth_broker):
    import re

    def module(exc):
        return int(re.match(r"\((\d+)\)", exc.message).group(1))

    wrong_key = server_error(auth_broker.account(SECRET_ID, "wrong").list_queue)
    assert (wrong_key.code, module(wrong_key)) == (4100, 10030)
    wrong_id = server_error(auth_broker.account("AKIDnobody", SECRET_KEY).list_queue)
    assert (wrong_id.code, module(wrong_id)) == (4100, 10270)


def test_secrets_from_environment_variables(start_broker):
    b = start_broker(args=[], env={"BROKER_HOST": "127.0.0.1", "BROKER_PORT": "0",
                                   "BROKER_SECRET_ID": "AKIDenv", "BROKER_SECRET_KEY": "env-key"})
    assert b.port != 9876  # BROKER_PORT=0 picked a free port instead of the default
    bad = b.account("AKIDenv", "not-the-key")
    assert server_error(bad.list_queue).code == 4100
    assert server_error(b.account("AKIDnope", "env-key").list_queue).code == 4100
    exercise_every_queue_action(signed_account(b.url, "AKIDenv", "env-key"))
    exercise_every_queue_action(signed_account(b.url, "AKIDenv", "env-key", "sha256", "GET"))


def test_flags_beat_environment_variables(start_broker):
    b = start_broker(
        args=serve_args("--secret-key", "flag-key"),
        env={"BROKER_PORT": "1", "BROKER_SECRET_ID": "AKIDenv", "BROKER_SECRET_KEY": "env-key"},
    )
    assert server_error(b.account("AKIDenv", "env-key").list_queue).code == 4100
    total, _, _ = b.account("AKIDenv", "flag-key").list_queue()
    assert total == 0


def test_broker_without_secrets_accepts_any_signature(broker):
    for secret_id, key in [("AKIDa", "k1"), ("whatever", "k2"), ("", "")]:
        account = broker.account(secret_id, key)
        account.set_sign("sha256")
        account.list_queue(limit=1)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--secret-id", "AKIDonly"], {}),
        ([], {"BROKER_SECRET_KEY": "key-only"}),
        ([], {"BROKER_PORT": "not-a-port"}),
        (["--port", "70000"], {}),
        (["--log-level", "chatty"], {}),
    ],
    ids=["id-without-key", "env-key-without-id", "port-not-int", "port-too-big", "bad-log-level"],
)
def test_bad_configuration_exits_with_status_2_and_a_message(args, env):
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--host", "127.0.0.1", *args],
        cwd=REPO_ROOT, env=clean_env(env), capture_output=True, text=True, timeout=15,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "listening" not in proc.stdout
    assert proc.stderr.strip()


# -- health and shutdown ----------------------------------------------------------------------


def test_healthz_returns_200(broker, auth_broker):
    for b in (broker, auth_broker):  # no signature needed, even with auth on
        with urllib.request.urlopen(b.url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
            assert json.loads(resp.read()) == {"status": "ok"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_an_idle_broker_with_status_0(start_broker, sig):
    b = start_broker()
    b.account("AKIDx", "k").list_queue()  # leave an idle keep-alive connection open
    b.proc.send_signal(sig)
    started = time.monotonic()
    status = b.proc.wait(timeout=10)
    assert status == 0, b.stderr()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_broker_promptly_and_answers_a_parked_long_poll(start_broker, sig):
    b = start_broker()
    account = b.account("AKIDx", "k")
    q = account.get_queue(unique_name("shutdown"))
    q.create(queue_meta())
    receiver = Background(b.account("AKIDx", "k").get_queue(q.queue_name).receive_message,
                          polling_wait_seconds=25)
    time.sleep(0.5)  # let the receive reach the broker and park
    assert not receiver.done.is_set(), (receiver.result, receiver.error)

    b.proc.send_signal(sig)
    started = time.monotonic()
    try:
        status = b.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker still running 10 s after {sig.name}; stderr:\n{b.stderr()}")
    took = time.monotonic() - started
    assert status == 0, b.stderr()
    assert took < 5, f"{sig.name} took {took:.1f}s with a parked long poll (wait was 25 s)"

    assert receiver.wait(5), "the parked receive never returned"
    assert isinstance(receiver.error, CMQServerException), f"expected a 7000 reply, got {receiver.error!r}"
    assert receiver.error.code == 7000


def test_a_signed_request_outside_the_timestamp_window_is_refused_as_a_replay(auth_broker):
    """The SDK signs Timestamp along with everything else; an old signed request is refused."""
    client = auth_broker.account(SECRET_ID, SECRET_KEY).get_client()

    def reply(timestamp):  # the SDK's own request building and signing, with a chosen Timestamp
        return json.loads(client.request("ListQueue", {"Timestamp": timestamp}).data)

    assert reply(int(time.time()) - 60)["code"] == 0  # within 300 s: fine
    for skew in (-3600, 3600):
        got = reply(int(time.time()) + skew)
        assert got["code"] == 4100 and "replay" in got["message"] and SECRET_KEY not in got["message"]
    got = reply("yesterday")
    assert got["code"] == 4100 and "Unix seconds" in got["message"]
