"""End to end: Batch notifications written the product document's way (lower-case keys, aliases)
over raw HTTP, and API 3.0 signatures (TC3) checked or not.
"""

from __future__ import annotations

from broker.testing import broker_thread

from batch_helpers import INSTANCE_TYPE, ZONE, Sink, anon_task, check_all, check_event, names, notification, submit
from helpers import REGION, batch_client_for, call, post_api3, sdk_error


# == notifications written the document's way =======================================================


def test_lower_case_keys_and_aliases_over_raw_http(batch_broker, bc, sinks):
    """The product document's `notifications` / `event_configs` / `event_name` / `event_vars` /
    `topic_name`, sent unsigned over raw HTTP, with X-TC-Region ap-shanghai."""
    sink, env_sink = sinks("lower"), sinks("lowerenv")
    reply = post_api3(batch_broker.url, "SubmitJob", {"Placement": {"Zone": "ap-shanghai-2"}, "Job": {
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

    reply = post_api3(batch_broker.url, "CreateComputeEnv", {"Placement": {"Zone": ZONE}, "ComputeEnv": {
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


# == signatures =====================================================================================

SECRET_ID, SECRET_KEY = "AKIDe2ebatch", "e2e-batch-secret"


def test_signatures_on_tc3(no_proxy):
    """A broker with a SecretId and SecretKey: the SDK signing with the right key (TC3) submits a job
    whose events arrive; a wrong key is refused with AuthFailure.SignatureFailure.

    In process (broker.testing), with every simulated step at once: what is tested is the
    signature check of the HTTP layer, the same code a broker process runs."""
    with broker_thread(secret_id=SECRET_ID, secret_key=SECRET_KEY, batch_time_scale=0) as b:
        sink = Sink(b.account(), "signed")  # the handle signs with the broker's own secrets
        good = b.batch_client()
        job_id = submit(good, {"JobName": "signed", "Tasks": [anon_task("t")],
                               "Notifications": [notification(sink.name, "JobRunning", "JobSucceed")]})
        sink.wait_for("JOB_SUCCEED")
        check_all(sink.events, event_vars={})
        assert names(sink.events) == ["JOB_RUNNING", "JOB_SUCCEED"]
        assert all(e["Batch"]["JobId"] == job_id for e in sink.events)

        bad = b.batch_client(secret_key="not-the-key")
        for action, params in [("SubmitJob", {"Placement": {"Zone": ZONE}, "Job": {
                "JobName": "forged", "Tasks": [anon_task("t")]}}),
                               ("DescribeJob", {"JobId": job_id}), ("DeleteJob", {"JobId": job_id})]:
            assert sdk_error(bad, action, params).code == "AuthFailure.SignatureFailure", action
        listed = call(good, "DescribeJobs", {})
        assert [j["JobId"] for j in listed["JobSet"]] == [job_id], "the forged SubmitJob left a job"
        call(good, "DeleteJob", {"JobId": job_id})


def test_signatures_off_accept_anything(batch_broker, no_proxy):
    """Without secrets any credentials, and no signature at all, are accepted."""
    for secret_id, secret_key in [("AKIDone", "k1"), ("someone-else", "k2")]:
        client = batch_client_for(batch_broker.url, REGION, secret_id, secret_key)
        assert call(client, "DescribeJobs", {"Limit": 1})["TotalCount"] >= 0
    reply = post_api3(batch_broker.url, "DescribeComputeEnvs", {"Limit": 1})
    assert "Error" not in reply and reply["TotalCount"] >= 0
