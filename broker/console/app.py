"""The console's routes: pages, the JSON they poll, the changes they post, and logging in.

Every route goes through one of three guards, which is where the rules live:

- pages: a session is needed (with secrets: else the login page; without: one is made);
- JSON reads: the session too when there are secrets (401 otherwise), so the browser can log in;
- changes (POST): the session and its CSRF token, then the action, then, with --data-dir, the
  wait for the disk (as the API endpoints do) before the reply.

Routes are added to the broker's own app under /console only: the API routes are not wrapped,
so they pay nothing for the console.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ..batchsim import BatchSim
from ..engine import Broker
from ..errors import (
    BrokerError,
    QueueNotFound,
    ResourceNotFound,
    StorageUnavailable,
    SubscriptionNotFound,
    TopicNotFound,
)
from ..protocol.batch.errors import code_for as api3_code
from ..protocol.cmq.errors import codes_for as cmq_codes
from ..protocol.cmq.messages import MAX_PEEK
from . import actions, pages, views
from .auth import COOKIE, COOKIE_PATH, Session, Sessions, csrf_ok
from .forms import Form
from .timeline import Timeline

log = logging.getLogger("broker.console")

SECURITY_HEADERS = {
    # Everything is served from here: no inline script, nothing from elsewhere, no framing.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {"console.js": "text/javascript", "console.css": "text/css", "favicon.svg": "image/svg+xml"}


class MessageGone(BrokerError):
    """The message a page asks to show has left the queue since the page listed it."""


NOT_FOUND = (QueueNotFound, TopicNotFound, SubscriptionNotFound, ResourceNotFound, MessageGone)
PEEK_DEFAULT = 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return _secure(web.json_response({"error": {"code": code, "message": message}}, status=status))


def _redirect(location: str) -> web.Response:
    return _secure(web.Response(status=303, headers={"Location": location}))


def _safe_next(path: str) -> str:
    """Only a console path may follow a login: never another site."""
    return path if path.startswith("/console") and not path.startswith("//") and "\\" not in path else "/console/"


class Console:
    def __init__(self, broker: Broker, sim: BatchSim, secret_id: str | None, secret_key: str | None,
                 region: str, durability=None):
        self.broker = broker
        self.sim = sim
        self.region = region
        self.durability = durability
        self.sessions = Sessions(secret_id, secret_key)
        self.timeline = Timeline(sim)
        self.timeline.attach()
        self._static = {name: resources.files(__package__).joinpath("static", name).read_bytes() for name in STATIC}

    # -- routing ------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        add_page = lambda path, handler: router.add_get(path, self._page(handler))  # noqa: E731
        add_page("/console", self.overview_page)
        add_page("/console/", self.overview_page)
        add_page("/console/queues/{name}", self.queue_page)
        add_page("/console/topics/{name}", self.topic_page)
        add_page("/console/jobs/{id}", self.job_page)
        add_page("/console/envs/{id}", self.env_page)
        add_page("/console/batch/new", self.batch_new_page)
        router.add_get("/console/static/{file}", self.static)
        router.add_get("/console/login", self.login_page)
        router.add_post("/console/login", self.login)
        router.add_post("/console/logout", self.logout)
        read = lambda path, handler: router.add_get("/console/api" + path, self._read(handler))  # noqa: E731
        read("/overview", self.overview_json)
        read("/queues/{name}", self.queue_json)
        read("/queues/{name}/messages/{id}", self.message_json)
        read("/topics/{name}", self.topic_json)
        read("/jobs/{id}", self.job_json)
        read("/envs/{id}", self.env_json)
        read("/batch/options", self.options_json)
        for path, (action, vocabulary) in actions.ROUTES.items():
            router.add_post("/console/api" + path, self._change(action, vocabulary))

    # -- guards -------------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(COOKIE, session.token, path=COOKIE_PATH, httponly=True, samesite="Strict")

    def _page(self, handler: Callable[[web.Request, Session], Awaitable[web.Response]]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            fresh = session is None
            if fresh:
                if self.sessions.login_required:
                    target = "/console/login?next=" + quote(request.path_qs, safe="")
                    return _redirect(target)
                session = self.sessions.create(authenticated=False)
            response = await handler(request, session)
            if fresh:
                self._set_cookie(response, session)
            return _secure(response)

        return guarded

    def _read(self, handler: Callable[[web.Request], dict]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.sessions.login_required and self._session(request) is None:
                return _error(401, "Unauthorized", "log in first")
            try:
                return _secure(web.json_response(handler(request)))
            except BrokerError as exc:
                status = 404 if isinstance(exc, NOT_FOUND) else 400
                return _error(status, type(exc).__name__, exc.message)

        return guarded

    def _change(self, action: actions.Action, vocabulary: str) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                if self.sessions.login_required:
                    return _error(401, "Unauthorized", "log in first")
                return _error(403, "NoSession", "the console session is missing or expired: reload the page")
            data = await request.post()
            if not csrf_ok(session, request.headers.get("X-CSRF-Token") or data.get("csrf")):
                return _error(403, "BadCsrfToken", "the form's CSRF token is missing or wrong: reload the page")
            return _secure(await self._apply(action, vocabulary, Form.of(data), dict(request.match_info)))

        return guarded

    async def _apply(self, action: actions.Action, vocabulary: str, form: Form, args: dict) -> web.Response:
        durability = self.durability
        mark = durability.mark() if durability is not None else 0
        try:
            if durability is not None and durability.backlogged():
                raise StorageUnavailable("the data directory has not accepted writes for a while; "
                                         "changes are refused until it does")
            reply = await action(self, form, args)
            if durability is not None and durability.changed_since(mark):
                await durability.commit()  # as the API does: the reply means the change is on disk
        except BrokerError as exc:
            if vocabulary == "cmq":
                code, module = cmq_codes(exc)
                code_text = f"{code} ({module})"
            else:
                code_text = api3_code(exc)
            status = 404 if isinstance(exc, NOT_FOUND) else 503 if isinstance(exc, StorageUnavailable) else 400
            return web.json_response({"error": {"code": code_text, "message": exc.message}}, status=status)
        except Exception:  # a bug of ours: logged, and a plain answer to the browser
            log.exception("console action %s failed", action.__name__)
            return web.json_response({"error": {"code": "InternalError",
                                                "message": "internal error; the broker log has the details"}},
                                     status=500)
        return web.json_response({"ok": True, **reply})

    # -- login ----------------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        next_path = _safe_next(request.query.get("next", "/console/"))
        if not self.sessions.login_required or self._session(request) is not None:
            return _redirect(next_path)
        return _secure(web.Response(text=pages.login(next_path), content_type="text/html"))

    async def login(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        next_path = _safe_next(str(data.get("next") or "/console/"))
        secret_id, secret_key = str(data.get("secret_id") or ""), str(data.get("secret_key") or "")
        if not self.sessions.login_required:
            return _redirect(next_path)
        if not self.sessions.check_secrets(secret_id, secret_key):
            log.warning("console login refused from %s", request.remote)
            text = pages.login(next_path, "Wrong SecretId or SecretKey.")
            return _secure(web.Response(text=text, content_type="text/html", status=401))
        self.sessions.end(request.cookies.get(COOKIE))
        response = _redirect(next_path)
        self._set_cookie(response, self.sessions.create(authenticated=True))
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        data = await request.post()
        if session is None or not csrf_ok(session, data.get("csrf")):
            return _error(403, "BadCsrfToken", "the form's CSRF token is missing or wrong: reload the page")
        self.sessions.end(session.token)
        response = _redirect("/console/login" if self.sessions.login_required else "/console/")
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    # -- pages ----------------------------------------------------------------------------------

    def _html(self, session: Session, kind: str, title: str, subject: str = "", **values) -> web.Response:
        text = pages.page(kind, title, session.csrf, self.sessions.login_required, subject, **values)
        return web.Response(text=text, content_type="text/html")

    def _missing(self, session: Session, kind: str, subject: str) -> web.Response:
        text = pages.not_found(kind, subject, session.csrf, self.sessions.login_required)
        return web.Response(text=text, content_type="text/html", status=404)

    async def overview_page(self, request: web.Request, session: Session) -> web.Response:
        return self._html(session, "overview", "Overview")

    async def queue_page(self, request: web.Request, session: Session) -> web.Response:
        try:
            name = self.broker.get_queue(request.match_info["name"]).name
        except QueueNotFound:
            return self._missing(session, "queue", request.match_info["name"])
        return self._html(session, "queue", f"Queue {name}", name, api="/console/api/queues/" + name)

    async def topic_page(self, request: web.Request, session: Session) -> web.Response:
        try:
            name = self.broker.get_topic(request.match_info["name"]).name
        except TopicNotFound:
            return self._missing(session, "topic", request.match_info["name"])
        return self._html(session, "topic", f"Topic {name}", name, api="/console/api/topics/" + name)

    async def job_page(self, request: web.Request, session: Session) -> web.Response:
        job = self.sim.jobs.get(request.match_info["id"])
        if job is None:
            return self._missing(session, "job", request.match_info["id"])
        return self._html(session, "job", f"Job {job.job_id}", job.job_id, api="/console/api/jobs/" + job.job_id)

    async def env_page(self, request: web.Request, session: Session) -> web.Response:
        env = self.sim.envs.get(request.match_info["id"])
        if env is None:
            return self._missing(session, "compute environment", request.match_info["id"])
        return self._html(session, "env", f"Environment {env.env_id}", env.env_id,
                          api="/console/api/envs/" + env.env_id)

    async def batch_new_page(self, request: web.Request, session: Session) -> web.Response:
        return self._html(session, "batch_new", "New Batch job or environment")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        response = web.Response(body=self._static[name], content_type=STATIC[name])
        _secure(response)
        response.headers["Cache-Control"] = "no-cache"  # revalidate: a new broker may serve a new console
        return response

    # -- JSON reads -------------------------------------------------------------------------------

    def overview_json(self, request: web.Request) -> dict:
        return views.overview(self.broker, self.sim)

    def queue_json(self, request: web.Request) -> dict:
        queue = self.broker.get_queue(request.match_info["name"])
        raw = request.query.get("peek", str(PEEK_DEFAULT))
        count = min(int(raw), MAX_PEEK) if raw.isdigit() else PEEK_DEFAULT
        offset = views.wall_minus_mono(self.broker)
        detail = views.queue_detail(queue)
        detail["messages"] = [views.message_row(m, offset) for m in queue.peek(count)] if count else None
        return detail

    def message_json(self, request: web.Request) -> dict:
        queue = self.broker.get_queue(request.match_info["name"])
        wanted = request.match_info["id"]
        offset = views.wall_minus_mono(self.broker)
        # Peek is oldest first and a message only ever moves up: one seen in a peek list is
        # still among the first MAX_PEEK, unless it has left the queue.
        for msg in queue.peek(MAX_PEEK):
            if str(msg.id) == wanted:
                return views.message_detail(msg, offset)
        raise MessageGone(f"message {wanted} is no longer among the first {MAX_PEEK} of queue {queue.name} "
                          "(deleted, expired, or received and deleted)")

    def topic_json(self, request: web.Request) -> dict:
        return views.topic_detail(self.broker.get_topic(request.match_info["name"]))

    def job_json(self, request: web.Request) -> dict:
        job = self.sim.get_job(request.match_info["id"])
        return views.job_detail(job, self.timeline)

    def env_json(self, request: web.Request) -> dict:
        return views.env_detail(self.sim.get_env(request.match_info["id"]), self.timeline)

    def options_json(self, request: web.Request) -> dict:
        return views.batch_options(self.broker, self.sim, self.region)
