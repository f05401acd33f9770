"""The console's changes as a protocol of the request pipeline: decode, render, render_error.

Every POST under /console/api is one declared change (actions.py) and goes through the one
request pipeline (broker/pipeline.py) like an API request: decode here (which change, the
session and its CSRF token, the handler's typed arguments from the form and the path), then
the pipeline's steps (refuse while the disk is backlogged, run, wait until the change is on
disk, the access log, and the count under api "console" by result code: 0 for success, as the
APIs count theirs, else the error's neutral code), then render here: HTTP 200 and
`{"ok": true, ...}`, or the status and body of the console's one error table (errors.py).
"""

from __future__ import annotations

from typing import Iterable

from aiohttp import web

from ..errors import BrokerError, MalformedRequest
from ..pipeline import Action, Call, Pipeline
from .actions import Backend, Route
from .auth import COOKIE, Sessions, csrf_ok
from .errors import BadCsrfToken, LoginRequired, NoSession, code_of, error_body, status_of
from .forms import Form

API_PREFIX = "/console/api"

SECURITY_HEADERS = {
    # Everything is served from here: no inline script, nothing from elsewhere, no framing.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def error_response(exc: BrokerError) -> web.Response:
    """The console's answer to an error, for changes and reads alike."""
    return secure(web.json_response(error_body(exc), status=status_of(exc)))


LOG_IN_FIRST = "log in first"


class ConsoleProtocol:
    """POST /console/api/...: the console's changes, bound to what they change and its sessions."""

    api = "console"

    def __init__(self, routes: Iterable[Route], backend: Backend, sessions: Sessions, pipeline: Pipeline):
        # The route's pattern as aiohttp keeps it ("/console/api/queues/{name}/send") → the change.
        self.by_pattern = {API_PREFIX + route.path: route for route in routes}
        self.backend = backend
        self.sessions = sessions
        self.handle = pipeline.handler(self)  # the aiohttp handler of every change

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for pattern in self.by_pattern:
            router.add_post(pattern, self.handle)

    async def decode(self, call: Call) -> tuple[Action, tuple]:
        request = call.http
        route = self.by_pattern[request.match_info.route.resource.canonical]
        call.action = route.action  # so stats name the change even when the checks below refuse it
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            if self.sessions.login_required:
                raise LoginRequired(LOG_IN_FIRST)
            raise NoSession("the console session is missing or expired: reload the page")
        try:
            data = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise MalformedRequest("the form is larger than the broker's request size limit") from None
        except ConnectionResetError:
            raise MalformedRequest("the connection closed before the form arrived") from None
        offered = request.headers.get("X-CSRF-Token") or data.get("csrf")
        if not isinstance(offered, str) or not csrf_ok(session, offered):
            raise BadCsrfToken("the form's CSRF token is missing or wrong: reload the page")
        return route.action, (self.backend, *route.args(Form.of(data), request.match_info))

    def render(self, reply: dict, call: Call) -> tuple[web.Response, int]:
        return secure(web.json_response({"ok": True, **reply})), 0

    def render_error(self, error: BrokerError, call: Call) -> tuple[web.Response, str]:
        return error_response(error), code_of(error)
