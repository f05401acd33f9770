"""Command line: `python -m broker serve [options]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import add_serve_arguments, build_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="A local Tencent Cloud CMQ broker.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    add_serve_arguments(serve)
    return parser


def _event_loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .server import serve
    from .storage.wal import StorageError

    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(serve(config))
    except StorageError as exc:  # a locked or damaged data directory: refuse to start, touch nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
