"""End to end: the simulated Batch engine, driven by the official Batch SDK and observed through the
official CMQ SDK (issue 5, item 8; spec batch-api.md §3, §5-§8).

One broker process serves the module, started with `--batch-time-scale` so that every simulated
delay is a tenth of its default and the whole module runs in seconds. Each test makes its own CMQ
topic(s), each with a queue subscribed (protocol=queue, notifyContentFormat=SIMPLIFIED); events are
read back by draining the queue (batch_receive_message + delete) and Base64-decoding each body.
Tests wait for an expected event with a deadline, never for a fixed time, and then check:

- the exact event-name sequence wherever the simulator's order is deterministic: per instance
  (RUNNING once per attempt, then one terminal event), per task, per job (JOB_RUNNING once per run),
  per cause instance → task → job, and dependency order (downstream tasks start after upstream);
- every field of every decoded body: EventVersion "1.0", EventTime as YYYY-MM-DDThh:mm:ssZ,
  Region, EventName, EventVars carried through from the EventConfig, and the Batch object's exact
  key set and values per spec §7.

Timing assertions are deliberately loose: parallel attempts may interleave in any order.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
import time
import urllib.request
import uuid
import warnings
from collections import defaultdict
from typing import Any, Callable, Iterator

import pytest
from cmq.account import Account
from cmq.cmq_exception import CMQServerException
from cmq.subscription import SubscriptionMeta
from cmq.topic import TopicMeta
from tencentcloud.batch.v20170312 import batch_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from conftest import ANY_ID, ANY_KEY, BrokerProcess, queue_meta, run_broker, unique_name

TIME_SCALE = "0.1"  # every simulated delay x0.1: BATCH_SIM_DURATION=30 runs for 3 s
REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
INSTANCE_TYPE = "S5.MEDIUM4"  # 2 CPU, 4 GiB in the catalogue
CPU, MEM = 2, 4
WAIT = 20.0  # deadline for any one expected event
QUIET = 0.6  # how long "nothing more arrives" is watched (several simulated delays at this scale)
SECRET_ID, SECRET_KEY = "AKIDe2ebatch", "e2e-batch-secret"

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


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # The Batch SDK (requests) honours HTTP_PROXY unless NO_PROXY covers the host.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def broker_args(*extra: str) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--batch-time-scale", TIME_SCALE, *extra]


@pytest.fixture(scope="module")
def bb() -> Iterator[BrokerProcess]:
    """The module's broker: no signature checks, simulated time x0.1."""
    with run_broker(broker_args()) as b:
        yield b
        if b.proc.poll() is not None:
            pytest.fail(f"the Batch broker exited early with status {b.proc.returncode}:\n{b.stderr()}")


def batch(port: int, secret_id: str = ANY_ID, secret_key: str = ANY_KEY,
          region: str = REGION) -> batch_client.BatchClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}"))
    return batch_client.BatchClient(credential.Credential(secret_id, secret_key), region, profile)


@pytest.fixture
def bc(bb) -> batch_client.BatchClient:
    return batch(bb.port)


def call(client: batch_client.BatchClient, action: str, params: dict | None = None) -> dict:
    """Call `action` through the SDK's typed request/response models; the reply as a dict.

    The request model is filled from `params`; a key the model does not know would be dropped
    silently by the SDK, so its warning is turned into an error here.
    """
    req = getattr(models, f"{action}Request")()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        req.from_json_string(json.dumps(params or {}))
    return json.loads(getattr(client, action)(req).to_json_string())


def sdk_error(client, action: str, params: dict | None = None) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call(client, action, params)
    assert info.value.message, info.value
    return info.value


def raw(port: int, action: str, params: Any, region: str = REGION) -> dict:
    """POST one unsigned API 3.0 request (what only raw HTTP can send: lower-case keys); its Response."""
    body = json.dumps(params).encode()
    headers = {"Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2017-03-12",
               "X-TC-Region": region}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())["Response"]


# -- event sinks: a topic with a queue subscribed to it -------------------------------------------


def decode(body: str) -> dict:
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
        meta = SubscriptionMeta()
        meta.Protocal = "queue"
        meta.Endpoint = self.queue.queue_name
        meta.NotifyContentFormat = "SIMPLIFIED"
        self.subscription.create(meta)
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
            new += [decode(m.msgBody) for m in msgs]
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


@pytest.fixture
def sinks(bb) -> Iterator[Callable[[str], Sink]]:
    made: list[Sink] = []

    def make(prefix: str = "bt", account: Account | None = None) -> Sink:
        sink = Sink(account or bb.account(), prefix)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.delete()


# -- building requests ----------------------------------------------------------------------------


def uid() -> str:
    return uuid.uuid4().hex[:8]


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


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.05)


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


# == the main DAG ==================================================================================


