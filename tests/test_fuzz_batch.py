"""Fuzzing of the Batch API 3.0 endpoint (POST /, action in X-TC-Action).

Requests come from a grammar of the registered actions: each with its own JSON body, mostly
valid (zones, instance types, task specs, notifications to a real topic, ids the broker handed
out earlier), then mutated (a value anywhere replaced by random JSON, a key dropped or added),
and sent with random headers (action names real, unsupported, misspelt or missing; versions
and regions right or wrong) and bodies (JSON, JSON with NaN, not JSON, not UTF-8, not an object,
nested too deep, over the size limit, empty). Between calls the broker's clock moves, so jobs
and nodes go through their states.

Invariants after every call: HTTP 200 with the API 3.0 envelope (`batch_reply`: exactly
application/json, RequestId, a string Error.Code and Message, never InternalError), and no
ERROR in the broker's log (a failed simulator step logs one). What was accepted is consistent:
a submitted job, created environment or template is described as submitted, and a job or
environment is found by a filter on its id and tag; a deleted job or template is gone; a job
the broker accepted stays listed until deleted.

At the end, regression tests for the inputs that got InternalError (or were wrongly accepted)
before the fixes the fuzzing led to (docs/robustness.md lists them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, strategies as st

from broker.protocol.api3.batch import SUPPORTED as ACTIONS, UNSUPPORTED
from broker.protocol.api3.batch import VERSION

from fuzzing import Http, LogWatch, Request, Tally, batch_error, batch_reply, budget, fake_clock_broker, form, report

MAX_BODY = 200_000
TOPIC = "fzbatch"  # a CMQ topic for Notifications, with a queue subscribed to it
TALLY = Tally()
# Ids the broker gave out; "node" and "node-env" are parallel: a node and its environment.
KNOWN: dict[str, list[str]] = {"job": [], "env": [], "tmpl": [], "node": [], "node-env": []}
DELETED: dict[str, set[str]] = {"job": set(), "tmpl": set()}


@dataclass(frozen=True)
class Ref:
    """An id of an earlier reply, chosen when the request is sent (the broker makes ids up)."""
    kind: str
    k: int


def resolve(obj: Any) -> Any:
    if isinstance(obj, Ref):
        known = KNOWN[obj.kind]
        return known[obj.k % len(known)] if known else f"{obj.kind}-nosuch{obj.k}"
    if isinstance(obj, dict):
        return {k: resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v) for v in obj]
    return obj


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`odd` one time in twelve: a request has a dozen such choices, and about half of all
    requests should be valid to reach deep (the mutations add more invalid ones)."""
    return st.integers(0, 11).flatmap(lambda k: odd if k == 11 else valid)  # shrinks towards valid


# -- JSON values ----------------------------------------------------------------------------------

JUNK_TEXT = st.text(max_size=20) | st.sampled_from(["", " ", "\x00", "é" * 70, "🙂", "null", "{}", "x" * 300])
leaves = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, -1, 2**63, 10**30, -0.0])
          | st.floats(allow_nan=False, allow_infinity=False) | JUNK_TEXT)
any_json = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
# Integers the way clients get them wrong: out of range, floats, booleans, strings of digits.
ODD_NUMBERS = [1.5, True, False, "", None, [], {}, 2**63, -(2**63), 10**30]
DIGIT_STRINGS = ["5", "-1", "--5", "²", "١٢", "0x10", " 7", "1_0", "-"]


def number(lo: int, hi: int) -> st.SearchStrategy:
    odd = st.sampled_from([lo - 1, hi + 1, *ODD_NUMBERS]) | st.sampled_from(DIGIT_STRINGS)
    return st.integers(0, 5).flatmap(lambda k: odd if k == 5 else st.integers(lo, hi))


def ids(kind: str) -> st.SearchStrategy:
    return mostly(st.integers(0, 50).map(lambda k: Ref(kind, k)),
                  st.sampled_from([f"{kind}-nosuch", f"{kind}-", kind, "", kind.upper() + "-x", 7, None]) | JUNK_TEXT)


# -- request grammar --------------------------------------------------------------------------------

