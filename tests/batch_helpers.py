"""Batch on the wire, for the end-to-end Batch tests (test_batch_*.py): request builders, event
sinks, and checks of every field of every event (spec batch-api.md §3, §5-§8).

A `Sink` is a CMQ topic with a queue subscribed to it (protocol=queue,
notifyContentFormat=SIMPLIFIED); what Batch publishes there is read back by draining the queue
(batch_receive_message + delete) and Base64-decoding each body (`decode_event`). Tests wait for an
expected event with a deadline, never for a fixed time (`Sink.wait_for`), then check:

- the exact event-name sequence wherever the simulator's order is deterministic: per instance
  (RUNNING once per attempt, then one terminal event), per task, per job (JOB_RUNNING once per run),
  per cause instance → task → job, and dependency order (downstream tasks start after upstream);
- every field of every decoded body (`check_event`, `check_all`): EventVersion "1.0", EventTime as
  YYYY-MM-DDThh:mm:ssZ, Region, EventName, EventVars carried through from the EventConfig, and the
  Batch object's exact key set and values per spec §7.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
import time
from collections import defaultdict
from typing import Any, Callable

from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.topic import TopicMeta

from helpers import REGION, call, queue_meta, sub_meta, unique_name

TIME_SCALE = "0.1"  # every simulated delay x0.1: BATCH_SIM_DURATION=30 runs for 3 s
ZONE = "ap-guangzhou-3"
INSTANCE_TYPE = "S5.MEDIUM4"  # 2 CPU, 4 GiB in the catalogue
CPU, MEM = 2, 4
WAIT = 20.0  # deadline for any one expected event
QUIET = 0.6  # how long "nothing more arrives" is watched (several simulated delays at this scale)

JOB_EVENTS = ["JOB_RUNNING", "JOB_SUCCEED", "JOB_FAILED", "JOB_FAILED_INTERRUPTED"]
TASK_EVENTS = ["TASK_RUNNING", "TASK_SUCCEED", "TASK_FAILED", "TASK_FAILED_INTERRUPTED"]
INSTANCE_EVENTS = ["TASK_INSTANCE_RUNNING", "TASK_INSTANCE_SUCCEED", "TASK_INSTANCE_FAILED",
                   "TASK_INSTANCE_FAILED_INTERRUPTED"]
NODE_EVENTS = ["COMPUTE_NODE_CREATED", "COMPUTE_NODE_CREATION_FAILED", "COMPUTE_NODE_RUNNING",
               "COMPUTE_NODE_ABNORMAL", "COMPUTE_NODE_DELETING"]
ENV_EVENTS = ["COMPUTE_ENV_CREATED", "COMPUTE_ENV_DELETED"]
ALL_EVENTS = JOB_EVENTS + TASK_EVENTS + INSTANCE_EVENTS + NODE_EVENTS + ENV_EVENTS

ENVELOPE_KEYS = {"EventVersion", "EventTime", "Region", "Batch", "EventName", "EventVars"}
JOB_KEYS = {"JobId", "JobName", "JobState", "Priority", "Zone", "CreateTime", "EndTime", "StateReason"}
TASK_KEYS = {"JobId", "JobName", "TaskName", "TaskState", "TaskInstanceNum", "CreateTime", "EndTime"}
INSTANCE_KEYS = {"JobId", "JobName", "TaskName", "TaskInstanceIndex", "TaskInstanceState", "ExitCode",
                 "StateReason", "ComputeNodeInstanceId", "CreateTime", "LaunchTime", "RunningTime", "EndTime"}
ENV_KEYS = {"EnvId", "EnvName", "EnvType", "ResourceType", "DesiredComputeNodeCount", "Zone", "CreateTime"}
# The documented COMPUTE_NODE_CREATED example, exactly; anonymous (per-attempt) nodes add the attempt.
NODE_KEYS = {"ComputeNodeId", "EnvId", "ComputeNodeState", "Mem", "Cpu", "ResourceCreatedTime", "EnvName",
             "ComputeNodeInstanceId"}
ANON_NODE_KEYS = NODE_KEYS | {"JobId", "TaskName", "TaskInstanceIndex"}
TERMINAL = {"SUCCEED", "FAILED", "FAILED_INTERRUPTED"}
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


# -- event sinks: a topic with a queue subscribed to it -------------------------------------------


def decode_event(body: str) -> dict:
    """One CMQ message body → its one event (the body must be padded standard Base64 of UTF-8 JSON)."""
    try:
        payload = base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise AssertionError(f"message body is not standard Base64: {body[:80]!r}") from exc
    envelope = json.loads(payload.decode("utf-8"))
    assert set(envelope) == {"Events"}, envelope
    assert isinstance(envelope["Events"], list) and len(envelope["Events"]) == 1, envelope
    return envelope["Events"][0]


class Sink:
    """A CMQ topic and a queue subscribed to it (SIMPLIFIED): what Batch publishes there, decoded."""

    def __init__(self, account: Account, prefix: str):
        self.topic = account.get_topic(unique_name(prefix))
        self.topic.create(TopicMeta())
        self.name = self.topic.topicName
        self.queue = account.get_queue(unique_name(prefix + "q"))
        self.queue.create(queue_meta())
        self.subscription = account.get_subscription(self.name, unique_name("s"))
        self.subscription.create(sub_meta("queue", self.queue.queue_name, fmt="SIMPLIFIED"))
        self.events: list[dict] = []

    def drain(self, wait: int = 0) -> list[dict]:
        """Receive (and delete) everything now visible; long-poll up to `wait` s for the first batch."""
        new: list[dict] = []
        while True:
            try:
                msgs = self.queue.batch_receive_message(16, polling_wait_seconds=wait)
            except CMQServerException as exc:
                assert exc.code == 7000, exc  # no message
                break
            self.queue.batch_delete_message([m.receiptHandle for m in msgs])
            new += [decode_event(m.msgBody) for m in msgs]
            wait = 0
        self.events += new
        return new

    def wait_for(self, match: str | Callable[[dict], bool], count: int = 1, timeout: float = WAIT) -> list[dict]:
        """Drain until `count` events matching `match` (an event name or a predicate) have arrived
        in all; then drain once more (an event's same-moment followers are already queued)."""
        pred = (lambda e: e["EventName"] == match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while sum(map(pred, self.events)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout}s for {count} x {match}; got {names(self.events)}")
            self.drain(wait=1)
        self.drain()
        return self.events

    def quiet(self, seconds: float = QUIET) -> list[dict]:
        """Whatever arrives within `seconds` (for asserting that nothing more comes)."""
        deadline = time.monotonic() + seconds
        new: list[dict] = []
        while time.monotonic() < deadline:
            new += self.drain()
            time.sleep(0.05)
        return new

    def delete(self) -> None:
        for thing in (self.subscription, self.topic, self.queue):
            try:
                thing.delete()
            except CMQServerException:
                pass


# -- building requests ----------------------------------------------------------------------------


def anon_task(name: str, n: int = 1, env_vars: dict | None = None, **extra) -> dict:
    """A Task on an anonymous (per-attempt) compute environment."""
    spec = {"TaskName": name, "TaskInstanceNum": n,
            "Application": {"DeliveryForm": "LOCAL", "Command": f"echo {name}"},
            "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": INSTANCE_TYPE}}}
    if env_vars:
        spec["EnvVars"] = [{"Name": k, "Value": str(v)} for k, v in env_vars.items()]
    spec.update(extra)
    return spec


