"""End to end: Batch jobs that fail, are terminated, retried and deleted, and FailedAction=INTERRUPT
(spec batch-api.md §3, §5-§8), on the session's `batch_broker` (simulated time x0.1), observed
through event sinks (batch_helpers.py).
"""

from __future__ import annotations

import base64

from batch_helpers import (
    INSTANCE_EVENTS, JOB_EVENTS, NODE_EVENTS, TASK_EVENTS, anon_task, check_all, is_time, names, notification,
    submit,
)
from helpers import call, sdk_error, uid


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