def test_dag_job_with_retries_event_stream(bb, bc, sinks):
    """A → B, A → C; A has 2 instances; C exits 2 on every attempt and may retry once."""
    everything, job_only, bystander = sinks("dag"), sinks("dagjob"), sinks("dagnone")
    written = {  # as people write them → canonical
        "JobRunning": "JOB_RUNNING", "JobSucceed": "JOB_SUCCEED", "job_failed": "JOB_FAILED",
        "JOB_FAILED_INTERRUPTED": "JOB_FAILED_INTERRUPTED",
        "TaskRunning": "TASK_RUNNING", "task_succeed": "TASK_SUCCEED", "TASK_FAILED": "TASK_FAILED",
        "TaskFailedInterrupted": "TASK_FAILED_INTERRUPTED",
        "TaskInstanceRunning": "TASK_INSTANCE_RUNNING", "task_instance_succeed": "TASK_INSTANCE_SUCCEED",
        "TaskInstanceFailed": "TASK_INSTANCE_FAILED", "task-instance-failed-interrupted": "TASK_INSTANCE_FAILED_INTERRUPTED",
        "ComputeNodeCreated": "COMPUTE_NODE_CREATED", "compute_node_creation_failed": "COMPUTE_NODE_CREATION_FAILED",
        "COMPUTE_NODE_RUNNING": "COMPUTE_NODE_RUNNING", "ComputeNodeAbnormal": "COMPUTE_NODE_ABNORMAL",
        "ComputeNodeDeleting": "COMPUTE_NODE_DELETING",
    }
    # EventVars per event (canonical name → what must come back); two events configured without any.
    expected_vars = {canon: [{"Name": "event", "Value": canon}, {"Name": "suite", "Value": "dag"}]
                     for canon in written.values() if canon not in ("TASK_SUCCEED", "COMPUTE_NODE_RUNNING")}
    configs = []
    for given, canon in written.items():
        config = {"EventName": given}
        if canon in expected_vars:
            config["EventVars"] = expected_vars[canon]
        configs.append(config)
    name = f"dag-{uid()}"
    job_id = submit(bc, {
        "JobName": name, "JobDescription": "the e2e DAG", "Priority": 7,
        "Tasks": [anon_task("A", 2), anon_task("B"),
                  anon_task("C", env_vars={"BATCH_SIM_EXIT_CODE": 2}, MaxRetryCount=1)],
        "Dependences": [{"StartTask": "A", "EndTask": "B"}, {"StartTask": "A", "EndTask": "C"}],
        "Notifications": [
            {"TopicName": everything.name, "EventConfigs": configs},
            # the product document's own example
            {"TopicName": job_only.name, "EventConfigs": [
                {"EventName": "JobFailed"},
                {"EventName": "JobSucceed", "EventVars": [{"Name": "jobSucceed", "Value": "Success"}]}]},
        ],
    })

    everything.wait_for("JOB_FAILED")
    assert everything.quiet() == [], "events after the job ended"
    events = everything.events
    check_all(events, event_vars=expected_vars)
    seq = names(events)
    counts = {n: seq.count(n) for n in sorted(set(seq))}
    print(f"DAG job {job_id}: {len(events)} events {counts}")

    # -- what arrived, by kind: A 2 attempts, B 1, C 2 (one retry) → 5 private nodes
    assert counts == {
        "COMPUTE_NODE_CREATED": 5, "COMPUTE_NODE_RUNNING": 5, "COMPUTE_NODE_DELETING": 5,
        "TASK_INSTANCE_RUNNING": 5, "TASK_INSTANCE_SUCCEED": 3, "TASK_INSTANCE_FAILED": 1,
        "TASK_RUNNING": 3, "TASK_SUCCEED": 2, "TASK_FAILED": 1,
        "JOB_RUNNING": 1, "JOB_FAILED": 1,
    }
    assert len(events) == 32

    # -- identity fields
    for ev in events:
        b = ev["Batch"]
        if kind(ev["EventName"]) != "node":
            assert b["JobId"] == job_id and b["JobName"] == name, ev
        else:
            assert b["JobId"] == job_id and (b["Cpu"], b["Mem"]) == (CPU, MEM), ev
            assert b["EnvId"] == "" and b["EnvName"] == "", ev
    for ev in of_kind(events, "job"):
        assert (ev["Batch"]["Priority"], ev["Batch"]["Zone"]) == (7, ZONE), ev
    for ev in of_kind(events, "task"):
        assert ev["Batch"]["TaskInstanceNum"] == {"A": 2, "B": 1, "C": 1}[ev["Batch"]["TaskName"]], ev

    # -- per instance: RUNNING once per attempt, then one terminal event (FAILED only after the last retry)
    for task, index, expected in [("A", 0, ["RUNNING", "SUCCEED"]), ("A", 1, ["RUNNING", "SUCCEED"]),
                                  ("B", 0, ["RUNNING", "SUCCEED"]), ("C", 0, ["RUNNING", "RUNNING", "FAILED"])]:
        assert [state_of(n) for n in names(of_instance(events, task, index))] == expected, (task, index)
    c_runs = [e for e in of_instance(events, "C", 0) if e["EventName"] == "TASK_INSTANCE_RUNNING"]
    c_nodes = [e["Batch"]["ComputeNodeInstanceId"] for e in c_runs]
    assert len(set(c_nodes)) == 2, "a retry runs on a new CVM"
    [c_failed] = [e for e in of_instance(events, "C", 0) if e["EventName"] == "TASK_INSTANCE_FAILED"]
    assert c_failed["Batch"]["ExitCode"] == 2 and c_failed["Batch"]["StateReason"]
    assert c_failed["Batch"]["ComputeNodeInstanceId"] in ("", c_nodes[1])

    # -- per task and job: RUNNING once, then the end
    assert names(of_task(events, "A")) == ["TASK_RUNNING", "TASK_SUCCEED"]
    assert names(of_task(events, "B")) == ["TASK_RUNNING", "TASK_SUCCEED"]
    assert names(of_task(events, "C")) == ["TASK_RUNNING", "TASK_FAILED"]
    assert names(of_kind(events, "job")) == ["JOB_RUNNING", "JOB_FAILED"]

    # -- per cause: instance → task → job, adjacent in the stream (node events left out)
    work = of_kind(events, "instance", "task", "job")
    work_seq = [(e["EventName"], e["Batch"].get("TaskName")) for e in work]
    assert work_seq[:3] == [("TASK_INSTANCE_RUNNING", "A"), ("TASK_RUNNING", "A"), ("JOB_RUNNING", None)]
    assert work_seq[-3:] == [("TASK_INSTANCE_FAILED", "C"), ("TASK_FAILED", "C"), ("JOB_FAILED", None)]
    a_done = work_seq.index(("TASK_SUCCEED", "A"))
    assert work_seq[a_done - 1] == ("TASK_INSTANCE_SUCCEED", "A")
    for task in ("B", "C"):
        first = work_seq.index(("TASK_INSTANCE_RUNNING", task))
        assert first > a_done, f"{task} started before A succeeded"
        assert work_seq[first + 1] == ("TASK_RUNNING", task)
    b_done = work_seq.index(("TASK_SUCCEED", "B"))
    assert work_seq[b_done - 1] == ("TASK_INSTANCE_SUCCEED", "B") and b_done < len(work_seq) - 3
    # every event of B and C comes after A succeeded
    all_a = [i for i, (_, t) in enumerate(work_seq) if t == "A"]
    assert max(all_a) == a_done and all(t != "A" for _, t in work_seq[a_done + 1:])

    # -- nodes: one private node per attempt, CREATED → RUNNING → DELETING; up before, gone after
    nodes = by_node(events)
    assert len(nodes) == 5
    ins_to_node = {}
    for node_id, evs in nodes.items():
        assert [e["EventName"] for _, e in evs] == ["COMPUTE_NODE_CREATED", "COMPUTE_NODE_RUNNING",
                                                     "COMPUTE_NODE_DELETING"], node_id
        same = {(e["Batch"]["ComputeNodeInstanceId"], e["Batch"]["TaskName"], e["Batch"]["TaskInstanceIndex"],
                 e["Batch"]["ResourceCreatedTime"]) for _, e in evs}
        assert len(same) == 1, evs
        ins_to_node[evs[0][1]["Batch"]["ComputeNodeInstanceId"]] = evs
    for task, index in [("A", 0), ("A", 1), ("B", 0), ("C", 0)]:
        inst = [(pos, e) for pos, e in enumerate(events) if kind(e["EventName"]) == "instance"
                and (e["Batch"]["TaskName"], e["Batch"]["TaskInstanceIndex"]) == (task, index)]
        runs = [(pos, e) for pos, e in inst if e["EventName"] == "TASK_INSTANCE_RUNNING"]
        end_pos = inst[-1][0]
        for n, (pos, run) in enumerate(runs):
            node = ins_to_node[run["Batch"]["ComputeNodeInstanceId"]]
            assert (node[0][1]["Batch"]["TaskName"], node[0][1]["Batch"]["TaskInstanceIndex"]) == (task, index)
            assert node[1][0] < pos, "the instance ran before its node was RUNNING"
            deleted = node[2][0]
            assert deleted > pos
            if n + 1 < len(runs):
                assert deleted < runs[n + 1][0], "the failed attempt's node outlived the retry"
            else:
                assert deleted > end_pos, "the node was destroyed before the instance's event"

    # -- only the topics whose EventConfigs name the event
    job_only.wait_for("JOB_FAILED")
    assert job_only.quiet(0.2) == []
    [failed] = job_only.events
    check_event(failed)
    [job_failed] = [e for e in events if e["EventName"] == "JOB_FAILED"]
    assert failed["EventVars"] == [] and failed["Batch"] == job_failed["Batch"]
    assert failed["EventTime"] == job_failed["EventTime"]
    assert bystander.drain() == []

    # -- the API agrees with the events
    job = call(bc, "DescribeJob", {"JobId": job_id})
    assert job["JobState"] == "FAILED" and job["StateReason"] == job_failed["Batch"]["StateReason"]
    assert (job["JobName"], job["Zone"], job["Priority"]) == (name, ZONE, 7)
    assert job["EndTime"] == job_failed["Batch"]["EndTime"] and job["CreateTime"] == job_failed["Batch"]["CreateTime"]
    assert [(t["TaskName"], t["TaskState"]) for t in job["TaskSet"]] == [("A", "SUCCEED"), ("B", "SUCCEED"),
                                                                         ("C", "FAILED")]
    assert sorted((d["StartTask"], d["EndTask"]) for d in job["DependenceSet"]) == [("A", "B"), ("A", "C")]
    assert job["TaskMetrics"]["SucceedCount"] == 2 and job["TaskMetrics"]["FailedCount"] == 1
    assert job["TaskInstanceMetrics"]["SucceedCount"] == 3 and job["TaskInstanceMetrics"]["FailedCount"] == 1

    # DescribeTask: filters and paging
    a = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "A"})
    assert (a["TaskState"], a["TaskInstanceTotalCount"]) == ("SUCCEED", 2)
    assert [i["TaskInstanceIndex"] for i in a["TaskInstanceSet"]] == [0, 1]
    for inst in a["TaskInstanceSet"]:
        assert inst["TaskInstanceState"] == "SUCCEED" and inst["ExitCode"] == 0
        assert all(is_time(inst[k]) for k in ("CreateTime", "LaunchTime", "RunningTime", "EndTime"))
    page = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "A", "Offset": 1, "Limit": 1})
    assert [i["TaskInstanceIndex"] for i in page["TaskInstanceSet"]] == [1]
    c = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "C",
                                  "Filters": [{"Name": "task-instance-state", "Values": ["FAILED"]}]})
    assert c["TaskState"] == "FAILED" and [i["ExitCode"] for i in c["TaskInstanceSet"]] == [2]
    none = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "C",
                                     "Filters": [{"Name": "task-instance-state", "Values": ["SUCCEED"]}]})
    assert none["TaskInstanceSet"] == []
    assert sdk_error(bc, "DescribeTask", {"JobId": job_id, "TaskName": "Z"}).code == "ResourceNotFound.Task"

    # DescribeTaskLogs: Base64 stdout per instance
    logs = call(bc, "DescribeTaskLogs", {"JobId": job_id, "TaskName": "A"})
    assert logs["TotalCount"] == 2 and [x["TaskInstanceIndex"] for x in logs["TaskInstanceLogSet"]] == [0, 1]
    for entry in logs["TaskInstanceLogSet"]:
        text = base64.b64decode(entry["StdoutLog"], validate=True)
        assert text and len(text) <= 2048
        text.decode("utf-8")
    one = call(bc, "DescribeTaskLogs", {"JobId": job_id, "TaskName": "C", "TaskInstanceIndexes": [0]})
    assert [x["TaskInstanceIndex"] for x in one["TaskInstanceLogSet"]] == [0]
    assert base64.b64decode(one["TaskInstanceLogSet"][0]["StdoutLog"], validate=True)

    # DescribeJobSubmitInfo echoes the job without its Notifications
    info = raw(bb.port, "DescribeJobSubmitInfo", {"JobId": job_id})
    assert "Notifications" not in info
    assert (info["JobName"], info["JobDescription"], info["Priority"]) == (name, "the e2e DAG", 7)
    assert [t["TaskName"] for t in info["Tasks"]] == ["A", "B", "C"]

    # finished: it can be deleted, and is gone
    call(bc, "DeleteJob", {"JobId": job_id})
    assert sdk_error(bc, "DescribeJob", {"JobId": job_id}).code == "ResourceNotFound.Job"