def env_task(name: str, env_id: str, n: int = 1, env_vars: dict | None = None, **extra) -> dict:
    """A Task on a named compute environment."""
    spec = {"TaskName": name, "TaskInstanceNum": n, "EnvId": env_id,
            "Application": {"DeliveryForm": "LOCAL", "Command": f"echo {name}"}}
    if env_vars:
        spec["EnvVars"] = [{"Name": k, "Value": str(v)} for k, v in env_vars.items()]
    spec.update(extra)
    return spec


def notification(topic: str, *names: str, event_vars: dict[str, list] | None = None) -> dict:
    configs = []
    for name in names:
        config = {"EventName": name}
        if event_vars and name in event_vars:
            config["EventVars"] = event_vars[name]
        configs.append(config)
    return {"TopicName": topic, "EventConfigs": configs}


def submit(client, job: dict, zone: str = ZONE) -> str:
    job_id = call(client, "SubmitJob", {"Placement": {"Zone": zone}, "Job": job})["JobId"]
    assert re.fullmatch(r"job-[a-z0-9]{8}", job_id), job_id
    return job_id


def create_env(client, env: dict, zone: str = ZONE) -> str:
    env_id = call(client, "CreateComputeEnv", {"Placement": {"Zone": zone}, "ComputeEnv": env})["EnvId"]
    assert re.fullmatch(r"env-[a-z0-9]{8}", env_id), env_id
    return env_id


