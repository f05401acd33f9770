"""End to end: a Batch job as a DAG with retries, driven by the official Batch SDK and observed
through the official CMQ SDK (issue 5, item 8; spec batch-api.md §3, §5-§8).

The session's `batch_broker` process runs the simulator with every delay x0.1. Each test makes its
own event sinks (batch_helpers.Sink: a topic with a queue subscribed); what is checked, and how, is
described in batch_helpers.py. Timing assertions are deliberately loose: parallel attempts may
interleave in any order.
"""

from __future__ import annotations

import base64

from batch_helpers import (
    CPU, MEM, ZONE, anon_task, by_node, check_all, check_event, is_time, kind, names, notification,
    of_instance, of_kind, of_task, state_of, submit,
)
from helpers import call, post_api3, sdk_error, uid


# == the main DAG ==================================================================================


def test_dag_job_with_retries_event_stream(batch_broker, bc, sinks):
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
    info = post_api3(batch_broker.url, "DescribeJobSubmitInfo", {"JobId": job_id})
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
