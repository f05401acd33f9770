"""Limits: every resource a client can claim is bounded by a documented setting, and going past it
gives a clear error while everyone else keeps being served.

Each test starts `python -m broker serve` with a small limit and pushes past it over real sockets.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from cmq.queue import Message

from helpers import Background, queue_meta, run_broker, server_error, unique_name


def post(url: str, body: bytes, path: str = "/v2/index.php", headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=body, headers=headers or {}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_connections_past_the_limit_get_503_and_the_others_keep_working():
    with run_broker(["--port", "0", "--max-connections", "4"]) as b:
        held = [connect(b.port) for _ in range(4)]
        time.sleep(0.2)
        extra = connect(b.port)
        reply = read_all(extra, 5)
        assert reply.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections" in reply and b"at most 4" in reply
        # a held connection still gets served, and a freed slot is usable again
        held[0].sendall(b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\nAction=ListQueue")
        held[0].settimeout(5)
        assert b'"code":0' in held[0].recv(4096)
        for s in held:
            s.close()
        time.sleep(0.3)
        assert post(b.url, b"Action=ListQueue")[1]["code"] == 0


@pytest.mark.parametrize("trickle", [
    b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\n",  # headers never finish
    b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nAction=Li",  # nor the body
])
def test_a_client_trickling_a_request_is_cut_off_and_starves_no_one(trickle):
    with run_broker(["--port", "0", "--request-timeout", "1.5"]) as b:
        slow = connect(b.port)
        slow.sendall(trickle)
        t0 = time.monotonic()
        stop = time.monotonic() + 10
        while time.monotonic() < stop:  # one more byte every 0.3 s: it never stops "sending"
            try:
                slow.sendall(b"X")
            except OSError:
                break
            assert post(b.url, b"Action=ListQueue")[1]["code"] == 0  # others are served meanwhile
            slow.settimeout(0.3)
            try:
                if slow.recv(100) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        took = time.monotonic() - t0
        assert 1.4 < took < 5, f"the slow connection was closed after {took:.1f} s"
        assert "Traceback" not in b.stderr()


def test_parked_long_polls_past_the_limit_are_refused_clearly():
    with run_broker(["--port", "0", "--max-long-polls", "3"]) as b:
        name = unique_name()
        q = b.account().get_queue(name)  # the SDK's connection is not shared across threads:
        q.create(queue_meta())           # one account per concurrent caller

        def receiver():
            return b.account().get_queue(name).receive_message(20)

        parked = [Background(receiver) for _ in range(3)]
        time.sleep(0.5)  # the three are parked by now
        exc = server_error(q.receive_message, 20)
        assert exc is not None and exc.code == 6000 and "--max-long-polls" in exc.message
        assert server_error(q.receive_message, 0).code == 7000  # no wait: never refused
        for i in range(3):
            q.send_message(Message(f"m{i}"))
        for bg in parked:
            assert bg.wait(10)
        assert sorted(bg.result.msgBody for bg in parked) == ["m0", "m1", "m2"]
        later = Background(receiver)  # the slots are free again
        time.sleep(0.3)
        q.send_message(Message("late"))
        assert later.wait(10) and later.result.msgBody == "late"


def test_too_many_parameters_and_too_large_bodies_are_protocol_errors():
    with run_broker(["--port", "0", "--max-request-bytes", "8192"]) as b:
        status, reply = post(b.url, b"&".join(b"k%d=" % i for i in range(1001)) + b"&Action=ListQueue")
        assert status == 200 and reply["code"] == 4000 and "too many parameters" in reply["message"]
        status, reply = post(b.url, b"Action=ListQueue&pad=" + b"x" * 9000)
        assert status == 200 and reply["code"] == 4000 and "8192" in reply["message"]
        body = json.dumps({"x": "y" * 9000}).encode()
        status, reply = post(b.url, body, path="/", headers={"Content-Type": "application/json",
                                                             "X-TC-Action": "DescribeJobs", "X-TC-Version": "2017-03-12"})
        assert status == 200 and reply["Response"]["Error"]["Code"] in ("InvalidParameter", "RequestSizeLimitExceeded")
        assert "8192" in reply["Response"]["Error"]["Message"]
        assert post(b.url, b"Action=ListQueue")[1]["code"] == 0


def test_oversized_headers_are_refused_without_harm():
    with run_broker(["--port", "0"]) as b:
        s = connect(b.port)
        s.sendall(b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        reply = read_all(s, 5)
        assert reply.split(b" ", 2)[1] == b"400" and b"Got more than 8190 bytes" in reply  # aiohttp: field over 8190 bytes
        assert post(b.url, b"Action=ListQueue")[1]["code"] == 0
        assert "Traceback" not in b.stderr()


def test_a_long_poll_whose_client_left_takes_no_message_and_frees_its_slot():
    with run_broker(["--port", "0", "--max-long-polls", "1"]) as b:
        name = unique_name()
        q = b.account().get_queue(name)
        q.create(queue_meta(visibilityTimeout=600))
        body = f"Action=ReceiveMessage&queueName={name}&pollingWaitSeconds=30".encode()
        gone = connect(b.port)
        gone.sendall(b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.5)  # parked now, holding the only slot
        gone.close()
        time.sleep(0.5)
        q.send_message(Message("for someone still here"))
        got = b.account().get_queue(name).receive_message(5)  # would be refused if the slot were held
        assert got.msgBody == "for someone still here" and got.dequeueCount == 1


def test_more_than_128_headers_are_refused_and_120_are_served():
    with run_broker(["--port", "0"]) as b:
        def request(n_headers: int) -> bytes:
            s = connect(b.port)
            extra = b"".join(b"X-H%d: v\r\n" % i for i in range(n_headers))
            s.sendall(b"POST /v2/index.php HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n" + extra
                      + b"Connection: close\r\n\r\nAction=ListQueue")
            return read_all(s, 5)

        assert b'"code":0' in request(120)
        refused = request(130)
        assert refused.split(b" ", 2)[1] == b"400" and b"Too many headers" in refused
        assert post(b.url, b"Action=ListQueue")[1]["code"] == 0
        assert "Traceback" not in b.stderr()