ZONES = ["ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-2"]
ODD_ZONES = ["ap-shanghai-2", "ap-guangzhou-9", "ap-guangzhou", "", "AP-GUANGZHOU-3"]
TYPES = ["S5.MEDIUM4", "S5.SMALL2", "SA2.MEDIUM4", "SIM.CREATION_FAILED", "SIM.ABNORMAL"]
ODD_TYPES = ["S1.SMALL1", "M5.MEDIUM16", "NOPE.X", "", "s5.medium4"]
JOB_EVENTS = ["JobSucceed", "JOB_FAILED", "job_running", "TaskSucceed", "TASK_INSTANCE_FAILED", "JobSucceeded",
              "COMPUTE_NODE_CREATED"]
ENV_EVENTS = ["ComputeEnvCreated", "COMPUTE_ENV_DELETED", "COMPUTE_NODE_RUNNING", "compute-node-abnormal"]
SIM_VALUES = ["0", "1", "3", "0,3", "0.2", "2", "0,0,1"]
ODD_SIM_VALUES = ["nan", "inf", "-inf", "1e308", "-1", "", " ", "1_0", "0x1", "²", "--1", ",", "1,,2", "1e-400"]

placement = mostly(st.fixed_dictionaries({"Zone": mostly(st.sampled_from(ZONES), st.sampled_from(ODD_ZONES))}),
                   any_json)
env_data = st.fixed_dictionaries(
    {"InstanceType": mostly(st.sampled_from(TYPES), st.sampled_from(ODD_TYPES) | any_json)},
    optional={"ImageId": mostly(st.just("img-123"), st.sampled_from(["bad", 5])),
              "InstanceTypes": st.lists(st.sampled_from(TYPES))})
anonymous_env = st.fixed_dictionaries({"EnvType": mostly(st.just("MANAGED"), st.sampled_from(["UNMANAGED", 1])),
                                       "EnvData": mostly(env_data, any_json)})
env_vars = st.lists(st.fixed_dictionaries({
    "Name": st.sampled_from(["BATCH_SIM_EXIT_CODE", "BATCH_SIM_DURATION", "BATCH_SIM_FAIL_ATTEMPTS", "OTHER"]),
    "Value": mostly(st.sampled_from(SIM_VALUES), st.sampled_from(ODD_SIM_VALUES) | any_json)}), max_size=3)
def notifications(events: list[str]) -> st.SearchStrategy:
    return st.lists(st.fixed_dictionaries({
        "TopicName": mostly(st.just(TOPIC), st.sampled_from(["nosuch", "", "t" * 65]) | any_json),
        "EventConfigs": mostly(st.lists(st.fixed_dictionaries(
            {"EventName": mostly(st.sampled_from(events), st.sampled_from(JOB_EVENTS + ENV_EVENTS) | JUNK_TEXT)},
            optional={"EventVars": st.lists(st.fixed_dictionaries({"Name": JUNK_TEXT, "Value": JUNK_TEXT}),
                                            max_size=2)}),
            min_size=1, max_size=3, unique_by=lambda c: c["EventName"]), any_json)}), max_size=2)
tags = mostly(st.lists(st.fixed_dictionaries({"Key": mostly(st.sampled_from(["team", "env"]), any_json),
                                              "Value": mostly(JUNK_TEXT, any_json)}), max_size=3), any_json)
TASK_NAMES = ["main", "second", "T-3"]


@st.composite
def task(draw) -> dict:
    spec = {"TaskName": draw(mostly(st.sampled_from(TASK_NAMES), st.sampled_from(["", "x" * 61, 5, None]))),
            "Application": draw(mostly(st.just({"DeliveryForm": "LOCAL", "Command": "echo hi"}), any_json))}
    where = draw(st.sampled_from(["anonymous"] * 6 + ["named"] * 3 + ["both", "neither"]))
    if where in ("anonymous", "both"):
        spec["ComputeEnv"] = draw(mostly(anonymous_env, any_json))
    if where in ("named", "both"):
        spec["EnvId"] = draw(ids("env"))
    optional = {"TaskInstanceNum": number(1, 3), "MaxRetryCount": number(0, 10), "Timeout": number(1, 100),
                "EnvVars": mostly(env_vars, any_json), "MaxConcurrentNum": number(0, 3),
                "ResourceMaxRetryCount": number(0, 3),
                "FailedAction": mostly(st.sampled_from(["TERMINATE", "INTERRUPT"]), JUNK_TEXT),
                "RedirectInfo": any_json}
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        spec[key] = draw(optional[key])
    return spec


