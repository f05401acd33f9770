"""`broker.testing` and the pytest plugin, used the way a project that depends on us would use them.

The context managers are driven with the official SDK (sync) and with aiohttp (async); the
fixtures run inside inner pytest sessions (`pytester`), whose tests print what they saw so this
module can compare one test with the next. The README's examples are extracted and run here, so
they cannot drift from the code.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import aiohttp
import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message, QueueMeta
from tencentcloud.batch.v20170312 import models

from broker.storage.format import DataDirLocked
from broker.testing import account_for, batch_client_for, broker_thread, fake_clock_broker, running_broker

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET_ID, SECRET_KEY = "AKIDtestingmod", "testing-module-key"
# Inner sessions need no cache, no pytest-asyncio (which warns about its unset options) and no
# hypothesis plugin (which imports all of hypothesis afresh in every inner session).
INNER = ("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest")


def readme_example(name: str) -> str:
    """The fenced python block right after `<!-- readme-example: NAME ... -->` in the README."""
    text = README.read_text()
    m = re.search(r"<!-- readme-example: " + re.escape(name) + r"\b[^\n]*-->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no python block after the marker readme-example: {name}"
    return m.group(1)


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cmq-broker"]


# -- the context managers -----------------------------------------------------------------------

def test_entry_point_is_installed():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("cmq_broker") == "broker.pytest_plugin"


def test_broker_thread_with_auth_serves_both_sdks_and_leaves_nothing_behind():
    with broker_thread(secret_id=SECRET_ID, secret_key=SECRET_KEY, batch_time_scale=0) as b:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", b.url) and b.port > 0
        queue = b.account().get_queue("signed")
        queue.create(QueueMeta())
        queue.send_message(Message("hello"))
        assert queue.receive_message(polling_wait_seconds=1).msgBody == "hello"
        assert b.call(lambda: b.engine.get_queue("signed").stats()["inactiveMsgNum"]) == 1

        with pytest.raises(CMQServerException) as info:
            b.account(secret_key="not-the-key").get_queue("other").create(QueueMeta())
        assert info.value.code == 4100

        types = b.batch_client().DescribeAvailableCvmInstanceTypes(models.DescribeAvailableCvmInstanceTypesRequest())
        assert types.InstanceTypeConfigSet

        # A long poll parked at the moment of the stop is answered, not left hanging.
        answer = {}
        poller = threading.Thread(target=lambda: answer.setdefault("r", _receive_or_code(queue, 10)))
        poller.start()
        time.sleep(0.2)
        port = b.port
        started = time.monotonic()
    stop_took = time.monotonic() - started
    poller.join(5)
    assert stop_took < 3, f"stopping took {stop_took:.1f} s"
    assert not poller.is_alive() and answer["r"] is not None
    assert refused(port)
    assert broker_threads() == []


def _receive_or_code(queue, wait: int):
    try:
        return queue.receive_message(polling_wait_seconds=wait).msgBody
    except CMQServerException as exc:
        return exc.code
    except Exception as exc:  # the connection closed under it: still an answer
        return type(exc).__name__


async def test_running_broker_in_the_current_loop_with_a_data_dir(tmp_path):
    before = asyncio.all_tasks()
    async with running_broker(data_dir=tmp_path) as b:
        assert b.config.data_dir == str(tmp_path)
        async with aiohttp.ClientSession() as http:
            for form in ({"Action": "CreateQueue", "queueName": "kept"},
                         {"Action": "SendMessage", "queueName": "kept", "msgBody": "survives"}):
                async with http.post(f"{b.url}/v2/index.php", data=form) as reply:
                    assert (await reply.json())["code"] == 0
        # Only one broker may own a data directory: the second one's startup error reaches us.
        with pytest.raises(DataDirLocked):
            async with running_broker(data_dir=tmp_path):
                pass
        port = b.port
    assert asyncio.all_tasks() == before
    assert refused(port)

    with broker_thread(data_dir=tmp_path) as again:
        msg = again.account().get_queue("kept").receive_message(polling_wait_seconds=1)
        assert msg.msgBody == "survives"


def test_two_brokers_are_isolated():
    with broker_thread() as one, broker_thread() as two:
        assert one.port != two.port
        one.account().get_queue("only-in-one").create(QueueMeta())
        assert [q.name for q in one.call(one.engine.list_queues)[1]] == ["only-in-one"]
        assert two.call(two.engine.list_queues) == (0, [])


def test_startup_errors_reach_the_caller():
    with pytest.raises(TypeError, match="unknown broker setting.*secret_idd"):
        with broker_thread(secret_idd="x"):
            pass
    with pytest.raises(ValueError, match="secret-id and --secret-key go together"):
        with broker_thread(secret_id="only-the-id"):
            pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            with broker_thread(port=taken.getsockname()[1]):
                pass
    assert broker_threads() == []


def test_the_block_error_wins_and_the_broker_still_stops():
    with pytest.raises(KeyError, match="from the block"):
        with broker_thread() as b:
            port = b.port
            raise KeyError("from the block")
    assert refused(port)
    assert broker_threads() == []


def test_fake_clock_broker_moves_only_when_advanced():
    start = 1_800_000_000.0
    with fake_clock_broker(start=start, batch_time_scale=0.1) as b:
        assert b.time() == start
        queue = b.account().get_queue("timed")
        queue.create(QueueMeta())
        queue.send_message(Message("later"), delayTime=3600)
        assert queue.get_attributes().delayMsgNum == 1
        assert b.account().get_client().get_queue_attributes({"queueName": "timed"})["createTime"] == int(start)
        b.advance(3599)
        assert queue.get_attributes().delayMsgNum == 1, "the delay ended before its time"
        b.advance(1)
        assert queue.receive_message(polling_wait_seconds=0).msgBody == "later"

        # The Batch simulator runs on the same clock: a job finishes only when time is moved on.
        client = b.batch_client()
        request = models.SubmitJobRequest()
        request.from_json_string(json.dumps({"Placement": {"Zone": "ap-guangzhou-3"}, "Job": {
            "JobName": "on-the-fake-clock", "Tasks": [{
                "TaskName": "t", "TaskInstanceNum": 1, "Application": {"DeliveryForm": "LOCAL", "Command": "true"},
                "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "S5.MEDIUM4"}}}]}}))
        job_id = client.SubmitJob(request).JobId

        def state() -> str:
            describe = models.DescribeJobRequest()
            describe.JobId = job_id
            return client.DescribeJob(describe).JobState

        time.sleep(0.2)
        assert state() not in ("SUCCEED", "FAILED"), "the job moved on without the clock"
        for _ in range(600):
            if state() == "SUCCEED":
                break
            b.advance(1)
        assert state() == "SUCCEED"
        port = b.port
    assert refused(port)
    assert broker_threads() == []


def test_sdk_clients_for_a_broker_started_elsewhere():
    with broker_thread(secret_id=SECRET_ID, secret_key=SECRET_KEY) as b:
        account_for(b.url, SECRET_ID, SECRET_KEY).get_queue("made-by-url").create(QueueMeta())
        assert [q.name for q in b.call(b.engine.list_queues)[1]] == ["made-by-url"]
        with pytest.raises(CMQServerException) as info:
            account_for(b.url).list_queue()  # the placeholder credentials are not this broker's
        assert info.value.code == 4100
        client = batch_client_for(b.url, "ap-shanghai", SECRET_ID, SECRET_KEY)
        zones = client.DescribeAvailableCvmInstanceTypes(models.DescribeAvailableCvmInstanceTypesRequest())
        assert zones.InstanceTypeConfigSet
        assert {c.Zone.rsplit("-", 1)[0] for c in zones.InstanceTypeConfigSet} == {"ap-shanghai"}


def test_readme_helpers_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example's data_dir is relative
    exec(compile(readme_example("testing-helpers"), "README.md:testing-helpers", "exec"), {"__name__": "readme"})
    assert (tmp_path / "cmq-data" / "LOCK").exists()
    assert broker_threads() == []


# -- the pytest plugin --------------------------------------------------------------------------

OBSERVER = """
from cmq.queue import QueueMeta


