"""The web console at /console: queues, topics, subscriptions, Batch jobs and environments, and
messages decoded, in the browser.

Theory of operation
-------------------
The console is one more client of the broker's state, in the same process, beside the APIs. It
holds the `Store` (the seam the protocols talk to) and the Batch simulator, never the engine:

- Reads (app.py) ask the store for plain values (`list_queues(counts=True)`, `get_queue`,
  `peek`, `get_topic`, `list_subscriptions`, ...) and the simulator for jobs and environments;
  views.py turns them into the JSON the pages poll.
- Changes (every POST under /console/api) are declared once each, with their route, as `Action`s
  of an `ActionTable("console")` (actions.py), and run through the one request pipeline
  (broker/pipeline.py) as a protocol of its own (protocol.py): decode checks the session and
  CSRF token and types the form's fields; the handler makes the very store or simulator call the
  CMQ and Batch APIs make, so it validates as they do; the pipeline refuses changes while the
  disk is backlogged, answers only once a change is on disk (with --data-dir), and counts it under
  api "console". Errors are answered from the console's one small table (errors.py): an HTTP
  status and a neutral code, the error's class name (QueueNotFound), never another protocol's
  wire code. The console imports no protocol.

Pages are HTML shells (pages.py, templates/) that a small script (static/console.js) fills from
the JSON and refreshes every 1.5 s; it builds the DOM from text nodes only, so an untrusted
message body is always shown as text. A Content-Security-Policy forbids inline script and any
other origin besides, and nothing is loaded from the internet. Batch timelines come from the
simulator's event listener (timeline.py).

Safety: sessions and CSRF tokens (auth.py); with --secret-id/--secret-key the console asks for
both at a login page. `--no-console` leaves every /console path a 404.
"""

from __future__ import annotations

from aiohttp import web

from ..batchsim import BatchSim
from ..config import Config
from ..pipeline import Pipeline
from ..store import Store
from .app import Console

__all__ = ["CONSOLE", "Console", "setup_console"]

CONSOLE = web.AppKey("console", Console)


def setup_console(app: web.Application, store: Store, sim: BatchSim, pipeline: Pipeline, config: Config) -> None:
    """Add the console's routes to `app` (nothing when `config.no_console`)."""
    if config.no_console:
        return
    console = Console(store, sim, pipeline, config)
    console.add_routes(app.router)
    app[CONSOLE] = console