def test_describe_task_shows_the_node_only_while_running(bc, sinks):
    """TaskInstanceView.ComputeNodeInstanceId (SDK docstring, spec §4): "empty when the instance is
    not running or has finished; changes when the instance is retried"."""
    sink = sinks("view")
    job_id = submit(bc, {"JobName": f"view-{uid()}", "Tasks": [anon_task("t")],
                         "Notifications": [notification(sink.name, "TaskInstanceRunning", "JobSucceed")]})
    [running] = sink.wait_for("JOB_SUCCEED")[:1]
    assert running["Batch"]["ComputeNodeInstanceId"].startswith("ins-")
    [inst] = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "t"})["TaskInstanceSet"]
    assert inst["TaskInstanceState"] == "SUCCEED"
    assert inst["ComputeNodeInstanceId"] in ("", None), "a finished instance still shows its (destroyed) CVM"


# == failing jobs, termination, retry, delete ========================================================


def test_failing_job_and_retry_reruns_only_what_failed(bc, sinks):
    """ok → bad → after: bad exits 3 (no retries); after can then never run and fails unrun.
    RetryJobs re-runs bad and after only, in DAG order, and the job fails again."""
    sink = sinks("fail")
    name = f"fail-{uid()}"
    job_id = submit(bc, {"JobName": name, "Tasks": [
        anon_task("ok"), anon_task("bad", env_vars={"BATCH_SIM_EXIT_CODE": 3}), anon_task("after")],
        "Dependences": [{"StartTask": "ok", "EndTask": "bad"}, {"StartTask": "bad", "EndTask": "after"}],
        "Notifications": [notification(sink.name, *JOB_EVENTS, *TASK_EVENTS, *INSTANCE_EVENTS)]})
    sink.wait_for("JOB_FAILED")
    check_all(sink.events, event_vars={})
    first_run = [(e["EventName"], e["Batch"].get("TaskName")) for e in sink.events]
    assert first_run == [
        ("TASK_INSTANCE_RUNNING", "ok"), ("TASK_RUNNING", "ok"), ("JOB_RUNNING", None),
        ("TASK_INSTANCE_SUCCEED", "ok"), ("TASK_SUCCEED", "ok"),
        ("TASK_INSTANCE_RUNNING", "bad"), ("TASK_RUNNING", "bad"),
        ("TASK_INSTANCE_FAILED", "bad"), ("TASK_FAILED", "bad"),
        ("TASK_INSTANCE_FAILED", "after"), ("TASK_FAILED", "after"), ("JOB_FAILED", None),
    ]
    bad = sink.events[7]["Batch"]
    assert bad["ExitCode"] == 3 and bad["StateReason"]
    after = sink.events[9]["Batch"]  # never ran: no exit code, no node, no launch
    assert after["ExitCode"] is None and after["StateReason"] and after["ComputeNodeInstanceId"] == ""
    assert after["LaunchTime"] is None and after["RunningTime"] is None and is_time(after["EndTime"])
    job_failed = sink.events[-1]["Batch"]
    assert job_failed["JobState"] == "FAILED" and job_failed["StateReason"] and job_failed["JobName"] == name
    job = call(bc, "DescribeJob", {"JobId": job_id})
    assert job["JobState"] == "FAILED" and job["StateReason"] == job_failed["StateReason"]
    logs = call(bc, "DescribeTaskLogs", {"JobId": job_id, "TaskName": "bad"})
    assert base64.b64decode(logs["TaskInstanceLogSet"][0]["StdoutLog"], validate=True)

    # RetryJobs: FAILED instances back to SUBMITTED; ok (SUCCEED) is kept and emits nothing
    call(bc, "RetryJobs", {"JobIds": [job_id]})
    sink.wait_for("JOB_FAILED", count=2)
    check_all(sink.events, event_vars={})
    second_run = [(e["EventName"], e["Batch"].get("TaskName")) for e in sink.events[len(first_run):]]
    assert second_run == [
        ("TASK_INSTANCE_RUNNING", "bad"), ("TASK_RUNNING", "bad"), ("JOB_RUNNING", None),
        ("TASK_INSTANCE_FAILED", "bad"), ("TASK_FAILED", "bad"),
        ("TASK_INSTANCE_FAILED", "after"), ("TASK_FAILED", "after"), ("JOB_FAILED", None),
    ]
    rerun = sink.events[len(first_run) + 2]["Batch"]  # JOB_RUNNING after RetryJobs: end cleared
    assert rerun["EndTime"] is None and rerun["StateReason"] == ""
    ok = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "ok"})
    assert ok["TaskState"] == "SUCCEED" and ok["TaskInstanceSet"][0]["TaskInstanceState"] == "SUCCEED"
    call(bc, "DeleteJob", {"JobId": job_id})
    assert sdk_error(bc, "DeleteJob", {"JobId": job_id}).code == "ResourceNotFound.Job"


def test_terminate_then_retry_runs_to_success(bc, sinks):
    """Two long instances (BATCH_SIM_DURATION=30): TerminateTaskInstance one, TerminateJob the rest →
    FAILED, JOB_FAILED. RetryJobs → JOB_RUNNING again, then JOB_SUCCEED. DeleteJob only at the end."""
    sink = sinks("term")
    job_id = submit(bc, {"JobName": f"term-{uid()}", "Tasks": [
        anon_task("long", 2, env_vars={"BATCH_SIM_DURATION": 30})],
        "Notifications": [notification(sink.name, *JOB_EVENTS, *TASK_EVENTS, *INSTANCE_EVENTS,
                                       "COMPUTE_NODE_DELETING")]})
    sink.wait_for("TASK_INSTANCE_RUNNING", count=2)
    running = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "long"})
    assert [i["TaskInstanceState"] for i in running["TaskInstanceSet"]] == ["RUNNING", "RUNNING"]
    assert all(i["ComputeNodeInstanceId"].startswith("ins-") for i in running["TaskInstanceSet"])
    assert sdk_error(bc, "DeleteJob", {"JobId": job_id}).code == "ResourceInUse.Job"
    assert sdk_error(bc, "RetryJobs", {"JobIds": [job_id]}).code.startswith("UnsupportedOperation")

    # one instance first: the task does not fail early
    call(bc, "TerminateTaskInstance", {"JobId": job_id, "TaskName": "long", "TaskInstanceIndex": 0})
    sink.wait_for("TASK_INSTANCE_FAILED")
    assert sink.quiet(0.3) == []
    assert call(bc, "DescribeJob", {"JobId": job_id})["JobState"] == "RUNNING"
    call(bc, "TerminateJob", {"JobId": job_id})
    sink.wait_for("JOB_FAILED")
    check_all(sink.events, event_vars={})
    seq = [(e["EventName"], e["Batch"].get("TaskInstanceIndex")) for e in sink.events]
    assert seq[:3] == [("TASK_INSTANCE_RUNNING", 0), ("TASK_RUNNING", None), ("JOB_RUNNING", None)] or \
        seq[:3] == [("TASK_INSTANCE_RUNNING", 1), ("TASK_RUNNING", None), ("JOB_RUNNING", None)]
    # Anonymous env: the CVM is destroyed, then the instance becomes FAILED (spec §3).
    assert seq[4:] == [("COMPUTE_NODE_DELETING", 0), ("TASK_INSTANCE_FAILED", 0),
                       ("COMPUTE_NODE_DELETING", 1), ("TASK_INSTANCE_FAILED", 1),
                       ("TASK_FAILED", None), ("JOB_FAILED", None)], seq
    for ev in sink.events:
        if ev["EventName"] == "TASK_INSTANCE_FAILED":
            assert ev["Batch"]["StateReason"] and ev["Batch"]["ExitCode"] != 0
    terminated = len(sink.events)
    job = call(bc, "DescribeJob", {"JobId": job_id})
    assert job["JobState"] == "FAILED" and job["TaskInstanceMetrics"]["FailedCount"] == 2 and job["EndTime"]

    # RetryJobs: runs again (3 s at this scale) to the end
    call(bc, "RetryJobs", {"JobIds": [job_id]})
    sink.wait_for("JOB_RUNNING", count=2)
    again = call(bc, "DescribeJob", {"JobId": job_id})
    assert again["EndTime"] is None and again["StateReason"] == ""
    assert sdk_error(bc, "DeleteJob", {"JobId": job_id}).code == "ResourceInUse.Job"
    sink.wait_for("JOB_SUCCEED")
    check_all(sink.events, event_vars={})
    retried = [(e["EventName"], e["Batch"].get("TaskInstanceIndex")) for e in sink.events[terminated:]
               if not e["EventName"].startswith("COMPUTE_NODE")]
    assert retried.count(("JOB_RUNNING", None)) == 1 and retried.count(("TASK_RUNNING", None)) == 1
    assert retried[0][0] == "TASK_INSTANCE_RUNNING"
    assert retried[1:3] == [("TASK_RUNNING", None), ("JOB_RUNNING", None)]
    assert retried[-2:] == [("TASK_SUCCEED", None), ("JOB_SUCCEED", None)]
    assert retried[-3][0] == "TASK_INSTANCE_SUCCEED"
    for index in (0, 1):
        assert [n for n, i in retried if i == index] == ["TASK_INSTANCE_RUNNING", "TASK_INSTANCE_SUCCEED"]
    job_running = [e for e in sink.events if e["EventName"] == "JOB_RUNNING"][1]["Batch"]
    assert job_running["EndTime"] is None and job_running["StateReason"] == ""

    # a finished job: TerminateJob is a no-op, RetryJobs refused, DeleteJob allowed
    call(bc, "TerminateJob", {"JobId": job_id})
    assert sdk_error(bc, "RetryJobs", {"JobIds": [job_id]}).code.startswith("UnsupportedOperation")
    assert sink.quiet(0.3) == [] and call(bc, "DescribeJob", {"JobId": job_id})["JobState"] == "SUCCEED"
    call(bc, "DeleteJob", {"JobId": job_id})
    assert sdk_error(bc, "DescribeJob", {"JobId": job_id}).code == "ResourceNotFound.Job"
    assert sdk_error(bc, "RetryJobs", {"JobIds": [job_id]}).code == "ResourceNotFound.Job"


