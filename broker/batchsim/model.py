"""The simulated Batch world: jobs, tasks, task instances, compute environments and nodes.

Plain objects holding state; the rules that move them live in `sim.py` and the tables in
`states.py`. Each entity can describe itself as the `Batch` object of its events (spec §7);
times are wall-clock seconds here and ISO strings only on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import states
from .events import iso
from .notifications import Notification


@dataclass
class Activity:
    activity_id: str
    node_id: str
    env_id: str
    kind: str  # CREATE_COMPUTE_NODE / TERMINATE_COMPUTE_NODE
    cause: str
    start_time: float
    state: str = "PROCESSING"
    reason: str = ""
    end_time: float | None = None
    instance_id: str = ""


class Node:
    def __init__(self, node_id: str, env: "Env | None", instance_type: str, cpu: int, mem: int, fault: str):
        self.node_id = node_id
        self.env = env  # None for the private node of an anonymous-env task instance
        self.instance_type = instance_type
        self.cpu = cpu
        self.mem = mem
        self.fault = fault  # "", "creation-failed" or "abnormal": the simulator's failure injection
        self.state = states.N_SUBMITTED
        self.instance_id = ""  # the CVM id, known once created
        self.created_time: float | None = None
        self.busy_with: "Instance | None" = None
        self.owner: "Instance | None" = None  # anonymous nodes serve exactly one attempt
        self.timer = None
        self.activity: Activity | None = None

    @property
    def available(self) -> bool:
        return self.state == states.N_RUNNING and self.busy_with is None

    def batch_object(self) -> dict[str, Any]:
        obj = {
            "ComputeNodeId": self.node_id,
            "EnvId": self.env.env_id if self.env else "",
            "ComputeNodeState": self.state,
            "Mem": self.mem,
            "ResourceCreatedTime": iso(self.created_time),
            "EnvName": self.env.name if self.env else "",
            "ComputeNodeInstanceId": self.instance_id,
            "Cpu": self.cpu,
        }
        if self.owner is not None:  # which attempt an anonymous node was made for
            obj.update(JobId=self.owner.task.job.job_id, TaskName=self.owner.task.name,
                       TaskInstanceIndex=self.owner.index)
        return obj


class Env:
    def __init__(self, env_id: str, spec: dict[str, Any], zone: str, region: str, now: float,
                 notifications: list[Notification], instance_type: str, cpu: int, mem: int, fault: str):
        self.env_id = env_id
        self.spec = spec  # the NamedComputeEnv as given, echoed by DescribeComputeEnvCreateInfo
        self.name: str = spec.get("EnvName") or ""
        self.description: str = spec.get("EnvDescription") or ""
        self.env_type: str = spec.get("EnvType") or "MANAGED"
        self.desired: int = int(spec.get("DesiredComputeNodeCount") or 0)
        self.recreate: bool = (spec.get("ActionIfComputeNodeInactive") or "RECREATE") == "RECREATE"
        retries = spec.get("ResourceMaxRetryCount")
        self.recreate_budget: int = 7 if retries is None else int(retries)  # node re-creations left
        self.tags: list = spec.get("Tags") or []
        self.zone = zone
        self.region = region
        self.create_time = now
        self.notifications = notifications
        self.instance_type, self.cpu, self.mem, self.fault = instance_type, cpu, mem, fault
        self.state = states.ENV_ACTIVE
        self.nodes: dict[str, Node] = {}
        self.activities: list[Activity] = []

    def batch_object(self) -> dict[str, Any]:
        return {
            "EnvId": self.env_id,
            "EnvName": self.name,
            "EnvType": self.env_type,
            "ResourceType": "CVM",
            "DesiredComputeNodeCount": self.desired,
            "Zone": self.zone,
            "CreateTime": iso(self.create_time),
        }

    def metrics(self) -> dict[str, int]:
        names = {
            states.N_SUBMITTED: "SubmittedCount", states.CREATING: "CreatingCount",
            states.CREATION_FAILED: "CreationFailedCount", states.CREATED: "CreatedCount",
            states.N_RUNNING: "RunningCount", states.DELETING: "DeletingCount", states.ABNORMAL: "AbnormalCount",
        }
        out = dict.fromkeys(names.values(), 0)
        for node in self.nodes.values():
            out[names[node.state]] += 1
        return out


class Instance:
    def __init__(self, task: "Task", index: int, now: float):
        self.task = task
        self.index = index
        self.state = states.SUBMITTED
        self.exit_code: int | None = None
        self.state_reason = ""
        self.node: Node | None = None
        self.node_instance_id = ""
        self.create_time = now
        self.launch_time: float | None = None
        self.running_time: float | None = None
        self.end_time: float | None = None
        self.attempts = 0  # attempts started (for MaxRetryCount)
        self.cvm_failures = 0  # private-node creation failures (for ResourceMaxRetryCount)
        self.timer = None
        self.terminating = False
        self.blocked = False  # its private CVM failed for good under StateIfCreateCvmFailed=RUNNABLE
        self.logs: list[str] = []

    def batch_object(self) -> dict[str, Any]:
        return {
            "JobId": self.task.job.job_id,
            "JobName": self.task.job.name,
            "TaskName": self.task.name,
            "TaskInstanceIndex": self.index,
            "TaskInstanceState": self.state,
            "ExitCode": self.exit_code,
            "StateReason": self.state_reason,
            "ComputeNodeInstanceId": self.node_instance_id,
            "CreateTime": iso(self.create_time),
            "LaunchTime": iso(self.launch_time),
            "RunningTime": iso(self.running_time),
            "EndTime": iso(self.end_time),
        }


class Task:
    def __init__(self, job: "Job", order: int, spec: dict[str, Any], now: float):
        self.job = job
        self.order = order
        self.spec = spec  # the Task as given, echoed by DescribeJobSubmitInfo
        self.name: str = spec["TaskName"]
        self.instance_num: int = int(spec.get("TaskInstanceNum") or 1)
        self.env_id: str | None = spec.get("EnvId") or None
        anonymous = spec.get("ComputeEnv") or {}
        self.anon_env_data: dict[str, Any] = anonymous.get("EnvData") or {}
        self.env_vars = {v.get("Name"): v.get("Value") for v in spec.get("EnvVars") or [] if isinstance(v, dict)}
        self.failed_action: str = spec.get("FailedAction") or "TERMINATE"
        self.max_retry: int = int(spec.get("MaxRetryCount") or 0)
        self.timeout: float = float(spec.get("Timeout") or 86400)
        self.max_concurrent: int = int(spec.get("MaxConcurrentNum") or 0)  # 0: unlimited
        self.restart_node: bool = bool(spec.get("RestartComputeNode"))
        self.resource_max_retry: int = int(spec.get("ResourceMaxRetryCount") or 0)
        self.state = states.SUBMITTED
        self.create_time = now
        self.end_time: float | None = None
        self.instances = [Instance(self, i, now) for i in range(self.instance_num)]
        self.upstream: list[Task] = []

    def batch_object(self) -> dict[str, Any]:
        return {
            "JobId": self.job.job_id,
            "JobName": self.job.name,
            "TaskName": self.name,
            "TaskState": self.state,
            "TaskInstanceNum": self.instance_num,
            "CreateTime": iso(self.create_time),
            "EndTime": iso(self.end_time),
        }


@dataclass
class Job:
    job_id: str
    spec: dict[str, Any]  # the Job as given
    zone: str
    region: str
    create_time: float
    notifications: list[Notification]
    name: str = ""
    priority: int = 0
    depend_on: str = "PRE_TASK_SUCCEED"
    cvm_failed_state: str = "FAILED"
    state: str = states.SUBMITTED
    state_reason: str = ""
    end_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    started: bool = False  # has had its first scheduler tick

    def batch_object(self) -> dict[str, Any]:
        return {
            "JobId": self.job_id,
            "JobName": self.name,
            "JobState": self.state,
            "Priority": self.priority,
            "Zone": self.zone,
            "CreateTime": iso(self.create_time),
            "EndTime": iso(self.end_time),
            "StateReason": self.state_reason,
        }

    def instances(self):
        for task in self.tasks.values():
            yield from task.instances


def build_job(job_id: str, spec: dict[str, Any], zone: str, region: str, now: float,
              notifications: list[Notification]) -> Job:
    """A job with its tasks and their dependencies, from a validated Job spec."""
    job = Job(job_id, spec, zone, region, now, notifications,
              name=spec["JobName"], priority=int(spec.get("Priority") or 0),
              depend_on=spec.get("TaskExecutionDependOn") or "PRE_TASK_SUCCEED",
              cvm_failed_state=spec.get("StateIfCreateCvmFailed") or "FAILED")
    for order, task_spec in enumerate(spec["Tasks"]):
        job.tasks[task_spec["TaskName"]] = Task(job, order, task_spec, now)
    for dep in spec.get("Dependences") or []:
        job.tasks[dep["EndTask"]].upstream.append(job.tasks[dep["StartTask"]])
    return job


def metrics(entity_states: list[str]) -> dict[str, int]:
    """TaskMetrics / TaskInstanceMetrics from a list of states."""
    names = {
        states.SUBMITTED: "SubmittedCount", states.PENDING: "PendingCount", states.RUNNABLE: "RunnableCount",
        states.STARTING: "StartingCount", states.RUNNING: "RunningCount", states.SUCCEED: "SucceedCount",
        states.FAILED_INTERRUPTED: "FailedInterruptedCount", states.FAILED: "FailedCount",
    }
    out = dict.fromkeys(names.values(), 0)
    for s in entity_states:
        out[names[s]] += 1
    return out


def cancel_timer(entity: Instance | Node) -> None:
    if entity.timer is not None:
        entity.timer.cancel()
        entity.timer = None
