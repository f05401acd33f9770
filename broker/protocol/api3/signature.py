"""TC3-HMAC-SHA256 request signatures (Tencent Cloud API 3.0), verified as the official SDK signs.

Authorization: `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
SignedHeaders=content-type;host, Signature=<hex64>`. The signature is
HMAC(kSign, StringToSign) where kSign chains HMACs of "TC3"+key over date, service and
"tc3_request", StringToSign = algorithm, X-TC-Timestamp, scope and sha256(CanonicalRequest), and
CanonicalRequest = method, path, query, the signed headers as `name:value` lines, their names,
and sha256(body) (or of the literal "UNSIGNED-PAYLOAD" when X-TC-Content-SHA256 says so).

Any service name is accepted in the scope, so one port can host several API 3.0 products; the
date must be the UTC date of the timestamp. Pure functions: no aiohttp, the caller passes time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from ...errors import (
    InvalidAuthorization,
    InvalidParameter,
    MissingParameter,
    SignatureExpired,
    SignatureMismatch,
    UnknownSecretId,
)

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW = 300  # seconds between X-TC-Timestamp and our clock, either way
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_REQUIRED_SIGNED = ("content-type", "host")  # API 3.0 demands at least these two be signed
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
_HEADER_NAME = re.compile(r"[a-z0-9-]+\Z")
_FORMAT = (
    f"{ALGORITHM} Credential=<SecretId>/<YYYY-MM-DD>/<service>/tc3_request, "
    "SignedHeaders=content-type;host, Signature=<hex64>"
)


@dataclass(frozen=True, slots=True)
class Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> Authorization:
    """Split an Authorization header into its parts; raise InvalidAuthorization if it is not TC3."""
    if not header or not header.strip():
        raise InvalidAuthorization(f"the Authorization header is missing; expected {_FORMAT}")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidAuthorization(
            f"Authorization uses {algorithm[:40]!r}; only {ALGORITHM} signatures are accepted ({_FORMAT})"
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if not eq or key in parts:
            raise InvalidAuthorization(f"Authorization is garbled near {item.strip()[:40]!r}; expected {_FORMAT}")
        parts[key] = value.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not parts.get(k)]
    if missing:
        raise InvalidAuthorization(f"Authorization lacks {', '.join(missing)}; expected {_FORMAT}")
    scope = parts["Credential"].split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or not (scope[0] and scope[2] and _DATE.match(scope[1])):
        raise InvalidAuthorization(
            f"Authorization Credential {parts['Credential'][:80]!r} is not "
            "<SecretId>/<YYYY-MM-DD>/<service>/tc3_request"
        )
    signed = tuple(parts["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.match(h) for h in signed) or any(h not in signed for h in _REQUIRED_SIGNED):
        raise InvalidAuthorization(
            f"Authorization SignedHeaders {parts['SignedHeaders'][:80]!r} must be lower-case names "
            "separated by ';' and include content-type and host"
        )
    if not _HEX64.match(parts["Signature"]):
        raise InvalidAuthorization("Authorization Signature must be 64 hex digits")
    return Authorization(scope[0], scope[1], scope[2], signed, parts["Signature"].lower())


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")


def canonical_request(
    method: str, path: str, query: str, header_lines: list[tuple[str, str]], payload_hash: str
) -> str:
    headers = "".join(f"{name}:{value}\n" for name, value in header_lines)
    names = ";".join(name for name, _ in header_lines)
    return f"{method}\n{path}\n{query}\n{headers}\n{names}\n{payload_hash}"


def string_to_sign(timestamp: str, date: str, service: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def sign(secret_key: str, date: str, service: str, to_sign: str) -> str:
    return hmac.new(signing_key(secret_key, date, service), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    if headers.get("X-TC-Content-SHA256", "").strip() == UNSIGNED_PAYLOAD:
        body = UNSIGNED_PAYLOAD.encode()
    return hashlib.sha256(body).hexdigest()


def request_timestamp(headers: Mapping[str, str]) -> int:
    raw = headers.get("X-TC-Timestamp")
    if raw is None or not raw.strip():
        raise MissingParameter("X-TC-Timestamp")
    try:
        return int(raw.strip())
    except ValueError:
        raise InvalidParameter("X-TC-Timestamp", f"X-TC-Timestamp must be Unix seconds, got {raw[:40]!r}") from None


def verify(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_id: str,
    secret_key: str,
    now: float,
    max_skew: float = MAX_SKEW,
) -> None:
    """Raise unless the request is signed by `secret_id`/`secret_key` within `max_skew` of `now`.

    `headers` must look names up case-insensitively (aiohttp's CIMultiDictProxy does).
    """
    auth = parse_authorization(headers.get("Authorization"))
    timestamp = request_timestamp(headers)
    try:
        utc_date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        raise SignatureExpired(f"X-TC-Timestamp {timestamp} is not a usable time") from None
    if abs(now - timestamp) > max_skew:
        raise SignatureExpired(
            f"X-TC-Timestamp {timestamp} is {abs(now - timestamp):.0f} s from the server's clock ({now:.0f}); "
            f"the limit is {max_skew:.0f} s"
        )
    if auth.date != utc_date:
        raise InvalidAuthorization(
            f"the Credential date {auth.date} is not the UTC date of X-TC-Timestamp ({utc_date})"
        )
    if not hmac.compare_digest(auth.secret_id.encode(), secret_id.encode()):
        raise UnknownSecretId(f"SecretId {auth.secret_id[:64]!r} is not known to this broker")
    lines = []
    for name in auth.signed_headers:
        value = headers.get(name)
        if value is None:
            raise InvalidAuthorization(f"signed header {name!r} is not in the request")
        lines.append((name, value.strip()))
    digest = payload_hash(headers, body)
    given = auth.signature.encode()
    # The SDK signs header values as sent; Tencent's docs lower-case them. Accept either.
    variants = [lines]
    lowered = [(n, v.lower()) for n, v in lines]
    if lowered != lines:
        variants.append(lowered)
    for header_lines in variants:
        to_sign = string_to_sign(headers["X-TC-Timestamp"].strip(), auth.date, auth.service,
                                 canonical_request(method, path, query, header_lines, digest))
        if hmac.compare_digest(sign(secret_key, auth.date, auth.service, to_sign).encode(), given):
            return
    raise SignatureMismatch(
        "the signature does not match: sign the TC3-HMAC-SHA256 canonical request "
        f"({method}, {path}, signed headers {';'.join(auth.signed_headers)}, sha256 of the body as sent) "
        "with the broker's SecretKey"
    )
