"""Builds the application and runs it until SIGTERM or SIGINT.

Everything is built here, in one place, and handed to whoever needs it: the engine and its
store (the seam protocols talk to), the durable state's parts, the push worker, the Batch
simulator, the one request pipeline, and the protocols on it (CMQ API 2.0, API 3.0 services, the
console).

Start: recover → engine → push worker → provisioning → HTTP (the port opens only when everything
behind it is ready, so /healthz answering means ready). Stop, in reverse: close the listener,
answer parked long polls, let in-flight requests finish, stop the push worker, then the storage.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .clock import Clock, RealClock
from .config import Config, batch_delays
from .batchsim import BatchSim, SimSettings
from .console import setup_console
from .delivery import Pusher, PushSettings
from .batchsim.persist import BatchPart
from .engine import Broker, Limits
from .gcpacer import GcPacer
from . import logs, metrics
from .netguard import GuardedSite
from .pipeline import Pipeline
from .protocol.api3 import Api3Protocol
from .protocol.api3.batch import batch_service
from .protocol.cmq.app import CmqProtocol
from .provision import load_plan, provision
from .store import MemoryStore, Store

log = logging.getLogger("broker")

BROKER = web.AppKey("broker", Broker)
STORE = web.AppKey("store", Store)
PIPELINE = web.AppKey("pipeline", Pipeline)
PUSHER = web.AppKey("pusher", Pusher)
BATCH = web.AppKey("batch", BatchSim)
# Seconds in-flight requests get to finish on SIGTERM. Well under Docker's 10 s stop grace, so a
# request that never finishes (aiohttp drops body bytes that arrive after shutdown starts) still
# leaves time for the final snapshot and exit 0 before the SIGKILL.
SHUTDOWN_GRACE = 5.0


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(config: Config, clock: Clock | None = None) -> web.Application:
    clock = clock or RealClock()
    limits = Limits(max_queues=config.max_queues, max_topics=config.max_topics, max_long_polls=config.max_long_polls)
    broker = Broker(clock, limits, strict=config.strict, app_id=config.app_id)
    store = MemoryStore(broker)
    pusher = Pusher(broker, PushSettings(retry_scale=config.push_retry_scale, timeout=config.push_timeout), clock)
    sim = BatchSim(broker, SimSettings(time_scale=config.batch_time_scale, **batch_delays(config)))
    durability = resumed = None
    plan = load_plan(config.config) if config.config else None  # a wrong file fails before the data dir is touched
    if config.data_dir:
        from .storage.recovery import Durability, EnginePart

        durability = Durability(config.data_dir, [EnginePart(broker), BatchPart(sim)])
        resumed = durability.recover()  # before anything can change the state
    pipeline = Pipeline(durability, access_log=config.access_log)
    app = web.Application(client_max_size=config.max_request_bytes)
    app[BROKER] = broker
    app[STORE] = store
    app[PIPELINE] = pipeline
    app[PUSHER] = pusher
    app[BATCH] = sim
    secrets = (config.secret_id, config.secret_key)
    cmq = CmqProtocol(store, pipeline, clock, *secrets, config.max_request_bytes, max_skew=config.signature_max_skew)
    app.router.add_route("*", "/v2/index.php", cmq.handle)
    api3 = Api3Protocol([batch_service(sim)], pipeline, clock, *secrets, config.max_request_bytes, config.region,
                        max_skew=config.signature_max_skew)
    app.router.add_route("*", "/", api3.handle)
    app.router.add_get("/healthz", _healthz)
    metrics.install(app, metrics.BrokerCollector(broker=broker, pusher=pusher, sim=sim, pipeline=pipeline,
                                                 durability=durability))
    setup_console(app, store, sim, pipeline, config)  # nothing when config.no_console

    async def storage(app: web.Application):
        if durability is not None:
            await durability.start()
        yield
        if durability is not None:
            await durability.close()  # last: after every other part has stopped changing state

    async def push_worker(app: web.Application):
        await app[PUSHER].start()
        for sub, msg, attempts in resumed or ():
            app[PUSHER].submit(sub, msg, attempts)
        yield
        await app[PUSHER].close()

    async def release_long_polls(app: web.Application) -> None:
        app[BATCH].close()
        app[BROKER].close()

    app.cleanup_ctx.append(storage)
    app.cleanup_ctx.append(push_worker)

    async def provisioning(app: web.Application):
        # After recovery and the push worker, before the port opens: /healthz answering means provisioned.
        if plan is not None:
            await provision(plan, broker, sim, durability)
        yield

    app.cleanup_ctx.append(provisioning)
    app.on_shutdown.append(release_long_polls)
    return app


def _raise_file_limit() -> None:
    """Pushes and clients each hold a socket: take the hard limit on open files, not the soft one."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


class Running:
    """A started broker: its app, address and engine, and `stop()` (the shutdown sequence)."""

    def __init__(self, app: web.Application, runner: web.AppRunner, host: str, port: int):
        self.app, self.runner, self.host, self.port = app, runner, host, port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def broker(self) -> Broker:
        return self.app[BROKER]

    @property
    def batch(self) -> BatchSim:
        return self.app[BATCH]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(config: Config, clock: Clock | None = None) -> Running:
    """Build the app and open its port in the running loop (port 0 picks a free one); the broker
    is ready when this returns. For embedding and tests; `serve` is the command's own loop."""
    app = build_app(config, clock)
    # A GET carries its parameters in the request line (the CMQ SDK's GET mode): allow it what a
    # POST body may hold, instead of aiohttp's 8 KiB, which refused big messages with a bare 400.
    # handler_cancellation: a client that disconnects cancels its handler, so a long poll it left
    # gives its place back at once instead of taking the next message for nobody.
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE, handle_signals=False, handler_cancellation=True,
                           max_line_size=config.max_request_bytes + 1024,
                           **logs.runner_options(config.access_log))
    try:
        await runner.setup()  # inside: a failed start-up step (provisioning) still closes what had started
        site = GuardedSite(runner, config.host, config.port, backlog=1024, max_connections=config.max_connections,
                           request_timeout=config.request_timeout)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    return Running(app, runner, host, port)


async def serve(config: Config) -> None:
    _raise_file_limit()
    # Signals are caught before the port opens, so a stop request can never find us half-started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pacer = GcPacer()  # only for a served broker: tests and embedders keep their own GC settings
    running = await start(config)
    pacer.start()
    print(f"cmq-broker listening on {running.url}", flush=True)
    log.info("CMQ API 2.0 at %s/v2/index.php (signatures %s)", running.url,
             "required" if config.auth_enabled else "not checked")
    log.info("Batch API 3.0 at %s/ (TC3 signatures %s)", running.url,
             "required" if config.auth_enabled else "not checked")

    try:
        await stop.wait()
        log.info("stopping: finishing in-flight requests")
    finally:
        await running.stop()
        await pacer.close()
    log.info("stopped")
