"""Deferred delivery: HTTP push to subscribers, and queue copies that could not be placed at once.

Theory of operation
-------------------
The engine announces each (subscription, message) pair it could not deliver at once as a
`PushPending` event; the pusher subscribes to those while it runs (`start` to `close`). Each pair becomes one task that tries, and on failure sleeps the next gap of
its subscription's retry strategy (on the injected clock, scaled by `retry_scale`), until it
succeeds, runs out of retries, outlives the topic's retention, or the subscription goes away.

Isolation: pushes to one subscription hold at most `per_subscription` concurrent requests and
every request ends within `timeout`. There is deliberately no pool shared between subscriptions
(any shared cap lets enough hanging subscriptions fill it), so a slow or dead endpoint only ever
delays its own subscription, never the publisher (answered before any push began) nor another
subscription. Tasks that are merely waiting to retry hold no slot. At most `max_pending` copies
wait per subscription; past that its new copies are dropped (and counted, and logged now and
then), so a dead endpoint can neither grow memory without bound nor crowd out the others.

HTTP requests follow the CMQ notification format: `text/plain`, the `x-cmq-*` headers, and a
JSON envelope (or the bare body for SIMPLIFIED). Any 2xx is success; anything else, a refused
connection or a timeout is a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import weakref
from dataclasses import dataclass
from typing import Iterator

import aiohttp

from ..clock import Clock
from ..engine import Broker
from ..engine.events import PushPending, pending_key
from ..engine.topic import Subscription, TopicMessage
from ..errors import BrokerError, MessageTooLarge

log = logging.getLogger("broker.push")

BACKOFF_RETRIES = 3
BACKOFF_GAP = (10.0, 20.0)  # seconds, random within
# 176 retries over about a day: 1, 2, 4 ... 256 s, then 512 s.
EXPONENTIAL_GAPS = tuple([2.0**i for i in range(9)] + [512.0] * 167)
USER_AGENT = "Qcloud Notification Service Agent"


def retry_gaps(strategy: str, rng: random.Random = random.Random()) -> Iterator[float]:
    """The waits between attempts, in seconds, for a subscription's notifyStrategy."""
    if strategy == "BACKOFF_RETRY":
        return (rng.uniform(*BACKOFF_GAP) for _ in range(BACKOFF_RETRIES))
    return iter(EXPONENTIAL_GAPS)


@dataclass(frozen=True)
class PushSettings:
    retry_scale: float = 1.0  # multiplies every retry gap; 0.01 turns a day into ~15 minutes
    timeout: float = 15.0  # seconds for one HTTP push
    per_subscription: int = 8  # concurrent requests per subscription
    max_pending: int = 10_000  # deliveries waiting per subscription; more are dropped


