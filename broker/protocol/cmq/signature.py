"""CMQ API 2.0 request signatures, verified the way the official SDK computes them.

String to sign: METHOD + host + path + "?" + the received pairs except `Signature`, sorted by key,
joined as `key=value` with `_` turned into `.` in keys, values as decoded. For POST the SDK leaves
out values that start with `@`. HmacSHA256 when `SignatureMethod` says so, otherwise HmacSHA1.

Two SDK quirks are tolerated: http.client omits a default port from the Host header although
the SDK signs it when the user wrote it, and for `bytes` bodies the SDK signs `str(bytes)`
(`b'...'`) while sending the plain text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from ...errors import SignatureExpired, SignatureMismatch, UnknownSecretId

_BODY_KEYS = ("msgbody",)


def _joined(pairs: list[tuple[str, str]], method: str, bytes_bodies: bool) -> str:
    items = []
    for key, value in pairs:
        if key == "Signature" or (method == "POST" and value[:1] == "@"):
            continue
        if bytes_bodies and key.lower().split(".", 1)[0] in _BODY_KEYS:
            value = str(value.encode("utf-8", "surrogatepass"))
        items.append((key, value))
    items.sort(key=lambda kv: kv[0])
    return "&".join(f"{k.replace('_', '.')}={v}" for k, v in items)


def sign(method: str, host: str, path: str, pairs: list[tuple[str, str]], secret_key: str) -> str:
    """The signature the SDK puts on `pairs` (HmacSHA256 when SignatureMethod says so, else
    HmacSHA1): for clients of our own, such as the command line."""
    digest = hashlib.sha256 if dict(pairs).get("SignatureMethod") == "HmacSHA256" else hashlib.sha1
    src = f"{method}{host}{path}?{_joined(pairs, method, False)}".encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.new(secret_key.encode(), src, digest).digest()).decode()


def _host_variants(host: str) -> list[str]:
    if host.endswith("]") or ":" not in host:  # no explicit port (IPv6 literals end in ']')
        return [host, host + ":80", host + ":443"]
    return [host]


def verify(
    method: str,
    host: str,
    path: str,
    pairs: list[tuple[str, str]],
    secret_id: str,
    secret_key: str,
    now: float | None = None,
    max_skew: float = 300,
) -> None:
    """Raise unless the request carries `secret_id` and a signature made with `secret_key`, and
    (when `now` is given) a `Timestamp` within `max_skew` seconds of it: a captured request
    cannot be replayed later than that."""
    given_id = given_sig = sign_method = ""
    timestamp = None
    has_bodies = False
    for key, value in pairs:
        if key == "SecretId":
            given_id = value
        elif key == "Signature":
            given_sig = value
        elif key == "SignatureMethod":
            sign_method = value
        elif key == "Timestamp":
            timestamp = value
        elif key.lower().split(".", 1)[0] in _BODY_KEYS:
            has_bodies = True
    if not hmac.compare_digest(given_id.encode(), secret_id.encode()):
        raise UnknownSecretId("SecretId is missing or unknown" if given_id else "SecretId is missing")
    if not given_sig:
        raise SignatureMismatch("Signature is missing")
    digest = hashlib.sha256 if sign_method == "HmacSHA256" else hashlib.sha1
    key = secret_key.encode()
    expected = given_sig.encode()
    for bytes_bodies in (False, True) if has_bodies else (False,):
        joined = _joined(pairs, method, bytes_bodies)
        for candidate_host in _host_variants(host):
            src = f"{method}{candidate_host}{path}?{joined}".encode("utf-8", "surrogatepass")
            sig = base64.b64encode(hmac.new(key, src, digest).digest())
            if hmac.compare_digest(sig, expected):
                if now is not None:
                    _check_timestamp(timestamp, now, max_skew)
                return
    raise SignatureMismatch(
        "Signature does not match: sign METHOD + Host + /v2/index.php + '?' + the sorted parameters "
        f"with {'HmacSHA256' if digest is hashlib.sha256 else 'HmacSHA1'}"
    )


def _check_timestamp(raw: str | None, now: float, max_skew: float) -> None:
    if raw is None:
        raise SignatureExpired("Timestamp is missing: signed requests carry the Unix time they were made")
    if not (raw.isdigit() and raw.isascii() and len(raw) <= 12):
        raise SignatureExpired(f"Timestamp must be Unix seconds, got {raw[:20]!r}")
    skew = abs(now - int(raw))
    if skew > max_skew:
        raise SignatureExpired(f"Timestamp {raw} is {skew:.0f} s from the broker's clock ({now:.0f}); the limit is "
                               f"{max_skew:.0f} s (--signature-max-skew): a request that old is refused as a replay")
