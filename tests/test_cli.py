"""The command line for humans, driven as a user drives it: `python -m broker queue|topic|events ...`
run as subprocesses against a broker process, their output and exit status checked.

Most tests use the session's broker (no signature checks). One module broker checks signatures
and runs the Batch simulator with `--batch-time-scale 0`, so a job's events are all published
within moments of SubmitJob; the CLI talks to it with the secrets from its environment, as a
user with BROKER_SECRET_ID/BROKER_SECRET_KEY set would. Where it matters, what the CLI did is
checked through the official CMQ SDK too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Iterator

import pytest
from cmq.subscription import SubscriptionMeta

from helpers import (
    REGION, REPO_ROOT, BrokerProcess, batch_client_for, call, closed_port, run_broker, serve_args, unique_name,
)

SECRET_ID, SECRET_KEY = "AKIDcli", "cli-secret"
JOB_EVENTS = ["TASK_INSTANCE_RUNNING", "TASK_RUNNING", "JOB_RUNNING"]  # then the three ends, same order
TIMEOUT = 20


def cli(url: str, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
        secrets: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m broker ARGS` with BROKER_URL=url (and the module broker's secrets if asked)."""
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO_ROOT, env=_env(url, secrets, env),
                          input=stdin, capture_output=True, timeout=TIMEOUT)