# == named compute environments ======================================================================


ENV_WRITTEN = {  # as people write them → canonical, echoed by DescribeComputeEnvCreateInfo
    "ComputeEnvCreated": "COMPUTE_ENV_CREATED", "compute_node_created": "COMPUTE_NODE_CREATED",
    "ComputeNodeCreationFailed": "COMPUTE_NODE_CREATION_FAILED", "COMPUTE_NODE_RUNNING": "COMPUTE_NODE_RUNNING",
    "ComputeNodeAbnormal": "COMPUTE_NODE_ABNORMAL", "compute-node-deleting": "COMPUTE_NODE_DELETING",
    "ComputeEnvDeleted": "COMPUTE_ENV_DELETED",
}
ENV_VARS = {"COMPUTE_ENV_CREATED": [{"Name": "who", "Value": "env"}],
            "COMPUTE_NODE_RUNNING": [{"Name": "node", "Value": "up"}, {"Name": "empty", "Value": ""}]}


def env_notification(topic: str) -> dict:
    configs = []
    for given, canon in ENV_WRITTEN.items():
        config = {"EventName": given}
        if canon in ENV_VARS:
            config["EventVars"] = ENV_VARS[canon]
        configs.append(config)
    return {"TopicName": topic, "EventConfigs": configs}


def node_states(events: list[dict], node_id: str) -> list[str]:
    return [state_of(e["EventName"]) for e in events
            if kind(e["EventName"]) == "node" and e["Batch"]["ComputeNodeId"] == node_id]


def test_named_env_lifecycle(bb, bc, sinks):
    """Create with 2 nodes, run a job on them, scale up and down, terminate a node, delete."""
    sink, job_sink = sinks("env"), sinks("envjob")
    env_name = f"e2e-env-{uid()}"
    env_id = create_env(bc, {**named_env(env_name, 2), "EnvDescription": "e2e",
                             "Notifications": [env_notification(sink.name)]})
    sink.wait_for("COMPUTE_NODE_RUNNING", count=2)
    check_all(sink.events, event_vars=ENV_VARS)
    created = sink.events[0]
    assert created["EventName"] == "COMPUTE_ENV_CREATED", "COMPUTE_ENV_CREATED comes before any node event"
    assert created["Batch"] == {**created["Batch"], "EnvId": env_id, "EnvName": env_name, "EnvType": "MANAGED",
                                "ResourceType": "CVM", "DesiredComputeNodeCount": 2, "Zone": ZONE}
    first_nodes = {e["Batch"]["ComputeNodeId"] for e in sink.events[1:]}
    assert len(first_nodes) == 2
    for node_id in first_nodes:
        assert node_states(sink.events, node_id) == ["CREATED", "RUNNING"]
    for ev in sink.events[1:]:
        b = ev["Batch"]
        assert set(b) == NODE_KEYS and (b["EnvId"], b["EnvName"], b["Cpu"], b["Mem"]) == (env_id, env_name, CPU, MEM)

    # the API agrees
    env = describe_env(bc, env_id)
    assert (env["EnvId"], env["EnvName"], env["EnvType"], env["ResourceType"]) == (env_id, env_name, "MANAGED", "CVM")
    assert env["DesiredComputeNodeCount"] == 2 and env["NextAction"] is None and env["Placement"]["Zone"] == ZONE
    assert env["ComputeNodeMetrics"]["RunningCount"] == 2
    running_events = {e["Batch"]["ComputeNodeId"]: e["Batch"] for e in sink.events
                      if e["EventName"] == "COMPUTE_NODE_RUNNING"}
    for node in env["ComputeNodeSet"]:
        ev = running_events[node["ComputeNodeId"]]
        assert node["ComputeNodeState"] == "RUNNING"
        assert (node["ComputeNodeInstanceId"], node["Cpu"], node["Mem"], node["ResourceCreatedTime"]) == (
            ev["ComputeNodeInstanceId"], ev["Cpu"], ev["Mem"], ev["ResourceCreatedTime"])
    listed = call(bc, "DescribeComputeEnvs", {"Filters": [{"Name": "env-name", "Values": [env_name]}]})
    assert listed["TotalCount"] == 1 and listed["ComputeEnvSet"][0]["EnvId"] == env_id
    canonical = [{"TopicName": sink.name, "EventConfigs": [
        {"EventName": canon, "EventVars": ENV_VARS.get(canon, [])} for canon in ENV_WRITTEN.values()]}]
    info = raw(bb.port, "DescribeComputeEnvCreateInfo", {"EnvId": env_id})
    assert info["Notifications"] == canonical
    assert (info["EnvName"], info["EnvDescription"], info["EnvType"]) == (env_name, "e2e", "MANAGED")
    assert info["EnvData"]["InstanceType"] == INSTANCE_TYPE
    infos = raw(bb.port, "DescribeComputeEnvCreateInfos", {"EnvIds": [env_id]})
    assert infos["TotalCount"] == 1 and infos["ComputeEnvCreateInfoSet"][0]["Notifications"] == canonical
    acts = call(bc, "DescribeComputeEnvActivities", {"EnvId": env_id})
    assert acts["TotalCount"] == 2
    assert {a["ComputeNodeActivityType"] for a in acts["ActivitySet"]} == {"CREATE_COMPUTE_NODE"}
    assert {a["ActivityState"] for a in acts["ActivitySet"]} == {"SUCCEED"}
    assert {a["ComputeNodeId"] for a in acts["ActivitySet"]} == first_nodes
    some_node = sorted(first_nodes)[0]
    one = call(bc, "DescribeComputeEnvActivities", {"EnvId": env_id,
                                                    "Filters": {"Name": "compute-node-id", "Values": [some_node]}})
    assert one["TotalCount"] == 1 and one["ActivitySet"][0]["ComputeNodeId"] == some_node
    assert one["ActivitySet"][0]["InstanceId"] == running_events[some_node]["ComputeNodeInstanceId"]

    # a job with EnvId runs on the env's nodes; its own topic gets no node events of the env,
    # the env's topic gets none of the job's
    job_id = submit(bc, {"JobName": f"on-env-{uid()}", "Tasks": [env_task("work", env_id, 3)],
                         "Notifications": [notification(job_sink.name, "TaskInstanceRunning", "JobSucceed",
                                                        "ComputeNodeCreated", "ComputeNodeRunning",
                                                        "ComputeNodeDeleting")]})
    job_sink.wait_for("JOB_SUCCEED")
    check_all(job_sink.events, event_vars={})
    assert names(job_sink.events) == ["TASK_INSTANCE_RUNNING"] * 3 + ["JOB_SUCCEED"]
    ins_ids = {n["ComputeNodeInstanceId"] for n in env["ComputeNodeSet"]}
    for ev in job_sink.events[:3]:
        assert ev["Batch"]["ComputeNodeInstanceId"] in ins_ids, "the instance did not run on the env's nodes"
    assert sorted(e["Batch"]["TaskInstanceIndex"] for e in job_sink.events[:3]) == [0, 1, 2]
    assert sink.drain() == []
    done = call(bc, "DescribeTask", {"JobId": job_id, "TaskName": "work"})
    assert [i["TaskInstanceState"] for i in done["TaskInstanceSet"]] == ["SUCCEED"] * 3

    # scale up 2 → 4: two new nodes, CREATED then RUNNING
    mark = len(sink.events)
    call(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 4})
    sink.wait_for("COMPUTE_NODE_RUNNING", count=4)
    check_all(sink.events, event_vars=ENV_VARS)
    new_nodes = {e["Batch"]["ComputeNodeId"] for e in sink.events[mark:]}
    assert len(new_nodes) == 2 and not new_nodes & first_nodes
    for node_id in new_nodes:
        assert node_states(sink.events, node_id) == ["CREATED", "RUNNING"]
    env = describe_env(bc, env_id)
    assert env["DesiredComputeNodeCount"] == 4 and env["ComputeNodeMetrics"]["RunningCount"] == 4
    all_nodes = first_nodes | new_nodes

    # scale down 4 → 3: one DELETING
    mark = len(sink.events)
    call(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 3})
    sink.wait_for("COMPUTE_NODE_DELETING")
    [scaled_away] = sink.events[mark:]
    assert scaled_away["EventName"] == "COMPUTE_NODE_DELETING" and scaled_away["Batch"]["ComputeNodeId"] in all_nodes
    check_event(scaled_away, event_vars=ENV_VARS)
    gone = scaled_away["Batch"]["ComputeNodeId"]
    wait_until(lambda: gone not in {n["ComputeNodeId"] for n in describe_env(bc, env_id)["ComputeNodeSet"]},
               f"{gone} to leave the env")
    assert describe_env(bc, env_id)["DesiredComputeNodeCount"] == 3
    terminations = call(bc, "DescribeComputeEnvActivities", {
        "EnvId": env_id, "Filters": {"Name": "compute-node-id", "Values": [gone]}})["ActivitySet"]
    assert [a["ComputeNodeActivityType"] for a in terminations] == ["CREATE_COMPUTE_NODE", "TERMINATE_COMPUTE_NODE"]
    assert terminations[1]["Cause"]

    # TerminateComputeNodes: one node, DesiredComputeNodeCount follows
    victim = sorted(all_nodes - {gone})[0]
    call(bc, "TerminateComputeNodes", {"EnvId": env_id, "ComputeNodeIds": [victim]})
    sink.wait_for("COMPUTE_NODE_DELETING", count=2)
    assert sink.events[-1]["Batch"]["ComputeNodeId"] == victim and sink.events[-1]["EventName"] == "COMPUTE_NODE_DELETING"
    assert describe_env(bc, env_id)["DesiredComputeNodeCount"] == 2
    again = sdk_error(bc, "TerminateComputeNodes", {"EnvId": env_id, "ComputeNodeIds": [victim]})
    # still DELETING, or already removed, depending on timing
    assert again.code in ("UnsupportedOperation.ComputeNodeIsTerminating", "ResourceNotFound.ComputeNode")
    assert sdk_error(bc, "TerminateComputeNode", {"EnvId": env_id, "ComputeNodeId": "node-doesnotexist"}
                     ).code == "ResourceNotFound.ComputeNode"
    assert sdk_error(bc, "TerminateComputeNode", {"EnvId": env_id, "ComputeNodeId": "ins-12345678"}
                     ).code == "InvalidParameter.ComputeNodeIdMalformed"
    wait_until(lambda: len(describe_env(bc, env_id)["ComputeNodeSet"]) == 2, "2 nodes left")
    remaining = {n["ComputeNodeId"] for n in describe_env(bc, env_id)["ComputeNodeSet"]}

    # DeleteComputeEnv: every node DELETING, then COMPUTE_ENV_DELETED, last
    mark = len(sink.events)
    call(bc, "DeleteComputeEnv", {"EnvId": env_id})
    sink.wait_for("COMPUTE_ENV_DELETED")
    assert sink.quiet() == []
    check_all(sink.events, event_vars=ENV_VARS)
    tail = sink.events[mark:]
    assert names(tail) == ["COMPUTE_NODE_DELETING", "COMPUTE_NODE_DELETING", "COMPUTE_ENV_DELETED"]
    assert {e["Batch"]["ComputeNodeId"] for e in tail[:2]} == remaining
    assert tail[-1]["Batch"]["EnvId"] == env_id and tail[-1]["Batch"]["EnvName"] == env_name
    assert sdk_error(bc, "DescribeComputeEnv", {"EnvId": env_id}).code == "ResourceNotFound.ComputeEnv"

    # the whole stream: created first, deleted last, each node CREATED → RUNNING → DELETING
    assert sink.events[0]["EventName"] == "COMPUTE_ENV_CREATED" and sink.events[-1]["EventName"] == "COMPUTE_ENV_DELETED"
    assert names(sink.events).count("COMPUTE_ENV_CREATED") == 1
    for node_id in all_nodes:
        assert node_states(sink.events, node_id) == ["CREATED", "RUNNING", "DELETING"], node_id