@st.composite
def job(draw) -> dict:
    tasks = draw(st.lists(task(), min_size=1, max_size=3, unique_by=lambda t: repr(t.get("TaskName"))))
    spec = {"JobName": draw(mostly(st.sampled_from(["fz-job", "作业"]), st.sampled_from(["", "j" * 61, 1]))),
            "Tasks": tasks}
    names = [t.get("TaskName") for t in tasks] or ["main"]
    optional = {
        "Priority": number(0, 100), "Notifications": mostly(notifications(JOB_EVENTS), any_json), "Tags": tags,
        "Dependences": st.lists(st.fixed_dictionaries({"StartTask": st.sampled_from(names),
                                                       "EndTask": st.sampled_from(names)}), max_size=2),
        "TaskExecutionDependOn": mostly(st.sampled_from(["PRE_TASK_SUCCEED", "PRE_TASK_FINISHED"]), JUNK_TEXT),
        "StateIfCreateCvmFailed": mostly(st.sampled_from(["FAILED", "RUNNABLE"]), JUNK_TEXT),
        "JobDescription": JUNK_TEXT,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        spec[key] = draw(optional[key])
    return spec


named_env = st.fixed_dictionaries(
    {"EnvName": mostly(st.sampled_from(["fz-env", "环境"]), st.sampled_from(["", "e" * 61, 3])),
     "EnvType": mostly(st.just("MANAGED"), JUNK_TEXT),
     "EnvData": mostly(env_data, any_json)},
    optional={"DesiredComputeNodeCount": number(0, 2), "Notifications": mostly(notifications(ENV_EVENTS), any_json),
              "ActionIfComputeNodeInactive": mostly(st.sampled_from(["RECREATE", "NOTHING"]), JUNK_TEXT),
              "ResourceMaxRetryCount": number(0, 3), "EnvDescription": JUNK_TEXT, "Tags": tags})
FILTER_NAMES = ["job-id", "job-name", "job-state", "zone", "env-id", "env-name", "resource-type", "tag-key",
                "tag-value", "tag:team", "task-template-name", "compute-node-id", "task-instance-state",
                "instance-family", "nope"]
filters = mostly(st.lists(st.fixed_dictionaries({
    "Name": st.sampled_from(FILTER_NAMES), "Values": mostly(st.lists(JUNK_TEXT | st.sampled_from(
        ["SUCCEED", "ap-guangzhou-3", "team", "S5"]), max_size=3), any_json)}), max_size=2), any_json)
paging = {"Offset": number(0, 5), "Limit": number(1, 100)}


def body(required: dict, optional: dict | None = None) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(required, optional=optional or {})


PARAMS: dict[str, st.SearchStrategy[dict]] = {
    "SubmitJob": body({"Placement": placement, "Job": mostly(job(), any_json)}, {"ClientToken": JUNK_TEXT}),
    "DescribeJob": body({"JobId": ids("job")}),
    "DescribeJobs": body({}, {"JobIds": st.lists(ids("job"), max_size=3), "Filters": filters, **paging}),
    "DescribeJobSubmitInfo": body({"JobId": ids("job")}),
    "DescribeTask": body({"JobId": ids("job"), "TaskName": st.sampled_from(TASK_NAMES) | JUNK_TEXT},
                         {"Filters": filters, **paging}),
    "DescribeTaskLogs": body({"JobId": ids("job"), "TaskName": st.sampled_from(TASK_NAMES) | JUNK_TEXT},
                             {"TaskInstanceIndexes": st.lists(number(0, 3), max_size=3) | any_json, **paging}),
    "TerminateJob": body({"JobId": ids("job")}),
    "TerminateTaskInstance": body({"JobId": ids("job"), "TaskName": st.sampled_from(TASK_NAMES),
                                   "TaskInstanceIndex": number(0, 3)}),
    "DeleteJob": body({"JobId": ids("job")}),
    "RetryJobs": body({"JobIds": mostly(st.lists(ids("job"), min_size=1, max_size=3), any_json)}),
    "CreateComputeEnv": body({"ComputeEnv": mostly(named_env, any_json), "Placement": placement},
                             {"ClientToken": JUNK_TEXT}),
    "DescribeComputeEnv": body({"EnvId": ids("env")}),
    "DescribeComputeEnvs": body({}, {"EnvIds": st.lists(ids("env"), max_size=3), "Filters": filters, **paging}),
    "DescribeComputeEnvCreateInfo": body({"EnvId": ids("env")}),
    "DescribeComputeEnvCreateInfos": body({}, {"EnvIds": st.lists(ids("env"), max_size=3), "Filters": filters,
                                               **paging}),
    "DescribeComputeEnvActivities": body({"EnvId": ids("env")}, {"Filters": filters, **paging}),
    "ModifyComputeEnv": body({"EnvId": ids("env")}, {"DesiredComputeNodeCount": number(0, 2), "EnvName": JUNK_TEXT,
                                                     "EnvDescription": JUNK_TEXT, "EnvData": env_data | any_json}),
    "DeleteComputeEnv": body({"EnvId": ids("env")}),
    "TerminateComputeNode": st.integers(0, 50).flatmap(lambda k: body(
        {"EnvId": mostly(st.just(Ref("node-env", k)), ids("env")),
         "ComputeNodeId": mostly(st.just(Ref("node", k)), ids("node"))})),
    "TerminateComputeNodes": st.integers(0, 50).flatmap(lambda k: body(
        {"EnvId": mostly(st.just(Ref("node-env", k)), ids("env")),
         "ComputeNodeIds": st.lists(mostly(st.just(Ref("node", k)), ids("node")), max_size=3)})),
    "CreateTaskTemplate": body({"TaskTemplateName": mostly(st.just("fz-tmpl"), JUNK_TEXT),
                                "TaskTemplateInfo": mostly(task(), any_json)},
                               {"TaskTemplateDescription": JUNK_TEXT, "Tags": tags}),
    "DescribeTaskTemplates": body({}, {"TaskTemplateIds": st.lists(ids("tmpl"), max_size=3), "Filters": filters,
                                       **paging}),
    "ModifyTaskTemplate": body({"TaskTemplateId": ids("tmpl")},
                               {"TaskTemplateName": JUNK_TEXT, "TaskTemplateDescription": JUNK_TEXT,
                                "TaskTemplateInfo": task() | any_json}),
    "DeleteTaskTemplates": body({"TaskTemplateIds": mostly(st.lists(ids("tmpl"), min_size=1, max_size=3), any_json)}),
    "DescribeAvailableCvmInstanceTypes": body({}, {"Filters": filters}),
}


@st.composite
def mutated(draw, value: Any, depth: int = 0) -> Any:
    """`value` with, now and then, one thing changed somewhere inside it."""
    if draw(st.integers(0, 9)) < 8:
        return value
    if isinstance(value, dict) and value and depth < 4:
        key = draw(st.sampled_from(sorted(value, key=str)))
        how = draw(st.sampled_from(["inside", "inside", "drop", "add"]))
        out = dict(value)
        if how == "drop":
            del out[key]
        elif how == "add":
            out[draw(st.sampled_from([key.lower(), key.upper(), "Extra"]) | st.text(max_size=6))] = draw(any_json)
        else:
            out[key] = draw(mutated(value[key], depth + 1))
        return out
    if isinstance(value, list) and value and depth < 4:
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], draw(mutated(value[i], depth + 1)), *value[i + 1:]]
    return draw(any_json)