def named_env(name: str, desired: int, topic: str | None = None, *events: str, instance_type: str = INSTANCE_TYPE,
              event_vars: dict | None = None, **extra) -> dict:
    env = {"EnvName": name, "EnvType": "MANAGED", "DesiredComputeNodeCount": desired,
           "EnvData": {"InstanceType": instance_type}}
    if topic:
        env["Notifications"] = [notification(topic, *events, event_vars=event_vars)]
    env.update(extra)
    return env


# -- checking events ------------------------------------------------------------------------------


def names(events: list[dict]) -> list[str]:
    return [e["EventName"] for e in events]


def kind(name: str) -> str:
    for prefix, k in (("TASK_INSTANCE_", "instance"), ("TASK_", "task"), ("JOB_", "job"),
                      ("COMPUTE_NODE_", "node"), ("COMPUTE_ENV_", "env")):
        if name.startswith(prefix):
            return k
    raise AssertionError(f"{name} is not a Batch event")


def state_of(name: str) -> str:
    for prefix in ("TASK_INSTANCE_", "TASK_", "JOB_", "COMPUTE_NODE_", "COMPUTE_ENV_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    raise AssertionError(name)


def is_time(value: Any) -> bool:
    return isinstance(value, str) and bool(ISO.match(value))


def epoch(value: str) -> int:
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


def check_event(ev: dict, region: str = REGION, event_vars: dict[str, list] | None = None) -> None:
    """Every field of one decoded event, by spec §7 and the Batch object proposals there."""
    assert set(ev) == ENVELOPE_KEYS, ev
    name = ev["EventName"]
    assert name in ALL_EVENTS, ev
    assert ev["EventVersion"] == "1.0", ev
    assert is_time(ev["EventTime"]) and abs(epoch(ev["EventTime"]) - time.time()) < 120, ev
    assert ev["Region"] == region, ev
    assert isinstance(ev["EventVars"], list), ev
    assert all(set(v) == {"Name", "Value"} for v in ev["EventVars"]), ev
    if event_vars is not None:
        assert ev["EventVars"] == event_vars.get(name, []), ev
    b, state, k = ev["Batch"], state_of(name), kind(name)
    ended = state in TERMINAL
    if k == "job":
        assert set(b) == JOB_KEYS, ev
        assert b["JobState"] == state and re.fullmatch(r"job-[a-z0-9]+", b["JobId"]), ev
        assert isinstance(b["Priority"], int) and is_time(b["CreateTime"]), ev
        assert (is_time(b["EndTime"]) and b["EndTime"] >= b["CreateTime"]) if ended else b["EndTime"] is None, ev
        assert isinstance(b["StateReason"], str), ev
        if state in ("RUNNING", "SUCCEED"):
            assert b["StateReason"] == "", ev
        else:
            assert b["StateReason"], ev
    elif k == "task":
        assert set(b) == TASK_KEYS, ev
        assert b["TaskState"] == state and isinstance(b["TaskInstanceNum"], int) and b["TaskInstanceNum"] >= 1, ev
        assert is_time(b["CreateTime"]), ev
        assert (is_time(b["EndTime"]) and b["EndTime"] >= b["CreateTime"]) if ended else b["EndTime"] is None, ev
    elif k == "instance":
        assert set(b) == INSTANCE_KEYS, ev
        assert b["TaskInstanceState"] == state and isinstance(b["TaskInstanceIndex"], int), ev
        assert is_time(b["CreateTime"]), ev
        if state == "RUNNING":
            assert b["ExitCode"] is None and b["StateReason"] == "" and b["EndTime"] is None, ev
            assert b["ComputeNodeInstanceId"].startswith("ins-"), ev
            assert is_time(b["LaunchTime"]) and is_time(b["RunningTime"]), ev
            assert b["CreateTime"] <= b["LaunchTime"] <= b["RunningTime"], ev
        else:
            assert is_time(b["EndTime"]) and b["EndTime"] >= b["CreateTime"], ev
            assert isinstance(b["ComputeNodeInstanceId"], str), ev
        if state == "SUCCEED":
            assert b["ExitCode"] == 0 and b["StateReason"] == "", ev
            assert b["CreateTime"] <= b["LaunchTime"] <= b["RunningTime"] <= b["EndTime"], ev
        if state in ("FAILED", "FAILED_INTERRUPTED"):
            assert b["StateReason"], ev
    elif k == "node":
        assert set(b) == (NODE_KEYS if b.get("EnvId") else ANON_NODE_KEYS), ev
        assert b["ComputeNodeState"] == state and re.fullmatch(r"node-[a-z0-9]+", b["ComputeNodeId"]), ev
        assert isinstance(b["Cpu"], int) and isinstance(b["Mem"], int) and b["Cpu"] > 0 and b["Mem"] > 0, ev
        if b["EnvId"]:
            assert b["EnvId"].startswith("env-") and isinstance(b["EnvName"], str) and b["EnvName"], ev
        else:
            assert b["EnvName"] == "" and b["JobId"].startswith("job-") and isinstance(b["TaskInstanceIndex"], int)
        if state == "CREATION_FAILED" or (state == "DELETING" and not b["ComputeNodeInstanceId"]):
            # never created: no CVM id, no creation time
            assert b["ComputeNodeInstanceId"] in ("", None) and b["ResourceCreatedTime"] in ("", None), ev
        else:
            assert b["ComputeNodeInstanceId"].startswith("ins-") and is_time(b["ResourceCreatedTime"]), ev
    else:
        assert set(b) == ENV_KEYS, ev
        assert b["EnvId"].startswith("env-") and b["EnvType"] == "MANAGED" and b["ResourceType"] == "CVM", ev
        assert isinstance(b["DesiredComputeNodeCount"], int) and is_time(b["CreateTime"]), ev
        assert isinstance(b["EnvName"], str) and isinstance(b["Zone"], str), ev


def check_all(events: list[dict], region: str = REGION, event_vars: dict[str, list] | None = None) -> None:
    for ev in events:
        check_event(ev, region, event_vars)
    times = [ev["EventTime"] for ev in events]
    assert times == sorted(times), "EventTime goes backwards in the stream"


def of_instance(events: list[dict], task: str, index: int) -> list[dict]:
    return [e for e in events if kind(e["EventName"]) == "instance"
            and (e["Batch"]["TaskName"], e["Batch"]["TaskInstanceIndex"]) == (task, index)]


def of_task(events: list[dict], task: str) -> list[dict]:
    return [e for e in events if kind(e["EventName"]) == "task" and e["Batch"]["TaskName"] == task]


def of_kind(events: list[dict], *kinds: str) -> list[dict]:
    return [e for e in events if kind(e["EventName"]) in kinds]


def by_node(events: list[dict]) -> dict[str, list[tuple[int, dict]]]:
    """ComputeNodeId → [(position in `events`, node event)], in order."""
    nodes: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for pos, e in enumerate(events):
        if kind(e["EventName"]) == "node":
            nodes[e["Batch"]["ComputeNodeId"]].append((pos, e))
    return nodes


def describe_env(client, env_id: str) -> dict:
    return call(client, "DescribeComputeEnv", {"EnvId": env_id})

