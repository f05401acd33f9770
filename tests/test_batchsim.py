"""Batch simulator unit tests: state rules, scheduling and events on a fake clock, no HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from broker.batchsim import BatchSim, SimSettings
from broker.batchsim import states as S
from broker.batchsim.notifications import ALL_EVENTS, canonical_event
from broker.clock import FakeClock
from broker.engine import Broker
from broker.errors import (
    EnvIdAndComputeEnvConflict,
    InvalidBatchParameter,
    InvalidBatchParameterValue,
    InvalidZone,
    MissingParameter,
    ResourceInUse,
    ResourceNotFound,
    UnsupportedOperation,
)

ZONE = {"Zone": "ap-guangzhou-3"}
REGION = "ap-guangzhou"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def world(clock):
    broker = Broker(clock)
    seen: list[dict] = []
    sim = BatchSim(broker, SimSettings(), listener=seen.append)
    broker.create_topic("t")
    broker.create_queue("q")
    broker.subscribe("t", "s", "queue", "q")
    return sim, seen


def run(clock, seconds=20.0, step=0.05):
    for _ in range(int(seconds / step)):
        clock.advance(step)


def task(name, env=None, **extra):
    spec = {"TaskName": name, "Application": {"DeliveryForm": "LOCAL", "Command": "true"}}
    spec.update({"EnvId": env} if env else {"ComputeEnv": {"EnvType": "MANAGED",
                                                           "EnvData": {"InstanceType": "S5.MEDIUM4"}}})
    env_vars = extra.pop("vars", None)
    if env_vars:
        spec["EnvVars"] = [{"Name": k, "Value": str(v)} for k, v in env_vars.items()]
    spec.update(extra)
    return spec


def names(seen, *, kinds=("JOB_", "TASK_")):
    return [e["EventName"] for e in seen if e["EventName"].startswith(kinds)]


# -- tables and names ------------------------------------------------------------------------

def test_derive():
    assert S.derive([S.SUCCEED, S.SUCCEED], S.RUNNING) == S.SUCCEED
    assert S.derive([S.SUCCEED, S.FAILED], S.RUNNING) == S.FAILED
    assert S.derive([S.FAILED, S.FAILED_INTERRUPTED], S.RUNNING) == S.FAILED_INTERRUPTED
    assert S.derive([S.PENDING, S.RUNNABLE], S.SUBMITTED) == S.RUNNABLE
    assert S.derive([S.SUCCEED, S.PENDING], S.RUNNING) == S.RUNNING  # once running, stays so
    assert S.derive([S.SUBMITTED], S.FAILED) == S.SUBMITTED  # RetryJobs
    with pytest.raises(S.IllegalTransition):
        S.check(S.INSTANCE, "instance", S.SUCCEED, S.RUNNING)


def test_event_name_aliases():
    assert len(ALL_EVENTS) == 19
    for given, canonical in [("JobSucceed", "JOB_SUCCEED"), ("job_succeed", "JOB_SUCCEED"),
                             ("JobFailed", "JOB_FAILED"), ("ComputeNodeCreationFailed", "COMPUTE_NODE_CREATION_FAILED"),
                             ("task-instance-failed-interrupted", "TASK_INSTANCE_FAILED_INTERRUPTED"),
                             ("JobSucceeded", "JOB_SUCCEED")]:
        assert canonical_event(given) == canonical
    assert canonical_event("JobExploded") is None


# -- jobs ------------------------------------------------------------------------------------

def test_dag_with_retry_emits_in_order(world, clock):
    sim, seen = world
    job = sim.submit_job(ZONE, {
        "JobName": "dag",
        "Tasks": [task("a", TaskInstanceNum=2), task("b", MaxRetryCount=1, vars={"BATCH_SIM_EXIT_CODE": 2}),
                  task("c")],
        "Dependences": [{"StartTask": "a", "EndTask": "b"}, {"StartTask": "a", "EndTask": "c"}],
    }, REGION)
    run(clock)
    assert job.state == S.FAILED and job.tasks["a"].state == S.SUCCEED and job.tasks["c"].state == S.SUCCEED
    b = job.tasks["b"].instances[0]
    assert (b.state, b.exit_code, b.attempts) == (S.FAILED, 2, 2)
    events = names(seen)
    assert events.count("JOB_RUNNING") == 1 and events[-1] == "JOB_FAILED"
    assert events.count("TASK_INSTANCE_RUNNING") == 2 + 2 + 1  # b ran twice
    assert events.count("TASK_INSTANCE_FAILED") == 1  # only after the last attempt
    assert events.index("TASK_SUCCEED") < events.index("TASK_INSTANCE_FAILED")  # a finishes before b starts
    assert events[-3:] == ["TASK_INSTANCE_FAILED", "TASK_FAILED", "JOB_FAILED"]


def test_events_reach_only_configured_topics_as_base64(world, clock):
    sim, seen = world
    sim.broker.create_topic("other")
    sim.broker.create_queue("other-q")
    sim.broker.subscribe("other", "s", "queue", "other-q")
    job = sim.submit_job(ZONE, {"JobName": "n", "Tasks": [task("a")], "notifications": [
        {"topic_name": "t", "event_configs": [{"event_name": "JobSucceed",
                                                "event_vars": [{"name": "k", "value": "v"}]}]},
        {"TopicName": "other", "EventConfigs": [{"EventName": "TASK_INSTANCE_RUNNING"}]},
    ]}, REGION)
    run(clock)
    [msg] = sim.broker.get_queue("q").take(16)
    [event] = json.loads(base64.b64decode(msg.body))["Events"]
    assert event["EventName"] == "JOB_SUCCEED" and event["EventVars"] == [{"Name": "k", "Value": "v"}]
    assert event["Batch"]["JobId"] == job.job_id and event["Region"] == REGION and event["EventVersion"] == "1.0"
    [msg] = sim.broker.get_queue("other-q").take(16)
    assert json.loads(base64.b64decode(msg.body))["Events"][0]["EventName"] == "TASK_INSTANCE_RUNNING"


@pytest.mark.parametrize("mode, expected_c", [
    ("PRE_TASK_SUCCEED", S.FAILED),
    ("PRE_TASK_AT_LEAST_PARTLY_SUCCEED", S.SUCCEED),
    ("PRE_TASK_FINISHED", S.SUCCEED),
])
def test_dependency_modes(world, clock, mode, expected_c):
    sim, _ = world
    job = sim.submit_job(ZONE, {"JobName": "m", "TaskExecutionDependOn": mode, "Tasks": [
        task("a", TaskInstanceNum=2, vars={"BATCH_SIM_EXIT_CODE": "0,1"}), task("c")],
        "Dependences": [{"StartTask": "a", "EndTask": "c"}]}, REGION)
    run(clock)
    assert [i.exit_code for i in job.tasks["a"].instances] == [0, 1]
    assert job.tasks["a"].state == S.FAILED
    assert job.tasks["c"].state == expected_c


def test_fail_attempts_then_succeed(world, clock):
    sim, seen = world
    job = sim.submit_job(ZONE, {"JobName": "r", "Tasks": [
        task("a", MaxRetryCount=3, vars={"BATCH_SIM_FAIL_ATTEMPTS": 2, "BATCH_SIM_EXIT_CODE": 7})]}, REGION)
    run(clock)
    inst = job.tasks["a"].instances[0]
    assert (inst.state, inst.attempts, inst.exit_code) == (S.SUCCEED, 3, 0)
    assert len(inst.logs) == 3 and "exit code 7" in inst.logs[0]
    assert names(seen).count("TASK_INSTANCE_RUNNING") == 3 and "TASK_INSTANCE_FAILED" not in names(seen)


def test_pending_task_fails_when_its_dependency_cannot_be_met(world, clock):
    sim, _ = world
    job = sim.submit_job(ZONE, {"JobName": "x", "Tasks": [task("a", vars={"BATCH_SIM_EXIT_CODE": 1}), task("b")],
                                "Dependences": [{"StartTask": "a", "EndTask": "b"}]}, REGION)
    run(clock)
    b = job.tasks["b"].instances[0]
    assert b.state == S.FAILED and b.attempts == 0 and "depends" in b.state_reason


def test_timeout_fails_the_attempt(world, clock):
    sim, _ = world
    job = sim.submit_job(ZONE, {"JobName": "x", "Tasks": [task("a", Timeout=2, vars={"BATCH_SIM_DURATION": 60})]},
                         REGION)
    run(clock, 10)
    inst = job.tasks["a"].instances[0]
    assert inst.state == S.FAILED and inst.exit_code == -1 and "Timeout" in inst.state_reason


def test_max_concurrent_and_priority(world, clock):
    sim, _ = world
    env = sim.create_env({"EnvName": "e", "DesiredComputeNodeCount": 5, "EnvData": {"InstanceType": "S1.SMALL1"}},
                         ZONE, REGION)
    run(clock, 2)
    low = sim.submit_job(ZONE, {"JobName": "low", "Priority": 1, "Tasks": [
        task("t", env.env_id, TaskInstanceNum=4, MaxConcurrentNum=2, vars={"BATCH_SIM_DURATION": 5})]}, REGION)
    high = sim.submit_job(ZONE, {"JobName": "high", "Priority": 9, "Tasks": [
        task("t", env.env_id, TaskInstanceNum=4, vars={"BATCH_SIM_DURATION": 5})]}, REGION)
    run(clock, 1)
    running_low = sum(i.state == S.RUNNING for i in low.instances())
    running_high = sum(i.state == S.RUNNING for i in high.instances())
    assert running_high == 4 and running_low == 1  # 5 nodes: high first, then low's cap is not the limit
    run(clock, 6)
    assert sum(i.state in (S.RUNNING, S.STARTING) for i in low.instances()) == 2  # capped by MaxConcurrentNum
    run(clock, 20)
    assert low.state == high.state == S.SUCCEED


def test_terminate_retry_and_delete_job(world, clock):
    sim, seen = world
    job = sim.submit_job(ZONE, {"JobName": "long", "Tasks": [task("a", vars={"BATCH_SIM_DURATION": 100}),
                                                             task("b")],
                                "Dependences": [{"StartTask": "a", "EndTask": "b"}]}, REGION)
    with pytest.raises(UnsupportedOperation):
        sim.terminate_job(job.job_id)  # still SUBMITTED
    run(clock, 2)
    with pytest.raises(ResourceInUse):
        sim.delete_job(job.job_id)
    with pytest.raises(UnsupportedOperation):
        sim.retry_jobs([job.job_id])  # not FAILED
    sim.terminate_job(job.job_id)
    run(clock, 2)
    assert job.state == S.FAILED and all(i.state == S.FAILED for i in job.instances())
    job.tasks["a"].env_vars = {}  # the retry runs quickly
    seen.clear()
    sim.retry_jobs([job.job_id])
    assert job.state == S.SUBMITTED and job.end_time is None
    run(clock)
    assert job.state == S.SUCCEED and names(seen).count("JOB_RUNNING") == 1
    sim.delete_job(job.job_id)
    with pytest.raises(ResourceNotFound):
        sim.get_job(job.job_id)


def test_interrupt_keeps_the_node_until_terminated(world, clock):
    sim, seen = world
    job = sim.submit_job(ZONE, {"JobName": "i", "Tasks": [
        task("a", FailedAction="INTERRUPT", vars={"BATCH_SIM_EXIT_CODE": 3})]}, REGION)
    run(clock)
    inst = job.tasks["a"].instances[0]
    assert inst.state == S.FAILED_INTERRUPTED and job.state == S.FAILED_INTERRUPTED
    assert inst.node is not None and inst.node.state == "RUNNING"
    with pytest.raises(ResourceInUse):
        sim.delete_job(job.job_id)
    sim.terminate_instance(job.job_id, "a", 0)
    run(clock, 2)
    assert inst.state == S.FAILED and job.state == S.FAILED
    assert "COMPUTE_NODE_DELETING" in [e["EventName"] for e in seen]


def test_cvm_creation_failure_follows_state_if_create_cvm_failed(world, clock):
    sim, _ = world
    failing = {"ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "SIM.CREATION_FAILED"}}}
    job = sim.submit_job(ZONE, {"JobName": "f", "Tasks": [dict(task("a"), **failing)]}, REGION)
    run(clock)
    assert job.tasks["a"].instances[0].state == S.FAILED
    waiting = sim.submit_job(ZONE, {"JobName": "w", "StateIfCreateCvmFailed": "RUNNABLE", "Tasks": [
        dict(task("a", ResourceMaxRetryCount=2), **failing)]}, REGION)
    run(clock)
    inst = waiting.tasks["a"].instances[0]
    assert inst.state == S.RUNNABLE and inst.cvm_failures == 3 and inst.blocked
    sim.terminate_job(waiting.job_id)
    run(clock, 1)
    assert inst.state == S.FAILED


# -- compute environments --------------------------------------------------------------------

def node_events(seen):
    return [(e["EventName"], e["Batch"]["ComputeNodeId"]) for e in seen if e["EventName"].startswith("COMPUTE_")
            and "ComputeNodeId" in e["Batch"]]


def test_env_lifecycle_and_scaling(world, clock):
    sim, seen = world
    env = sim.create_env({"EnvName": "e", "DesiredComputeNodeCount": 2, "EnvData": {"InstanceType": "S5.LARGE8"}},
                         ZONE, REGION)
    assert seen[0]["EventName"] == "COMPUTE_ENV_CREATED"
    run(clock, 2)
    assert [n.state for n in env.nodes.values()] == ["RUNNING", "RUNNING"]
    node = next(iter(env.nodes.values()))
    assert (node.cpu, node.mem) == (4, 8)
    sim.modify_env(env.env_id, desired=4)
    run(clock, 2)
    assert env.metrics()["RunningCount"] == 4 and len(env.activities) == 4
    with pytest.raises(InvalidBatchParameterValue):
        sim.modify_env(env.env_id, desired=-1)
    sim.modify_env(env.env_id, desired=1)
    run(clock, 2)
    assert len(env.nodes) == 1 and env.desired == 1
    sim.terminate_nodes(env.env_id, list(env.nodes))
    with pytest.raises(UnsupportedOperation):
        sim.terminate_nodes(env.env_id, list(env.nodes))  # already terminating
    run(clock, 2)
    assert env.nodes == {} and env.desired == 0
    sim.modify_env(env.env_id, desired=1)
    run(clock, 2)
    sim.delete_env(env.env_id)
    run(clock, 2)
    assert env.env_id not in sim.envs
    assert seen[-1]["EventName"] == "COMPUTE_ENV_DELETED"
    assert seen[-2]["EventName"] == "COMPUTE_NODE_DELETING"


def test_scale_down_prefers_idle_and_needs_enough_nodes(world, clock):
    sim, _ = world
    env = sim.create_env({"EnvName": "e", "DesiredComputeNodeCount": 2, "EnvData": {"InstanceType": "S1.SMALL1"}},
                         ZONE, REGION)
    with pytest.raises(UnsupportedOperation) as info:
        sim.modify_env(env.env_id, desired=0)  # nodes are still being created
    assert info.value.reason == "NotEnoughComputeNodesToTerminate"
    run(clock, 2)
    job = sim.submit_job(ZONE, {"JobName": "j", "Tasks": [task("a", env.env_id, vars={"BATCH_SIM_DURATION": 50})]},
                         REGION)
    run(clock, 1)
    busy = job.tasks["a"].instances[0].node
    with pytest.raises(UnsupportedOperation):
        sim.delete_env(env.env_id)  # a node is running an instance
    sim.modify_env(env.env_id, desired=1)
    run(clock, 1)
    assert list(env.nodes.values()) == [busy] and job.tasks["a"].instances[0].state == S.RUNNING


def test_fault_injection(world, clock):
    sim, seen = world
    failing = sim.create_env({"EnvName": "f", "DesiredComputeNodeCount": 1, "ResourceMaxRetryCount": 1,
                              "EnvData": {"InstanceType": "SIM.CREATION_FAILED"}}, ZONE, REGION)
    sick = sim.create_env({"EnvName": "a", "DesiredComputeNodeCount": 1, "ActionIfComputeNodeInactive": "NOTHING",
                           "EnvData": {"InstanceType": "SIM.ABNORMAL"}}, ZONE, REGION)
    run(clock, 10)
    events = [e["EventName"] for e in seen if e["Batch"].get("EnvId") == failing.env_id]
    assert events.count("COMPUTE_NODE_CREATION_FAILED") == 2  # the first node and its one replacement
    assert [n.state for n in sick.nodes.values()] == ["ABNORMAL"]
    assert [a.state for a in failing.activities if a.kind == "CREATE_COMPUTE_NODE"] == ["FAILED", "FAILED"]


def test_lost_node_fails_the_attempt_and_retries(world, clock):
    sim, _ = world
    env = sim.create_env({"EnvName": "e", "DesiredComputeNodeCount": 2, "EnvData": {"InstanceType": "S1.SMALL1"}},
                         ZONE, REGION)
    run(clock, 2)
    job = sim.submit_job(ZONE, {"JobName": "j", "Tasks": [
        task("a", env.env_id, MaxRetryCount=1, vars={"BATCH_SIM_DURATION": 3})]}, REGION)
    run(clock, 1)
    inst = job.tasks["a"].instances[0]
    sim.terminate_nodes(env.env_id, [inst.node.node_id])
    run(clock, 10)
    assert inst.state == S.SUCCEED and inst.attempts == 2


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("placement, job, error", [
    ({"Zone": "ap-shanghai-2"}, {"JobName": "x", "Tasks": [task("a")]}, InvalidZone),
    ({}, {"JobName": "x", "Tasks": [task("a")]}, MissingParameter),
    (ZONE, {"JobName": "x", "Tasks": []}, InvalidBatchParameter),
    (ZONE, {"JobName": "x" * 61, "Tasks": [task("a")]}, InvalidBatchParameter),
    (ZONE, {"JobName": "x", "Tasks": [task("a"), task("a")]}, InvalidBatchParameter),
    (ZONE, {"JobName": "x", "Tasks": [dict(task("a"), EnvId="env-abcdefgh")]}, EnvIdAndComputeEnvConflict),
    (ZONE, {"JobName": "x", "Tasks": [task("a", "env-missing1")]}, ResourceNotFound),
    (ZONE, {"JobName": "x", "Tasks": [task("a", "bogus")]}, InvalidBatchParameter),
    (ZONE, {"JobName": "x", "Tasks": [task("a", MaxRetryCount=11)]}, InvalidBatchParameterValue),
    (ZONE, {"JobName": "x", "Tasks": [task("a", vars={"BATCH_SIM_EXIT_CODE": "x"})]}, InvalidBatchParameterValue),
    (ZONE, {"JobName": "x", "Tasks": [task("a"), task("b")],
            "Dependences": [{"StartTask": "a", "EndTask": "b"}, {"StartTask": "b", "EndTask": "a"}]},
     InvalidBatchParameterValue),
    (ZONE, {"JobName": "x", "Tasks": [task("a")],
            "Notifications": [{"TopicName": "nope", "EventConfigs": [{"EventName": "JOB_FAILED"}]}]},
     InvalidBatchParameter),
    (ZONE, {"JobName": "x", "Tasks": [task("a")], "Notifications": [
        {"TopicName": "t", "EventConfigs": [{"EventName": "JobFailed"}, {"EventName": "JOB_FAILED"}]}]},
     InvalidBatchParameter),
    (ZONE, {"JobName": "x", "Tasks": [task("a")],
            "Notifications": [{"TopicName": "t", "EventConfigs": [{"EventName": "COMPUTE_ENV_CREATED"}]}]},
     InvalidBatchParameterValue),
])
def test_submit_validation_leaves_nothing(world, placement, job, error):
    sim, seen = world
    with pytest.raises(error):
        sim.submit_job(placement, job, REGION)
    assert sim.jobs == {} and seen == []


def test_notification_error_reasons(world):
    sim, _ = world
    base = {"JobName": "x", "Tasks": [task("a")]}
    for notifications, reason in [
        ([{"TopicName": "nope", "EventConfigs": [{"EventName": "JOB_FAILED"}]}], "NotificationTopicName"),
        ([{"TopicName": "t" * 65, "EventConfigs": [{"EventName": "JOB_FAILED"}]}], "NotificationTopicNameTooLong"),
        ([{"TopicName": "t", "EventConfigs": [{"EventName": "job_failed"}, {"EventName": "JobFailed"}]}],
         "NotificationEventNameDuplicate"),
    ]:
        with pytest.raises(InvalidBatchParameter) as info:
            sim.submit_job(ZONE, dict(base, Notifications=notifications), REGION)
        assert info.value.reason == reason


# -- durability: its records rebuild the simulated world ------------------------------------

def test_restart_restores_jobs_envs_and_fails_interrupted_attempts(clock):
    from broker.batchsim.persist import BatchPart
    from broker.storage.codec import empty_state, encode, replay

    broker = Broker(clock)
    records: list[tuple] = []
    broker.events.set_recorder(lambda event: records.append(encode(event)))
    sim = BatchSim(broker)
    sim.records.set_recorder(records.append)  # the simulator's records are its own
    env = sim.create_env({"EnvName": "e", "DesiredComputeNodeCount": 2, "EnvData": {"InstanceType": "S1.SMALL1"}},
                         ZONE, REGION)
    run(clock, 2)
    done = sim.submit_job(ZONE, {"JobName": "done", "Tasks": [task("a")]}, REGION)
    run(clock, 2)
    busy = sim.submit_job(ZONE, {"JobName": "busy", "Tasks": [
        task("long", env.env_id, MaxRetryCount=1, vars={"BATCH_SIM_DURATION": 100})]}, REGION)
    template = sim.templates.create("tpl", task("x"), "d", [], clock.time(), lambda *a: None)
    run(clock, 1)
    assert busy.tasks["long"].instances[0].state == S.RUNNING
    sim.close()  # the broker stops (or dies) here

    part = BatchPart(sim)
    state = replay(empty_state(), [r for r in records if r[0] not in part.kinds])
    state["batch"] = part.empty()
    for record in records:
        if record[0] in part.kinds:
            part.replay(state["batch"], record)
    fresh_broker = Broker(clock)
    fresh_broker.load(state)
    fresh = BatchSim(fresh_broker)
    fresh.load(state["batch"])
    assert fresh.get_job(done.job_id).state == S.SUCCEED
    assert fresh.templates.get(template.template_id).name == "tpl"
    restored_env = fresh.get_env(env.env_id)
    assert [n.state for n in restored_env.nodes.values()] == ["RUNNING", "RUNNING"]
    inst = fresh.get_job(busy.job_id).tasks["long"].instances[0]
    assert inst.state == S.RUNNABLE and "restarted" in inst.state_reason  # its attempt was lost; one retry left
    fresh.get_job(busy.job_id).tasks["long"].env_vars = {}
    run(clock, 3)
    assert fresh.get_job(busy.job_id).state == S.SUCCEED and inst.attempts == 2
    # and the same again from a snapshot of the restored world
    snapshot = fresh.dump()
    again = BatchSim(Broker(clock))
    again.load(snapshot)
    assert again.get_job(busy.job_id).state == S.SUCCEED and set(again.envs) == {env.env_id}


def test_batch_delays_setting():
    import argparse

    from broker.config import Config, batch_delays, build_config

    assert batch_delays(Config(batch_delays="node_boot=2, run=0.5")) == {"node_boot": 2.0, "run": 0.5}
    settings = SimSettings(**batch_delays(Config(batch_delays="terminate=0")))
    assert settings.terminate == 0 and settings.run == SimSettings().run
    for bad in ["boot=1", "run=-1", "run=soon", "run"]:
        with pytest.raises(ValueError):
            build_config(argparse.Namespace(batch_delays=bad), environ={})
    assert build_config(argparse.Namespace(), environ={"BROKER_BATCH_DELAYS": "run=3"}).batch_delays == "run=3"
