"""Provisioning as code: `--config FILE` / `BROKER_CONFIG` (README, Provisioning).

Three tiers. `load_plan` is checked on its own, on many wrong files (each error must name the
line and key). `apply_plan` runs against an in-process engine and simulator on a fake clock, for
idempotency and the checks against existing state. Then `python -m broker serve --config FILE`
is started as a user starts it and inspected with the official CMQ and Batch SDKs: what the file
declares exists once the port opens, a restart on the same data directory changes nothing but
what drifted, and a wrong file makes the start fail with status 2 and a message naming line and
key.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cmq.cmq_exception import CMQServerException
from cmq.queue import Message
from cmq.topic import Message as TopicMessage

from broker.batchsim import BatchSim
from broker.clock import FakeClock
from broker.engine import Broker, Limits
from broker.provision import ProvisionError, apply_plan, load_plan

import helpers
from batch_helpers import decode_event
from helpers import REPO_ROOT, batch_client_for, call, clean_env, queue_meta, run_broker

EXAMPLE = """\
# The README's example, give or take.
[[queue]]
name = "orders"
visibilityTimeout = 45
pollingWaitSeconds = 1

[[queue]]
name = "batch-audit"

[[topic]]
name = "events"
filterType = 1            # 1 tags, 2 routing key

[[topic]]
name = "batch-events"

[[subscription]]
topic = "events"
name = "to-orders"
protocol = "queue"
endpoint = "orders"
notifyContentFormat = "SIMPLIFIED"
filterTags = ["paid"]

[[subscription]]
topic = "events"
name = "hook"
protocol = "http"
endpoint = "http://127.0.0.1:9/hook"
notifyStrategy = "BACKOFF_RETRY"

[[subscription]]
topic = "batch-events"
name = "audit"
protocol = "queue"
endpoint = "batch-audit"

[[compute_env]]
EnvName = "render-farm"
Zone = "ap-guangzhou-3"
EnvData = { InstanceType = "S5.MEDIUM4" }
DesiredComputeNodeCount = 2
EnvDescription = '''
nodes for the
render jobs'''

