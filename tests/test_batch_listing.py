"""Batch listings and stored objects through the official Batch SDK: DescribeJobs with filters and
paging, and task templates from creation to deletion (spec batch-api.md §5).

These need no event and no process: they run against one in-process broker on a fake clock
(`batch_inproc` in conftest.py), moved on by hand where a job has to finish.
"""

from __future__ import annotations

import re

import pytest

from batch_helpers import INSTANCE_TYPE, ZONE, anon_task, is_time, submit
from helpers import advance_until, call, sdk_error, uid


@pytest.fixture
def bc(batch_inproc, no_proxy):
    return batch_inproc.batch_client()


# == listings and templates ========================================================================


def test_describe_jobs_filters_and_paging(batch_inproc, bc):
    tag = uid()
    ids = []
    for i in range(3):
        ids.append(submit(bc, {"JobName": f"list-{tag}-{i}", "Tasks": [anon_task("t")],
                               "Tags": [{"Key": "suite", "Value": tag}, {"Key": "n", "Value": str(i)}]}))
        batch_inproc.advance(1)  # one job a second: "newest first" has an order to show
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
    advance_until(batch_inproc, lambda: call(bc, "DescribeJobs", {"Filters": [
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