def _seen(cmq_broker):
    names = [q.name for q in cmq_broker.call(cmq_broker.engine.list_queues)[1]]
    print("SEEN", cmq_broker.port, ",".join(names) or "-")


def test_first(cmq_broker, cmq_account):
    cmq_account.get_queue("left-behind").create(QueueMeta())
    _seen(cmq_broker)


def test_second(cmq_broker):
    _seen(cmq_broker)
"""


def _observations(result) -> list[tuple[int, str]]:
    result.assert_outcomes(passed=2)
    return [(int(port), names) for port, names in re.findall(r"SEEN (\d+) (\S+)", result.stdout.str())]


def test_fixture_gives_each_test_its_own_broker(pytester):
    pytester.makepyfile(test_observer=OBSERVER)
    (first, second) = _observations(pytester.runpytest("-s", *INNER))
    assert first[1] == "left-behind" and second[1] == "-"


def test_session_scope_from_the_ini_and_the_flag_that_overrides_it(pytester):
    pytester.makeini("[pytest]\ncmq_broker_scope = session\n")
    pytester.makepyfile(test_observer=OBSERVER)
    first, second = _observations(pytester.runpytest("-s", *INNER))
    assert second == (first[0], "left-behind")

    first, second = _observations(pytester.runpytest("-s", *INNER, "--cmq-broker-scope", "function"))
    assert second[1] == "-"


def test_marker_and_settings_fixture(pytester):
    pytester.makeconftest("""
import pytest

@pytest.fixture
def cmq_broker_settings():
    return {"max_queues": 1}
""")
    pytester.makepyfile(test_marked="""
import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import QueueMeta


@pytest.mark.cmq_broker(secret_id="AKIDmarked", secret_key="marked-key")
def test_marked(cmq_broker, cmq_account):
    assert (cmq_broker.config.secret_id, cmq_broker.config.max_queues) == ("AKIDmarked", 1)
    cmq_account.get_queue("one").create(QueueMeta())
    with pytest.raises(CMQServerException):
        cmq_account.get_queue("two").create(QueueMeta())


@pytest.mark.cmq_broker(max_queues=0)
def test_bad_setting(cmq_broker):
    pass
""")
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*cmq_broker: invalid broker setting: max-request-bytes must be*"])


def test_usage_errors(pytester):
    pytester.makepyfile(test_marked="""
import pytest

@pytest.mark.cmq_broker(strict=True)
def test_marked(cmq_broker):
    pass
""")
    result = pytester.runpytest(*INNER, "--cmq-broker-scope", "session")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_marked*needs a cmq_broker per test*'session'*"])

    pytester.makeini("[pytest]\ncmq_broker_scope = forever\n")
    result = pytester.runpytest(*INNER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cmq_broker_scope must be one of function, *got 'forever'*"])


def test_readme_pytest_example(pytester):
    pytester.makepyfile(test_readme=readme_example("pytest-plugin"))
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "CMQ_python_sdk.log").exists()


async def test_running_broker_stops_when_the_block_fails():
    with pytest.raises(KeyError, match="from the block"):
        async with running_broker() as b:
            port = b.port
            raise KeyError("from the block")
    assert refused(port)