def test_env_with_a_busy_node(bc, sinks):
    """Scale-down takes an idle node before a busy one; DeleteComputeEnv is refused while a node
    runs an instance; after TerminateJob it goes through."""
    sink, job_sink = sinks("busy"), sinks("busyjob")
    env_id = create_env(bc, named_env(f"busy-{uid()}", 2, sink.name, "ComputeNodeRunning", "ComputeNodeDeleting",
                                      "ComputeEnvDeleted"))
    sink.wait_for("COMPUTE_NODE_RUNNING", count=2)
    job_id = submit(bc, {"JobName": f"busy-{uid()}", "Tasks": [
        env_task("long", env_id, env_vars={"BATCH_SIM_DURATION": 30})],
        "Notifications": [notification(job_sink.name, "TaskInstanceRunning", "TaskInstanceFailed", "JobFailed")]})
    [running] = job_sink.wait_for("TASK_INSTANCE_RUNNING")
    busy_ins = running["Batch"]["ComputeNodeInstanceId"]
    nodes = describe_env(bc, env_id)["ComputeNodeSet"]
    [busy] = [n for n in nodes if n["ComputeNodeInstanceId"] == busy_ins]
    [idle] = [n for n in nodes if n["ComputeNodeInstanceId"] != busy_ins]
    assert (busy["TaskInstanceNumAvailable"], idle["TaskInstanceNumAvailable"]) == (0, 1)

    call(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 1})
    sink.wait_for("COMPUTE_NODE_DELETING")
    assert sink.events[-1]["Batch"]["ComputeNodeId"] == idle["ComputeNodeId"]
    err = sdk_error(bc, "DeleteComputeEnv", {"EnvId": env_id})
    assert err.code == "UnsupportedOperation.ComputeNodeForbidTerminate"
    assert sdk_error(bc, "DeleteJob", {"JobId": job_id}).code == "ResourceInUse.Job"

    call(bc, "TerminateJob", {"JobId": job_id})
    job_sink.wait_for("JOB_FAILED")
    check_all(job_sink.events, event_vars={})
    assert names(job_sink.events) == ["TASK_INSTANCE_RUNNING", "TASK_INSTANCE_FAILED", "JOB_FAILED"]
    wait_until(lambda: [n["TaskInstanceNumAvailable"] for n in describe_env(bc, env_id)["ComputeNodeSet"]
                        if n["ComputeNodeId"] == busy["ComputeNodeId"]] == [1], "the node to be free again")
    call(bc, "DeleteComputeEnv", {"EnvId": env_id})
    sink.wait_for("COMPUTE_ENV_DELETED")
    assert sink.quiet(0.3) == []
    check_all(sink.events, event_vars={})
    assert names(sink.events)[-2:] == ["COMPUTE_NODE_DELETING", "COMPUTE_ENV_DELETED"]
    assert sink.events[-2]["Batch"]["ComputeNodeId"] == busy["ComputeNodeId"]
    call(bc, "DeleteJob", {"JobId": job_id})


