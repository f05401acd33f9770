"""The API 3.0 layer shared by services (broker/protocol/api3/): which service a request is for.

A request names its service by its TC3 credential scope, else by the first label of its Host,
else by the action (when one service alone declares it), else it goes to the first service. Most
tests here run `Api3Protocol` in-process over two services, the real Batch and a small stand-in
for the next one (`tdmq`, whose target is a plain string so a reply shows who answered); requests
are raw aiohttp, or signed by the official SDK's `CommonClient`. The last tests drive a whole
in-process broker with the official Batch SDK, which must not notice any of this.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tencentcloud.batch.v20170312 import models
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from broker import errors as e
from broker.batchsim import BatchSim
from broker.clock import FakeClock, RealClock
from broker.engine import Broker
from broker.pipeline import Action, ActionTable, Pipeline
from broker.protocol.api3 import Api3Protocol, Service
from broker.protocol.api3.app import host_service, scope_service
from broker.protocol.api3.batch import DECLARED, SUPPORTED, UNSUPPORTED, VERSION, batch_service
from broker.testing import broker_thread

SECRET_ID, SECRET_KEY = "AKIDapi3dispatch", "api3-dispatch-key"
TDMQ_VERSION = "2020-02-17"
CVM_TYPES = "DescribeAvailableCvmInstanceTypes"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # The SDK (requests) honours HTTP_PROXY unless NO_PROXY covers the host.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


class QueueGone(e.BrokerError):
    """An error only the stand-in service has: its own row in the one error table."""


async def who(target, params: dict, call) -> dict:
    return {"Service": target, "Params": params, "Region": call.region, "CallId": call.id}


async def gone(target, params: dict, call) -> dict:
    raise QueueGone("queue 'q' does not exist")


async def bad_field(target, params: dict, call) -> dict:
    raise e.InvalidParameter("queue", lambda name: f"{name} is not a queue name")  # the engine's neutral name


def tdmq_service(extra: list[Action] = ()) -> Service:
    actions = ActionTable("tdmq", [
        Action("DescribeCmqQueues", who, writes=False),  # only TDMQ declares it
        Action(CVM_TYPES, who, writes=False),  # both services declare it
        Action("DeleteCmqQueue", gone),
        Action("CreateCmqQueue", bad_field),
        Action("RewindCmqQueue", None),  # declared, deliberately not offered
        *extra,
    ], case_sensitive=True)
    return Service(name="tdmq", versions=frozenset({TDMQ_VERSION}), actions=actions, target="tdmq-target",
                   label="TDMQ", errors={QueueGone: "ResourceNotFound.Queue"}, fields={"queue": "QueueName"})


def two_services(clock=None) -> list[Service]:
    sim = BatchSim(Broker(clock or FakeClock()))
    return [batch_service(sim), tdmq_service()]


def app_for(services: list[Service], *, secrets=(None, None), clock=None) -> tuple[web.Application, Pipeline]:
    pipeline = Pipeline()
    api3 = Api3Protocol(services, pipeline, clock or FakeClock(), *secrets, 1 << 20, "ap-guangzhou")
    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/", api3.handle)
    return app, pipeline


@pytest.fixture
async def client():
    app, pipeline = app_for(two_services())
    async with TestClient(TestServer(app)) as c:
        c.pipeline = pipeline
        yield c


def scope(service: str) -> str:
    return (f"TC3-HMAC-SHA256 Credential=AKIDany/2024-01-01/{service}/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={'0' * 64}")


async def post(client, action: str, *, version: str | None = None, service: str | None = None,
               host: str | None = None, body: bytes = b"{}", **headers) -> dict:
    """POST one request; check the transport invariants; return its `Response` object."""
    hdrs = {"Content-Type": "application/json", "X-TC-Action": action, **headers}
    if version is not None:
        hdrs["X-TC-Version"] = version
    if service is not None:
        hdrs["Authorization"] = scope(service)
    if host is not None:
        hdrs["Host"] = host
    resp = await client.post("/", data=body, headers=hdrs)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    reply = json.loads(await resp.read())
    assert set(reply) == {"Response"}
    uuid.UUID(reply["Response"]["RequestId"])
    return reply["Response"]


def answered_by(reply: dict) -> str:
    assert "Error" not in reply, reply
    return reply["Service"] if "Service" in reply else "batch" if "InstanceTypeConfigSet" in reply else "?"


def error_of(reply: dict) -> tuple[str, str]:
    assert "Error" in reply, reply
    return reply["Error"]["Code"], reply["Error"]["Message"]


# -- choosing the service -------------------------------------------------------------------------

async def test_the_credential_scope_names_the_service(client):
    assert answered_by(await post(client, CVM_TYPES, version=TDMQ_VERSION, service="tdmq")) == "tdmq-target"
    assert answered_by(await post(client, CVM_TYPES, version=VERSION, service="batch")) == "batch"
    # The scope wins over the host, and over an action that only the other service declares.
    assert answered_by(await post(client, CVM_TYPES, version=VERSION, service="batch",
                                  host="tdmq.tencentcloudapi.com")) == "batch"
    code, _ = error_of(await post(client, "DescribeCmqQueues", version=VERSION, service="batch"))
    assert code == "InvalidAction"


@pytest.mark.parametrize("host", ["tdmq.tencentcloudapi.com", "tdmq.ap-guangzhou.tencentcloudapi.com",
                                  "TDMQ.TencentCloudAPI.com:443", "tdmq.localhost:9000"])
async def test_the_host_names_the_service(client, host):
    assert answered_by(await post(client, CVM_TYPES, version=TDMQ_VERSION, host=host)) == "tdmq-target"


@pytest.mark.parametrize("host", ["tdmq", "127.0.0.1:9000", "localhost", "cvm.tencentcloudapi.com", "[::1]:80"])
async def test_a_host_that_names_no_service_is_passed_over(client, host):
    # A bare `tdmq` (a container's name, say) is no cloud host name: the action decides.
    assert answered_by(await post(client, CVM_TYPES, version=VERSION, host=host)) == "batch"
    assert answered_by(await post(client, "DescribeCmqQueues", version=TDMQ_VERSION, host=host)) == "tdmq-target"


async def test_the_action_names_the_service_when_one_alone_declares_it(client):
    assert answered_by(await post(client, "DescribeCmqQueues", version=TDMQ_VERSION)) == "tdmq-target"
    assert "TotalCount" in await post(client, "DescribeJobs", version=VERSION)  # only Batch has it
    # Declared by both, or by neither: the first service (Batch), as when Batch was the only one.
    assert answered_by(await post(client, CVM_TYPES, version=VERSION)) == "batch"
    assert error_of(await post(client, "NoSuchAction", version=VERSION))[0] == "InvalidAction"


async def test_an_unknown_service_in_the_scope_is_passed_over(client):
    # Any scope is accepted (signatures are checked against it as sent), so `cvm` falls through.
    assert answered_by(await post(client, CVM_TYPES, version=VERSION, service="cvm")) == "batch"
    assert answered_by(await post(client, "DescribeCmqQueues", version=TDMQ_VERSION, service="cvm")) == "tdmq-target"
    assert answered_by(await post(client, CVM_TYPES, version=TDMQ_VERSION, service="cvm",
                                  host="tdmq.tencentcloudapi.com")) == "tdmq-target"
    # An Authorization that is no TC3 header at all names nothing either (no secrets: not checked).
    assert answered_by(await post(client, CVM_TYPES, version=VERSION, Authorization="SKIP")) == "batch"


def test_scope_and_host_parsers():
    assert scope_service(scope("batch")) == "batch"
    assert scope_service("TC3-HMAC-SHA256 Credential=AKID/2024-01-01/tdmq/tc3_request,SignedHeaders=host") == "tdmq"
    for garbled in ("", "SKIP", "TC3-HMAC-SHA256 Credential=AKID/2024-01-01/tdmq", "Credential=a/b/c/d/tc3_request"):
        assert scope_service(garbled) == ""
    assert host_service("batch.ap-shanghai.tencentcloudapi.com") == "batch"
    assert host_service("Batch.TencentCloudAPI.com:443") == "batch"
    assert host_service("batch") == host_service("") == host_service("[::1]:8080") == ""


# -- versions, actions, errors --------------------------------------------------------------------

async def test_each_service_checks_its_own_versions(client):
    assert error_of(await post(client, "DescribeCmqQueues", version=VERSION)) == (
        "NoSuchVersion", f"X-TC-Version '{VERSION}' is not supported: TDMQ speaks {TDMQ_VERSION}")
    assert error_of(await post(client, "DescribeCmqQueues")) == (
        "NoSuchVersion", f"X-TC-Version is missing: TDMQ speaks {TDMQ_VERSION}")
    assert error_of(await post(client, "DescribeJobs", version="2018-01-01")) == (
        "NoSuchVersion", "X-TC-Version '2018-01-01' is not supported: Batch speaks 2017-03-12")
    assert error_of(await post(client, "DescribeJobs", version=" ")) == (
        "NoSuchVersion", "X-TC-Version is missing: Batch speaks 2017-03-12")
    assert error_of(await post(client, "DescribeJobs", version=TDMQ_VERSION, service="batch"))[0] == "NoSuchVersion"


async def test_a_service_may_speak_several_versions():
    svc = tdmq_service()
    two = Service(name="tdmq", versions=frozenset({TDMQ_VERSION, "2019-01-01"}), actions=svc.actions,
                  target="t", label="TDMQ")
    app, _ = app_for([two])
    async with TestClient(TestServer(app)) as c:
        assert answered_by(await post(c, "DescribeCmqQueues", version="2019-01-01")) == "t"
        assert answered_by(await post(c, "DescribeCmqQueues", version=TDMQ_VERSION)) == "t"
        assert error_of(await post(c, "DescribeCmqQueues", version="2021-01-01"))[1].endswith(
            "TDMQ speaks 2019-01-01, 2020-02-17")


async def test_declared_but_not_offered_is_unsupported(client):
    assert error_of(await post(client, "RewindCmqQueue", version=TDMQ_VERSION)) == (
        "UnsupportedOperation", "RewindCmqQueue is not offered by this TDMQ simulator")
    assert error_of(await post(client, "AttachInstances", version=VERSION)) == (
        "UnsupportedOperation", "AttachInstances is not offered by this Batch simulator")
    # Labelled by name, as a declared action (not "unknown").
    assert sum(client.pipeline.stats["tdmq"].get(("RewindCmqQueue", "UnsupportedOperation"), [0, 0])[1:]) == 1


async def test_a_service_adds_its_own_error_rows_and_field_names(client):
    assert error_of(await post(client, "DeleteCmqQueue", version=TDMQ_VERSION)) == (
        "ResourceNotFound.Queue", "queue 'q' does not exist")
    # The engine's neutral field name, worded as the service calls it.
    assert error_of(await post(client, "CreateCmqQueue", version=TDMQ_VERSION)) == (
        "InvalidParameter", "QueueName is not a queue name")


async def test_requests_are_counted_under_their_service(client):
    await post(client, "DescribeCmqQueues", version=TDMQ_VERSION)
    await post(client, "DescribeCmqQueues", version=TDMQ_VERSION, service="tdmq")
    await post(client, "DescribeJobs", version=VERSION)
    await post(client, "NoSuchAction", version=VERSION)
    await post(client, "DescribeCmqQueues", version=VERSION)  # known action, wrong version: still named
    resp = await client.get("/", headers={"X-TC-Action": "DescribeJobs"})  # named even when refused early
    assert error_of(json.loads(await resp.read())["Response"])[0] == "UnsupportedOperation"
    counts = {(api, label, code): sum(entry[1:]) for api, stats in client.pipeline.stats.items()
              for (label, code), entry in stats.items()}
    assert counts == {
        ("tdmq", "DescribeCmqQueues", "0"): 2,
        ("tdmq", "DescribeCmqQueues", "NoSuchVersion"): 1,
        ("batch", "DescribeJobs", "0"): 1,
        ("batch", "DescribeJobs", "UnsupportedOperation"): 1,
        ("batch", "unknown", "InvalidAction"): 1,
    }


# -- handlers -------------------------------------------------------------------------------------

async def test_handlers_get_target_params_and_call_and_their_bugs_become_internal_error():
    seen = []

    async def echo(target, params, call):
        seen.append((target, params, call.id, call.region, call.api))
        return {"Region": call.region, "RequestId": "overwritten"}

    async def boom(target, params, call):
        raise RuntimeError("secret detail")

    async def unserialisable(target, params, call):
        return {"Value": object()}

    svc = tdmq_service([Action("Echo", echo), Action("Boom", boom), Action("Unserialisable", unserialisable)])
    app, pipeline = app_for([svc])
    async with TestClient(TestServer(app)) as c:
        for action in ("Boom", "Unserialisable"):
            reply = await post(c, action, version=TDMQ_VERSION)
            code, message = error_of(reply)
            assert code == "InternalError" and "secret detail" not in message and "Traceback" not in message
            assert reply["RequestId"] in message  # so the log line can be found
        reply = await post(c, "Echo", version=TDMQ_VERSION, body=b'{"A": [1]}', **{"X-TC-Region": "ap-beijing"})
        assert reply == {"Region": "ap-beijing", "RequestId": reply["RequestId"]} and reply["RequestId"] != "overwritten"
        assert seen == [("tdmq-target", {"A": [1]}, reply["RequestId"], "ap-beijing", "tdmq")]
        reply = await post(c, "Echo", version=TDMQ_VERSION, body=b"")  # an empty body is {}
        assert reply["Region"] == "ap-guangzhou" and seen[-1][1] == {}
    assert {code for (label, code) in pipeline.stats["tdmq"] if label in ("Boom", "Unserialisable")} == {"InternalError"}


def test_configuration_mistakes_are_refused():
    svc = tdmq_service()
    with pytest.raises(ValueError, match="given twice"):
        Api3Protocol([svc, svc], Pipeline(), FakeClock(), None, None, 1024, "ap-guangzhou")
    with pytest.raises(ValueError, match="at least one"):
        Api3Protocol([], Pipeline(), FakeClock(), None, None, 1024, "ap-guangzhou")
    with pytest.raises(ValueError, match="case-sensitive"):
        Service("tdmq", frozenset({TDMQ_VERSION}), ActionTable("cmq", [], case_sensitive=True), None, "TDMQ")
    with pytest.raises(ValueError, match="case-sensitive"):
        Service("tdmq", frozenset({TDMQ_VERSION}), ActionTable("tdmq", [], case_sensitive=False), None, "TDMQ")
    with pytest.raises(ValueError, match="no version"):
        Service("tdmq", frozenset(), ActionTable("tdmq", []), None, "TDMQ")
    clash = Service("other", frozenset({"2021-01-01"}), ActionTable("other", []), None, "Other",
                    errors={QueueGone: "ResourceNotFound.Topic"})
    with pytest.raises(ValueError, match="QueueGone"):
        Api3Protocol([svc, clash], Pipeline(), FakeClock(), None, None, 1024, "ap-guangzhou")


def test_batch_declarations():
    """Batch's one table, from its modules' lists: Describe* change nothing, the rest may."""
    sim = BatchSim(Broker(FakeClock()))
    service = batch_service(sim)
    assert service.name == service.actions.api == "batch" and service.target is sim
    assert service.versions == {VERSION} and service.label == "Batch"
    assert [a.name for a in service.actions] == [a.name for a in DECLARED]
    for action in service.actions:
        assert action.writes == (not action.name.startswith("Describe")), action.name
        assert (action.handler is None) == (action.name in UNSUPPORTED), action.name
    assert SUPPORTED | UNSUPPORTED == set(service.actions.names()) and not SUPPORTED & UNSUPPORTED
    assert batch_service(sim).actions is not service.actions  # built per call: nothing module-global to mutate


# -- the official SDKs ----------------------------------------------------------------------------

def common_client(port: int, service: str, version: str, secret_key: str = SECRET_KEY) -> CommonClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}"))
    return CommonClient(service, version, credential.Credential(SECRET_ID, secret_key), "ap-shanghai", profile)


async def test_sdk_signed_requests_reach_the_service_of_their_scope():
    app, pipeline = app_for(two_services(RealClock()), secrets=(SECRET_ID, SECRET_KEY), clock=RealClock())
    async with TestClient(TestServer(app)) as c:
        tdmq = common_client(c.port, "tdmq", TDMQ_VERSION)
        reply = await asyncio.to_thread(tdmq.call_json, CVM_TYPES, {"Limit": 1})
        assert reply["Response"]["Service"] == "tdmq-target" and reply["Response"]["Region"] == "ap-shanghai"
        assert reply["Response"]["Params"] == {"Limit": 1}
        batch = common_client(c.port, "batch", VERSION)
        reply = await asyncio.to_thread(batch.call_json, CVM_TYPES, {})
        assert {t["Zone"] for t in reply["Response"]["InstanceTypeConfigSet"]} == {
            "ap-shanghai-2", "ap-shanghai-4", "ap-shanghai-5"}
        with pytest.raises(TencentCloudSDKException) as info:
            await asyncio.to_thread(common_client(c.port, "tdmq", TDMQ_VERSION, "wrong").call_json, CVM_TYPES, {})
        assert info.value.code == "AuthFailure.SignatureFailure"
    assert sum(pipeline.stats["tdmq"][CVM_TYPES, "0"][1:]) == sum(pipeline.stats["batch"][CVM_TYPES, "0"][1:]) == 1
    assert sum(pipeline.stats["tdmq"][CVM_TYPES, "AuthFailure.SignatureFailure"][1:]) == 1


def test_batch_still_works_with_its_sdk():
    with broker_thread(secret_id=SECRET_ID, secret_key=SECRET_KEY, region="ap-guangzhou") as b:
        client = b.batch_client()
        types = client.DescribeAvailableCvmInstanceTypes(models.DescribeAvailableCvmInstanceTypesRequest())
        assert types.InstanceTypeConfigSet and types.RequestId
        jobs = client.DescribeJobs(models.DescribeJobsRequest())
        assert jobs.TotalCount == 0 and jobs.JobSet == []
        req = models.DescribeJobRequest()
        req.JobId = "job-00000000"
        with pytest.raises(TencentCloudSDKException) as info:
            client.DescribeJob(req)
        assert info.value.code == "ResourceNotFound.Job" and info.value.requestId
        with pytest.raises(TencentCloudSDKException) as info:
            client.call_json("DetachInstances", {})
        assert info.value.code == "UnsupportedOperation"
        # tccli and the generic CommonClient sign with the service in the scope: Batch's.
        generic = common_client(b.port, "batch", VERSION)
        assert generic.call_json("DescribeJobs", {})["Response"]["TotalCount"] == 0
