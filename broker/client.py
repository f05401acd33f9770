"""A small synchronous CMQ API 2.0 client, for the command line.

The official SDK is only a test dependency, and the CLI should start fast, so this uses nothing
but the standard library and the broker's signature module (no aiohttp, no engine imports).
Requests are signed exactly as the SDK signs them (`protocol/cmq/signature.py`, the same code
that verifies), so the client works against a broker started with `--secret-id`/`--secret-key`.
"""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from .protocol.cmq import signature as cmq_signature

PATH = "/v2/index.php"
TIMEOUT = 10.0  # seconds for one reply, on top of any long-poll wait the request asks for


class ClientError(Exception):
    """Anything the CLI reports as one line: the message is meant for a person."""


class ConnectionFailed(ClientError):
    pass


class CmqError(ClientError):
    """The broker answered with a non-zero `code`."""

    def __init__(self, code: int, message: str, reply: dict | None = None):
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.reply = reply or {}


def sign(secret_key: str, host: str, params: dict[str, str], method: str = "POST") -> str:
    """The SDK's signature of `params` (HmacSHA256 when SignatureMethod says so, else HmacSHA1)."""
    return cmq_signature.sign(method, host, PATH, list(params.items()), secret_key)


def _flatten(params: dict) -> dict[str, str]:
    """Lists become CMQ's `name.1`, `name.2`, ...; None values are left out."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value, 1):
                out[f"{key}.{i}"] = str(item)
        else:
            out[key] = str(value)
    return out


class Client:
    def __init__(self, url: str, secret_id: str = "", secret_key: str = ""):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"the broker URL must look like http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self._endpoint = f"{parts.scheme}://{parts.netloc}{PATH}"
        self._host = parts.netloc  # what the SDK signs: host[:port] as written
        self._secret_id = secret_id or ""
        self._secret_key = secret_key or ""
        # Like the SDK (http.client), ignore HTTP_PROXY: the broker is usually local.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, action: str, wait: float = 0, **params) -> dict:
        """Send `action` with `params`; the reply as a dict. `wait` is how long the broker may
        hold the request (a long poll), added to the reply timeout. Raises CmqError on a
        non-zero code and ClientError when there is no usable reply."""
        fields = _flatten(params)
        fields.update(
            Action=action,
            Timestamp=str(int(time.time())),
            Nonce=str(random.randint(1, 2**31 - 1)),
            SecretId=self._secret_id,
            SignatureMethod="HmacSHA256",
        )
        fields["Signature"] = sign(self._secret_key, self._host, fields)
        try:
            body = urllib.parse.urlencode(fields).encode("ascii")
        except UnicodeEncodeError:
            raise ClientError("a parameter is not valid text (check the encoding of your input)") from None
        request = urllib.request.Request(
            self._endpoint, data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with self._opener.open(request, timeout=TIMEOUT + wait) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(f"{self.url} answered HTTP {exc.code} {exc.reason}: is it a cmq-broker?") from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except OSError as exc:  # a timeout, a reset or a closed connection while reading
            raise self._unreachable(exc) from None
        try:
            reply = json.loads(raw)
            code = int(reply["code"])
        except (ValueError, TypeError, KeyError):
            raise ClientError(f"{self.url} sent a reply that is not CMQ JSON: is it a cmq-broker?") from None
        if code != 0:
            raise CmqError(code, str(reply.get("message", "")), reply)
        return reply

    def _unreachable(self, reason) -> ClientError:
        if isinstance(reason, ConnectionRefusedError):
            return ConnectionFailed(f"no broker at {self.url}: is it running?")
        if isinstance(reason, TimeoutError):
            return ConnectionFailed(f"the broker at {self.url} did not answer in time")
        if isinstance(reason, socket.gaierror):
            return ConnectionFailed(f"cannot resolve the broker's host in {self.url}")
        return ConnectionFailed(f"cannot reach the broker at {self.url}: {reason}")
