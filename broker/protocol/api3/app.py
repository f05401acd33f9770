"""Tencent Cloud API 3.0 at `POST /`: decode, authenticate, choose the service, render.

A request is a JSON object of parameters; the action, version and region travel in X-TC-*
headers and the request is signed with TC3-HMAC-SHA256 (signature.py). One port serves every
configured service (`Service`: Batch today). The service is the one the request names:

1. the credential scope of its Authorization (`Credential=ID/DATE/batch/tc3_request`), which
   every SDK and tccli fill in with the product's name;
2. else the first label of its Host, when it is a dotted name (`batch.tencentcloudapi.com`,
   `batch.ap-guangzhou.tencentcloudapi.com`);
3. else the one service that declares the action;
4. else the first service (with one service, as before: everything is Batch).

A name in 1 or 2 that is no configured service is passed over, not refused: the signature is
still checked against the scope as sent, and curl users and SDKs pointed at `127.0.0.1` name
no service at all.

Every reply is HTTP 200 with `Content-Type: application/json` exactly: the SDK raises a network
error on any other status, and with `; charset=utf-8` appended it silently returns an all-None
model instead of raising. The steps around decode and render (backlog, durability, stats, the
access log) are the pipeline's (broker/pipeline.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from aiohttp import web

from ...clock import Clock
from ...errors import (
    BrokerError,
    InternalError,
    MalformedRequest,
    MethodNotAllowed,
    MissingParameter,
    UnknownAction,
    UnsupportedOperation,
    UnsupportedVersion,
)
from ...pipeline import Action, Call, Pipeline
from .errors import ErrorTable
from .params import decode_body
from .service import Service
from .signature import verify

log = logging.getLogger("broker.api3")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def scope_service(authorization: str) -> str:
    """The service named by a TC3 Authorization's credential scope, or "" (no check of the rest:
    that is signature.py's, when secrets are set)."""
    start = authorization.find("Credential=")
    if start < 0:
        return ""
    parts = authorization[start + 11:].split(",", 1)[0].strip().split("/")
    return parts[2] if len(parts) == 4 and parts[3] == "tc3_request" else ""


def host_service(host: str) -> str:
    """The first label of a dotted host name (`batch.tencentcloudapi.com` → "batch"), or ""."""
    label, dot, _ = host.partition(":")[0].partition(".")
    return label.lower() if dot else ""


class Api3Protocol:
    """`POST /` for a list of API 3.0 services, bound to the broker's credentials."""

    def __init__(self, services: list[Service], pipeline: Pipeline, clock: Clock, secret_id: str | None,
                 secret_key: str | None, max_body: int, default_region: str, max_skew: float = 300):
        if not services:
            raise ValueError("Api3Protocol needs at least one service")
        self.services = list(services)
        self.by_name: dict[str, Service] = {}
        for service in self.services:
            if service.name in self.by_name:
                raise ValueError(f"API 3.0 service {service.name} is given twice")
            self.by_name[service.name] = service
        # action name → the one service that declares it (None: several do)
        self.owners: dict[str, Service | None] = {}
        for service in self.services:
            for action in service.actions:
                self.owners[action.name] = None if action.name in self.owners else service
        self.api = self.services[0].name  # the metrics label of a request before its service is known
        self.errors = ErrorTable(*(s.errors for s in self.services))
        self.pipeline = pipeline
        self.clock = clock
        self.max_skew = max_skew  # seconds X-TC-Timestamp may be off: older signed requests are replays
        self.max_body = max_body
        self.default_region = default_region
        self.secrets = (secret_id, secret_key) if secret_id and secret_key else None

        self.handle = pipeline.handler(self)  # the aiohttp handler for POST /

    def service_for(self, headers: Mapping[str, str], action: str) -> Service:
        """The service a request is for (see the module docstring)."""
        if len(self.services) == 1:
            return self.services[0]
        by_name = self.by_name
        service = by_name.get(scope_service(headers.get("Authorization", "")))
        if service is None:
            service = by_name.get(host_service(headers.get("Host", "")))
        if service is None:
            service = self.owners.get(action) or self.services[0]
        return service

    async def decode(self, call: Call) -> tuple[Action, tuple]:
        request = call.http
        headers = request.headers
        name = headers.get("X-TC-Action", "").strip()
        service = self.service_for(headers, name)
        call.api = service.name
        action = service.actions.get(name)
        if action is not None:
            call.action = action  # so stats name a declared action even when a check below fails
        if request.method != "POST":
            raise MethodNotAllowed(
                f"method {request.method} is not supported: API 3.0 requests are POST / with a JSON body"
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise MalformedRequest(f"request body is larger than the limit of {self.max_body} bytes") from None
        except ConnectionResetError:  # the client left, or was cut off for sending too slowly
            raise MalformedRequest("the connection closed before the request body arrived") from None
        if self.secrets:
            verify(method=request.method, path=request.rel_url.raw_path, query=request.rel_url.raw_query_string,
                   headers=headers, body=raw, secret_id=self.secrets[0], secret_key=self.secrets[1],
                   now=self.clock.time(), max_skew=self.max_skew)
        if not name:
            raise MissingParameter("X-TC-Action")
        version = headers.get("X-TC-Version", "").strip()
        if version not in service.versions:
            raise UnsupportedVersion(
                f"X-TC-Version {version!r} is not supported: {service.label} speaks {service.speaks()}" if version
                else f"X-TC-Version is missing: {service.label} speaks {service.speaks()}"
            )
        if action is None:
            raise UnknownAction(name)
        if action.handler is None:
            raise UnsupportedOperation(f"{name} is not offered by this {service.label} simulator")
        params = decode_body(raw)
        call.region = headers.get("X-TC-Region", "").strip() or self.default_region
        return action, (service.target, params, call)

    def render(self, fields: dict, call: Call) -> tuple[web.Response, str]:
        try:  # a copy carrying our RequestId: the handler may return a dict it keeps
            body = _dumps({"Response": {**fields, "RequestId": call.id}})
        except Exception:  # a handler returned what JSON cannot hold: a bug of ours
            log.exception("internal error in request %s (%s %s): the reply is not JSON", call.id, call.api,
                          call.action.name if call.action else "?")
            return self.render_error(InternalError(call.id), call)
        return web.Response(body=body.encode(), content_type="application/json"), "0"

    def render_error(self, error: BrokerError, call: Call) -> tuple[web.Response, str]:
        service = self.by_name.get(call.api)
        reply, code = self.errors.reply(error, call.id, service.fields if service is not None else {})
        return web.Response(body=_dumps(reply).encode(), content_type="application/json"), code
