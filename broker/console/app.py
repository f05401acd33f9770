"""The console's routes: pages, the JSON they poll, the changes they post, and logging in.

Every route goes through one of three guards, which is where the rules live:

- pages: a session is needed (with secrets: else the login page; without: one is made);
- JSON reads: the session too when there are secrets (401 otherwise), so the browser can log in;
- changes (POST under /console/api): the console protocol on the request pipeline
  (protocol.py), which checks the session and its CSRF token before anything is changed.

Reads ask the store (queues, topics, subscriptions, peeked messages) and the Batch simulator
(jobs, environments) and answer what views.py makes of them; their errors use the same table as
the changes (errors.py). Routes are added to the broker's own app under /console only: the API
routes are not wrapped, so they pay nothing for the console.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ..batchsim import BatchSim
from ..config import Config
from ..engine.limits import MAX_PEEK
from ..errors import BrokerError, QueueNotFound, TopicNotFound
from ..pipeline import Pipeline
from ..store import Store
from . import actions, pages, views
from .auth import COOKIE, COOKIE_PATH, Session, Sessions, csrf_ok
from .errors import BadCsrfToken, LoginRequired, MessageGone
from .protocol import LOG_IN_FIRST, ConsoleProtocol, error_response, secure
from .timeline import Timeline

log = logging.getLogger("broker.console")

STATIC = {"console.js": "text/javascript", "console.css": "text/css", "favicon.svg": "image/svg+xml"}
PEEK_DEFAULT = 20
SUBSCRIPTIONS_PAGE = 100  # subscriptions read per store call (a topic has at most 100 in the engine)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _redirect(location: str) -> web.Response:
    return secure(web.Response(status=303, headers={"Location": location}))


def _safe_next(path: str) -> str:
    """Only a console path may follow a login: never another site."""
    return path if path.startswith("/console") and not path.startswith("//") and "\\" not in path else "/console/"


async def everything(list_page: Callable[[int, int], Awaitable[tuple[int, list]]], page_size: int) -> list:
    """Every item of a store listing, `page_size` per call: `list_page(offset, limit)`."""
    items: list = []
    while True:
        total, page = await list_page(len(items), page_size)
        items += page
        if not page or len(items) >= total:
            return items


class Console:
    def __init__(self, store: Store, sim: BatchSim, pipeline: Pipeline, config: Config):
        self.store = store
        self.sim = sim
        self.region = config.region
        # A listing of every queue or topic takes one store call: the broker holds at most these.
        self.queues_per_call = config.max_queues
        self.topics_per_call = config.max_topics
        self.sessions = Sessions(config.secret_id, config.secret_key)
        self.changes = ConsoleProtocol(actions.ROUTES, actions.Backend(store, sim, config.region), self.sessions,
                                       pipeline)
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
        self.changes.add_routes(router)

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
            return secure(response)

        return guarded

    def _read(self, handler: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                if self.sessions.login_required and self._session(request) is None:
                    raise LoginRequired(LOG_IN_FIRST)
                return secure(web.json_response(await handler(request)))
            except BrokerError as exc:
                return error_response(exc)

        return guarded

    # -- login ----------------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        next_path = _safe_next(request.query.get("next", "/console/"))
        if not self.sessions.login_required or self._session(request) is not None:
            return _redirect(next_path)
        return secure(web.Response(text=pages.login(next_path), content_type="text/html"))

    async def login(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        next_path = _safe_next(str(data.get("next") or "/console/"))
        secret_id, secret_key = str(data.get("secret_id") or ""), str(data.get("secret_key") or "")
        if not self.sessions.login_required:
            return _redirect(next_path)
        if not self.sessions.check_secrets(secret_id, secret_key):
            log.warning("console login refused from %s", request.remote)
            text = pages.login(next_path, "Wrong SecretId or SecretKey.")
            return secure(web.Response(text=text, content_type="text/html", status=401))
        self.sessions.end(request.cookies.get(COOKIE))
        response = _redirect(next_path)
        self._set_cookie(response, self.sessions.create(authenticated=True))
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        data = await request.post()
        offered = data.get("csrf")
        if session is None or not isinstance(offered, str) or not csrf_ok(session, offered):
            return error_response(BadCsrfToken("the form's CSRF token is missing or wrong: reload the page"))
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
            name = (await self.store.get_queue(request.match_info["name"])).name
        except QueueNotFound:
            return self._missing(session, "queue", request.match_info["name"])
        return self._html(session, "queue", f"Queue {name}", name, api="/console/api/queues/" + name)

    async def topic_page(self, request: web.Request, session: Session) -> web.Response:
        try:
            name = (await self.store.get_topic(request.match_info["name"])).name
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
        secure(response)
        response.headers["Cache-Control"] = "no-cache"  # revalidate: a new broker may serve a new console
        return response

    # -- JSON reads -------------------------------------------------------------------------------

    async def overview_json(self, request: web.Request) -> dict:
        store = self.store
        queues = await everything(lambda offset, limit: store.list_queues("", offset, limit, counts=True),
                                  self.queues_per_call)
        topics = await everything(lambda offset, limit: store.list_topics("", offset, limit), self.topics_per_call)
        return views.overview(queues, topics, self.sim)

    async def queue_json(self, request: web.Request) -> dict:
        queue = await self.store.get_queue(request.match_info["name"])
        raw = request.query.get("peek", str(PEEK_DEFAULT))
        count = min(int(raw), MAX_PEEK) if raw.isascii() and raw.isdigit() else PEEK_DEFAULT
        # 0: the page does not want the messages this time (a big queue is peeked on request only)
        peeked = await self.store.peek(queue.name, count) if count else None
        return views.queue_detail(queue, peeked)

    async def message_json(self, request: web.Request) -> dict:
        name, wanted = request.match_info["name"], request.match_info["id"]
        # Peek is oldest first and a message only ever moves up: one seen in a peek list is
        # still among the first MAX_PEEK, unless it has left the queue.
        for msg in await self.store.peek(name, MAX_PEEK):
            if str(msg.id) == wanted:
                return views.message_detail(msg)
        raise MessageGone(f"message {wanted} is no longer among the first {MAX_PEEK} of queue {name} "
                          "(deleted, expired, or received and deleted)")

    async def topic_json(self, request: web.Request) -> dict:
        topic = await self.store.get_topic(request.match_info["name"])
        store = self.store
        subscriptions = await everything(lambda offset, limit: store.list_subscriptions(topic.name, "", offset, limit),
                                         SUBSCRIPTIONS_PAGE)
        return views.topic_detail(topic, subscriptions)

    async def job_json(self, request: web.Request) -> dict:
        return views.job_detail(self.sim.get_job(request.match_info["id"]), self.timeline)

    async def env_json(self, request: web.Request) -> dict:
        return views.env_detail(self.sim.get_env(request.match_info["id"]), self.timeline)

    async def options_json(self, request: web.Request) -> dict:
        store = self.store
        topics = await everything(lambda offset, limit: store.list_topics("", offset, limit), self.topics_per_call)
        return views.batch_options(topics, self.sim, self.region)
