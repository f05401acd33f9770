"""A push endpoint that misbehaves on purpose, at the socket level.

Every path of one listening socket has a mode, switchable at any time:

- ``ok``: a well-formed `200` with an empty body (keep-alive, as a normal server answers);
- ``reset``: read the whole request, then close with SO_LINGER 0, so the broker gets a TCP RST
  instead of an answer;
- ``garbage``: read the request, answer bytes that are not HTTP at all, close;
- ``bad_status``: read the request, answer an HTTP status line whose code is not a number;
- ``endless``: answer `200 OK` with a chunked body that never ends (a chunk every few ms until
  the broker hangs up);
- ``hang``: read the request and never answer (until the broker gives up and closes).

Requests are recorded per path with the `x-cmq-message-id` they carried and the outcome, so a
test can count attempts and successes per message. Blocking sockets and one thread per
connection: the point is to behave like a badly broken peer, not to be fast.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

MODES = ("ok", "reset", "garbage", "bad_status", "endless", "hang")
GARBAGE = b"\x00\xff\xfe SSH-2.0-not-http \x1b[31m\r\n\r\n" * 8
BAD_STATUS = b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"  # letters O, not zeros
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Attempt:
    path: str
    msg_id: str
    mode: str  # the mode that answered it
    at: float  # time.monotonic() when the request had been read


class FaultEndpoint:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._modes: dict[str, str] = {}
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fault-endpoint", daemon=True)
        self._thread.start()

    # -- control --------------------------------------------------------------------------

    def url(self, path: str, mode: str) -> str:
        self.set(path, mode)
        return f"http://127.0.0.1:{self.port}/{path}"

    def set(self, path: str, mode: str) -> None:
        assert mode in MODES, mode
        with self._lock:
            self._modes["/" + path] = mode

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def of(self, path: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.path == "/" + path]

    def wait(self, predicate, timeout: float) -> bool:
        """Wait until `predicate(self)` holds (re-checked on every request)."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self), timeout)

    # -- serving --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = b""
        try:
            while not self._stop.is_set():
                request, buf = self._read_request(conn, buf)
                if request is None:
                    return
                path, msg_id = request
                with self._lock:
                    mode = self._modes.get(path, "ok")
                    self.attempts.append(Attempt(path, msg_id, mode, time.monotonic()))
                    self._lock.notify_all()
                if mode == "ok":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    continue  # keep-alive: the next request may come on this connection
                if mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif mode == "garbage":
                    conn.sendall(GARBAGE)
                elif mode == "bad_status":
                    conn.sendall(BAD_STATUS)
                elif mode == "endless":
                    self._endless(conn)
                elif mode == "hang":
                    self._until_peer_closes(conn)
                return
        except OSError:
            return  # the broker hung up on us: that is the point of most modes
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket, buf: bytes) -> tuple[tuple[str, str] | None, bytes]:
        while b"\r\n\r\n" not in buf:
            chunk = self._recv(conn)
            if not chunk or len(buf) > MAX_HEAD:
                return None, b""
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "?"
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            rest += chunk
        return (path.split("?")[0], headers.get("x-cmq-message-id", "")), rest[length:]

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _endless(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"400\r\n" + b"z" * 0x400 + b"\r\n"
        while not self._stop.wait(0.005):
            conn.sendall(chunk)  # raises once the broker has closed the connection

    def _until_peer_closes(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                if conn.recv(4096) == b"":
                    return
            except TimeoutError:
                continue
