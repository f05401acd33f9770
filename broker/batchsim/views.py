"""How simulator entities look on the wire (API 2017-03-12 models: JobView, TaskView, ...).

The Batch service renders its Describe* replies with these, and the console shows the same
views, so both show exactly what DescribeJob would."""

from __future__ import annotations

from typing import Any

from .events import iso
from .model import Activity, Env, Instance, Job, Node, Task, metrics


_ON_NODE = ("STARTING", "RUNNING", "FAILED_INTERRUPTED")


def placement(zone: str) -> dict:
    return {"Zone": zone}


def job_view(job: Job) -> dict[str, Any]:
    return {
        "JobId": job.job_id,
        "JobName": job.name,
        "JobState": job.state,
        "Priority": job.priority,
        "Placement": placement(job.zone),
        "CreateTime": iso(job.create_time),
        "EndTime": iso(job.end_time),
        "TaskMetrics": metrics([t.state for t in job.tasks.values()]),
        "Tags": job.spec.get("Tags") or [],
    }


def task_view(task: Task) -> dict[str, Any]:
    return {"TaskName": task.name, "TaskState": task.state, "CreateTime": iso(task.create_time),
            "EndTime": iso(task.end_time)}


def instance_view(inst: Instance) -> dict[str, Any]:
    return {
        "TaskInstanceIndex": inst.index,
        "TaskInstanceState": inst.state,
        "ExitCode": inst.exit_code,
        "StateReason": inst.state_reason,
        "StateDetailedReason": {"Code": "", "Message": inst.state_reason} if inst.state_reason else None,
        # Shown only while the instance holds a node (the SDK: empty once it has finished).
        "ComputeNodeInstanceId": inst.node_instance_id if inst.state in _ON_NODE else "",
        "CreateTime": iso(inst.create_time),
        "LaunchTime": iso(inst.launch_time),
        "RunningTime": iso(inst.running_time),
        "EndTime": iso(inst.end_time),
        "RedirectInfo": inst.task.spec.get("RedirectInfo"),
    }


def node_view(node: Node) -> dict[str, Any]:
    return {
        "ComputeNodeId": node.node_id,
        "ComputeNodeInstanceId": node.instance_id,
        "ComputeNodeState": node.state,
        "Cpu": node.cpu,
        "Mem": node.mem,
        "ResourceCreatedTime": iso(node.created_time),
        "TaskInstanceNumAvailable": 1 if node.available else 0,
        "AgentVersion": "sim-1.0",
        "PrivateIpAddresses": [],
        "PublicIpAddresses": [],
        "ResourceType": "CVM",
        "ResourceOrigin": "BATCH_CREATED",
    }


def env_view(env: Env) -> dict[str, Any]:
    return {
        "EnvId": env.env_id,
        "EnvName": env.name,
        "Placement": placement(env.zone),
        "CreateTime": iso(env.create_time),
        "ComputeNodeMetrics": env.metrics(),
        "EnvType": env.env_type,
        "DesiredComputeNodeCount": env.desired,
        "ResourceType": "CVM",
        "NextAction": "DELETING" if env.state == "DELETING" else None,
        "AttachedComputeNodeCount": 0,
        "Tags": env.tags,
    }


def env_create_info(env: Env) -> dict[str, Any]:
    spec = env.spec
    return {
        "EnvId": env.env_id,
        "EnvName": env.name,
        "EnvDescription": env.description,
        "EnvType": env.env_type,
        "EnvData": spec.get("EnvData"),
        "MountDataDisks": spec.get("MountDataDisks") or [],
        "InputMappings": spec.get("InputMappings") or [],
        "Authentications": spec.get("Authentications") or [],
        "Notifications": [n.as_dict() for n in env.notifications],
        "DesiredComputeNodeCount": env.desired,
        "Tags": env.tags,
    }


def activity_view(a: Activity) -> dict[str, Any]:
    return {
        "ActivityId": a.activity_id,
        "ComputeNodeId": a.node_id,
        "ComputeNodeActivityType": a.kind,
        "EnvId": a.env_id,
        "Cause": a.cause,
        "ActivityState": a.state,
        "StateReason": a.reason,
        "StartTime": iso(a.start_time),
        "EndTime": iso(a.end_time),
        "InstanceId": a.instance_id,
    }
