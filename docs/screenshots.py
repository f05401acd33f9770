"""Screenshots of the web console for the README: docs/console-*.png.

Starts a broker (`python -m broker serve --port 0`), gives it some demo state through its two
APIs (plain HTTP, no SDK needed), and photographs the main console pages with headless
Chromium driven by Playwright (`pip install playwright`; Debian's `chromium` package, or pass
--chromium PATH).

    python docs/screenshots.py [--out docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = {"width": 1440, "height": 960}


class Broker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve", "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if not found:
            self.proc.kill()
            raise SystemExit(f"the broker did not start: {line!r}")
        self.url = found.group(1)

    def cmq(self, action: str, **params) -> dict:
        data = urllib.parse.urlencode({"Action": action, **params}).encode()
        with urllib.request.urlopen(self.url + "/v2/index.php", data) as resp:
            reply = json.load(resp)
        if reply["code"] != 0:
            raise SystemExit(f"{action}: {reply}")
        return reply

    def batch(self, action: str, body: dict) -> dict:
        request = urllib.request.Request(self.url + "/", json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2017-03-12",
            "X-TC-Region": "ap-guangzhou"})
        with urllib.request.urlopen(request) as resp:
            reply = json.load(resp)["Response"]
        if "Error" in reply:
            raise SystemExit(f"{action}: {reply['Error']}")
        return reply

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def demo_state(b: Broker) -> tuple[str, str]:
    """Queues, topics, a compute environment and two finished jobs; returns (job id, env id)."""
    for name in ("orders", "batch-events", "audit"):
        b.cmq("CreateQueue", queueName=name)
    b.cmq("CreateTopic", topicName="batch")
    b.cmq("Subscribe", topicName="batch", subscriptionName="to-queue", protocol="queue",
          endpoint="batch-events")
    b.cmq("CreateTopic", topicName="orders-topic")
    b.cmq("Subscribe", topicName="orders-topic", subscriptionName="paid-to-audit", protocol="queue",
          endpoint="audit", **{"filterTag.1": "paid"})
    b.cmq("Subscribe", topicName="orders-topic", subscriptionName="webhook", protocol="http",
          endpoint="http://127.0.0.1:9/hook", notifyStrategy="BACKOFF_RETRY")
    order = {"order": 42, "items": [{"sku": "A-1", "qty": 2}], "paid": True}
    b.cmq("SendMessage", queueName="orders", msgBody=json.dumps(order))
    b.cmq("SendMessage", queueName="orders",
          msgBody=base64.b64encode(json.dumps({"order": 43, "note": "Base64 of JSON"}).encode()).decode())
    b.cmq("SendMessage", queueName="orders", msgBody="plain text <b>never</b> rendered as HTML")
    b.cmq("SendMessage", queueName="orders", msgBody="later", delaySeconds=600)
    b.cmq("PublishMessage", topicName="orders-topic", msgBody="order 42 paid", **{"msgTag.1": "paid"})
    env = b.batch("CreateComputeEnv", {
        "Placement": {"Zone": "ap-guangzhou-3"},
        "ComputeEnv": {"EnvName": "workers", "EnvType": "MANAGED", "DesiredComputeNodeCount": 3,
                       "EnvData": {"InstanceType": "S5.MEDIUM4"},
                       "Notifications": [{"TopicName": "batch", "EventConfigs": [
                           {"EventName": "COMPUTE_ENV_CREATED"}, {"EventName": "COMPUTE_NODE_RUNNING"}]}]},
    })["EnvId"]
    time.sleep(1.5)  # the nodes boot
    every_event = [{"EventName": e} for e in ("JOB_RUNNING", "JOB_SUCCEED", "JOB_FAILED", "TASK_SUCCEED",
                                              "TASK_FAILED", "TASK_INSTANCE_SUCCEED", "TASK_INSTANCE_FAILED")]
    job = b.batch("SubmitJob", {
        "Placement": {"Zone": "ap-guangzhou-3"},
        "Job": {
            "JobName": "nightly-report",
            "Tasks": [
                {"TaskName": "extract", "TaskInstanceNum": 3, "EnvId": env,
                 "Application": {"DeliveryForm": "LOCAL", "Command": "python extract.py"},
                 "EnvVars": [{"Name": "BATCH_SIM_DURATION", "Value": "0.5"}]},
                {"TaskName": "publish", "EnvId": env, "MaxRetryCount": 1,
                 "Application": {"DeliveryForm": "LOCAL", "Command": "python publish.py"},
                 "EnvVars": [{"Name": "BATCH_SIM_FAIL_ATTEMPTS", "Value": "1"}]},
            ],
            "Dependences": [{"StartTask": "extract", "EndTask": "publish"}],
            "Notifications": [{"TopicName": "batch", "EventConfigs": every_event}],
        },
    })["JobId"]
    b.batch("SubmitJob", {
        "Placement": {"Zone": "ap-guangzhou-3"},
        "Job": {"JobName": "broken", "Tasks": [{
            "TaskName": "main", "Application": {"DeliveryForm": "LOCAL", "Command": "false"},
            "ComputeEnv": {"EnvType": "MANAGED", "EnvData": {"InstanceType": "S5.SMALL2"}},
            "EnvVars": [{"Name": "BATCH_SIM_EXIT_CODE", "Value": "3"}]}],
            "Notifications": [{"TopicName": "batch", "EventConfigs": [{"EventName": "JOB_FAILED"}]}]},
    })
    deadline = time.monotonic() + 30
    while b.batch("DescribeJob", {"JobId": job})["JobState"] not in ("SUCCEED", "FAILED"):
        if time.monotonic() > deadline:
            raise SystemExit("the demo job did not finish")
        time.sleep(0.2)
    time.sleep(1)
    return job, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    broker = Broker()
    try:
        job, env = demo_state(broker)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport=SIZE)

            def shot(path: str, name: str, ready: str, then=None) -> None:
                page.goto(broker.url + path)
                page.wait_for_selector(ready)
                if then:
                    then()
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / f"console-{name}.png"), full_page=True)
                print("wrote", out / f"console-{name}.png")

            def open_job_event() -> None:
                page.locator("#messages tbody tr", has_text="JOB_SUCCEED").locator("button.view").click()
                page.wait_for_selector("#detail table.decoded-events")
                page.locator("#detail").scroll_into_view_if_needed()

            shot("/console/", "overview", "#jobs tbody tr:has-text('nightly-report')")
            shot("/console/queues/batch-events", "queue-event", "#messages tbody tr:has-text('JOB_SUCCEED')",
                 open_job_event)
            shot("/console/topics/orders-topic", "topic", "#subscriptions tbody tr:has-text('webhook')")
            shot(f"/console/jobs/{job}", "job", "#timeline tbody tr:has-text('JOB_SUCCEED')")
            shot(f"/console/envs/{env}", "env", "#nodes tbody tr:has-text('RUNNING')")
            browser.close()
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