@dataclass
class Call:
    """One request before its ids are chosen: headers and a body (Python data, or raw bytes)."""
    action: str | None  # None: no X-TC-Action header
    params: Any
    raw: bytes | None = None
    version: str | None = VERSION
    region: str | None = None
    method: str = "POST"
    content_type: str | None = "application/json"
    nan: bool = False  # put a NaN into the JSON (Python writes it; JSON has no such thing)

    def request(self) -> Request:
        headers = {}
        if self.action is not None:
            headers["X-TC-Action"] = self.action
        if self.version is not None:
            headers["X-TC-Version"] = self.version
        if self.region is not None:
            headers["X-TC-Region"] = self.region
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.raw is not None:
            data = self.raw
        else:
            params = resolve(self.params)
            if self.nan and isinstance(params, dict):
                params["Limit"] = float("nan")
            data = json.dumps(params, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return Request(self.method, "/", data, headers)


RAW_BODIES = [b"", b"   ", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe{}", b'{"JobId": "\xff"}',
              b'{"a": 1, "a": 2}', b"[" * 100_000 + b"]" * 100_000, b'{"x": ' + b"9" * 5000 + b"}",
              b"x" * (MAX_BODY + 1), "{\"JobId\": \"é\"}".encode("latin-1"), b'{"Limit": Infinity}']
# The actions that create things take the most input: they come up four times as often.
CREATORS = ["SubmitJob", "CreateComputeEnv", "CreateTaskTemplate", "ModifyComputeEnv", "ModifyTaskTemplate"]
ACTION_NAMES = CREATORS * 3 + sorted(ACTIONS) + sorted(UNSUPPORTED)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                      max_size=30)


