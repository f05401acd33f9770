"""Batch events: built from entities and published through the broker's engine (never HTTP).

One event per CMQ message, with no tag and an empty routing key; the body is padded standard
Base64 of compact UTF-8 JSON `{"Events":[{EventVersion, EventTime, Region, Batch, EventName,
EventVars}]}`. A topic deleted after submit loses the event, with a log line.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any, Callable

from ..engine import Broker
from ..errors import BrokerError
from .notifications import Notification

log = logging.getLogger("broker.batch.events")


def iso(t: float | None) -> str | None:
    """API 3.0 time format, UTC; None stays None."""
    if not t:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class EventPublisher:
    def __init__(self, broker: Broker, listener: Callable[[dict], None] | None = None):
        self._broker = broker
        # Each sees every event built, published or not (tests, the console's timelines).
        self._listeners: list[Callable[[dict], None]] = [listener] if listener is not None else []
        self.published = 0

    def add_listener(self, listener: Callable[[dict], None]) -> None:
        self._listeners.append(listener)

    def emit(self, notifications: list[Notification], name: str, batch: dict[str, Any], region: str) -> None:
        now = iso(self._broker.clock.time())
        if self._listeners:
            seen = {"EventName": name, "EventTime": now, "Region": region, "Batch": batch}
            for listener in self._listeners:
                listener(seen)
        for notification in notifications:
            if name not in notification.events:
                continue
            event = {
                "EventVersion": "1.0",
                "EventTime": now,
                "Region": region,
                "Batch": batch,
                "EventName": name,
                "EventVars": notification.events[name],
            }
            body = json.dumps({"Events": [event]}, ensure_ascii=False, separators=(",", ":"))
            encoded = base64.b64encode(body.encode("utf-8")).decode("ascii")
            try:
                self._broker.publish(notification.topic, [encoded], [], "")
                self.published += 1
            except BrokerError as exc:
                log.warning("event %s for topic %s dropped: %s", name, notification.topic, exc.message)