class Pusher:
    def __init__(self, broker: Broker, settings: PushSettings, clock: Clock):
        self._broker = broker
        self._settings = settings
        self._clock = clock
        self._tasks: set[asyncio.Task] = set()
        self._slots: weakref.WeakKeyDictionary[Subscription, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        self._session: aiohttp.ClientSession | None = None
        self._request_ids = map(f"{os.urandom(4).hex()}-push-{{}}".format, itertools.count(1))
        # Pending deliveries as plain data (the "pp" record's shape, storage/codec.py), for snapshots.
        self._live: dict[str, list] = {}
        # For metrics: copies delivered and given up, failed attempts, attempts after a copy's first.
        self.delivered = self.dropped = self.failures = self.retries = 0
        self._unsubscribe = None
        broker.add_pending_source(lambda: {k: list(v) for k, v in self._live.items()})

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
            connector=aiohttp.TCPConnector(limit=0),  # bounded per subscription instead, see above
        )
        self._unsubscribe = self._broker.events.subscribe(PushPending, self._pending)

    async def drain(self) -> None:
        """Wait until every delivery handed over so far (and any retry of it) has settled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop: pending deliveries stop where they are (with --data-dir they resume on restart)."""
        if self._unsubscribe is not None:
            self._unsubscribe()  # from now on the engine drops what it cannot deliver at once
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    # -- delivery -------------------------------------------------------------------------

    def _pending(self, event: PushPending) -> None:
        self.submit(event.sub, event.msg, event.attempts)

    def submit(self, sub: Subscription, msg: TopicMessage, attempts: int = 0) -> None:
        """Deliver `msg` to `sub` in the background; `attempts` already failed (after a restart)."""
        if sub.pending > self._settings.max_pending:  # sub.pending already counts this copy
            if sub.dropped % 1000 == 0:  # a dead endpoint must not flood the log either
                log.warning("%s/%s has %d deliveries pending: dropping copies (%d so far)",
                            sub.topic.name, sub.name, sub.pending - 1, sub.dropped + 1)
            sub.pending -= 1
            sub.dropped += 1
            self.dropped += 1
            self._broker.push_attempted(sub, msg, attempts, settled=True)
            return
        key = pending_key(sub.topic.name.lower(), sub.name.lower(), msg.msg_id)
        self._live[key] = [sub.topic.name.lower(), sub.name.lower(), msg.msg_id, msg.body, list(msg.tags),
                           msg.publish_time, attempts]
        task = asyncio.get_running_loop().create_task(self._deliver(sub, msg, key, attempts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, sub: Subscription, msg: TopicMessage, key: str, attempts: int) -> None:
        gaps = retry_gaps(sub.notify_strategy)
        for _ in range(attempts):  # resumed after a restart: pick the schedule up where it was
            next(gaps, None)
        # A queue copy only comes here after its first attempt failed: start by waiting.
        wait_first = sub.protocol == "queue" or attempts > 0
        delivered = False
        try:
            while True:
                if wait_first:
                    gap = next(gaps, None)
                    if gap is None:
                        break
                    await self._clock.sleep(gap * self._settings.retry_scale)
                wait_first = True
                if not sub.active or self._expired(sub, msg):
                    break
                if attempts or sub.protocol == "queue":  # a queue copy's first try was in the publish
                    self.retries += 1
                outcome = await self._attempt(sub, msg)
                if outcome is not False:
                    delivered = bool(outcome)
                    break
                self.failures += 1
                attempts += 1
                self._live[key][6] = attempts
                self._broker.push_attempted(sub, msg, attempts, settled=False)
        except asyncio.CancelledError:
            # Shutting down: the delivery stays pending (in the journal, and in `_live` for the
            # final snapshot, taken after this) and resumes on restart.
            sub.pending -= 1
            raise
        except Exception:  # a bug of ours: give this copy up rather than retry it forever
            log.exception("delivery of message %s to %s/%s failed", msg.msg_id, sub.topic.name, sub.name)
        self._live.pop(key, None)
        self._broker.push_attempted(sub, msg, attempts, settled=True)
        sub.pending -= 1
        if delivered:
            sub.delivered += 1
            self.delivered += 1
        else:
            sub.dropped += 1
            self.dropped += 1
            log.info("message %s for %s/%s not delivered", msg.msg_id, sub.topic.name, sub.name)

    def _expired(self, sub: Subscription, msg: TopicMessage) -> bool:
        return self._clock.time() - msg.publish_time > sub.topic.settings.msgRetentionSeconds

    async def _attempt(self, sub: Subscription, msg: TopicMessage) -> bool | None:
        """True: delivered. False: failed, retry. None: can never succeed, give up."""
        if sub.protocol == "queue":
            try:
                self._broker.deliver_to_queue(sub, [msg])
                return True
            except MessageTooLarge:
                return None
            except BrokerError:
                return False
        slot = self._slots.get(sub)
        if slot is None:
            slot = self._slots[sub] = asyncio.Semaphore(self._settings.per_subscription)
        async with slot:
            return await self._post(sub, msg)

    async def _post(self, sub: Subscription, msg: TopicMessage) -> bool:
        headers = {
            "Content-Type": "text/plain",
            "User-Agent": USER_AGENT,
            "x-cmq-request-id": next(self._request_ids),
            "x-cmq-message-id": str(msg.msg_id),
        }
        if msg.tags:
            headers["x-cmq-message-tag"] = ", ".join(msg.tags)
        if sub.notify_content_format == "SIMPLIFIED":
            body = msg.body
        else:
            body = json.dumps({
                "TopicOwner": self._broker.app_id,
                "topicName": sub.topic.name,
                "subscriptionName": sub.name,
                "msgId": str(msg.msg_id),
                "msgBody": msg.body,
                "publishTime": int(msg.publish_time),
            }, ensure_ascii=False)
        try:
            async with self._session.post(
                sub.endpoint, data=body.encode("utf-8"), headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return True
                log.info("push to %s answered %d", sub.endpoint, resp.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.info("push to %s failed: %s", sub.endpoint, exc.__class__.__name__)
        return False
