"""The console's JSON: what each page shows, from the store's plain values and the simulator.

Plain dicts for `web.json_response`; the browser renders them with DOM text nodes, so nothing
here needs escaping. Times are ISO strings (UTC) or None. Queues, topics and subscriptions come
as the store's read-only values (QueueInfo, TopicInfo, SubscriptionInfo, PeekedMessage); Batch
entities are read from the simulator and reuse the API's own views (batchsim/views.py), so the
console shows what DescribeJob would.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..batchsim import BatchSim
from ..batchsim import catalogue, states
from ..batchsim.events import iso
from ..batchsim.model import Env, Instance, Job, metrics
from ..batchsim.notifications import ENV_SCOPE, JOB_SCOPE
from ..batchsim.validate import FAULT_TYPES
from ..batchsim.views import activity_view, env_view, instance_view, node_view, task_view
from ..engine.topic import FILTER_ROUTING
from ..store import PeekedMessage, QueueInfo, ReceivedMessage, SubscriptionInfo, TopicInfo
from .decode import decode, summary
from .timeline import Timeline

MAX_JOBS = 200  # the overview lists the newest jobs; the rest stay reachable by id


def _time(seconds: float) -> str | None:
    return iso(seconds) if seconds else None


def queue_row(queue: QueueInfo) -> dict:
    counts = queue.counts  # always asked for: listings with counts=True, get_queue has them
    return {"name": queue.name, "id": queue.queue_id, "active": counts.ready, "inactive": counts.inflight,
            "delayed": counts.delayed, "kept": counts.kept}


def topic_row(topic: TopicInfo) -> dict:
    return {"name": topic.name, "id": topic.topic_id, "filterType": _filter_name(topic),
            "subscriptions": topic.subscriptions, "pending": topic.pending}


def job_row(job: Job) -> dict:
    return {"id": job.job_id, "name": job.name, "state": job.state, "zone": job.zone,
            "created": iso(job.create_time), "ended": iso(job.end_time)}


def env_row(env: Env) -> dict:
    nodes = {name: count for name, count in env.metrics().items() if count}
    return {"id": env.env_id, "name": env.name, "state": env.state, "zone": env.zone,
            "instanceType": env.instance_type, "desired": env.desired, "nodes": nodes,
            "created": iso(env.create_time)}


def overview(queues: Iterable[QueueInfo], topics: Iterable[TopicInfo], sim: BatchSim) -> dict:
    jobs = sorted(sim.jobs.values(), key=lambda j: j.create_time, reverse=True)
    envs = sorted(sim.envs.values(), key=lambda e: e.create_time, reverse=True)
    return {
        "queues": [queue_row(q) for q in queues],
        "topics": [topic_row(t) for t in topics],
        "jobs": [job_row(j) for j in jobs[:MAX_JOBS]],
        "jobCount": len(jobs),
        "envs": [env_row(e) for e in envs],
    }


# -- queues -------------------------------------------------------------------------------------

def queue_detail(queue: QueueInfo, peeked: Sequence[PeekedMessage] | None) -> dict:
    """`peeked` None: not peeked this time (the page keeps the rows it has)."""
    return {**queue_row(queue), "settings": dict(queue.settings), "created": _time(queue.create_time),
            "modified": _time(queue.last_modify_time), "oldest": _time(queue.min_msg_time),
            "messages": None if peeked is None else [message_row(m) for m in peeked]}


def _message(msg_id: int, body: str, state: str, enqueue_time: float, first_dequeue_time: float,
             dequeue_count: int, visible_at: float) -> dict:
    return {
        "id": str(msg_id),
        "state": state,
        "enqueued": iso(enqueue_time),
        "firstDequeued": _time(first_dequeue_time),
        "dequeueCount": dequeue_count,
        "visibleAt": _time(visible_at),
        "size": len(body.encode("utf-8", "surrogatepass")),
        **summary(body),
    }


def message_row(msg: PeekedMessage) -> dict:
    return _message(msg.id, msg.body, msg.state, msg.enqueue_time, msg.first_dequeue_time, msg.dequeue_count,
                    msg.visible_at)


def message_detail(msg: PeekedMessage) -> dict:
    return {**message_row(msg), "body": msg.body, "decoded": decode(msg.body)}


def received_message(msg: ReceivedMessage, visible_at: float) -> dict:
    """A message the console just received: in flight until `visible_at`, deletable by its handle."""
    return {**_message(msg.id, msg.body, "inflight", msg.enqueue_time, msg.first_dequeue_time, msg.dequeue_count,
                       visible_at),
            "body": msg.body, "decoded": decode(msg.body), "receiptHandle": msg.receipt_handle}


# -- topics -------------------------------------------------------------------------------------

def _filter_name(topic: TopicInfo) -> str:
    return "routing key" if topic.filter_type == FILTER_ROUTING else "tags"


def subscription_row(sub: SubscriptionInfo) -> dict:
    return {
        "name": sub.name, "id": sub.sub_id, "protocol": sub.protocol, "endpoint": sub.endpoint,
        "strategy": sub.strategy, "format": sub.content_format,
        "filterTags": list(sub.filter_tags), "bindingKeys": list(sub.binding_keys),
        "pending": sub.pending, "delivered": sub.delivered, "dropped": sub.dropped,
        "created": _time(sub.create_time),
    }


def topic_detail(topic: TopicInfo, subscriptions: Iterable[SubscriptionInfo]) -> dict:
    """`subscriptions` in the store's order (by name)."""
    return {**topic_row(topic), "settings": dict(topic.settings), "created": _time(topic.create_time),
            "modified": _time(topic.last_modify_time),
            "subscriptionList": [subscription_row(s) for s in subscriptions]}