def _env(url: str, secrets: bool, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(BROKER_URL=url, TZ="UTC", NO_PROXY="127.0.0.1", PYTHONUNBUFFERED="1")
    if secrets:
        env.update(BROKER_SECRET_ID=SECRET_ID, BROKER_SECRET_KEY=SECRET_KEY)
    env.update(extra or {})
    return env


def out(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess) -> str:
    text = result.stderr.decode()
    assert "Traceback" not in text, text
    return text


def ok(url: str, *args: str, **kwargs) -> str:
    result = cli(url, *args, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return out(result)


def rows(text: str) -> list[list[str]]:
    """A printed table's data rows, split on runs of 2+ spaces (cells hold single spaces)."""
    return [re.split(r" {2,}", line.strip()) for line in text.splitlines()[1:]]


@pytest.fixture(scope="module")
def sb() -> Iterator[BrokerProcess]:
    """A broker that checks signatures, with Batch steps that happen at once."""
    with run_broker(serve_args("--batch-time-scale", "0", "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY)) as b:
        yield b


def submit_job(port: int, topic: str, exit_code: int) -> str:
    """Submit a one-task job reporting job, task and instance events to `topic`; its JobId."""
    events = ["JobRunning", "JobSucceed", "JobFailed", "TaskRunning", "TaskSucceed", "TaskFailed",
              "TaskInstanceRunning", "TaskInstanceSucceed", "TaskInstanceFailed"]
    configs = [{"EventName": e, "EventVars": [{"Name": "owner", "Value": "team a"}] if e.startswith("Job") else []}
               for e in events]
    return call(batch_client_for(f"http://127.0.0.1:{port}", REGION, SECRET_ID, SECRET_KEY), "SubmitJob", {
        "Placement": {"Zone": "ap-guangzhou-3"},
        "Job": {
            "JobName": "cli-job",
            "Tasks": [{
                "TaskName": "main",
                "Application": {"DeliveryForm": "LOCAL", "Command": "true"},
                "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "S5.MEDIUM4"}},
                "EnvVars": [{"Name": "BATCH_SIM_EXIT_CODE", "Value": str(exit_code)}],
            }],
            "Notifications": [{"TopicName": topic, "EventConfigs": configs}],
        },
    })["JobId"]


def start_tail(url: str, *args: str) -> tuple[subprocess.Popen, str]:
    """Start `events tail ARGS` and wait until it says it is reading; (process, its first stderr line)."""
    proc = subprocess.Popen([sys.executable, "-m", "broker", "events", "tail", *args], cwd=REPO_ROOT,
                            env=_env(url, True, None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.startswith("tailing "), line + proc.stderr.read()
    return proc, line


# -- queues and topics ------------------------------------------------------------------------


def test_queue_commands_round_trip(broker):
    url, name = broker.url, unique_name("cli")
    assert ok(url, "queue", "create", name, "--visibility-timeout", "60").startswith(f"created queue {name} (queue-")
    first = ok(url, "queue", "send", name, "hello world").strip()
    assert first.isdigit()
    ok(url, "queue", "send", name, "-", stdin="line one\nline two é".encode())
    ok(url, "queue", "send", name, "later", "--delay", "600")

    listed = ok(url, "queue", "list", "--prefix", name)
    assert listed.splitlines()[0].split() == ["QUEUE", "ACTIVE", "INFLIGHT", "DELAYED"]
    assert rows(listed) == [[name, "2", "0", "1"]]

    peeked = rows(ok(url, "queue", "peek", name))
    assert [(r[0], r[1], r[-1]) for r in peeked] == [
        (first, "ready", "hello world"), (peeked[1][0], "ready", r"line one\nline two é"),
        (peeked[2][0], "delayed", "later")]

    kept = rows(ok(url, "queue", "receive", name, "--keep"))
    assert [(r[0], r[-2], r[-1]) for r in kept] == [(first, "1", "hello world")]
    got = [json.loads(line) for line in ok(url, "queue", "receive", name, "-n", "5", "--json").splitlines()]
    assert [m["msgBody"] for m in got] == ["line one\nline two é"]  # exact, unlike the one-line table
    assert rows(ok(url, "queue", "list", "--prefix", name)) == [[name, "0", "1", "1"]]  # one kept, one deleted

    empty = cli(url, "queue", "receive", name, "--wait", "1")
    assert (empty.returncode, out(empty), err(empty)) == (0, "", f"no message in {name}\n")
    assert ok(url, "queue", "purge", name) == f"purged 2 messages from {name}\n"
    assert err(cli(url, "queue", "peek", name)) == f"no message in {name}\n"
    assert ok(url, "queue", "delete", name) == f"deleted queue {name}\n"
    assert name not in ok(url, "queue", "list")


def test_topic_commands_and_sdk_see_the_same_messages(broker, account, make_queue):
    url, topic = broker.url, unique_name("clitopic")
    queue = make_queue("clisub")
    ok(url, "topic", "create", topic)
    sub = SubscriptionMeta()
    sub.Protocal, sub.Endpoint, sub.NotifyContentFormat, sub.FilterTag = "queue", queue.queue_name, "SIMPLIFIED", ["paid"]
    account.get_subscription(topic, "paid").create(sub)
    assert rows(ok(url, "topic", "list", "--prefix", topic)) == [[topic, "tag", "1"]]

    assert ok(url, "topic", "publish", topic, "order 42", "--tag", "paid", "--tag", "eu").strip().isdigit()
    ok(url, "topic", "publish", topic, "order 43", "--tag", "unpaid")
    assert queue.receive_message().msgBody == "order 42"  # the SDK reads what the CLI published
    assert err(cli(url, "queue", "receive", queue.queue_name)) == f"no message in {queue.queue_name}\n"

    routed = unique_name("clirouted")
    ok(url, "topic", "create", routed, "--routing")
    assert rows(ok(url, "topic", "list", "--prefix", routed)) == [[routed, "routing", "0"]]
    assert ok(url, "topic", "publish", routed, "x", "--routing-key", "a.b").strip().isdigit()
    for t in (topic, routed):
        ok(url, "topic", "delete", t)
    assert err(cli(url, "topic", "list", "--prefix", routed)) == f"no topics starting with {routed!r}\n"


def test_errors_are_one_line_and_exit_nonzero(broker):
    url, missing = broker.url, unique_name("missing")
    for args in (["queue", "send", missing, "x"], ["queue", "receive", missing], ["queue", "peek", missing],
                 ["queue", "purge", missing], ["topic", "publish", missing, "x"]):
        result = cli(url, *args)
        assert result.returncode == 1, args
        assert re.fullmatch(rf"error: \(4440\) \(\d+\)(queue|topic) '{missing}' does not exist\n", err(result))
    result = cli(url, "events", "tail", missing)
    assert (result.returncode, err(result)) == (1, f"error: no queue or topic named '{missing}'\n")
    result = cli(url, "queue", "send", missing, "-", stdin=b"\xff\xfe")
    assert (result.returncode, err(result)) == (1, "error: the body read from stdin is not UTF-8 text\n")

    closed = f"http://127.0.0.1:{closed_port()}"
    result = cli(closed, "queue", "list")
    assert (result.returncode, err(result)) == (1, f"error: no broker at {closed}: is it running?\n")
    result = cli(url, "queue", "list", "--url", "ftp://example")
    assert (result.returncode, err(result)) == (2, "error: the broker URL must look like http://HOST:PORT, got 'ftp://example'\n")
    assert cli(url, "queue", "receive", missing, "-n", "0").returncode == 2  # argparse's usage error


def test_signatures_with_flags_or_environment(sb):
    name = unique_name("cliauth")
    result = cli(sb.url, "queue", "create", name)
    assert result.returncode == 1
    assert err(result).startswith("error: (4100) ") and "hint: this broker checks signatures: give --secret-id" in err(result)
    result = cli(sb.url, "queue", "list", "--secret-id", SECRET_ID, "--secret-key", "wrong")
    assert result.returncode == 1 and "yours do not match" in err(result)
    ok(sb.url, "queue", "create", name, "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY)
    ok(sb.url, "queue", "send", name, "signed", secrets=True)
    assert rows(ok(sb.url, "queue", "receive", name, secrets=True))[0][-1] == "signed"
    assert sb.account(SECRET_ID, SECRET_KEY).get_queue(name).get_attributes().activeMsgNum == 0


# -- events tail ------------------------------------------------------------------------------


def test_events_tail_topic_prints_a_job_and_removes_its_queue(sb):
    topic = unique_name("clievents")
    ok(sb.url, "topic", "create", topic, secrets=True)
    proc, announced = start_tail(sb.url, topic, "--count", "6", "--wait", "10")
    temp = re.search(r"temporary queue (tail-[0-9a-f]+)", announced).group(1)
    job = submit_job(sb.port, topic, 0)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert [line.split()[2] for line in lines] == JOB_EVENTS + ["TASK_INSTANCE_SUCCEED", "TASK_SUCCEED", "JOB_SUCCEED"]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  [A-Z_]+ +job-", line) for line in lines)
    assert re.search(rf"  TASK_INSTANCE_SUCCEED +{job}/main/0 +exit=0  cvm=ins-", lines[3])
    assert re.search(rf"  JOB_SUCCEED +{job} +name=cli-job  vars: owner=\"team a\"$", lines[5])
    # The temporary queue and its subscription are gone again.
    assert temp not in ok(sb.url, "queue", "list", secrets=True)
    assert rows(ok(sb.url, "topic", "list", "--prefix", topic, secrets=True)) == [[topic, "tag", "0"]]


def test_events_tail_queue_json_and_foreign_bodies(sb):
    acct = sb.account(SECRET_ID, SECRET_KEY)
    topic, queue = unique_name("clijson"), unique_name("clijsonq")
    ok(sb.url, "topic", "create", topic, "--routing", secrets=True)
    ok(sb.url, "queue", "create", queue, secrets=True)
    sub = SubscriptionMeta()
    sub.Protocal, sub.Endpoint, sub.NotifyContentFormat, sub.bindingKey = "queue", queue, "SIMPLIFIED", ["#"]
    acct.get_subscription(topic, "all").create(sub)
    job = submit_job(sb.port, topic, 3)

    result = cli(sb.url, "events", "tail", queue, "--json", "--count", "6", "--wait", "10", secrets=True)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out(result).splitlines()]
    assert [e["EventName"] for e in events] == JOB_EVENTS + ["TASK_INSTANCE_FAILED", "TASK_FAILED", "JOB_FAILED"]
    assert {e["Batch"]["JobId"] for e in events} == {job}
    assert events[3]["Batch"]["ExitCode"] == 3 and events[5]["EventVars"] == [{"Name": "owner", "Value": "team a"}]
    assert err(cli(sb.url, "queue", "peek", queue, secrets=True)) == f"no message in {queue}\n"  # printed = deleted

    ok(sb.url, "queue", "send", queue, "plain text, not an event", secrets=True)
    assert ok(sb.url, "events", "tail", queue, "--once", secrets=True) == "[not a Batch event] plain text, not an event\n"
    result = cli(sb.url, "events", "tail", queue, "--count", "2", "--wait", "0", secrets=True)
    assert (result.returncode, out(result)) == (1, "")
    assert err(result).endswith("error: 0 of 2 events arrived, then none for 0 s\n")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_tail_removes_its_queue(sb, sig, status):
    topic = unique_name("clictrlc")
    ok(sb.url, "topic", "create", topic, secrets=True)
    proc, announced = start_tail(sb.url, topic)
    temp = re.search(r"temporary queue (tail-[0-9a-f]+)", announced).group(1)
    assert temp in ok(sb.url, "queue", "list", "--prefix", "tail-", secrets=True)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, stdout, stderr) == (status, "", "")
    assert temp not in ok(sb.url, "queue", "list", secrets=True)
    assert rows(ok(sb.url, "topic", "list", "--prefix", topic, secrets=True)) == [[topic, "tag", "0"]]
