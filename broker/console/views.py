"""The console's JSON: what each page shows, read straight from the engine and the simulator.

Plain dicts for `web.json_response`; the browser renders them with DOM text nodes, so nothing
here needs escaping. Times are ISO strings (UTC) or None. Batch entities reuse the API's own
views (batchsim/views.py), so the console shows what DescribeJob would.
"""

from __future__ import annotations

from ..batchsim import BatchSim
from ..batchsim import catalogue, states
from ..batchsim.events import iso
from ..batchsim.model import Env, Instance, Job, metrics
from ..batchsim.notifications import ENV_SCOPE, JOB_SCOPE
from ..batchsim.validate import FAULT_TYPES
from ..engine import Broker, Message, Queue, Subscription, Topic
from ..engine.queue import STATE_NAMES
from ..batchsim.views import activity_view, env_view, instance_view, node_view, task_view
from .decode import decode, summary
from .timeline import Timeline

MAX_JOBS = 200  # the overview lists the newest jobs; the rest stay reachable by id


def _time(seconds: float) -> str | None:
    return iso(seconds) if seconds else None


def queue_row(queue: Queue) -> dict:
    stats = queue.stats()
    return {"name": queue.name, "id": queue.queue_id, "active": stats["activeMsgNum"],
            "inactive": stats["inactiveMsgNum"], "delayed": stats["delayMsgNum"], "kept": stats["rewindMsgNum"]}


def topic_row(topic: Topic) -> dict:
    return {"name": topic.name, "id": topic.topic_id, "filterType": _filter_name(topic),
            "subscriptions": len(topic.subscriptions), "pending": topic.pending}


def job_row(job: Job) -> dict:
    return {"id": job.job_id, "name": job.name, "state": job.state, "zone": job.zone,
            "created": iso(job.create_time), "ended": iso(job.end_time)}


def env_row(env: Env) -> dict:
    nodes = {name: count for name, count in env.metrics().items() if count}
    return {"id": env.env_id, "name": env.name, "state": env.state, "zone": env.zone,
            "instanceType": env.instance_type, "desired": env.desired, "nodes": nodes,
            "created": iso(env.create_time)}


def overview(broker: Broker, sim: BatchSim) -> dict:
    _, queues = broker.list_queues("", 0, broker.limits.max_queues)
    _, topics = broker.list_topics("", 0, broker.limits.max_topics)
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

def queue_detail(queue: Queue) -> dict:
    return {**queue_row(queue), "settings": queue.settings.as_dict(), "created": _time(queue.create_time),
            "modified": _time(queue.last_modify_time), "oldest": _time(queue.min_msg_time())}


def message_row(msg: Message, wall_minus_mono: float) -> dict:
    return {
        "id": str(msg.id),
        "state": STATE_NAMES[msg.state],
        "enqueued": iso(msg.enqueue_time),
        "firstDequeued": _time(msg.first_dequeue_time),
        "dequeueCount": msg.dequeue_count,
        "visibleAt": _time(msg.due + wall_minus_mono) if msg.due else None,
        "size": len(msg.body.encode("utf-8", "surrogatepass")),
        **summary(msg.body),
    }


def message_detail(msg: Message, wall_minus_mono: float) -> dict:
    return {**message_row(msg, wall_minus_mono), "body": msg.body, "decoded": decode(msg.body)}


def wall_minus_mono(broker: Broker) -> float:
    return broker.clock.time() - broker.clock.monotonic()


# -- topics -------------------------------------------------------------------------------------

def _filter_name(topic: Topic) -> str:
    return "routing key" if topic.filter_type == 2 else "tags"


def subscription_row(sub: Subscription) -> dict:
    return {
        "name": sub.name, "id": sub.sub_id, "protocol": sub.protocol, "endpoint": sub.endpoint,
        "strategy": sub.notify_strategy, "format": sub.notify_content_format,
        "filterTags": list(sub.filter_tags), "bindingKeys": list(sub.binding_keys),
        "pending": sub.pending, "delivered": sub.delivered, "dropped": sub.dropped,
        "created": _time(sub.create_time),
    }


def topic_detail(topic: Topic) -> dict:
    return {**topic_row(topic), "settings": topic.settings.as_dict(), "created": _time(topic.create_time),
            "modified": _time(topic.last_modify_time),
            "subscriptionList": [subscription_row(s) for s in
                                 sorted(topic.subscriptions.values(), key=lambda s: s.name.lower())]}


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


def batch_options(broker: Broker, sim: BatchSim, region: str) -> dict:
    """What the Batch forms offer: zones and instance types of the region, topics, environments, events."""
    rows = catalogue.configs(region=region)
    zones: dict[str, list[str]] = {}
    for row in rows:
        zones.setdefault(row["Zone"], []).append(row["InstanceType"])
    _, topics = broker.list_topics("", 0, broker.limits.max_topics)
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