@pytest.mark.parametrize("retries", [0, 1])
def test_node_creation_failure_injection(bc, sinks, retries):
    """SIM.CREATION_FAILED: every node fails to be created; RECREATE replaces it up to
    ResourceMaxRetryCount times, each failed node being DELETED."""
    sink = sinks("cfail")
    env_id = create_env(bc, named_env(f"cfail-{uid()}", 1, sink.name, *ENV_EVENTS, *NODE_EVENTS,
                                      instance_type="SIM.CREATION_FAILED", ResourceMaxRetryCount=retries))
    sink.wait_for("COMPUTE_NODE_DELETING", count=retries + 1)
    assert sink.quiet() == [], "a node was recreated beyond ResourceMaxRetryCount"
    check_all(sink.events, event_vars={})
    assert names(sink.events) == ["COMPUTE_ENV_CREATED"] + ["COMPUTE_NODE_CREATION_FAILED",
                                                            "COMPUTE_NODE_DELETING"] * (retries + 1)
    failed_ids = [e["Batch"]["ComputeNodeId"] for e in sink.events if e["EventName"] == "COMPUTE_NODE_CREATION_FAILED"]
    assert len(set(failed_ids)) == retries + 1, "a replacement gets a new ComputeNodeId"
    for ev in sink.events[1:]:
        b = ev["Batch"]
        assert set(b) == NODE_KEYS and b["EnvId"] == env_id
        assert b["ComputeNodeInstanceId"] in ("", None) and b["ResourceCreatedTime"] in ("", None)
    acts = call(bc, "DescribeComputeEnvActivities", {"EnvId": env_id})["ActivitySet"]
    creates = [a for a in acts if a["ComputeNodeActivityType"] == "CREATE_COMPUTE_NODE"]
    assert len(creates) == retries + 1
    assert all(a["ActivityState"] == "FAILED" and a["StateReason"] for a in creates)

    # nothing is CREATED/RUNNING/ABNORMAL: there is no node a scale-down could destroy
    err = sdk_error(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 0})
    assert err.code == "UnsupportedOperation.NotEnoughComputeNodesToTerminate"
    call(bc, "DeleteComputeEnv", {"EnvId": env_id})
    sink.wait_for("COMPUTE_ENV_DELETED")
    assert sink.events[-1]["EventName"] == "COMPUTE_ENV_DELETED"