@st.composite
def call(draw) -> Call:
    action = draw(st.sampled_from(ACTION_NAMES))
    params = draw(PARAMS.get(action, st.dictionaries(st.text(max_size=8), any_json, max_size=3)))
    c = Call(action, draw(mutated(params)))
    c.action = draw(mostly(st.just(action), st.sampled_from([action.lower(), f" {action} ", "", None, "Describe"])
                           | HEADER_TEXT))
    c.version = draw(mostly(st.just(VERSION), st.sampled_from([None, "", "2020-01-01", " 2017-03-12"]) | HEADER_TEXT))
    c.region = draw(mostly(st.sampled_from([None, None, "ap-guangzhou"]), st.sampled_from(
        ["ap-shanghai", "ap-nowhere", ""]) | HEADER_TEXT))
    c.content_type = draw(mostly(st.just("application/json"), st.sampled_from(
        [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"])))
    odd = draw(st.integers(0, 19))
    if odd == 19:
        c.raw = draw(st.sampled_from(RAW_BODIES) | st.binary(max_size=40))
    elif odd == 18:
        c.method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
    elif odd == 17:
        c.nan = True
    return c


@dataclass
class Advance:
    seconds: float


steps = st.lists(call() | st.sampled_from([0.0, 0.2, 0.5, 1.0, 3.0, 60.0]).map(Advance), min_size=1, max_size=5)


# -- the broker, and what its replies must say ----------------------------------------------------------

@pytest.fixture(scope="module")
def batch_env():
    with LogWatch() as watch, fake_clock_broker(max_request_bytes=MAX_BODY) as broker:
        http = Http(broker.host, broker.port)
        for pairs in ([("Action", "CreateTopic"), ("topicName", TOPIC)],
                      [("Action", "CreateQueue"), ("queueName", TOPIC)],
                      [("Action", "Subscribe"), ("topicName", TOPIC), ("subscriptionName", "all"),
                       ("protocol", "queue"), ("endpoint", TOPIC), ("notifyContentFormat", "SIMPLIFIED")]):
            assert json.loads(http.request("POST", "/v2/index.php", form(pairs)).body)["code"] == 0
        yield broker, http, watch
        http.close()
    report("Batch requests", TALLY)


def send(http: Http, action: str, params: dict) -> dict:
    reply = http.request("POST", "/", json.dumps(params).encode(),
                         {"X-TC-Action": action, "X-TC-Version": VERSION, "Content-Type": "application/json"})
    return batch_reply(reply, (action, params))


def check_tag_filter(http: Http, action: str, id_filter: str, obj_id: str, tags: Any) -> None:
    """The object is found by its id and one of its tags, and not by a tag it lacks."""
    has_team = any(isinstance(t, dict) and t.get("Key") == "team" for t in tags or [])
    for key, expected in (("team", 1 if has_team else 0), ("absent", 0)):
        found = send(http, action, {"Filters": [{"Name": id_filter, "Values": [obj_id]},
                                                {"Name": "tag-key", "Values": [key]}]})
        assert batch_error(found) is None and found["TotalCount"] == expected, (found, tags)


def remember_nodes(env: dict) -> None:
    for node in env["ComputeNodeSet"]:
        if node["ComputeNodeId"] not in KNOWN["node"]:
            KNOWN["node"].append(node["ComputeNodeId"])
            KNOWN["node-env"].append(env["EnvId"])


def check_consequences(http: Http, action: str, sent: dict, response: dict) -> None:
    """What a success must have changed, as the Describe actions show it."""
    if action == "SubmitJob":
        job_id = response["JobId"]
        if job_id in KNOWN["job"]:
            return  # a ClientToken used before: the earlier job, as it was submitted then
        KNOWN["job"].append(job_id)
        described = send(http, "DescribeJob", {"JobId": job_id})
        assert batch_error(described) is None, described
        spec = sent["Job"]
        assert described["JobName"] == spec["JobName"], (described, spec)
        assert [t["TaskName"] for t in described["TaskSet"]] == [t["TaskName"] for t in spec["Tasks"]]
        info = send(http, "DescribeJobSubmitInfo", {"JobId": job_id})
        assert info["Tasks"] == spec["Tasks"], (info, spec)
        check_tag_filter(http, "DescribeJobs", "job-id", job_id, spec.get("Tags"))
    elif action == "CreateComputeEnv":
        env_id = response["EnvId"]
        if env_id in KNOWN["env"]:
            return  # a ClientToken used before
        KNOWN["env"].append(env_id)
        described = send(http, "DescribeComputeEnv", {"EnvId": env_id})
        assert batch_error(described) is None, described
        spec = sent["ComputeEnv"]
        assert described["EnvName"] == spec["EnvName"], (described, spec)
        assert described["DesiredComputeNodeCount"] == int(spec.get("DesiredComputeNodeCount") or 0), described
        remember_nodes(described)
        check_tag_filter(http, "DescribeComputeEnvs", "env-id", env_id, spec.get("Tags"))
    elif action == "CreateTaskTemplate":
        template_id = response["TaskTemplateId"]
        KNOWN["tmpl"].append(template_id)
        found = send(http, "DescribeTaskTemplates", {"TaskTemplateIds": [template_id]})
        assert batch_error(found) is None, found
        assert found["TaskTemplateSet"][0]["TaskTemplateInfo"] == sent["TaskTemplateInfo"], found
    elif action == "DescribeComputeEnv":
        remember_nodes(response)  # nodes come and go with time and ModifyComputeEnv
    elif action == "DeleteJob":
        DELETED["job"].add(sent["JobId"])
        assert batch_error(send(http, "DescribeJob", {"JobId": sent["JobId"]})) == "ResourceNotFound.Job"
    elif action == "DeleteTaskTemplates" and sent["TaskTemplateIds"]:  # [] deletes nothing, and succeeds
        DELETED["tmpl"].update(sent["TaskTemplateIds"])
        found = send(http, "DescribeTaskTemplates", {"TaskTemplateIds": sent["TaskTemplateIds"]})
        assert batch_error(found) == "ResourceNotFound.TaskTemplate", found


def _ran(c: Call) -> str | None:
    """The action a successful call ran, as the broker reads the header (spaces around are
    dropped), when its body was ours to read back."""
    action = (c.action or "").strip()
    return action if action in ACTIONS and c.raw is None else None


@budget(ci=500, deep=10000)
@given(steps)
def test_random_api3_requests(batch_env, steps):
    broker, http, watch = batch_env
    watch.take()  # what an earlier, failed example left
    TALLY["examples"] += 1
    for step in steps:
        if isinstance(step, Advance):
            TALLY["clock moves"] += 1
            broker.advance(step.seconds)
            watch.assert_clean(step)
            continue
        req = step.request()
        reply = http.send(req)
        watch.assert_clean(req)  # first: an internal error's traceback is there
        response = batch_reply(reply, req)
        code = batch_error(response)
        TALLY.call(f"{step.action if step.action in ACTIONS or step.action in UNSUPPORTED else 'other'}: "
                   f"{code or 'ok'}")
        if code is None and _ran(step):
            check_consequences(http, _ran(step), json.loads(req.body), response)
    # Every job accepted and not deleted is still there.
    alive = [j for j in KNOWN["job"] if j not in DELETED["job"]][-20:]
    if alive:
        listed = send(http, "DescribeJobs", {"JobIds": alive})
        assert batch_error(listed) is None and listed["TotalCount"] == len(alive), listed


# -- regressions: inputs the fuzzer found that got InternalError (or were wrongly accepted) -----------

def _task(**fields) -> dict:
    return {"TaskName": "main", "Application": {"DeliveryForm": "LOCAL", "Command": "echo hi"},
            "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "S5.MEDIUM4"}}, **fields}


def _submit(http: Http, job: dict) -> dict:
    return send(http, "SubmitJob", {"Placement": {"Zone": "ap-guangzhou-3"}, "Job": {"JobName": "r", **job}})


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000,
                                 b'{"Job": ' + b'{"a": ' * 40 + b"1" + b"}" * 41])
def test_json_nested_too_deep_is_a_parameter_error(batch_env, raw):
    _, http, watch = batch_env
    reply = http.request("POST", "/", raw, {"X-TC-Action": "SubmitJob", "X-TC-Version": VERSION})
    watch.assert_clean()
    response = batch_reply(reply)
    assert batch_error(response) == "InvalidParameter" and "nested deeper" in response["Error"]["Message"]


@pytest.mark.parametrize("instance_type", [[], ["S5.MEDIUM4"], {"a": 1}])
def test_instance_type_that_is_no_string_is_refused(batch_env, instance_type):
    _, http, watch = batch_env
    env = {"EnvType": "MANAGED", "EnvData": {"InstanceType": instance_type}}
    response = _submit(http, {"Tasks": [_task(ComputeEnv=env)]})
    watch.assert_clean()
    assert batch_error(response) == "InvalidParameterValue.InstanceType", response


@pytest.mark.parametrize("count", ["--5", "²", "١"])
def test_integer_given_as_odd_digits_is_refused(batch_env, count):
    _, http, watch = batch_env
    response = _submit(http, {"Tasks": [_task(TaskInstanceNum=count)]})
    watch.assert_clean()
    assert batch_error(response) == "InvalidParameterValue", response
    assert batch_error(_submit(http, {"Tasks": [_task(TaskInstanceNum="2")]})) is None  # plain digits still do


@pytest.mark.parametrize("tags", [5, "team", [5], [{"Key": ["x"], "Value": "v"}], [{"Key": "k", "Value": {"a": 1}}],
                                  [{"Key": "k"}]])
def test_tags_must_be_key_value_strings(batch_env, tags):
    _, http, watch = batch_env
    assert batch_error(_submit(http, {"Tasks": [_task()], "Tags": tags})) == "InvalidParameter"
    env = {"EnvName": "e", "EnvType": "MANAGED", "EnvData": {"InstanceType": "S5.MEDIUM4"}, "Tags": tags}
    response = send(http, "CreateComputeEnv", {"ComputeEnv": env, "Placement": {"Zone": "ap-guangzhou-3"}})
    assert batch_error(response) == "InvalidParameter", response
    response = send(http, "CreateTaskTemplate", {"TaskTemplateName": "t", "TaskTemplateInfo": _task(), "Tags": tags})
    assert batch_error(response) == "InvalidParameter", response
    for name in ("tag-key", "tag-value", "tag:k"):  # and the filters that read tags keep working
        listed = send(http, "DescribeJobs", {"Filters": [{"Name": name, "Values": ["x"]}]})
        assert batch_error(listed) is None, listed
    watch.assert_clean()


def test_simulated_duration_of_nan_is_refused(batch_env):
    _, http, watch = batch_env
    response = _submit(http, {"Tasks": [_task(EnvVars=[{"Name": "BATCH_SIM_DURATION", "Value": "nan"}])]})
    assert batch_error(response) == "InvalidParameterValue", response
    watch.assert_clean()
