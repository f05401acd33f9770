"""Applying a plan to a running broker: create what is missing, bring declared attributes in line.

Idempotent by construction: an object that exists is compared with its declaration and touched
only where a declared value differs, so applying the same plan again (or after a restart from a
data directory) records nothing. Attributes the file leaves out are left as they are, and
nothing is ever deleted. A compute environment is identified by its EnvName (the simulator
assigns its id): an ACTIVE environment of that name counts as already provisioned.

Two phases. The `_check_*` functions judge everything that depends on the broker's current
state (a referenced topic or queue that is neither declared nor present, a topic's filterType or
a subscription's endpoint that cannot change, the limits) before anything changes, so a refused
file normally leaves no trace. Then every change goes through the engine's and the simulator's own entry
points, exactly as the CMQ and Batch actions do: the same checks, journal records and events.
"""

from __future__ import annotations

import logging
from typing import Any

from ..batchsim import BatchSim, catalogue, validate
from ..batchsim import states as S
from ..batchsim.model import Env
from ..engine import Broker
from ..engine.topic import FILTER_ROUTING, FILTER_TAGS, MAX_SUBSCRIPTIONS
from ..errors import BrokerError, StorageUnavailable
from .plan import EnvDecl, Plan, ProvisionError, QueueDecl, SubscriptionDecl, TopicDecl, Where, engine_error, show

log = logging.getLogger("broker.provision")


def _exists(lookup, name: str) -> Any:
    try:
        return lookup(name)
    except BrokerError:
        return None


def find_env(sim: BatchSim, name: str) -> Env | None:
    """The oldest ACTIVE environment called `name` (Batch does not make names unique)."""
    found = [e for e in sim.envs.values() if e.name == name and e.state == S.ENV_ACTIVE]
    return min(found, key=lambda e: e.create_time) if found else None


# -- phase 1: judge the plan against the state -------------------------------------------------

def _check_queues(plan: Plan, broker: Broker) -> None:
    total, limit = broker.list_queues("", 0, 0)[0], broker.limits.max_queues
    for q in plan.queues:
        queue = _exists(broker.get_queue, q.name)
        if queue is None:
            total += 1
            if total > limit:
                raise q.where.error("name", f"one queue too many: the broker holds at most {limit} (--max-queues)")
            continue
        try:
            queue.settings.updated(q.settings)  # declared values may clash with ones the file leaves out
        except BrokerError as exc:
            raise engine_error(q.where, exc, "name") from None


def _check_topics(plan: Plan, broker: Broker) -> None:
    total, limit = broker.list_topics("", 0, 0)[0], broker.limits.max_topics
    for t in plan.topics:
        topic = _exists(broker.get_topic, t.name)
        if topic is None:
            total += 1
            if total > limit:
                raise t.where.error("name", f"one topic too many: the broker holds at most {limit} (--max-topics)")
            continue
        if t.filter_type is not None and t.filter_type != topic.filter_type:
            raise t.where.error("filterType", f"the topic exists with filterType {topic.filter_type}, which cannot "
                                              f"change: declare filterType = {topic.filter_type}, or delete the topic "
                                              "first")


def _check_subscriptions(plan: Plan, broker: Broker) -> None:
    queues = {q.name.lower() for q in plan.queues}
    topics = {t.name.lower(): t for t in plan.topics}
    added: dict[str, int] = {}  # new subscriptions per topic
    for s in plan.subscriptions:
        topic, declared = _exists(broker.get_topic, s.topic), topics.get(s.topic.lower())
        if topic is None and declared is None:
            raise s.where.error("topic", f"no topic {show(s.topic)}: declare it in a [[topic]] table, or create it "
                                         "first")
        if s.protocol == "queue" and s.endpoint.lower() not in queues and _exists(broker.get_queue, s.endpoint) is None:
            raise s.where.error("endpoint", f"no queue {show(s.endpoint)}: declare it in a [[queue]] table, or create "
                                            "it first")
        sub = _exists(topic.get_subscription, s.name) if topic is not None else None
        if sub is not None:
            # Queue names ignore case; URLs do not.
            same = sub.endpoint.lower() == s.endpoint.lower() if s.protocol == "queue" else sub.endpoint == s.endpoint
            if sub.protocol != s.protocol or not same:
                raise s.where.error("protocol" if sub.protocol != s.protocol else "endpoint",
                                    f"the subscription exists with protocol {show(sub.protocol)} and endpoint "
                                    f"{show(sub.endpoint)}, which cannot change: declare those, or unsubscribe it "
                                    "first")
            continue
        filter_type = topic.filter_type if topic is not None else (declared.filter_type or FILTER_TAGS)
        if broker.strict and filter_type == FILTER_ROUTING and not s.binding_keys:
            raise s.where.error("bindingKey", "required in strict mode for a subscription to a routing-key topic")
        added[s.topic.lower()] = added.get(s.topic.lower(), 0) + 1
        if added[s.topic.lower()] + (len(topic.subscriptions) if topic is not None else 0) > MAX_SUBSCRIPTIONS:
            raise s.where.error("name", f"topic {show(s.topic)} would have more than {MAX_SUBSCRIPTIONS} subscriptions")


