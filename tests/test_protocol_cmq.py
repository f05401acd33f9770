"""Protocol tests: the CMQ endpoint in-process (aiohttp test server), raw HTTP requests.

These cover what the SDK never sends but other clients and fuzzers will: malformed bodies,
unknown actions, odd methods, duplicate or mistyped parameters. Every reply must be HTTP 200
with a CMQ error, and a rejected request must change nothing.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cmq.sign import Sign

from broker.config import Config
from broker.server import build_app

PATH = "/v2/index.php"


@pytest.fixture
async def client():
    async with TestClient(TestServer(build_app(Config(max_request_bytes=64 * 1024)))) as c:
        yield c


async def call(client, method="POST", body=None, params=None, headers=None):
    if method == "GET":
        resp = await client.get(PATH + "?" + urlencode(params or {}), headers=headers)
    else:
        if body is None:
            body = urlencode(params or {}).encode()
        resp = await client.request(method, PATH, data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    reply = await resp.json()
    assert isinstance(reply["code"], int) and isinstance(reply["message"], str) and reply["requestId"]
    return reply


async def active(client, queue="q"):
    reply = await call(client, params={"Action": "GetQueueAttributes", "queueName": queue})
    return reply["activeMsgNum"]


@pytest.fixture
async def queue(client):
    assert (await call(client, params={"Action": "CreateQueue", "queueName": "q"}))["code"] == 0
    assert (await call(client, params={"Action": "SendMessage", "queueName": "q", "msgBody": "keep"}))["code"] == 0
    return "q"


@pytest.mark.parametrize(
    "body, code, module, mentions",
    [
        (b"Action=NoSuchThing", 4000, 10430, "NoSuchThing"),
        (b"", 4000, 10430, "Action"),
        (b"Action=SendMessage&queueName=q&msgBody=\xff\xfe", 4000, 10420, "UTF-8"),
        (b"Action=SendMessage&queueName=q&msgBody=%ff%fe", 4000, 10420, "UTF-8"),
        (b"Action=SendMessage&queueName=q", 4000, 10390, "msgBody"),
        (b"Action=SendMessage&queueName=q&msgBody=", 4000, 10120, "msgBody"),
        (b"Action=SendMessage&queueName=q&msgBody=a&msgBody=b", 4000, 10330, "msgBody"),
        (b"Action=SendMessage&queueName=q&msgBody=a&delaySeconds=soon", 4000, 10360, "delaySeconds"),
        (b"Action=SendMessage&queueName=q&msgBody=a&delaySeconds=3601", 4000, 10350, "delaySeconds"),
        (b"Action=SendMessage&queueName=q&msgBody=a&delaySeconds=-1", 4000, 10350, "delaySeconds"),
        (b"Action=SendMessage&queueName=nope&msgBody=a", 4440, 10100, "nope"),
        (b"Action=BatchSendMessage&queueName=q&msgBody.1=a&msgBody.3=b", 4000, 10380, "msgBody"),
        (b"Action=BatchSendMessage&queueName=q&msgBody.x=a", 4000, 10360, "msgBody"),
        (b"Action=BatchSendMessage&queueName=q", 4000, 10390, "msgBody"),
        (b"Action=BatchSendMessage&queueName=q&" + "&".join(f"msgBody.{i}=m" for i in range(1, 18)).encode(),
         4000, 10370, "msgBody"),
        (b"Action=BatchSendMessage&queueName=q&msgBody.1=a&msgBody.2=", 4000, 10120, "msgBody.2"),
        (b"Action=BatchReceiveMessage&queueName=q&numOfMsg=17", 4000, 10350, "numOfMsg"),
        (b"Action=BatchReceiveMessage&queueName=q", 4000, 10390, "numOfMsg"),
        (b"Action=ReceiveMessage&queueName=q&pollingWaitSeconds=31", 4000, 10350, "pollingWaitSeconds"),
        (b"Action=CreateQueue&queueName=9lives", 4000, 10020, "queueName"),
        (b"Action=CreateQueue&queueName=q", 4460, 10210, "q"),
        (b"Action=CreateQueue&queueName=r&visibilityTimeout=0", 4000, 10350, "visibilityTimeout"),
        (b"Action=CreateQueue&queueName=r&maxMsgSize=1e3", 4000, 10360, "maxMsgSize"),
        (b"Action=SetQueueAttributes&queueName=q&msgRetentionSeconds=30", 4000, 10350, "msgRetentionSeconds"),
        (b"Action=DeleteMessage&queueName=q&receiptHandle=forged", 4430, 10260, "forged"),
        (b"Action=ListQueue&limit=51", 4000, 10350, "limit"),
        (b"Action=RewindQueue&queueName=q&startConsumeTime=0", 6050, 10670, "rewind"),
        (b"Action=RewindQueue&queueName=q", 4000, 10390, "startConsumeTime"),
        (b"Action=ReceiveMessage&queueName=q&pollingWaitSeconds=0&numOfMsg=1", 0, None, ""),
    ],
)
async def test_bad_input_gets_a_cmq_error_and_changes_nothing(client, queue, body, code, module, mentions):
    reply = await call(client, body=body)
    assert reply["code"] == code, reply
    if module is not None:
        assert reply["message"].startswith(f"({module})"), reply
        assert mentions in reply["message"], reply
        assert await active(client) == 1
        listed = await call(client, params={"Action": "ListQueue"})
        assert [q["queueName"] for q in listed["queueList"]] == ["q"]


async def test_case_insensitive_action_and_names(client, queue):
    reply = await call(client, body=b"action=sendMESSAGE&QueueName=Q&MSGBODY=x")
    assert reply["code"] == 0
    assert await active(client) == 2


async def test_get_query_string_and_form_content_type(client, queue):
    reply = await call(client, "GET", params={"Action": "SendMessage", "queueName": "q", "msgBody": "a+b&c=d é"})
    assert reply["code"] == 0
    reply = await call(
        client,
        body=urlencode({"Action": "SendMessage", "queueName": "q", "msgBody": "x"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply["code"] == 0
    reply = await call(client, params={"Action": "BatchReceiveMessage", "queueName": "q", "numOfMsg": 16})
    assert [m["msgBody"] for m in reply["msgInfoList"]] == ["keep", "a+b&c=d é", "x"]


async def test_other_methods_are_refused_in_cmq_format(client):
    for method in ("PUT", "DELETE", "PATCH"):
        reply = await call(client, method, body=b"Action=ListQueue")
        assert (reply["code"], reply["message"][:7]) == (4000, "(10410)")


async def test_oversized_body(client, queue):
    body = urlencode({"Action": "SendMessage", "queueName": "q", "msgBody": "x" * 70_000}).encode()
    reply = await call(client, body=body)
    assert (reply["code"], reply["message"][:7]) == (4000, "(10420)")
    assert await active(client) == 1


async def test_message_too_large_names_the_size(client):
    await call(client, params={"Action": "CreateQueue", "queueName": "small", "maxMsgSize": 1024})
    reply = await call(client, params={"Action": "SendMessage", "queueName": "small", "msgBody": "é" * 600})
    assert reply["code"] == 4400 and "1200 bytes" in reply["message"]


async def test_batch_delete_reports_each_failure(client):
    await call(client, params={"Action": "CreateQueue", "queueName": "b"})
    await call(client, params={"Action": "BatchSendMessage", "queueName": "b", "msgBody.1": "1", "msgBody.2": "2"})
    got = await call(client, params={"Action": "BatchReceiveMessage", "queueName": "b", "numOfMsg": 2})
    handles = [m["receiptHandle"] for m in got["msgInfoList"]]
    reply = await call(client, params={
        "Action": "BatchDeleteMessage", "queueName": "b",
        "receiptHandle.1": handles[0], "receiptHandle.2": "bogus",
    })
    assert reply["code"] == 6010
    assert reply["errorList"] == [{"code": 4430, "message": reply["errorList"][0]["message"], "receiptHandle": "bogus"}]
    reply = await call(client, params={
        "Action": "BatchDeleteMessage", "queueName": "b",
        "receiptHandle.1": handles[0], "receiptHandle.2": "bogus",
    })
    assert reply["code"] == 6020 and len(reply["errorList"]) == 2
    reply = await call(client, params={"Action": "BatchDeleteMessage", "queueName": "b", "receiptHandle.1": handles[1]})
    assert reply["code"] == 0
    attrs = await call(client, params={"Action": "GetQueueAttributes", "queueName": "b"})
    assert (attrs["activeMsgNum"], attrs["inactiveMsgNum"]) == (0, 0)


async def test_attributes_reply_has_every_field_the_sdks_read(client, queue):
    attrs = await call(client, params={"Action": "GetQueueAttributes", "queueName": "q"})
    for key in ["maxMsgHeapNum", "pollingWaitSeconds", "visibilityTimeout", "maxMsgSize", "msgRetentionSeconds",
                "rewindSeconds", "createTime", "lastModifyTime", "activeMsgNum", "inactiveMsgNum", "delayMsgNum",
                "rewindMsgNum", "rewindmsgNum", "minMsgTime", "queueName", "queueId"]:
        assert isinstance(attrs[key], int if key not in ("queueName", "queueId") else str), key
    assert attrs["minMsgTime"] > 0


# -- signatures, at the byte level ------------------------------------------------------------

@pytest.fixture
async def secured():
    config = Config(secret_id="AKIDexample", secret_key="s3cret")
    async with TestClient(TestServer(build_app(config))) as c:
        yield c


def signed(params, host, method="POST", key="s3cret", secret_id="AKIDexample", sha="sha1"):
    params = dict(params, SecretId=secret_id, Nonce=12345, Timestamp=int(time.time()),
                  SignatureMethod="HmacSHA256" if sha == "sha256" else "HmacSHA1", RequestClient="test")
    params["Signature"] = Sign(secret_id, key).make(host, PATH, params, method, sha)
    return params


async def test_signature_variants(secured):
    host = f"{secured.server.host}:{secured.server.port}"
    for sha in ("sha1", "sha256"):
        ok = signed({"Action": "ListQueue", "searchWord": ""}, host, sha=sha)
        assert (await call(secured, params=ok))["code"] == 0
        assert (await call(secured, "GET", params=signed({"Action": "ListQueue"}, host, "GET", sha=sha)))["code"] == 0
    # the SDK signs str(bytes) for bytes bodies but sends the text
    await call(secured, params=signed({"Action": "CreateQueue", "queueName": "q"}, host))
    params = signed({"Action": "SendMessage", "queueName": "q", "msgBody": b"aGk=", "delaySeconds": 0}, host)
    assert (await call(secured, body=urlencode(params).encode()))["code"] == 0
    # POST values starting with '@' are not signed by the SDK
    params = signed({"Action": "SendMessage", "queueName": "q", "msgBody": "@home"}, host)
    assert (await call(secured, params=params))["code"] == 0


async def test_signature_failures(secured):
    host = f"{secured.server.host}:{secured.server.port}"
    cases = [
        (signed({"Action": "ListQueue"}, host, key="wrong"), 10030),
        (signed({"Action": "ListQueue"}, host, secret_id="AKIDother"), 10270),
        (signed({"Action": "ListQueue"}, "evil.example:80"), 10030),
        (signed({"Action": "ListQueue"}, host, method="GET"), 10030),  # signed as GET, sent as POST
        ({"Action": "ListQueue"}, 10270),
        ({"Action": "ListQueue", "SecretId": "AKIDexample"}, 10030),
    ]
    for params, module in cases:
        reply = await call(secured, params=params)
        assert (reply["code"], reply["message"][:7]) == (4100, f"({module})"), (params, reply)
        assert "s3cret" not in reply["message"]
    tampered = signed({"Action": "CreateQueue", "queueName": "a"}, host)
    tampered["queueName"] = "b"
    assert (await call(secured, params=tampered))["code"] == 4100
    listed = await call(secured, params=signed({"Action": "ListQueue"}, host))
    assert listed["totalCount"] == 0


async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