[[compute_env.Notifications]]
TopicName = "batch-events"
EventConfigs = [
    { EventName = "COMPUTE_ENV_CREATED" },
    { EventName = "COMPUTE_NODE_RUNNING" },
]
"""


def write(tmp_path: Path, text: str, name: str = "broker.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProvisionError) as info:
        load_plan(str(write(tmp_path, text)))
    return str(info.value)


# -- load_plan ---------------------------------------------------------------------------------

def test_the_example_loads_into_a_plan(tmp_path):
    plan = load_plan(str(write(tmp_path, EXAMPLE)))
    assert [(q.name, q.settings) for q in plan.queues] == [
        ("orders", {"visibilityTimeout": 45, "pollingWaitSeconds": 1}), ("batch-audit", {})]
    assert [(t.name, t.filter_type) for t in plan.topics] == [("events", 1), ("batch-events", None)]
    to_orders, hook, audit = plan.subscriptions
    assert (to_orders.protocol, to_orders.endpoint, to_orders.filter_tags) == ("queue", "orders", ["paid"])
    assert (hook.protocol, hook.strategy, hook.filter_tags) == ("http", "BACKOFF_RETRY", None)
    assert audit.content_format is None  # the engine's default for queues (SIMPLIFIED) applies
    [env] = plan.envs
    assert (env.name, env.zone, env.spec["DesiredComputeNodeCount"]) == ("render-farm", "ap-guangzhou-3", 2)
    assert "Zone" not in env.spec and env.spec["EnvDescription"] == "nodes for the\nrender jobs"
    assert [(n.topic, sorted(n.events)) for n in env.notifications] == [
        ("batch-events", ["COMPUTE_ENV_CREATED", "COMPUTE_NODE_RUNNING"])]


def test_an_empty_file_is_an_empty_plan(tmp_path):
    plan = load_plan(str(write(tmp_path, "# nothing yet\n")))
    assert (plan.queues, plan.topics, plan.subscriptions, plan.envs) == ([], [], [], [])


QUEUE = '[[queue]]\nname = "q1"\n'
TOPIC = '[[topic]]\nname = "t1"\n'
SUB = '[[subscription]]\ntopic = "t1"\nname = "s1"\nprotocol = "queue"\nendpoint = "q1"\n'
ENV = '[[compute_env]]\nEnvName = "farm"\nZone = "ap-guangzhou-3"\nEnvData = { InstanceType = "S5.MEDIUM4" }\n'

WRONG = [
    # (what, file, line, the key as named, words the message must hold)
    ("unknown key, near a known one", QUEUE + "visibilityTimeOut = 3\n", 3, "visibilityTimeOut",
     'did you mean "visibilityTimeout"'),
    ("wrong type", QUEUE + 'visibilityTimeout = "x"\n', 3, "visibilityTimeout",
     'must be an integer from 1 to 43200, got "x"'),
    ("a boolean is no integer", QUEUE + "maxMsgSize = true\n", 3, "maxMsgSize", "got true"),
    ("out of range", QUEUE + "\n\npollingWaitSeconds = 31\n", 5, "pollingWaitSeconds", "from 0 to 30, got 31"),
    ("attributes that contradict", QUEUE + "msgRetentionSeconds = 60\nrewindSeconds = 61\n", 4, "rewindSeconds",
     "cannot exceed msgRetentionSeconds"),
    ("bad name", '[[queue]]\nname = "9lives"\n', 2, "name", '"9lives" is not a valid name'),
    ("missing name (the header's line)", QUEUE + "\n[[queue]]\nvisibilityTimeout = 5\n", 4, "name",
     "required, but missing"),
    ("same queue twice, whatever the case", QUEUE + '[[queue]]\nname = "Q1"\n', 4, "name",
     "declared twice (first at line 2)"),
    ("filterType", TOPIC + "filterType = 3\n", 3, "filterType", "must be 1 (tags) or 2 (routing key)"),
    ("protocol", TOPIC + QUEUE + SUB.replace('"queue"\n', '"smtp"\n'), 8, "protocol", "must be http or queue"),
    ("queue endpoint that is no name", SUB.replace('"q1"', '"a b"'), 5, "endpoint", "whitespace"),
    ("http endpoint", SUB.replace('"queue"', '"http"').replace('"q1"', '"ftp://x"'), 5, "endpoint",
     "http:// or https://"),
    ("queue subscription in JSON", SUB + 'notifyContentFormat = "JSON"\n', 6, "notifyContentFormat", "SIMPLIFIED"),
    ("too many filter tags", SUB + 'filterTags = ["a", "b", "c", "d", "e", "f"]\n', 6, "filterTags",
     "at most 5"),
    ("tags must be strings", SUB + "filterTags = [1]\n", 6, "filterTags", "array of strings, got [1]"),
    ("strategy", SUB + 'notifyStrategy = "SOMETIMES"\n', 6, "notifyStrategy", "BACKOFF_RETRY"),
    ("same subscription twice", SUB + SUB.replace('"t1"', '"T1"'), 8, "name", "declared twice (first at line 3)"),
    ("unknown zone", ENV.replace("guangzhou-3", "mars-1"), 3, "Zone", "not a simulated zone"),
    ("instance type not offered", ENV.replace("S5.MEDIUM4", "X9.HUGE"), 4, "EnvData.InstanceType", "not offered"),
    ("node count", ENV + "DesiredComputeNodeCount = 3000\n", 5, "DesiredComputeNodeCount", "from 0 to 2000"),
    ("node count type", ENV + 'DesiredComputeNodeCount = "2"\n', 5, "DesiredComputeNodeCount",
     'must be an integer, got "2"'),
    ("event name", ENV + '\n[[compute_env.Notifications]]\nTopicName = "t1"\n'
                         'EventConfigs = [{ EventName = "JOB_FAILED" }]\n', 8,
     "Notifications.0.EventConfigs.0.EventName", "cannot be configured here"),
    ("a date in EnvData", ENV.replace("}", ", Since = 2024-01-01 }"), 4, "EnvData", "dates, times"),
    ("same env twice", ENV + ENV, 6, "EnvName", "declared twice (first at line 2)"),
    ("missing EnvData", '[[compute_env]]\nEnvName = "farm"\nZone = "ap-guangzhou-3"\n', 1, "EnvData",
     "required, but missing"),
    ("unknown env key, case aside", ENV + "desiredComputeNodeCount = 1\n", 5, "desiredComputeNodeCount",
     'did you mean "DesiredComputeNodeCount"'),
]


@pytest.mark.parametrize("text, line, key, words", [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_a_wrong_file_is_refused_naming_line_and_key(tmp_path, text, line, key, words):
    message = refusal(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'broker.toml'}:{line}: ["), message
    assert f'key "{key}": ' in message and words in message, message


def test_the_table_is_named_by_its_name_or_its_number(tmp_path):
    assert '[[queue]] "q1": key "maxMsgSize"' in refusal(tmp_path, QUEUE + "maxMsgSize = 1\n")
    assert '[[queue]] #2: key "name"' in refusal(tmp_path, QUEUE + "[[queue]]\n")
    assert '[[subscription]] "t1/s1": key "bindingKey"' in refusal(tmp_path, SUB + 'bindingKey = "a.b"\n')


def test_keys_are_found_past_multi_line_values(tmp_path):
    text = textwrap.dedent('''\
        [[subscription]]
        topic = "t1"
        name = "s1"
        protocol = """http"""
        filterTags = [
          "a", # a comment with ] and "
          """x
        [[subscription]]
        notifyStrategy = "y"
        """,
        ]
        endpoint = 'ftp://x'
        ''')
    # Lines 8 and 9 are inside a string: the endpoint is still the first subscription's, on line 12.
    message = refusal(tmp_path, text)
    assert message.startswith(f'{tmp_path / "broker.toml"}:12: [[subscription]] "t1/s1": key "endpoint"'), message


@pytest.mark.parametrize("text, words", [
    ("[[queues]]\nname = 'a'\n", ":1: unknown table 'queues'; did you mean [[queue]]?"),
    ("[queue]\nname = 'a'\n", ":1: 'queue' must be an array of tables: write [[queue]]"),
    ("\n\nqueue = 'orders'\n", ":3: 'queue' must be an array of tables"),
    ("[[queue]]\nname = 'a'\nvisibilityTimeout = \n", ":3:21: Invalid value (not valid TOML)"),
    ("[[queue]]\nname = 'a\n", ":2:"),
    ("[[queue]]\nname = 'a'\n[[topic]]\nname = \"b", ":4: Unterminated string at the end of the file"),
])
def test_a_file_that_is_no_plan_is_refused(tmp_path, text, words):
    message = refusal(tmp_path, text)
    assert message.startswith(str(tmp_path / "broker.toml") + ":") and words in message, message


def test_an_unreadable_file_is_refused(tmp_path):
    with pytest.raises(ProvisionError, match="cannot read the provisioning file .*missing.toml"):
        load_plan(str(tmp_path / "missing.toml"))
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(ProvisionError, match="not UTF-8"):
        load_plan(str(tmp_path / "latin1.toml"))


# -- apply_plan, in process --------------------------------------------------------------------

def engine(strict: bool = False, max_queues: int = 1000) -> tuple[Broker, BatchSim, list]:
    broker = Broker(FakeClock(), Limits(max_queues=max_queues), strict=strict)
    records: list = []
    broker.events.set_recorder(records.append)  # what would go to the write-ahead log
    sim = BatchSim(broker)
    sim.records.set_recorder(records.append)
    return broker, sim, records


def test_applying_twice_changes_nothing_the_second_time(tmp_path):
    plan = load_plan(str(write(tmp_path, EXAMPLE)))
    broker, sim, records = engine()
    done = apply_plan(plan, broker, sim)
    assert done[:3] == ["created queue orders", "created queue batch-audit", "created topic events"]
    assert broker.get_queue("orders").settings.visibilityTimeout == 45
    assert broker.get_subscription("events", "hook").notify_strategy == "BACKOFF_RETRY"
    [env] = sim.envs.values()
    assert (env.name, env.desired, env.zone, env.region) == ("render-farm", 2, "ap-guangzhou-3", "ap-guangzhou")
    # The env's creation event went through the provisioned subscription into the provisioned queue.
    [event] = broker.get_queue("batch-audit").take(1)
    assert json.loads(base64.b64decode(event.body))["Events"][0]["EventName"] == "COMPUTE_ENV_CREATED"

    before = len(records)
    assert apply_plan(plan, broker, sim) == []
    assert len(records) == before and len(sim.envs) == 1


def test_drifted_attributes_are_set_back_and_the_rest_left_alone(tmp_path):
    broker, sim, _ = engine()
    apply_plan(load_plan(str(write(tmp_path, EXAMPLE))), broker, sim)
    broker.set_queue_attributes("orders", {"visibilityTimeout": 99, "maxMsgSize": 2048})
    broker.update_subscription("events", "to-orders", filter_tags=["other"])
    [env] = sim.envs.values()
    sim.modify_env(env.env_id, desired=3)
    broker.clock.advance(5)  # the nodes are up, so one can go
    done = apply_plan(load_plan(str(write(tmp_path, EXAMPLE))), broker, sim)
    assert done == ["set visibilityTimeout of queue orders", "updated subscription to-orders of topic events",
                    "scaled compute environment render-farm to 2 node(s)"]
    settings = broker.get_queue("orders").settings
    assert (settings.visibilityTimeout, settings.maxMsgSize) == (45, 2048)  # undeclared: kept
    assert broker.get_subscription("events", "to-orders").filter_tags == ("paid",)
    assert list(sim.envs) == [env.env_id] and env.desired == 2


@pytest.mark.parametrize("text, line, key, words", [
    (SUB, 2, "topic", 'no topic "t1": declare it in a [[topic]] table, or create it first'),
    (TOPIC + SUB, 7, "endpoint", 'no queue "q1"'),
    (ENV + '[[compute_env.Notifications]]\nTopicName = "t9"\nEventConfigs = [{ EventName = "COMPUTE_ENV_CREATED" }]\n',
     6, "Notifications.0.TopicName", 'no topic "t9"'),
    ('[[topic]]\nname = "events"\nfilterType = 2\n', 3, "filterType", "declare filterType = 1"),
    ('[[subscription]]\ntopic = "events"\nname = "to-orders"\nprotocol = "queue"\nendpoint = "batch-audit"\n', 5,
     "endpoint", 'endpoint "orders", which cannot change'),
    ('[[compute_env]]\nEnvName = "render-farm"\nZone = "ap-guangzhou-4"\nEnvData = { InstanceType = "S5.MEDIUM4" }\n',
     3, "Zone", 'declare Zone = "ap-guangzhou-3"'),
    ('[[compute_env]]\nEnvName = "render-farm"\nZone = "ap-guangzhou-3"\nEnvData = { InstanceType = "S5.MEDIUM4" }\n'
     "Notifications = []\n", 5, "Notifications", "other notifications"),
])
def test_what_conflicts_with_the_state_is_refused_before_any_change(tmp_path, text, line, key, words):
    broker, sim, records = engine()
    apply_plan(load_plan(str(write(tmp_path, EXAMPLE, "first.toml"))), broker, sim)
    before = len(records)
    plan = load_plan(str(write(tmp_path, '[[queue]]\nname = "fresh"\n' + "\n" + text)))
    with pytest.raises(ProvisionError) as info:
        apply_plan(plan, broker, sim)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'broker.toml'}:{line + 3}: ")
    assert f'key "{key}": ' in message and words in message, message
    assert len(records) == before  # not even the queue declared first was created


def test_limits_and_strict_mode_are_checked_up_front(tmp_path):
    broker, sim, _ = engine(max_queues=1)
    plan = load_plan(str(write(tmp_path, QUEUE + '[[queue]]\nname = "q2"\n')))
    with pytest.raises(ProvisionError, match=r':4: \[\[queue\]\] "q2": key "name": one queue too many.*--max-queues'):
        apply_plan(plan, broker, sim)
    broker, sim, _ = engine(strict=True)
    plan = load_plan(str(write(tmp_path, '[[topic]]\nname = "t1"\nfilterType = 2\n' + QUEUE + SUB)))
    with pytest.raises(ProvisionError, match=r'key "bindingKey": required in strict mode'):
        apply_plan(plan, broker, sim)


def test_an_engine_refusal_while_applying_names_line_and_key(tmp_path):
    broker, sim, _ = engine()
    apply_plan(load_plan(str(write(tmp_path, EXAMPLE))), broker, sim)
    # Nodes still booting cannot be removed: the simulator refuses, and says which key asked it to.
    text = EXAMPLE.replace("DesiredComputeNodeCount = 2", "DesiredComputeNodeCount = 0")
    with pytest.raises(ProvisionError) as info:
        apply_plan(load_plan(str(write(tmp_path, text))), broker, sim)
    line = text.splitlines().index("DesiredComputeNodeCount = 0") + 1
    assert str(info.value).startswith(f"{tmp_path / 'broker.toml'}:{line}: [[compute_env]] \"render-farm\": "
                                      'key "DesiredComputeNodeCount": only 0 node(s)'), info.value


# -- python -m broker serve --config ------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("no_proxy")  # the Batch SDK (requests) honours HTTP_PROXY


def envs_named(url: str, name: str) -> list[dict]:
    found = call(batch_client_for(url), "DescribeComputeEnvs", {"Filters": [{"Name": "env-name", "Values": [name]}]})
    return found["ComputeEnvSet"]


def events_in(queue, name: str, deadline: float = 10.0) -> list[str]:
    """Event names read from `queue` until `name` shows up."""
    seen: list[str] = []
    end = time.monotonic() + deadline
    while name not in seen and time.monotonic() < end:
        try:
            msg = queue.receive_message(polling_wait_seconds=1)
        except CMQServerException:
            continue
        queue.delete_message(msg.receiptHandle)
        seen.append(decode_event(msg.msgBody)["EventName"])
    return seen


def serve_args(*extra: str) -> list[str]:
    return helpers.serve_args("--batch-time-scale", "0.1", *extra)


def test_serve_creates_what_the_file_declares(tmp_path):
    config = write(tmp_path, EXAMPLE)
    with run_broker(serve_args("--config", str(config))) as b:
        account = b.account()
        orders = account.get_queue("orders")
        meta = orders.get_attributes()
        assert (meta.visibilityTimeout, meta.pollingWaitSeconds) == (45, 1)
        assert account.get_topic("events").get_attributes().filterType == 1
        sub = account.get_subscription("events", "to-orders").get_attributes()
        assert (sub.Protocal, sub.NotifyContentFormat, sub.FilterTag) == ("queue", "SIMPLIFIED", ["paid"])
        listed = {s["subscriptionName"]: s["endpoint"] for s in account.get_topic("events").list_subscription()[1]}
        assert listed == {"to-orders": "orders", "hook": "http://127.0.0.1:9/hook"}  # (the SDK's get loses it)
        assert account.get_subscription("events", "hook").get_attributes().NotifyStrategy == "BACKOFF_RETRY"

        topic = account.get_topic("events")
        topic.publish_message(TopicMessage("order 1", ["other"]))
        topic.publish_message(TopicMessage("order 2", ["paid"]))
        assert orders.receive_message(polling_wait_seconds=0).msgBody == "order 2"

        [env] = envs_named(b.url, "render-farm")
        assert (env["DesiredComputeNodeCount"], env["Placement"]["Zone"]) == (2, "ap-guangzhou-3")
        seen = events_in(account.get_queue("batch-audit"), "COMPUTE_NODE_RUNNING")
        assert seen[0] == "COMPUTE_ENV_CREATED" and "COMPUTE_NODE_RUNNING" in seen, seen


def test_broker_config_names_the_file_too(tmp_path):
    config = write(tmp_path, QUEUE)
    with run_broker(serve_args(), env={"BROKER_CONFIG": str(config)}) as b:
        assert b.account().get_queue("q1").get_attributes().visibilityTimeout == 30


def test_a_restart_on_the_same_data_directory_changes_only_what_drifted(tmp_path):
    config = write(tmp_path, EXAMPLE)
    args = serve_args("--config", str(config), "--data-dir", str(tmp_path / "data"))
    with run_broker(args) as b:
        account = b.account()
        account.get_queue("orders").send_message(Message("kept"))
        account.get_queue("orders").set_attributes(queue_meta(visibilityTimeout=99))
        [env] = envs_named(b.url, "render-farm")
    with run_broker(args) as b:
        account = b.account()
        assert account.get_queue("orders").get_attributes().visibilityTimeout == 45  # as declared again
        assert account.get_queue("orders").receive_message(polling_wait_seconds=0).msgBody == "kept"
        assert sorted(q["queueName"] for q in account.list_queue()[1]) == ["batch-audit", "orders"]
        subscriptions = account.get_topic("events").list_subscription()[1]
        assert [s["subscriptionName"] for s in subscriptions] == ["hook", "to-orders"]
        assert [e["EnvId"] for e in envs_named(b.url, "render-farm")] == [env["EnvId"]]
        # Only what drifted was set back (the SDK's SetQueueAttributes sends pollingWaitSeconds too).
        assert f"provisioned from {config}: set pollingWaitSeconds, visibilityTimeout of queue orders\n" in b.stderr()

    # A file at odds with the directory's state fails the start, and leaves the directory usable.
    conflict = write(tmp_path, EXAMPLE.replace("filterType = 1", "filterType = 2"), "conflict.toml")
    failed = serve_fails("--config", str(conflict), "--data-dir", str(tmp_path / "data"))
    line = EXAMPLE.splitlines().index("filterType = 1            # 1 tags, 2 routing key") + 1
    assert failed.startswith(f'error: {conflict}:{line}: [[topic]] "events": key "filterType": the topic exists with '
                             "filterType 1, which cannot change"), failed
    with run_broker(args) as b:
        meta = b.account().get_queue("orders").get_attributes()
        assert (meta.activeMsgNum, meta.inactiveMsgNum) == (0, 1)  # still in flight from the receive above


def serve_fails(*args: str) -> str:
    """Run `python -m broker serve ARGS`, which must exit 2 before it announces a port; its last word."""
    proc = subprocess.run([sys.executable, "-m", "broker", "serve", *serve_args(*args)], cwd=REPO_ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "listening" not in proc.stdout, (proc.returncode, proc.stdout, proc.stderr)
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return last


@pytest.mark.parametrize("text, where", [
    (QUEUE + "visibilityTimout = 5\n", ':3: [[queue]] "q1": key "visibilityTimout": unknown key'),
    (QUEUE + 'maxMsgHeapNum = "lots"\n', ':3: [[queue]] "q1": key "maxMsgHeapNum": must be an integer'),
    (TOPIC + "msgRetentionSeconds = 10\n", ':3: [[topic]] "t1": key "msgRetentionSeconds": must be an integer from 60'),
    (QUEUE + "[[topic\n", ":3:8: "),
    (QUEUE + "\n" + SUB, ':5: [[subscription]] "t1/s1": key "topic": no topic "t1"'),
])
def test_a_wrong_file_fails_the_start(tmp_path, text, where):
    config = write(tmp_path, text)
    failed = serve_fails("--config", str(config))
    assert failed.startswith(f"error: {config}{where}"), failed