def _check_envs(plan: Plan, broker: Broker, sim: BatchSim) -> None:
    topics = {t.name.lower() for t in plan.topics}
    for e in plan.envs:
        for i, note in enumerate(e.notifications):
            if note.topic.lower() not in topics and _exists(broker.get_topic, note.topic) is None:
                raise e.where.error(f"Notifications.{i}.TopicName", f"no topic {show(note.topic)}: declare it in a "
                                                                     "[[topic]] table, or create it first")
        env = find_env(sim, e.name)
        if env is None:
            continue
        if env.zone != e.zone:
            raise e.where.error("Zone", f"the environment exists ({env.env_id}) in {env.zone} and cannot move: "
                                        f"declare Zone = {show(env.zone)}, or delete it first (DeleteComputeEnv)")
        if "Notifications" in e.spec and env.notifications != e.notifications:
            raise e.where.error("Notifications", f"the environment exists ({env.env_id}) with other notifications, "
                                                 "which cannot change: declare those, or delete it first "
                                                 "(DeleteComputeEnv)")


# -- phase 2: apply ---------------------------------------------------------------------------

def _queue(broker: Broker, q: QueueDecl, done: list[str]) -> None:
    queue = _exists(broker.get_queue, q.name)
    if queue is None:
        broker.create_queue(q.name, q.settings)
        done.append(f"created queue {q.name}")
        return
    changes = {k: v for k, v in q.settings.items() if getattr(queue.settings, k) != v}
    if changes:
        broker.set_queue_attributes(q.name, changes)
        done.append(f"set {', '.join(changes)} of queue {q.name}")


def _topic(broker: Broker, t: TopicDecl, done: list[str]) -> None:
    topic = _exists(broker.get_topic, t.name)
    if topic is None:
        broker.create_topic(t.name, t.filter_type or FILTER_TAGS, t.settings)
        done.append(f"created topic {t.name}")
        return
    changes = {k: v for k, v in t.settings.items() if getattr(topic.settings, k) != v}
    if changes:
        broker.set_topic_attributes(t.name, changes)
        done.append(f"set {', '.join(changes)} of topic {t.name}")


def _subscription(broker: Broker, s: SubscriptionDecl, done: list[str]) -> None:
    sub = _exists(broker.get_topic(s.topic).get_subscription, s.name)
    if sub is None:
        broker.subscribe(s.topic, s.name, s.protocol, s.endpoint, strategy=s.strategy, content_format=s.content_format,
                         filter_tags=s.filter_tags, binding_keys=s.binding_keys)
        done.append(f"subscribed {s.name} to topic {s.topic}")
        return
    changes: dict[str, Any] = {}
    if s.strategy is not None and s.strategy.upper() != sub.notify_strategy:
        changes["strategy"] = s.strategy
    if s.content_format is not None and s.content_format.upper() != sub.notify_content_format:
        changes["content_format"] = s.content_format
    if s.filter_tags is not None and tuple(s.filter_tags) != sub.filter_tags:
        changes["filter_tags"] = s.filter_tags
    if s.binding_keys is not None and tuple(s.binding_keys) != sub.binding_keys:
        changes["binding_keys"] = s.binding_keys
    if changes:
        broker.update_subscription(s.topic, s.name, **changes)
        done.append(f"updated subscription {s.name} of topic {s.topic}")


def _env(sim: BatchSim, e: EnvDecl, done: list[str]) -> None:
    env = find_env(sim, e.name)
    if env is None:
        env = sim.create_env(e.spec, {"Zone": e.zone}, catalogue.region_of(e.zone))
        done.append(f"created compute environment {e.name} ({env.env_id})")
        return
    # One ModifyComputeEnv per attribute, so that a refusal names its own key.
    desired, description = e.spec.get("DesiredComputeNodeCount"), e.spec.get("EnvDescription")
    if desired is not None and desired != env.desired:
        _guarded(e.where, "DesiredComputeNodeCount", lambda: sim.modify_env(env.env_id, desired=desired))
        done.append(f"scaled compute environment {e.name} to {desired} node(s)")
    if description is not None and description != env.description:
        _guarded(e.where, "EnvDescription", lambda: sim.modify_env(env.env_id, description=description))
        done.append(f"set the description of compute environment {e.name}")
    if validate.instance_type(e.spec["EnvData"], "")[0] != env.instance_type:
        _guarded(e.where, "EnvData", lambda: sim.modify_env(env.env_id, env_data=e.spec["EnvData"]))
        done.append(f"set the instance type of compute environment {e.name}")


def _guarded(where: Where, key: str, action) -> None:
    try:
        action()
    except BrokerError as exc:
        raise engine_error(where, exc, key) from None


def apply_plan(plan: Plan, broker: Broker, sim: BatchSim) -> list[str]:
    """Bring the broker in line with `plan`; return what changed, one line each (empty when
    nothing had to). Raises ProvisionError naming the line and key at fault."""
    _check_queues(plan, broker)
    _check_topics(plan, broker)
    _check_subscriptions(plan, broker)
    _check_envs(plan, broker, sim)
    done: list[str] = []
    steps = [(_queue, broker, plan.queues, "name"), (_topic, broker, plan.topics, "name"),
             (_subscription, broker, plan.subscriptions, "name"), (_env, sim, plan.envs, "EnvName")]
    for step, target, decls, key in steps:
        for decl in decls:
            _guarded(decl.where, key, lambda: step(target, decl, done))
    log.info("provisioned from %s: %s", plan.file, "; ".join(done) if done else "nothing to change")
    return done


async def provision(plan: Plan, broker: Broker, sim: BatchSim, durability=None) -> list[str]:
    """`apply_plan`, then wait until its records are on disk (with --data-dir), as a request's
    reply would: once the port opens, what the file declares is there and durable."""
    done = apply_plan(plan, broker, sim)
    if durability is not None:
        try:
            await durability.commit()
        except StorageUnavailable as exc:
            raise ProvisionError(f"{plan.file}: {exc.message}") from None
    return done
