"""Job actions: SubmitJob, DescribeJob(s), DescribeJobSubmitInfo, DescribeTask, DescribeTaskLogs,
TerminateJob, TerminateTaskInstance, DeleteJob, RetryJobs."""

from __future__ import annotations

import base64

from ....batchsim import BatchSim
from ....batchsim.events import iso
from ....batchsim.model import metrics
from ....batchsim.query import select
from ....batchsim.views import instance_view, job_view, task_view
from ....errors import InvalidBatchParameter
from ....pipeline import Action, Call
from .. import params as p
from .listing import listing

MAX_LOG_BYTES = 2048


async def submit_job(sim: BatchSim, params: dict, call: Call) -> dict:
    token = p.string(params, "ClientToken", max_len=64)
    job = sim.submit_job(params.get("Placement"), params.get("Job"), call.region, token)
    return {"JobId": job.job_id}


async def describe_job(sim: BatchSim, params: dict, call: Call) -> dict:
    job = sim.get_job(p.string(params, "JobId", required=True))
    return {
        "JobId": job.job_id,
        "JobName": job.name,
        "Zone": job.zone,
        "Priority": job.priority,
        "JobState": job.state,
        "CreateTime": iso(job.create_time),
        "EndTime": iso(job.end_time),
        "TaskSet": [task_view(t) for t in job.tasks.values()],
        "DependenceSet": [{"StartTask": u.name, "EndTask": t.name} for t in job.tasks.values() for u in t.upstream],
        "TaskMetrics": metrics([t.state for t in job.tasks.values()]),
        "TaskInstanceMetrics": metrics([i.state for i in job.instances()]),
        "StateReason": job.state_reason,
        "Tags": job.spec.get("Tags") or [],
        "NextAction": None,
    }


JOB_FILTERS = {
    "job-id": lambda j: j.job_id,
    "job-name": lambda j: j.name,
    "job-state": lambda j: j.state,
    "zone": lambda j: j.zone,
}


async def describe_jobs(sim: BatchSim, params: dict, call: Call) -> dict:
    jobs = listing(params, "JobIds", sim.get_job, sim.jobs.values(), JOB_FILTERS, tags=lambda j: j.spec.get("Tags"))
    offset, limit = p.page(params)
    return {"JobSet": [job_view(j) for j in jobs[offset:offset + limit]], "TotalCount": len(jobs)}


async def describe_job_submit_info(sim: BatchSim, params: dict, call: Call) -> dict:
    job = sim.get_job(p.string(params, "JobId", required=True))
    return {
        "JobId": job.job_id,
        "JobName": job.name,
        "JobDescription": job.spec.get("JobDescription") or "",
        "Priority": job.priority,
        "Tasks": job.spec["Tasks"],
        "Dependences": job.spec.get("Dependences") or [],
        "Tags": job.spec.get("Tags") or [],
    }


async def describe_task(sim: BatchSim, params: dict, call: Call) -> dict:
    task = sim.get_task(p.string(params, "JobId", required=True), p.string(params, "TaskName", required=True))
    offset, limit = p.page(params, default=100, most=1000)
    instance_filters = {"task-instance-state": lambda i: i.state, "task-instance-type": lambda i: i.state}
    instances = select(task.instances, p.filters(params), instance_filters)
    return {
        "JobId": task.job.job_id,
        "TaskName": task.name,
        "TaskState": task.state,
        "CreateTime": iso(task.create_time),
        "EndTime": iso(task.end_time),
        "TaskInstanceTotalCount": len(instances),
        "TaskInstanceSet": [instance_view(i) for i in instances[offset:offset + limit]],
        "TaskInstanceMetrics": metrics([i.state for i in task.instances]),
    }


def _b64_tail(text: str) -> str:
    data = text.encode("utf-8")[-MAX_LOG_BYTES:]
    return base64.b64encode(data).decode("ascii")


async def describe_task_logs(sim: BatchSim, params: dict, call: Call) -> dict:
    task = sim.get_task(p.string(params, "JobId", required=True), p.string(params, "TaskName", required=True))
    indexes = params.get("TaskInstanceIndexes")
    if indexes is not None and params.get("Offset") is not None:
        raise InvalidBatchParameter("give TaskInstanceIndexes or Offset, not both", "InvalidParameterCombination")
    limit = p.integer(params, "Limit", default=5, lo=1, hi=10)
    if indexes is not None:
        if not isinstance(indexes, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
            raise InvalidBatchParameter("TaskInstanceIndexes must be a list of integers")
        chosen = [task.instances[i] for i in indexes if 0 <= i < len(task.instances)]
    else:
        offset = p.integer(params, "Offset", default=0, lo=0)
        chosen = task.instances[offset:offset + limit]
    logs = []
    for inst in chosen[:limit]:
        stdout = "".join(inst.logs)
        stderr = "".join(line for line in inst.logs if "exit code 0" not in line)
        redirect = task.spec.get("RedirectInfo") or {}
        logs.append({
            "TaskInstanceIndex": inst.index,
            "StdoutLog": _b64_tail(stdout),
            "StderrLog": _b64_tail(stderr),
            "StdoutRedirectPath": redirect.get("StdoutRedirectPath", ""),
            "StderrRedirectPath": redirect.get("StderrRedirectPath", ""),
            "StdoutRedirectFileName": redirect.get("StdoutRedirectFileName", ""),
            "StderrRedirectFileName": redirect.get("StderrRedirectFileName", ""),
        })
    return {"TotalCount": len(task.instances), "TaskInstanceLogSet": logs}


async def terminate_job(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.terminate_job(p.string(params, "JobId", required=True))
    return {}


async def terminate_task_instance(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.terminate_instance(
        p.string(params, "JobId", required=True),
        p.string(params, "TaskName", required=True),
        p.integer(params, "TaskInstanceIndex", required=True, lo=0),
    )
    return {}


async def delete_job(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.delete_job(p.string(params, "JobId", required=True))
    return {}


async def retry_jobs(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.retry_jobs(p.string_list(params, "JobIds", required=True, max_items=100))
    return {}


# This family's declarations (batch_service collects them); Describe* change nothing.
ACTIONS = [
    Action("SubmitJob", submit_job),
    Action("DescribeJob", describe_job, writes=False),
    Action("DescribeJobs", describe_jobs, writes=False),
    Action("DescribeJobSubmitInfo", describe_job_submit_info, writes=False),
    Action("DescribeTask", describe_task, writes=False),
    Action("DescribeTaskLogs", describe_task_logs, writes=False),
    Action("TerminateJob", terminate_job),
    Action("TerminateTaskInstance", terminate_task_instance),
    Action("DeleteJob", delete_job),
    Action("RetryJobs", retry_jobs),
]
