"""The registry: every queue by name, the id counter, and the limits that span queues.

Names are unique case-insensitively (as in CMQ) and looked up the same way; the name a queue
was created with is the one shown. Listing is by name, so paging with offset/limit is stable.
"""

from __future__ import annotations

import itertools
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import InvalidQueueName, QueueAlreadyExists, QueueLimitExceeded, QueueNotFound
from .queue import Queue
from .settings import QueueSettings

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Limits:
    max_queues: int = 1000


def _resource_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class Broker:
    def __init__(self, clock: Clock, limits: Limits = Limits()):
        self.clock = clock
        self.limits = limits
        self._queues: dict[str, Queue] = {}
        # Message ids grow with time across restarts too, so ids never repeat and sort by age.
        self._ids = itertools.count(int(clock.time() * 1000) * 1000)
        self.next_message_id = self._ids.__next__

    # -- queues ---------------------------------------------------------------------------

    def create_queue(self, name: str, settings: dict[str, Any] | None = None) -> Queue:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidQueueName(str(name))
        key = name.lower()
        if key in self._queues:
            raise QueueAlreadyExists(name)
        if len(self._queues) >= self.limits.max_queues:
            raise QueueLimitExceeded(self.limits.max_queues)
        queue_settings = QueueSettings().updated(settings or {})
        queue = Queue(name, _resource_id("queue-"), queue_settings, self.clock, self.next_message_id)
        self._queues[key] = queue
        return queue

    def get_queue(self, name: str) -> Queue:
        queue = self._queues.get(name.lower())
        if queue is None:
            raise QueueNotFound(name)
        return queue

    def set_queue_attributes(self, name: str, changes: dict[str, Any]) -> Queue:
        queue = self.get_queue(name)
        queue.update_settings(queue.settings.updated(changes))
        return queue

    def delete_queue(self, name: str) -> None:
        queue = self.get_queue(name)
        del self._queues[name.lower()]
        queue.close()

    def list_queues(self, search: str = "", offset: int = 0, limit: int = 20) -> tuple[int, list[Queue]]:
        """(number of all matches, one page of them), ordered by name."""
        needle = search.lower()
        matches = sorted(
            (q for key, q in self._queues.items() if needle in key),
            key=lambda q: q.name.lower(),
        )
        return len(matches), matches[offset : offset + limit]

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Answer every parked receiver, and park no more, so shutdown need not wait out long polls."""
        for queue in self._queues.values():
            queue.close()
