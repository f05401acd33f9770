"""Logging: text or JSON lines on stderr, and the optional access log.

Everything goes through the standard `logging` module, ours and aiohttp's alike, so one
formatter on the root handler decides the shape of every line. With `--log-format json` each
line is one JSON object: time, level, logger, message, then whatever the call passed as
`extra` (the access log passes its fields that way) and the traceback, if any.

The access log is aiohttp's hook (an `AbstractAccessLogger`, called once a response is sent);
when it is off the runner gets no access logger at all, so it costs nothing. The API endpoints
leave the action and its result code on the request for it under `ACCESS`, only when it is on.
"""

from __future__ import annotations

import datetime
import json
import logging
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "broker.access"
# (action, result code, perf_counter() at its start) of an API request, set by the endpoints
# while the access log is on.
ACCESS = web.RequestKey("cmq_broker_access", tuple)

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; values JSON cannot hold are written as their str()."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in out:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, method, path (never the query: it may carry a signature),
    HTTP status, API action and result code when it was an API call, and the time taken."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        api = request.get(ACCESS)
        if api is None:
            action = code = "-"
        else:  # the loop's clock may tick in whole milliseconds (uvloop's does): time it ourselves
            action, code, started = api
            time = perf_counter() - started
        self.logger.info(
            '%s "%s %s" %d %s code=%s %.3fms', request.remote, request.method, request.path, response.status,
            action, code, time * 1000,
            extra={"remote": request.remote, "method": request.method, "path": request.path,
                   "status": response.status, "action": action, "code": code, "duration_seconds": time},
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def setup(level: str, fmt: str, access_log: bool) -> None:
    """Configure the root logger for the served broker (called once, by the command line)."""
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(JsonFormatter() if fmt.lower() == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if access_log:  # asked for explicitly: shown even when --log-level hides other info lines
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)


def runner_options(access_log: bool) -> dict[str, Any]:
    """aiohttp AppRunner arguments: our access logger, or none at all."""
    if not access_log:
        return {"access_log": None}
    return {"access_log": logging.getLogger(ACCESS_LOGGER), "access_log_class": AccessLogger}
