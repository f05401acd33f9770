"""The physical limit of the broker's stack: a bare aiohttp handler on uvloop.

One route, POST /v2/index.php: read the raw body, parse the form with urllib.parse.parse_qsl,
return a fixed JSON reply about the size of the broker's SendMessage reply. No engine, no
dispatch, no per-request JSON encoding. It runs the way the broker runs (one process, uvloop
when installed, no access log, listen backlog 1024), so requests/s against it is the most any
handler on this stack could answer on the same machine, and the broker's SendMessage rate is
read as a fraction of it. bench/suite.py starts it; it can also run alone:

    python bench/baseline.py [--host 127.0.0.1] [--port 0]

It prints `baseline listening on http://HOST:PORT` once the port is open and stops on SIGTERM
or SIGINT. There is no /healthz: a second route would make it less bare; POST a form instead.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from urllib.parse import parse_qsl

from aiohttp import web

# The broker answers SendMessage with {"msgId":...,"code":0,"message":"","requestId":...}:
# this is the same shape and the same length as a typical one (75 bytes).
REPLY = b'{"msgId":"1795916192355000","code":0,"message":"","requestId":"0a1b2c3d-1"}'


async def index(request: web.Request) -> web.Response:
    raw = await request.read()
    parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    return web.Response(body=REPLY, content_type="application/json")


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = web.Application()
    app.router.add_post("/v2/index.php", index)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"baseline listening on http://{bound_host}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description="A bare aiohttp form handler: the limit of the broker's stack.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port and prints it (default 0)")
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
