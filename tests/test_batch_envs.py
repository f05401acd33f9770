"""End to end: named Batch compute environments: create, scale, terminate nodes, delete, a busy
node, and the simulator's failure injection (SIM.CREATION_FAILED, SIM.ABNORMAL); on the session's
`batch_broker` (simulated time x0.1), observed through event sinks (batch_helpers.py).
"""

from __future__ import annotations

import pytest

from batch_helpers import (
    CPU, ENV_EVENTS, INSTANCE_EVENTS, INSTANCE_TYPE, JOB_EVENTS, MEM, NODE_EVENTS, NODE_KEYS, TASK_EVENTS,
    ZONE, check_all, check_event, create_env, describe_env, env_task, kind, named_env, names, notification,
    state_of, submit,
)
from helpers import call, post_api3, sdk_error, uid, wait_until


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


def test_named_env_lifecycle(batch_broker, bc, sinks):
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
    info = post_api3(batch_broker.url, "DescribeComputeEnvCreateInfo", {"EnvId": env_id})
    assert info["Notifications"] == canonical
    assert (info["EnvName"], info["EnvDescription"], info["EnvType"]) == (env_name, "e2e", "MANAGED")
    assert info["EnvData"]["InstanceType"] == INSTANCE_TYPE
    infos = post_api3(batch_broker.url, "DescribeComputeEnvCreateInfos", {"EnvIds": [env_id]})
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