def test_abnormal_node_failure_injection(bc, sinks):
    """SIM.ABNORMAL: the node turns ABNORMAL soon after RUNNING; the instance running on it loses
    its attempt; a scale-down takes the ABNORMAL node."""
    sink, job_sink = sinks("abn"), sinks("abnjob")
    # no node yet: the job waits RUNNABLE, and starts as soon as the node is up (before it turns ABNORMAL)
    env_id = create_env(bc, named_env(f"abn-{uid()}", 0, sink.name, *ENV_EVENTS, *NODE_EVENTS,
                                      instance_type="SIM.ABNORMAL", ActionIfComputeNodeInactive="NOTHING"))
    job_id = submit(bc, {"JobName": f"abn-{uid()}", "Tasks": [
        env_task("long", env_id, env_vars={"BATCH_SIM_DURATION": 30})],
        "Notifications": [notification(job_sink.name, *JOB_EVENTS, *TASK_EVENTS, *INSTANCE_EVENTS)]})
    wait_until(lambda: call(bc, "DescribeJob", {"JobId": job_id})["JobState"] == "RUNNABLE", "the job to wait")
    call(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 1})
    sink.wait_for("COMPUTE_NODE_ABNORMAL")
    job_sink.wait_for("JOB_FAILED")
    check_all(sink.events, event_vars={})
    check_all(job_sink.events, event_vars={})
    assert names(sink.events) == ["COMPUTE_ENV_CREATED", "COMPUTE_NODE_CREATED", "COMPUTE_NODE_RUNNING",
                                  "COMPUTE_NODE_ABNORMAL"]
    abnormal = sink.events[-1]["Batch"]
    assert abnormal["ComputeNodeState"] == "ABNORMAL" and abnormal["EnvId"] == env_id
    assert names(job_sink.events) == ["TASK_INSTANCE_RUNNING", "TASK_RUNNING", "JOB_RUNNING",
                                      "TASK_INSTANCE_FAILED", "TASK_FAILED", "JOB_FAILED"]
    assert job_sink.events[0]["Batch"]["ComputeNodeInstanceId"] == abnormal["ComputeNodeInstanceId"]
    lost = job_sink.events[3]["Batch"]
    assert lost["StateReason"] and lost["ExitCode"] != 0
    env = describe_env(bc, env_id)
    assert env["ComputeNodeMetrics"]["AbnormalCount"] == 1
    assert env["ComputeNodeSet"][0]["ComputeNodeState"] == "ABNORMAL"

    call(bc, "ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 0})
    sink.wait_for("COMPUTE_NODE_DELETING")
    assert sink.events[-1]["Batch"]["ComputeNodeId"] == abnormal["ComputeNodeId"]
    call(bc, "DeleteComputeEnv", {"EnvId": env_id})
    sink.wait_for("COMPUTE_ENV_DELETED")
    assert names(sink.events)[-2:] == ["COMPUTE_NODE_DELETING", "COMPUTE_ENV_DELETED"]


def test_failed_action_interrupt_keeps_the_node_until_terminated(bc, sinks):
    """FailedAction=INTERRUPT: the final failure is FAILED_INTERRUPTED (the *_FAILED_INTERRUPTED
    events), the private node is kept; TerminateJob then destroys it and the instance becomes FAILED."""
    sink = sinks("intr")
    name = f"intr-{uid()}"
    job_id = submit(bc, {"JobName": name, "Tasks": [
        anon_task("keep", env_vars={"BATCH_SIM_EXIT_CODE": 1}, FailedAction="INTERRUPT")],
        "Notifications": [notification(sink.name, *JOB_EVENTS, *TASK_EVENTS, *INSTANCE_EVENTS, *NODE_EVENTS)]})
    sink.wait_for("JOB_FAILED_INTERRUPTED")
    assert sink.quiet() == [], "the node of an interrupted instance must be kept"
    check_all(sink.events, event_vars={})
    assert names(sink.events) == [
        "COMPUTE_NODE_CREATED", "COMPUTE_NODE_RUNNING", "TASK_INSTANCE_RUNNING", "TASK_RUNNING", "JOB_RUNNING",
        "TASK_INSTANCE_FAILED_INTERRUPTED", "TASK_FAILED_INTERRUPTED", "JOB_FAILED_INTERRUPTED"]
    interrupted = sink.events[5]["Batch"]
    assert interrupted["ExitCode"] == 1 and interrupted["StateReason"]
    node_id = sink.events[0]["Batch"]["ComputeNodeId"]
    assert call(bc, "DescribeJob", {"JobId": job_id})["JobState"] == "FAILED_INTERRUPTED"
    assert sdk_error(bc, "DeleteJob", {"JobId": job_id}).code == "ResourceInUse.Job"
    assert sdk_error(bc, "RetryJobs", {"JobIds": [job_id]}).code.startswith("UnsupportedOperation")

    call(bc, "TerminateJob", {"JobId": job_id})
    sink.wait_for("JOB_FAILED")
    check_all(sink.events, event_vars={})
    assert names(sink.events[8:]) == ["COMPUTE_NODE_DELETING", "TASK_INSTANCE_FAILED", "TASK_FAILED", "JOB_FAILED"]
    assert sink.events[8]["Batch"]["ComputeNodeId"] == node_id
    call(bc, "DeleteJob", {"JobId": job_id})


# == notifications written the document's way =======================================================


def test_lower_case_keys_and_aliases_over_raw_http(bb, bc, sinks):
    """The product document's `notifications` / `event_configs` / `event_name` / `event_vars` /
    `topic_name`, sent unsigned over raw HTTP, with X-TC-Region ap-shanghai."""
    sink, env_sink = sinks("lower"), sinks("lowerenv")
    reply = raw(bb.port, "SubmitJob", {"Placement": {"Zone": "ap-shanghai-2"}, "Job": {
        "JobName": "lower-case", "Tasks": [anon_task("t")],
        "notifications": [{"event_configs": [
            {"event_name": "JobFailed"},
            {"event_name": "job_succeed", "event_vars": [{"name": "jobSucceed", "value": "Success"}]}],
            "topic_name": sink.name}]}}, region="ap-shanghai")
    assert "Error" not in reply, reply
    job_id = reply["JobId"]
    sink.wait_for("JOB_SUCCEED")
    assert sink.quiet(0.3) == []
    [ev] = sink.events
    check_event(ev, region="ap-shanghai")
    assert ev["EventVars"] == [{"Name": "jobSucceed", "Value": "Success"}]
    assert ev["Batch"]["JobId"] == job_id and ev["Batch"]["Zone"] == "ap-shanghai-2"

    reply = raw(bb.port, "CreateComputeEnv", {"Placement": {"Zone": ZONE}, "ComputeEnv": {
        "EnvName": "lower-env", "EnvType": "MANAGED", "DesiredComputeNodeCount": 1,
        "EnvData": {"InstanceType": INSTANCE_TYPE},
        "notifications": [{"topic_name": env_sink.name, "event_configs": [
            {"event_name": "ComputeEnvCreated", "event_vars": [{"name": "a", "value": "b"}]},
            {"event_name": "compute_node_running"}, {"event_name": "ComputeEnvDeleted"}]}]}})
    assert "Error" not in reply, reply
    env_id = reply["EnvId"]
    env_sink.wait_for("COMPUTE_NODE_RUNNING")
    info = call(bc, "DescribeComputeEnvCreateInfo", {"EnvId": env_id})
    assert info["Notifications"] == [{"TopicName": env_sink.name, "EventConfigs": [
        {"EventName": "COMPUTE_ENV_CREATED", "EventVars": [{"Name": "a", "Value": "b"}]},
        {"EventName": "COMPUTE_NODE_RUNNING", "EventVars": []},
        {"EventName": "COMPUTE_ENV_DELETED", "EventVars": []}]}]
    call(bc, "DeleteComputeEnv", {"EnvId": env_id})
    env_sink.wait_for("COMPUTE_ENV_DELETED")
    check_all(env_sink.events, event_vars={"COMPUTE_ENV_CREATED": [{"Name": "a", "Value": "b"}]})
    assert names(env_sink.events) == ["COMPUTE_ENV_CREATED", "COMPUTE_NODE_RUNNING", "COMPUTE_ENV_DELETED"]


# == errors ========================================================================================


@pytest.fixture(scope="module")
def spare_topic(bb) -> Iterator[str]:
    """An existing topic, for notification checks that come after the topic's existence."""
    topic = bb.account().get_topic(unique_name("spare"))
    topic.create(TopicMeta())
    yield topic.topicName
    topic.delete()


def job_with(tasks: list | None = None, **extra) -> dict:
    return {"JobName": "refused-job", "Tasks": [anon_task("t")] if tasks is None else tasks, **extra}


SUBMIT_ERRORS = [
    ("no tasks", {"Job": job_with([])}, "InvalidParameter"),
    ("EnvId and ComputeEnv", {"Job": job_with([{**anon_task("t"), "EnvId": "env-abcdefgh"}])},
     "AllowedOneAttributeInEnvIdAndComputeEnv"),
    ("zone of another region", {"Placement": {"Zone": "ap-shanghai-2"}}, "InvalidZone.MismatchRegion"),
    ("unknown instance type", {"Job": job_with([{**anon_task("t"), "ComputeEnv": {
        "EnvType": "MANAGED", "EnvData": {"InstanceType": "X9.ENORMOUS"}}}])}, "InvalidParameterValue.InstanceType"),
    ("unknown env", {"Job": job_with([env_task("t", "env-doesnotexist")])}, "ResourceNotFound.ComputeEnv"),
    ("malformed env id", {"Job": job_with([env_task("t", "ins-12345678")])}, "InvalidParameter.EnvIdMalformed"),
    ("missing topic", {"Job": job_with(Notifications=[notification("no-such-topic-anywhere", "JobFailed")])},
     "InvalidParameter.NotificationTopicName"),
    ("event named twice", {"Job": job_with(Notifications=[notification("{topic}", "JobFailed", "JOB_FAILED")])},
     "InvalidParameter.NotificationEventNameDuplicate"),
    ("env event on a job", {"Job": job_with(Notifications=[notification("{topic}", "ComputeEnvCreated")])},
     "InvalidParameterValue"),
    ("unknown event", {"Job": job_with(Notifications=[notification("{topic}", "JobExploded")])},
     "InvalidParameterValue"),
    ("dependence on no task", {"Job": job_with(Dependences=[{"StartTask": "t", "EndTask": "zz"}])},
     "InvalidParameterValue.DependenceNotFoundTaskName"),
]


@pytest.mark.parametrize("case, change, code", SUBMIT_ERRORS, ids=[c[0] for c in SUBMIT_ERRORS])
def test_submit_job_errors(bc, spare_topic, case, change, code):
    params = {"Placement": {"Zone": ZONE}, "Job": job_with()}
    params.update(json.loads(json.dumps(change).replace("{topic}", spare_topic)))
    name = f"refused-{uid()}"
    params["Job"]["JobName"] = name
    assert sdk_error(bc, "SubmitJob", params).code == code
    # a refused request leaves no trace
    assert call(bc, "DescribeJobs", {"Filters": [{"Name": "job-name", "Values": [name]}]})["TotalCount"] == 0


ENV_ERRORS = [
    ("unknown instance type", {"EnvData": {"InstanceType": "X9.ENORMOUS"}}, None, "InvalidParameterValue.InstanceType"),
    ("zone of another region", {}, "ap-beijing-3", "InvalidZone.MismatchRegion"),
    ("missing topic", {"Notifications": [notification("no-such-topic-anywhere", "ComputeEnvCreated")]}, None,
     "InvalidParameter.NotificationTopicName"),
    ("event named twice", {"Notifications": [notification("{topic}", "ComputeNodeCreated", "compute_node_created")]},
     None, "InvalidParameter.NotificationEventNameDuplicate"),
    ("job event on an env", {"Notifications": [notification("{topic}", "JobFailed")]}, None, "InvalidParameterValue"),
]


@pytest.mark.parametrize("case, change, zone, code", ENV_ERRORS, ids=[c[0] for c in ENV_ERRORS])
def test_create_env_errors(bc, spare_topic, case, change, zone, code):
    name = f"refused-{uid()}"
    env = {**named_env(name, 0), **json.loads(json.dumps(change).replace("{topic}", spare_topic))}
    params = {"Placement": {"Zone": zone or ZONE}, "ComputeEnv": env}
    assert sdk_error(bc, "CreateComputeEnv", params).code == code
    assert call(bc, "DescribeComputeEnvs", {"Filters": [{"Name": "env-name", "Values": [name]}]})["TotalCount"] == 0


ID_ERRORS = [
    ("DescribeJob", {"JobId": "job-doesnotexist"}, "ResourceNotFound.Job"),
    ("DescribeJob", {"JobId": "env-12345678"}, "InvalidParameter.JobIdMalformed"),
    ("DescribeJob", {"JobId": ""}, "InvalidParameter.JobIdMalformed"),
    ("DescribeJobSubmitInfo", {"JobId": "job-doesnotexist"}, "ResourceNotFound.Job"),
    ("DescribeTask", {"JobId": "job-doesnotexist", "TaskName": "t"}, "ResourceNotFound.Job"),
    ("DescribeTaskLogs", {"JobId": "job-doesnotexist", "TaskName": "t"}, "ResourceNotFound.Job"),
    ("TerminateJob", {"JobId": "job-doesnotexist"}, "ResourceNotFound.Job"),
    ("TerminateTaskInstance", {"JobId": "job-doesnotexist", "TaskName": "t", "TaskInstanceIndex": 0},
     "ResourceNotFound.Job"),
    ("DeleteJob", {"JobId": "job-doesnotexist"}, "ResourceNotFound.Job"),
    ("DeleteJob", {"JobId": "nonsense"}, "InvalidParameter.JobIdMalformed"),
    ("RetryJobs", {"JobIds": ["job-doesnotexist"]}, "ResourceNotFound.Job"),
    ("DescribeJobs", {"JobIds": ["job-doesnotexist"]}, "ResourceNotFound.Job"),
    ("DescribeJobs", {"JobIds": ["job-abcdefgh"], "Filters": [{"Name": "job-name", "Values": ["x"]}]},
     "InvalidParameter.InvalidParameterCombination"),
    ("DescribeJobs", {"Filters": [{"Name": "flavour", "Values": ["x"]}]}, "InvalidFilter"),
    ("DescribeComputeEnv", {"EnvId": "env-doesnotexist"}, "ResourceNotFound.ComputeEnv"),
    ("DescribeComputeEnv", {"EnvId": "job-12345678"}, "InvalidParameter.EnvIdMalformed"),
    ("DescribeComputeEnvCreateInfo", {"EnvId": "env-doesnotexist"}, "ResourceNotFound.ComputeEnv"),
    ("DescribeComputeEnvActivities", {"EnvId": "env-doesnotexist"}, "ResourceNotFound.ComputeEnv"),
    ("ModifyComputeEnv", {"EnvId": "env-doesnotexist", "DesiredComputeNodeCount": 1}, "ResourceNotFound.ComputeEnv"),
    ("DeleteComputeEnv", {"EnvId": "env-doesnotexist"}, "ResourceNotFound.ComputeEnv"),
    ("DeleteComputeEnv", {"EnvId": ""}, "InvalidParameter.EnvIdMalformed"),
    ("TerminateComputeNodes", {"EnvId": "env-doesnotexist", "ComputeNodeIds": ["node-abcdefgh"]},
     "ResourceNotFound.ComputeEnv"),
    ("DescribeTaskTemplates", {"TaskTemplateIds": ["tmpl-doesnotexist"]}, "ResourceNotFound.TaskTemplate"),
    ("DescribeTaskTemplates", {"TaskTemplateIds": ["job-12345678"]}, "InvalidParameter.TaskTemplateIdMalformed"),
    ("DeleteTaskTemplates", {"TaskTemplateIds": ["tmpl-doesnotexist"]}, "ResourceNotFound.TaskTemplate"),
    ("ModifyTaskTemplate", {"TaskTemplateId": "tmpl-doesnotexist", "TaskTemplateName": "x"},
     "ResourceNotFound.TaskTemplate"),
]


@pytest.mark.parametrize("action, params, code", ID_ERRORS,
                         ids=[f"{a}-{c}-{i}" for i, (a, _, c) in enumerate(ID_ERRORS)])
def test_unknown_and_malformed_ids(bc, action, params, code):
    assert sdk_error(bc, action, params).code == code


# == listings and templates ========================================================================


def test_describe_jobs_filters_and_paging(bc):
    tag = uid()
    ids = []
    for i in range(3):
        ids.append(submit(bc, {"JobName": f"list-{tag}-{i}", "Tasks": [anon_task("t")],
                               "Tags": [{"Key": "suite", "Value": tag}, {"Key": "n", "Value": str(i)}]}))
    by_tag = {"Filters": [{"Name": "tag:suite", "Values": [tag]}]}
    listed = call(bc, "DescribeJobs", by_tag)
    assert listed["TotalCount"] == 3 and [j["JobId"] for j in listed["JobSet"]] == ids[::-1]  # newest first
    view = listed["JobSet"][0]
    assert (view["JobName"], view["Placement"]["Zone"], view["Priority"]) == (f"list-{tag}-2", ZONE, 0)
    assert {(t["Key"], t["Value"]) for t in view["Tags"]} == {("suite", tag), ("n", "2")}
    page = call(bc, "DescribeJobs", {**by_tag, "Offset": 1, "Limit": 1})
    assert page["TotalCount"] == 3 and [j["JobId"] for j in page["JobSet"]] == [ids[1]]
    last = call(bc, "DescribeJobs", {**by_tag, "Offset": 2, "Limit": 2})
    assert [j["JobId"] for j in last["JobSet"]] == [ids[0]]
    named = call(bc, "DescribeJobs", {"Filters": [{"Name": "job-name", "Values": [f"list-{tag}-1"]}]})
    assert [j["JobId"] for j in named["JobSet"]] == [ids[1]]
    both = call(bc, "DescribeJobs", {"Filters": [{"Name": "tag:suite", "Values": [tag]},
                                                 {"Name": "tag:n", "Values": ["0", "2"]}]})
    assert sorted(j["JobId"] for j in both["JobSet"]) == sorted([ids[0], ids[2]])
    assert call(bc, "DescribeJobs", {"JobIds": [ids[2], ids[0]]})["TotalCount"] == 2
    wait_until(lambda: call(bc, "DescribeJobs", {"Filters": [
        {"Name": "tag:suite", "Values": [tag]}, {"Name": "job-state", "Values": ["SUCCEED"]}]})["TotalCount"] == 3,
        "the three jobs to succeed")
    assert call(bc, "DescribeJobs", {"Filters": [{"Name": "tag-value", "Values": [tag]},
                                                 {"Name": "job-state", "Values": ["FAILED"]}]})["TotalCount"] == 0
    zone = call(bc, "DescribeJobs", {"Filters": [{"Name": "zone", "Values": [ZONE]},
                                                 {"Name": "tag-key", "Values": ["suite"]}, *by_tag["Filters"]]})
    assert zone["TotalCount"] == 3
    for job_id in ids:
        call(bc, "DeleteJob", {"JobId": job_id})
    assert call(bc, "DescribeJobs", by_tag)["TotalCount"] == 0


def test_task_templates_crud(bc):
    name = f"tmpl-{uid()}"
    info = anon_task("templated", 2, {"BATCH_SIM_EXIT_CODE": 0})
    created = call(bc, "CreateTaskTemplate", {"TaskTemplateName": name, "TaskTemplateInfo": info,
                                              "TaskTemplateDescription": "first",
                                              "Tags": [{"Key": "suite", "Value": name}]})
    template_id = created["TaskTemplateId"]
    assert re.fullmatch(r"tmpl-[a-z0-9]{8}", template_id), template_id

    [view] = call(bc, "DescribeTaskTemplates", {"TaskTemplateIds": [template_id]})["TaskTemplateSet"]
    assert (view["TaskTemplateId"], view["TaskTemplateName"], view["TaskTemplateDescription"]) == (
        template_id, name, "first")
    assert is_time(view["CreateTime"]) and view["Tags"] == [{"Key": "suite", "Value": name}]
    got = view["TaskTemplateInfo"]
    assert (got["TaskName"], got["TaskInstanceNum"], got["ComputeEnv"]["EnvData"]["InstanceType"]) == (
        "templated", 2, INSTANCE_TYPE)
    by_name = call(bc, "DescribeTaskTemplates", {"Filters": [{"Name": "task-template-name", "Values": [name]}]})
    assert by_name["TotalCount"] == 1 and by_name["TaskTemplateSet"][0]["TaskTemplateId"] == template_id
    by_tag = call(bc, "DescribeTaskTemplates", {"Filters": [{"Name": "tag:suite", "Values": [name]}]})
    assert [t["TaskTemplateId"] for t in by_tag["TaskTemplateSet"]] == [template_id]

    call(bc, "ModifyTaskTemplate", {"TaskTemplateId": template_id, "TaskTemplateName": name + "-v2",
                                    "TaskTemplateDescription": "second",
                                    "TaskTemplateInfo": anon_task("templated", 3)})
    [view] = call(bc, "DescribeTaskTemplates", {"TaskTemplateIds": [template_id]})["TaskTemplateSet"]
    assert (view["TaskTemplateName"], view["TaskTemplateDescription"]) == (name + "-v2", "second")
    assert view["TaskTemplateInfo"]["TaskInstanceNum"] == 3
    assert sdk_error(bc, "ModifyTaskTemplate", {"TaskTemplateId": template_id}
                     ).code == "InvalidParameterAtLeastOneAttribute"
    bad_info = {**anon_task("x"), "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "X9.ENORMOUS"}}}
    assert sdk_error(bc, "CreateTaskTemplate", {"TaskTemplateName": name + "-bad", "TaskTemplateInfo": bad_info}
                     ).code == "InvalidParameterValue.InstanceType"
    assert sdk_error(bc, "ModifyTaskTemplate", {"TaskTemplateId": template_id, "TaskTemplateInfo": bad_info}
                     ).code == "InvalidParameterValue.InstanceType"

    call(bc, "DeleteTaskTemplates", {"TaskTemplateIds": [template_id]})
    assert sdk_error(bc, "DescribeTaskTemplates", {"TaskTemplateIds": [template_id]}
                     ).code == "ResourceNotFound.TaskTemplate"
    assert call(bc, "DescribeTaskTemplates", {"Filters": [{"Name": "tag:suite", "Values": [name]}]})["TotalCount"] == 0


# == signatures =====================================================================================


def test_signatures_on_tc3(start_broker):
    """A broker with --secret-id/--secret-key: the SDK signing with the right key (TC3) submits a job
    whose events arrive; a wrong key is refused with AuthFailure.SignatureFailure."""
    b = start_broker(broker_args("--secret-id", SECRET_ID, "--secret-key", SECRET_KEY))
    account = Account(b.url, SECRET_ID, SECRET_KEY)
    sink = Sink(account, "signed")
    try:
        good = batch(b.port, SECRET_ID, SECRET_KEY)
        job_id = submit(good, {"JobName": "signed", "Tasks": [anon_task("t")],
                               "Notifications": [notification(sink.name, "JobRunning", "JobSucceed")]})
        sink.wait_for("JOB_SUCCEED")
        check_all(sink.events, event_vars={})
        assert names(sink.events) == ["JOB_RUNNING", "JOB_SUCCEED"]
        assert all(e["Batch"]["JobId"] == job_id for e in sink.events)

        bad = batch(b.port, SECRET_ID, "not-the-key")
        for action, params in [("SubmitJob", {"Placement": {"Zone": ZONE}, "Job": {
                "JobName": "forged", "Tasks": [anon_task("t")]}}),
                               ("DescribeJob", {"JobId": job_id}), ("DeleteJob", {"JobId": job_id})]:
            assert sdk_error(bad, action, params).code == "AuthFailure.SignatureFailure", action
        listed = call(good, "DescribeJobs", {})
        assert [j["JobId"] for j in listed["JobSet"]] == [job_id], "the forged SubmitJob left a job"
        call(good, "DeleteJob", {"JobId": job_id})
    finally:
        sink.delete()


def test_signatures_off_accept_anything(bb):
    """Without secrets any credentials, and no signature at all, are accepted."""
    for secret_id, secret_key in [("AKIDone", "k1"), ("someone-else", "k2")]:
        assert call(batch(bb.port, secret_id, secret_key), "DescribeJobs", {"Limit": 1})["TotalCount"] >= 0
    reply = raw(bb.port, "DescribeComputeEnvs", {"Limit": 1})
    assert "Error" not in reply and reply["TotalCount"] >= 0
