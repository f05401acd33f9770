"""`GET /metrics`: the broker's state and activity in the Prometheus text format.

Theory of operation
-------------------
Counting happens where the work happens, in plain ints, floats and lists: the pipeline adds each
request to a `RequestStats` (pipeline.py) (a dict keyed by (action, code) holding a latency histogram as
plain counts), topics count their publishes and copies, the Pusher its deliveries, the WAL its
fsync times. Nothing Prometheus-shaped is touched per request: counting one costs two clock
reads, a dict lookup and two list updates (about 0.25 µs).

At scrape time `BrokerCollector` reads all of that, plus what the engine and the Batch
simulator already know (queue depth by state, jobs and nodes by state), and turns it into
metric families on a `CollectorRegistry` of the app's own: several brokers can share one
process (tests do), so the library's global registry is never used. Everything here runs on
the event loop, as the counters' writers do, so reads need no locks.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from . import __version__
from .batchsim import states as S
from .pipeline import LATENCY_BOUNDS
from .storage.wal import FSYNC_BOUNDS

PREFIX = "cmq_broker_"
# Prometheus' classic text format; version 0.0.4 is what every scraper understands.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)

def _buckets(bounds: Iterable[float], counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts → the cumulative (le, count) pairs of the exposition, +Inf last."""
    out, total = [], 0
    for bound, n in zip(bounds, counts):
        total += n
        out.append((floatToGoString(bound), total))
    out.append(("+Inf", total + counts[-1]))
    return out