# -- Batch --------------------------------------------------------------------------------------

def _instance(inst: Instance) -> dict:
    # The node of the current attempt, else the CVM of the last one (the API hides it by then).
    node = inst.node.node_id if inst.node else inst.node_instance_id
    return {**instance_view(inst), "Attempts": inst.attempts, "Node": node}


def _notifications(notes: list) -> list[dict]:
    return [{"topic": n.topic, "events": list(n.events)} for n in notes]


def job_detail(job: Job, timeline: Timeline) -> dict:
    tasks = []
    for task in job.tasks.values():
        spec = task.spec
        where = spec.get("EnvId") or "anonymous " + str((spec.get("ComputeEnv") or {}).get("EnvData", {})
                                                        .get("InstanceType", ""))
        tasks.append({**task_view(task), "InstanceNum": task.instance_num, "Env": where.strip(),
                      "DependsOn": [u.name for u in task.upstream], "MaxRetryCount": task.max_retry,
                      "Instances": [_instance(i) for i in task.instances]})
    return {
        **job_row(job), "priority": job.priority, "reason": job.state_reason, "region": job.region,
        "finished": job.state in states.TERMINAL,
        "taskList": tasks,
        "instanceMetrics": metrics([i.state for i in job.instances()]),
        "notifications": _notifications(job.notifications),
        "timeline": timeline.rows(job.job_id),
    }


def env_detail(env: Env, timeline: Timeline) -> dict:
    nodes = []
    for node in env.nodes.values():
        busy = node.busy_with
        nodes.append({**node_view(node), "InstanceType": node.instance_type,
                      "BusyWith": f"{busy.task.job.job_id} {busy.task.name}[{busy.index}]" if busy else ""})
    return {
        **env_row(env), **{k: v for k, v in env_view(env).items() if k in ("EnvType", "NextAction")},
        "description": env.description, "region": env.region, "recreate": env.recreate,
        "nodeList": nodes,
        "activities": [activity_view(a) for a in env.activities[-50:]],
        "notifications": _notifications(env.notifications),
        "timeline": timeline.rows(env.env_id),
    }


def batch_options(topics: Iterable[TopicInfo], sim: BatchSim, region: str) -> dict:
    """What the Batch forms offer: zones and instance types of the region, topics, environments, events."""
    rows = catalogue.configs(region=region)
    zones: dict[str, list[str]] = {}
    for row in rows:
        zones.setdefault(row["Zone"], []).append(row["InstanceType"])
    return {
        "region": region,
        "zones": zones,
        "faultTypes": sorted(FAULT_TYPES),
        "topics": [t.name for t in topics],
        "envs": [{"id": e.env_id, "name": e.name, "zone": e.zone} for e in sim.envs.values()
                 if e.state == states.ENV_ACTIVE],
        "jobEvents": _ordered(JOB_SCOPE),
        "envEvents": _ordered(ENV_SCOPE),
    }


_EVENT_ORDER = [*states.JOB_EVENTS.values(), *states.TASK_EVENTS.values(), *states.INSTANCE_EVENTS.values(),
                states.ENV_CREATED_EVENT, states.ENV_DELETED_EVENT, *states.NODE_EVENTS.values()]


def _ordered(scope: frozenset[str]) -> list[str]:
    return [name for name in _EVENT_ORDER if name in scope]
