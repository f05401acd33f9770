"""Batch API errors, table by table: what SubmitJob and CreateComputeEnv refuse, and unknown or
malformed ids on every action that takes one (spec batch-api.md §5-§6), through the official
Batch SDK. A refused request must leave no trace.

No case here waits for anything, so they run against one in-process broker on a fake clock
(`batch_inproc` in conftest.py), which nothing ever advances: no simulated step happens meanwhile.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from cmq.topic import TopicMeta

from batch_helpers import ZONE, anon_task, env_task, named_env, notification
from helpers import call, sdk_error, uid, unique_name


@pytest.fixture
def bc(batch_inproc, no_proxy):
    return batch_inproc.batch_client()


@pytest.fixture(scope="module")
def spare_topic(batch_inproc) -> Iterator[str]:
    """An existing topic, for notification checks that come after the topic's existence."""
    topic = batch_inproc.account().get_topic(unique_name("spare"))
    topic.create(TopicMeta())
    yield topic.topicName
    topic.delete()


# == errors ========================================================================================


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