class BrokerCollector(Collector):
    """Reads one broker's counters and state at scrape time."""

    def __init__(self, *, broker: Any, pusher: Any, sim: Any, pipeline: Any, durability: Any = None):
        self.broker, self.pusher, self.sim = broker, pusher, sim
        self.pipeline = pipeline
        self.wal = durability.wal if durability is not None else None
        self.started = time.time()
        self._started_monotonic = time.monotonic()

    def collect(self):
        yield from self._process()
        yield from self._requests()
        yield from self._queues()
        yield from self._topics()
        yield from self._push()
        if self.wal is not None:
            yield from self._wal()
        yield from self._batch()

    def _process(self):
        info = GaugeMetricFamily(PREFIX + "info", "Always 1; the version as a label.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(PREFIX + "start_time_seconds", "When the broker started, in Unix seconds.",
                                value=self.started)
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "Seconds since the broker started.",
                                value=time.monotonic() - self._started_monotonic)

    def _requests(self):
        labels = ["api", "action", "code"]
        total = CounterMetricFamily(PREFIX + "requests", "API requests answered, by action and result code "
                                    "(code 0 is success, for Batch too).", labels=labels)
        latency = HistogramMetricFamily(PREFIX + "request_duration_seconds", "Time from the start of handling a "
                                        "request to its reply being ready.", labels=labels)
        for api, stats in sorted(self.pipeline.stats.items()):
            for (action, code), entry in sorted(stats.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
                names = [api, action, str(code)]
                buckets = _buckets(LATENCY_BOUNDS, entry[1:])
                total.add_metric(names, buckets[-1][1])
                latency.add_metric(names, buckets, entry[0])
        yield total
        yield latency

    def _queues(self):
        _, queues = self.broker.list_queues(limit=1 << 62)
        yield GaugeMetricFamily(PREFIX + "queues", "Queues that exist.", value=len(queues))
        depth = GaugeMetricFamily(PREFIX + "queue_messages", "Messages in a queue by state: active (visible), "
                                  "inactive (received, in flight), delayed, rewindable (deleted, kept for "
                                  "RewindQueue).", labels=["queue", "state"])
        for queue in queues:
            stats = queue.stats()  # as GetQueueAttributes: due messages become visible first
            depth.add_metric([queue.name, "active"], stats["activeMsgNum"])
            depth.add_metric([queue.name, "inactive"], stats["inactiveMsgNum"])
            depth.add_metric([queue.name, "delayed"], stats["delayMsgNum"])
            depth.add_metric([queue.name, "rewindable"], stats["rewindMsgNum"])
        yield depth

    def _topics(self):
        _, topics = self.broker.list_topics(limit=1 << 62)
        yield GaugeMetricFamily(PREFIX + "topics", "Topics that exist.", value=len(topics))
        published = CounterMetricFamily(PREFIX + "topic_published_messages", "Messages accepted by "
                                        "(Batch)PublishMessage and Batch events, per topic.", labels=["topic"])
        copies = CounterMetricFamily(PREFIX + "topic_fanout_copies", "Copies of published messages made for "
                                     "matching subscriptions, by the subscription's protocol.",
                                     labels=["topic", "protocol"])
        outcome = CounterMetricFamily(PREFIX + "subscription_copies", "Copies a subscription settled: delivered "
                                      "(into its queue or with a 2xx) or dropped (given up).",
                                      labels=["topic", "subscription", "outcome"])
        pending = GaugeMetricFamily(PREFIX + "subscription_pending_copies", "Copies waiting for delivery or a "
                                    "retry, per subscription.", labels=["topic", "subscription"])
        for topic in topics:
            published.add_metric([topic.name], topic.published)
            for protocol, n in sorted(topic.copies.items()):
                copies.add_metric([topic.name, protocol], n)
            _, subs = topic.list_subscriptions("", 0, 1 << 62)
            for sub in subs:
                outcome.add_metric([topic.name, sub.name, "delivered"], sub.delivered)
                outcome.add_metric([topic.name, sub.name, "dropped"], sub.dropped)
                pending.add_metric([topic.name, sub.name], sub.pending)
        yield from (published, copies, outcome, pending)

    def _push(self):
        p = self.pusher
        yield CounterMetricFamily(PREFIX + "push_deliveries", "Deferred copies delivered: HTTP pushes answered "
                                  "2xx, and queue copies placed on a retry.", value=p.delivered)
        yield CounterMetricFamily(PREFIX + "push_failures", "Delivery attempts that failed (non-2xx, refused, "
                                  "timed out, or the queue still missing or full).", value=p.failures)
        yield CounterMetricFamily(PREFIX + "push_retries", "Delivery attempts that were not a copy's first.",
                                  value=p.retries)
        yield CounterMetricFamily(PREFIX + "push_dropped", "Copies given up: retries exhausted, past the topic's "
                                  "retention, unsubscribed, or over the per-subscription cap.", value=p.dropped)
        yield GaugeMetricFamily(PREFIX + "push_pending", "Copies being delivered or waiting for a retry.",
                                value=p.pending)

    def _wal(self):
        wal = self.wal
        fsync = HistogramMetricFamily(PREFIX + "wal_fsync_duration_seconds", "Time one group-commit fsync of the "
                                      "write-ahead log took.")
        fsync.add_metric([], _buckets(FSYNC_BOUNDS, wal.fsync_counts), wal.fsync_seconds)
        yield fsync
        yield GaugeMetricFamily(PREFIX + "wal_pending_bytes", "Log bytes appended but not yet written and fsynced.",
                                value=wal.pending_bytes())
        yield GaugeMetricFamily(PREFIX + "wal_log_bytes", "Bytes of log since the newest snapshot.",
                                value=wal.log_bytes())

    def _batch(self):
        jobs = GaugeMetricFamily(PREFIX + "batch_jobs", "Batch jobs by state.", labels=["state"])
        by_state = dict.fromkeys(S.ALL_STATES, 0)
        nodes = dict.fromkeys(S.NODE_STATES, 0)
        for job in self.sim.jobs.values():
            by_state[job.state] = by_state.get(job.state, 0) + 1
            for inst in job.instances():
                node = inst.node
                if node is not None and node.env is None:  # a private node, serving this attempt
                    nodes[node.state] = nodes.get(node.state, 0) + 1
        for state, n in by_state.items():
            jobs.add_metric([state], n)
        yield jobs
        for env in self.sim.envs.values():
            for node in env.nodes.values():
                nodes[node.state] = nodes.get(node.state, 0) + 1
        family = GaugeMetricFamily(PREFIX + "batch_compute_nodes", "Simulated compute nodes by state (of named "
                                   "environments, and private nodes of anonymous ones).", labels=["state"])
        for state, n in nodes.items():
            family.add_metric([state], n)
        yield family
        yield GaugeMetricFamily(PREFIX + "batch_compute_envs", "Compute environments that exist.",
                                value=len(self.sim.envs))


def install(app: web.Application, collector: BrokerCollector) -> CollectorRegistry:
    """Give `app` its own registry (our collector and the process, GC and platform ones) and the
    `GET /metrics` route. Metrics need no signature, even when the APIs require one."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    app[REGISTRY] = registry

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", metrics)
    return registry
