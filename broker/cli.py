"""Command line: `python -m broker serve [options]`, and the client commands (`queue`, `topic`,
`events`) of `commands.py`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .commands import add_client_commands, run as run_client_command
from .config import add_serve_arguments, build_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="A local Tencent Cloud CMQ broker.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    add_serve_arguments(serve)
    add_client_commands(sub)
    return parser


def _event_loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":
        return run_client_command(args)
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from . import logs

    logs.setup(config.log_level, config.log_format, config.access_log)
    from .server import serve
    from .provision import ProvisionError
    from .storage.wal import StorageError

    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(serve(config))
    except (StorageError, ProvisionError) as exc:  # a locked or damaged data directory, a wrong --config
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
