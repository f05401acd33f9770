"""The Tencent Cloud API 3.0 transport for Batch: TC3 signatures, the JSON envelope, dispatch.

Three tiers, as elsewhere: a broker process driven by the official Batch SDK and by raw HTTP
(requests signed by the SDK's own signing code, then tampered with); the endpoint in-process
on a fake clock (skew limits, handler bugs); and pure units (signature.py, the error table,
the CVM catalogue). Every reply must be HTTP 200, `Content-Type: application/json` exactly,
and carry a RequestId: the SDK misreads anything else.
"""

from __future__ import annotations

import ast
import json
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from tencentcloud.batch.v20170312 import batch_client, errorcodes, models
from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from broker import errors as e
from broker.batchsim import catalogue
from broker.clock import FakeClock
from broker.config import Config
from broker.protocol.api3.batch import SUPPORTED as ACTIONS, UNSUPPORTED
from broker.protocol.api3 import signature as sig
from broker.protocol.api3.batch.errors import CODES, code_for
from broker.server import build_app
from conftest import REPO_ROOT, run_broker

SECRET_ID = "AKIDbatchtest"
SECRET_KEY = "batch-secret"
ACTION = "DescribeAvailableCvmInstanceTypes"
GUANGZHOU = {"ap-guangzhou-2", "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # The SDK (requests) honours HTTP_PROXY unless NO_PROXY covers the host.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture(scope="module")
def open_broker():
    with run_broker() as b:
        yield b


@pytest.fixture(scope="module")
def auth_broker():
    with run_broker(["--host", "127.0.0.1", "--port", "0", "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY]) as b:
        yield b


def sdk(port: int, secret_id: str = "AKIDanything", secret_key: str = "anything", region: str = "ap-guangzhou",
        **http) -> batch_client.BatchClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", **http))
    return batch_client.BatchClient(credential.Credential(secret_id, secret_key), region, profile)


def describe_types(client, *filters: tuple[str, list[str]]) -> list:
    req = models.DescribeAvailableCvmInstanceTypesRequest()
    if filters:
        req.Filters = []
        for name, values in filters:
            f = models.Filter()
            f.Name, f.Values = name, values
            req.Filters.append(f)
    return client.DescribeAvailableCvmInstanceTypes(req).InstanceTypeConfigSet


def sdk_error(fn, *args) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        fn(*args)
    return info.value


def signed(port: int, action: str = ACTION, params: dict | None = None, *, secret_id: str = SECRET_ID,
           secret_key: str = SECRET_KEY, at: float | None = None, service: str | None = None,
           unsigned_payload: bool = False) -> RequestInternal:
    """A request built and signed by the SDK's own code (optionally as of time `at`), not sent."""
    client = sdk(port, secret_id, secret_key)
    if service:
        client._service = service
    if unsigned_payload:
        client.profile.unsignedPayload = True
    req = RequestInternal(f"127.0.0.1:{port}", "POST", "/", header={"X-TC-TraceId": str(uuid.uuid4())})
    clock = SimpleNamespace(time=lambda: at if at is not None else time.time())
    with mock.patch.object(abstract_client, "time", clock):
        client._build_req_inter(action, params or {}, req)
    return req


def raw(port: int, method: str = "POST", body: bytes | str | None = None, headers: dict | None = None) -> dict:
    """Send one HTTP request; check the transport invariants; return the `Response` object."""
    if isinstance(body, str):
        body = body.encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        reply = json.loads(resp.read())
    assert set(reply) == {"Response"}
    uuid.UUID(reply["Response"]["RequestId"])
    return reply["Response"]


def send(port: int, req: RequestInternal) -> dict:
    return raw(port, "POST", req.data, req.header)


def headers(action: str | None = ACTION, version: str | None = "2017-03-12", **extra) -> dict:
    h = {"Content-Type": "application/json", "Authorization": "SKIP", **extra}
    if action is not None:
        h["X-TC-Action"] = action
    if version is not None:
        h["X-TC-Version"] = version
    return h


def error_code(reply: dict) -> str:
    assert "Error" in reply, reply
    assert reply["Error"]["Message"]
    return reply["Error"]["Code"]


# -- the SDK against a broker process -------------------------------------------------------------

def test_sdk_lists_instance_types_with_any_credentials(open_broker):
    configs = describe_types(sdk(open_broker.port))
    assert configs and {c.Zone for c in configs} == GUANGZHOU  # the client's region only
    by_type = {(c.InstanceType, c.Zone): c for c in configs}
    s5 = by_type[("S5.LARGE8", "ap-guangzhou-3")]
    assert (s5.Cpu, s5.Mem, s5.InstanceFamily) == (4, 8, "S5")
    assert all(c.InstanceFamily == c.InstanceType.split(".")[0] for c in configs)
    assert describe_types(sdk(open_broker.port, "other-id", "other-key"))  # anything goes without secrets


def test_sdk_region_selects_zones(open_broker):
    zones = {c.Zone for c in describe_types(sdk(open_broker.port, region="ap-shanghai"))}
    assert zones == {"ap-shanghai-2", "ap-shanghai-4", "ap-shanghai-5"}
    assert describe_types(sdk(open_broker.port, region="ap-nowhere")) == []


def test_sdk_filters_by_zone_and_family(open_broker):
    client = sdk(open_broker.port)
    in_zone = describe_types(client, ("zone", ["ap-guangzhou-4"]))
    assert in_zone and {c.Zone for c in in_zone} == {"ap-guangzhou-4"}
    s5 = describe_types(client, ("instance-family", ["S5"]))
    assert {c.InstanceFamily for c in s5} == {"S5"} and {c.Zone for c in s5} == GUANGZHOU
    both = describe_types(client, ("zone", ["ap-guangzhou-2", "ap-guangzhou-6"]), ("instance-family", ["S1", "S5"]))
    assert {(c.Zone, c.InstanceFamily) for c in both} == {
        ("ap-guangzhou-2", "S1"), ("ap-guangzhou-2", "S5"), ("ap-guangzhou-6", "S5")}
    assert describe_types(client, ("zone", ["ap-guangzhou-2"]), ("instance-family", ["M5"])) == []


def test_sdk_unknown_filter_is_invalid_filter(open_broker):
    err = sdk_error(describe_types, sdk(open_broker.port), ("instance-type", ["S5.LARGE8"]))
    assert err.code == "InvalidFilter" and "instance-type" in err.message
    uuid.UUID(err.requestId)


def test_sdk_with_secrets_accepts_the_right_credentials(auth_broker):
    assert describe_types(sdk(auth_broker.port, SECRET_ID, SECRET_KEY), ("instance-family", ["SA2"]))


def test_sdk_with_secrets_refuses_a_wrong_key(auth_broker):
    err = sdk_error(describe_types, sdk(auth_broker.port, SECRET_ID, "wrong-key"))
    assert err.code == "AuthFailure.SignatureFailure"


def test_sdk_with_secrets_refuses_an_unknown_id(auth_broker):
    err = sdk_error(describe_types, sdk(auth_broker.port, "AKIDsomeoneelse", SECRET_KEY))
    assert err.code == "AuthFailure.SecretIdNotFound"


# -- raw HTTP against a broker with secrets -------------------------------------------------------

def test_sdk_signed_raw_request_is_accepted(auth_broker):
    zone = {"Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}]}
    reply = send(auth_broker.port, signed(auth_broker.port, params=zone))
    assert reply["InstanceTypeConfigSet"] and {c["Zone"] for c in reply["InstanceTypeConfigSet"]} == {"ap-guangzhou-3"}
    assert set(reply["InstanceTypeConfigSet"][0]) == {"Mem", "Cpu", "InstanceType", "Zone", "InstanceFamily"}


def test_any_service_name_in_the_scope_is_accepted(auth_broker):
    assert "Error" not in send(auth_broker.port, signed(auth_broker.port, service="cvm"))


def test_unsigned_payload_mode_is_accepted(auth_broker):
    req = signed(auth_broker.port, unsigned_payload=True)
    assert req.header["X-TC-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert "Error" not in send(auth_broker.port, req)


SCOPE = "Credential=AKIDbatchtest/2024-01-01/batch/tc3_request"
ZEROS = "Signature=" + "0" * 64


@pytest.mark.parametrize("authorization", [
    None,
    "",
    "SKIP",
    "garbage",
    "TC3-HMAC-SHA256 nonsense",
    f"HMAC-SHA256 {SCOPE}, SignedHeaders=content-type;host, {ZEROS}",
    f"TC3-HMAC-SHA256 Credential=AKIDbatchtest/2024-01-01/batch, SignedHeaders=content-type;host, {ZEROS}",
    f"TC3-HMAC-SHA256 {SCOPE}, SignedHeaders=host, {ZEROS}",
    f"TC3-HMAC-SHA256 {SCOPE}, SignedHeaders=content-type;host, Signature=xyz",
])
def test_missing_or_garbled_authorization(auth_broker, authorization):
    req = signed(auth_broker.port)
    if authorization is None:
        del req.header["Authorization"]
    else:
        req.header["Authorization"] = authorization
    assert error_code(send(auth_broker.port, req)) == "AuthFailure.InvalidAuthorization"


def test_an_hour_old_signature_has_expired(auth_broker):
    req = signed(auth_broker.port, at=time.time() - 3600)
    assert error_code(send(auth_broker.port, req)) == "AuthFailure.SignatureExpire"
    ahead = signed(auth_broker.port, at=time.time() + 3600)
    assert error_code(send(auth_broker.port, ahead)) == "AuthFailure.SignatureExpire"


def test_credential_date_must_be_the_timestamps_utc_date(auth_broker):
    req = signed(auth_broker.port)
    date = datetime.fromtimestamp(int(req.header["X-TC-Timestamp"]), timezone.utc).strftime("%Y-%m-%d")
    req.header["Authorization"] = req.header["Authorization"].replace(f"/{date}/", "/2001-01-01/")
    assert error_code(send(auth_broker.port, req)) == "AuthFailure.InvalidAuthorization"


@pytest.mark.parametrize("tamper", ["body", "host", "timestamp", "signature"])
def test_tampering_breaks_the_signature(auth_broker, tamper):
    req = signed(auth_broker.port, params={"Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}]})
    if tamper == "body":
        req.data = req.data.replace("guangzhou-3", "guangzhou-4")
    elif tamper == "host":
        req.header["Host"] = f"localhost:{auth_broker.port}"
    elif tamper == "timestamp":
        req.header["X-TC-Timestamp"] = str(int(req.header["X-TC-Timestamp"]) - 1)
    else:
        last = req.header["Authorization"][-1]
        req.header["Authorization"] = req.header["Authorization"][:-1] + ("0" if last != "0" else "1")
    assert error_code(send(auth_broker.port, req)) == "AuthFailure.SignatureFailure"


def test_signature_is_checked_before_the_action(auth_broker):
    req = signed(auth_broker.port, action="NoSuchAction", secret_key="wrong")
    assert error_code(send(auth_broker.port, req)) == "AuthFailure.SignatureFailure"
    assert error_code(send(auth_broker.port, signed(auth_broker.port, action="NoSuchAction"))) == "InvalidAction"


# -- raw HTTP against a broker without secrets ----------------------------------------------------

@pytest.mark.parametrize("action", sorted(UNSUPPORTED))
def test_stub_actions_are_unsupported(open_broker, action):
    reply = raw(open_broker.port, body="{}", headers=headers(action))
    assert error_code(reply) == "UnsupportedOperation" and action in reply["Error"]["Message"]


@pytest.mark.parametrize("hdrs, body, code", [
    (headers("NoSuchAction"), "{}", "InvalidAction"),
    (headers(ACTION.lower()), "{}", "InvalidAction"),  # API 3.0 action names are case-sensitive
    (headers(version="2018-01-01"), "{}", "NoSuchVersion"),
    (headers(version=None), "{}", "NoSuchVersion"),
    (headers(action=None), "{}", "MissingParameter"),
    (headers(), "not json", "InvalidParameter"),
    (headers(), "[1, 2]", "InvalidParameter"),
    (headers(), '"text"', "InvalidParameter"),
    (headers(), b"{\"a\": \"\xff\"}", "InvalidParameter"),
    (headers(), '{"Filters": NaN}', "InvalidParameter"),
    (headers(), '{"Filters": "zone"}', "InvalidParameter"),
    (headers(), '{"Filters": [{"Name": "zone"}]}', "MissingParameter"),
    (headers(), '{"Filters": [{"Name": "zone", "Values": "ap-guangzhou-3"}]}', "InvalidParameter"),
    (headers(), '{"Filters": [{"Name": "flavour", "Values": []}]}', "InvalidFilter"),
])
def test_request_errors(open_broker, hdrs, body, code):
    assert error_code(raw(open_broker.port, body=body, headers=hdrs)) == code


def test_json_array_message_is_clear(open_broker):
    reply = raw(open_broker.port, body="[]", headers=headers())
    assert "JSON object" in reply["Error"]["Message"] and "array" in reply["Error"]["Message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_served(open_broker, method):
    reply = raw(open_broker.port, method=method, headers=headers())
    assert error_code(reply) == "UnsupportedOperation" and method in reply["Error"]["Message"]


def test_without_secrets_anything_is_accepted(open_broker):
    c3 = '{"Filters": [{"Name": "instance-family", "Values": ["C3"]}]}'
    reply = raw(open_broker.port, body=c3, headers=headers())
    assert reply["InstanceTypeConfigSet"] and {c["InstanceFamily"] for c in reply["InstanceTypeConfigSet"]} == {"C3"}
    no_auth = {k: v for k, v in headers().items() if k != "Authorization"}
    assert "Error" not in raw(open_broker.port, body="", headers=no_auth)  # an empty body means {}


def test_region_header_and_default_region(open_broker):
    reply = raw(open_broker.port, body="{}", headers=headers(**{"X-TC-Region": "ap-beijing"}))
    assert {c["Zone"] for c in reply["InstanceTypeConfigSet"]} == {"ap-beijing-3", "ap-beijing-5", "ap-beijing-6"}
    reply = raw(open_broker.port, body="{}", headers=headers())  # the broker's --region, ap-guangzhou by default
    assert {c["Zone"] for c in reply["InstanceTypeConfigSet"]} == GUANGZHOU


def test_configured_region_is_the_default(start_broker):
    b = start_broker(["--host", "127.0.0.1", "--port", "0", "--region", "ap-shanghai"])
    reply = raw(b.port, body="{}", headers=headers())
    assert {c["Zone"] for c in reply["InstanceTypeConfigSet"]} == {"ap-shanghai-2", "ap-shanghai-4", "ap-shanghai-5"}


def test_oversize_body_is_invalid_parameter(start_broker):
    b = start_broker(["--host", "127.0.0.1", "--port", "0", "--max-request-bytes", "1024"])
    body = json.dumps({"Filters": [{"Name": "zone", "Values": ["x" * 2000]}]})
    reply = raw(b.port, body=body, headers=headers())
    assert error_code(reply) == "InvalidParameter" and "1024" in reply["Error"]["Message"]
    assert "Error" not in raw(b.port, body="{}", headers=headers())  # and the broker carries on


def test_cmq_endpoint_still_answers(open_broker):
    account = open_broker.account()
    total, _, _ = account.list_queue()
    assert total >= 0


# -- the endpoint in-process, on a fake clock -----------------------------------------------------

@pytest.fixture
async def fake_clock_client():
    clock = FakeClock(start=1_700_000_000.0)
    app = build_app(Config(secret_id=SECRET_ID, secret_key=SECRET_KEY), clock=clock)
    async with TestClient(TestServer(app)) as c:
        yield c, clock


async def post_signed(client, req: RequestInternal) -> dict:
    hdrs = {k: v for k, v in req.header.items() if k != "Host"}
    hdrs["Host"] = req.header["Host"]
    resp = await client.post("/", data=req.data.encode(), headers=hdrs)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    return (await resp.json())["Response"]


@pytest.mark.parametrize("offset, ok", [(-300, True), (300, True), (-301, False), (301, False)])
async def test_skew_limit_is_300_seconds(fake_clock_client, offset, ok):
    client, clock = fake_clock_client
    req = signed(client.port, at=clock.time() + offset)
    reply = await post_signed(client, req)
    assert ("Error" not in reply) if ok else (error_code(reply) == "AuthFailure.SignatureExpire")


# -- units: signature.py against the SDK's own signing --------------------------------------------

NOW = 1_700_000_000


def sdk_request(**kw) -> tuple[RequestInternal, CIMultiDict]:
    req = signed(9, at=NOW, **kw)
    return req, CIMultiDict(req.header)


def check(req: RequestInternal, hdrs, *, secret_id=SECRET_ID, secret_key=SECRET_KEY, now=NOW, body=None) -> None:
    sig.verify(method="POST", path="/", query="", headers=hdrs, body=req.data.encode() if body is None else body,
               secret_id=secret_id, secret_key=secret_key, now=now)


def test_verify_accepts_what_the_sdk_signs():
    req, hdrs = sdk_request(params={"Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3", "广州"]}]})
    check(req, hdrs)
    check(*sdk_request(service="cvm"))
    check(*sdk_request(unsigned_payload=True), body=b"anything at all")


def test_verify_accepts_lower_cased_header_values():
    req, hdrs = sdk_request()
    hdrs["Content-Type"] = "Application/JSON"  # as Tencent's docs sign it: lower-cased
    hdrs["Authorization"] = hdrs["Authorization"][: -64] + _resign(req, {"content-type": "application/json"})
    check(req, hdrs)


def _resign(req: RequestInternal, values: dict) -> str:
    auth = sig.parse_authorization(req.header["Authorization"])
    sent = {"content-type": req.header["Content-Type"], "host": req.header["Host"]}
    lines = [(n, values.get(n) or sent[n]) for n in auth.signed_headers]
    canonical = sig.canonical_request("POST", "/", "", lines, sig.payload_hash({}, req.data.encode()))
    to_sign = sig.string_to_sign(str(NOW), auth.date, auth.service, canonical)
    return sig.sign(SECRET_KEY, auth.date, auth.service, to_sign)


@pytest.mark.parametrize("change, error", [
    (dict(secret_key="other"), e.SignatureMismatch),
    (dict(secret_id="other"), e.UnknownSecretId),
    (dict(now=NOW + 301), e.SignatureExpired),
    (dict(now=NOW - 301), e.SignatureExpired),
    (dict(body=b"{}x"), e.SignatureMismatch),
])
def test_verify_refuses(change, error):
    req, hdrs = sdk_request()
    with pytest.raises(error):
        check(req, hdrs, **change)


def test_verify_needs_the_signed_headers_and_a_timestamp():
    req, hdrs = sdk_request()
    del hdrs["Host"]
    with pytest.raises(e.InvalidAuthorization, match="host"):
        check(req, hdrs)
    req, hdrs = sdk_request()
    del hdrs["X-TC-Timestamp"]
    with pytest.raises(e.MissingParameter):
        check(req, hdrs)
    hdrs["X-TC-Timestamp"] = "soon"
    with pytest.raises(e.InvalidParameter):
        check(req, hdrs)


def test_parse_authorization():
    auth = sig.parse_authorization(
        "TC3-HMAC-SHA256 Credential=AKID/2024-02-29/batch/tc3_request, "
        "SignedHeaders=content-type;host;x-tc-action, Signature=" + "AB" * 32)
    assert auth == sig.Authorization("AKID", "2024-02-29", "batch", ("content-type", "host", "x-tc-action"), "ab" * 32)
    for bad in ("TC3-HMAC-SHA256 Credential=AKID/2024-02-29/batch/tc3_request, Credential=x, "
                "SignedHeaders=content-type;host, Signature=" + "0" * 64,
                "TC3-HMAC-SHA256 Credential=/2024-02-29/batch/tc3_request, SignedHeaders=content-type;host, "
                "Signature=" + "0" * 64,
                "TC3-HMAC-SHA256 Credential=AKID/24-2-29/batch/tc3_request, SignedHeaders=content-type;host, "
                "Signature=" + "0" * 64):
        with pytest.raises(e.InvalidAuthorization):
            sig.parse_authorization(bad)


# -- units: the error table -----------------------------------------------------------------------

@pytest.mark.parametrize("exc, code", [
    (e.UnknownAction("X"), "InvalidAction"),
    (e.UnsupportedVersion("v"), "NoSuchVersion"),
    (e.MissingParameter("JobId"), "MissingParameter"),
    (e.ParameterWrongType("p", "m"), "InvalidParameter"),
    (e.DuplicateParameter("p"), "InvalidParameter"),
    (e.InvalidParameter("p", "m"), "InvalidParameter"),
    (e.MalformedRequest("m"), "InvalidParameter"),
    (e.ParameterOutOfRange("p", "m"), "InvalidParameterValue"),
    (e.InvalidAuthorization("m"), "AuthFailure.InvalidAuthorization"),
    (e.UnknownSecretId("m"), "AuthFailure.SecretIdNotFound"),
    (e.SignatureMismatch("m"), "AuthFailure.SignatureFailure"),
    (e.SignatureExpired("m"), "AuthFailure.SignatureExpire"),
    (e.ResourceNotFound("m", "Job"), "ResourceNotFound.Job"),
    (e.ResourceNotFound("m"), "ResourceNotFound"),
    (e.ResourceInUse("m", "Job"), "ResourceInUse.Job"),
    (e.UnsupportedOperation("m", "ComputeNodeIsTerminating"), "UnsupportedOperation.ComputeNodeIsTerminating"),
    (e.LimitExceeded("m", "JobQuota"), "LimitExceeded.JobQuota"),
    (e.InvalidBatchParameter("m", "JobIdMalformed"), "InvalidParameter.JobIdMalformed"),
    (e.InvalidBatchParameterValue("m", "InstanceType"), "InvalidParameterValue.InstanceType"),
    (e.InvalidBatchParameterValue("m"), "InvalidParameterValue"),
    (e.InvalidFilter("m"), "InvalidFilter"),
    (e.MethodNotAllowed("m"), "UnsupportedOperation"),
    (e.EnvIdAndComputeEnvConflict("m"), "AllowedOneAttributeInEnvIdAndComputeEnv"),
    (e.InvalidZone("m", "MismatchRegion"), "InvalidZone.MismatchRegion"),
    (e.AtLeastOneAttribute("m"), "InvalidParameterAtLeastOneAttribute"),
    (e.BatchError("m", "Whatever"), "InternalError"),
    (e.BrokerError("m"), "InternalError"),
])
def test_error_codes(exc, code):
    assert code_for(exc) == code


def test_every_code_is_a_documented_batch_or_common_code():
    documented = {v for k, v in vars(errorcodes).items() if k.isupper() and isinstance(v, str)}
    common = {"InvalidAction", "NoSuchVersion", "MissingParameter", "InvalidParameter", "ResourceNotFound",
              "ResourceInUse", "LimitExceeded", "AuthFailure.InvalidAuthorization", "AuthFailure.SecretIdNotFound",
              "AuthFailure.SignatureFailure", "AuthFailure.SignatureExpire", "InvalidZone"}
    assert set(CODES.values()) <= documented | common


def test_every_action_name_is_an_sdk_action():
    for name in set(ACTIONS) | UNSUPPORTED:
        assert callable(getattr(batch_client.BatchClient, name, None)), name
    assert not set(ACTIONS) & UNSUPPORTED


# -- units: the CVM catalogue ---------------------------------------------------------------------

def test_catalogue_types_and_zones():
    assert catalogue.instance_type("S1.SMALL1") == (1, 1)
    assert catalogue.instance_type("S5.LARGE8") == (4, 8)
    assert catalogue.instance_type("S5.large8") is None and catalogue.instance_type("") is None
    assert {"ap-guangzhou-3", "ap-shanghai-5", "ap-beijing-6"} <= catalogue.zones()
    assert catalogue.region_of("ap-shanghai-4") == "ap-shanghai" and catalogue.region_of("mars-1") is None
    assert catalogue.available("S5.MEDIUM4", "ap-beijing-6") and not catalogue.available("S1.SMALL1", "ap-beijing-6")
    rows = catalogue.configs()
    assert len({(r["InstanceType"], r["Zone"]) for r in rows}) == len(rows) >= 12
    assert all(catalogue.instance_type(r["InstanceType"]) == (r["Cpu"], r["Mem"]) for r in rows)
    assert {r["Zone"] for r in rows} == catalogue.zones()


def test_catalogue_filters():
    f = lambda name, *values: {"Name": name, "Values": list(values)}  # noqa: E731
    rows = catalogue.configs([f("zone", "ap-guangzhou-3", "ap-beijing-5"), f("instance-family", "C3")])
    assert {(r["Zone"], r["InstanceType"]) for r in rows} == {
        ("ap-guangzhou-3", "C3.LARGE8"), ("ap-guangzhou-3", "C3.2XLARGE16"),
        ("ap-beijing-5", "C3.LARGE8"), ("ap-beijing-5", "C3.2XLARGE16")}
    assert catalogue.configs([f("zone", "ap-guangzhou-3")], region="ap-beijing") == []
    assert catalogue.configs([f("zone")]) == []
    with pytest.raises(e.InvalidFilter):
        catalogue.configs([f("instance-type", "S5.LARGE8")])
    rows[0]["Cpu"] = 999  # callers get copies
    assert all(r["Cpu"] != 999 for r in catalogue.configs())


def test_catalogue_is_pure_python():
    tree = ast.parse(Path(REPO_ROOT, "broker/batchsim/catalogue.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in ("aiohttp", "msgpack") or "protocol" in m}
