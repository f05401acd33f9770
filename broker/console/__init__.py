"""The web console at /console: queues, topics, subscriptions, Batch jobs and environments, and
messages decoded, in the browser.

Theory of operation
-------------------
The console is a view of the broker's own objects, in the same process: it reads the engine and
the Batch simulator directly and changes them through the same handlers and methods the APIs
use (actions.py), so it validates as they do and, with --data-dir, answers only once a change
is on disk. Pages are HTML shells (pages.py, templates/) that a small script (static/console.js)
fills from JSON (views.py) and refreshes every 1.5 s; it builds the DOM from text nodes only,
so an untrusted message body is always shown as text. A Content-Security-Policy forbids inline
script and any other origin besides, and nothing is loaded from the internet.

Safety: sessions and CSRF tokens (auth.py); with --secret-id/--secret-key the console asks for
both at a login page. `--no-console` leaves every /console path a 404.
"""

from __future__ import annotations

from aiohttp import web

from ..batchsim import BatchSim
from ..config import Config
from ..engine import Broker
from .app import Console

__all__ = ["Console", "setup_console"]

CONSOLE = web.AppKey("console", Console)


def setup_console(app: web.Application, broker: Broker, sim: BatchSim, config: Config, durability=None) -> None:
    """Add the console's routes to `app` (nothing when `config.no_console`)."""
    if config.no_console:
        return
    console = Console(broker, sim, config.secret_id, config.secret_key, config.region, durability)
    console.add_routes(app.router)
    app[CONSOLE] = console
