"""The web console in a real browser: headless Chromium driven by Playwright.

The broker runs as a user runs it (`python -m broker serve`); the browser clicks through the
console; the official CMQ SDK sends a message from outside, as an application would. Needs
Debian's `chromium` (or CONSOLE_CHROMIUM=/path/to/chrome) and `pip install playwright`; never
`playwright install`. Without them the tests fail, saying what is missing, unless
CONSOLE_BROWSER_TESTS=0 asks to skip them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from cmq.queue import Message

from helpers import run_broker

SKIP = os.environ.get("CONSOLE_BROWSER_TESTS", "1").lower() in ("0", "false", "no", "off")
pytestmark = pytest.mark.skipif(SKIP, reason="CONSOLE_BROWSER_TESTS=0")
EVIL = "<script>window.__xss=1</script>"


def _chromium() -> str:
    wanted = os.environ.get("CONSOLE_CHROMIUM")
    for candidate in ([wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium") or ""]):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Chromium for the console browser tests: install Debian's `chromium` package "
                "(apt-get install -y chromium; .ci/run does it when run as root), set CONSOLE_CHROMIUM to a "
                "Chrome or Chromium binary, or set CONSOLE_BROWSER_TESTS=0 to skip these tests", pytrace=False)


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[test]' (or pip install playwright); "
                    "CONSOLE_BROWSER_TESTS=0 skips these tests", pytrace=False)
    executable = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the console confirms deletions
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the console: {errors}"


def _submit(page, form: str) -> None:
    page.locator(f"{form} button[type=submit]").click()


def test_queue_message_and_batch_job_in_the_browser(page):
    with run_broker(["--host", "127.0.0.1", "--port", "0", "--batch-time-scale", "0.05"]) as broker:
        url = broker.url
        page.goto(url + "/console")
        assert page.title() == "Overview · cmq-broker console"

        # A queue, created through the overview's form.
        page.locator("summary", has_text="Create a queue").click()
        page.fill("input[name=queueName]", "inbox")
        page.locator("form[action='/console/api/queues'] button[type=submit]").click()
        page.wait_for_url(url + "/console/queues/inbox")

        # A message from the console's form, then one from outside: both show up by themselves.
        page.fill("textarea[name=msgBody]", "hello from the console")
        _submit(page, "form[action$='/send']")
        page.locator("#messages tbody tr", has_text="hello from the console").wait_for()
        order = base64.b64encode(json.dumps({"order": 42, "items": ["tea"]}).encode()).decode()
        broker.account().get_queue("inbox").send_message(Message(order))
        row = page.locator("#messages tbody tr", has=page.locator(".badge.s-base64-json"))
        row.wait_for()
        assert row.locator("td.preview").text_content() == '{"order": 42, "items": ["tea"]}'  # decoded
        row.locator("button.view").click()
        decoded = page.locator("#detail pre.json")
        decoded.wait_for()
        assert json.loads(decoded.text_content()) == {"order": 42, "items": ["tea"]}
        assert page.locator("#detail h3", has_text="Decoded JSON (from Base64)").count() == 1

        # A hostile body is shown as text, in the list and in the message view, and never runs.
        page.fill("textarea[name=msgBody]", EVIL)
        _submit(page, "form[action$='/send']")
        evil_row = page.locator("#messages tbody tr", has_text=EVIL)
        evil_row.wait_for()
        assert evil_row.locator("td.preview").text_content() == EVIL
        evil_row.locator("button.view").click()
        page.locator("#detail pre.raw-body", has_text=EVIL).wait_for(state="attached")
        assert page.locator("#detail pre.raw-body").text_content() == EVIL
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.evaluate("document.scripts.length") == 1  # only the console's own

        # Receive the oldest and delete it by its receipt handle.
        _submit(page, "#receive-form")
        received = page.locator("#received tbody tr", has_text="hello from the console")
        received.wait_for()
        received.locator("button", has_text="Delete").click()
        received.locator("output", has_text="message deleted").wait_for()
        page.locator("#messages tbody tr", has_text="hello from the console").wait_for(state="detached")

        # A topic whose events land in the queue.
        page.goto(url + "/console/")
        page.locator("summary", has_text="Create a topic").click()
        page.fill("input[name=topicName]", "jobs")
        page.locator("form[action='/console/api/topics'] button[type=submit]").click()
        page.wait_for_url(url + "/console/topics/jobs")
        page.locator("summary", has_text="Subscribe").click()
        page.fill("input[name=subscriptionName]", "to-inbox")
        page.fill("input[name=endpoint]", "inbox")
        _submit(page, "form[action$='/subscribe']")
        page.locator("#subscriptions tbody tr", has_text="to-inbox").wait_for()

        # A Batch job with notifications to that topic, from the console's form.
        page.goto(url + "/console/batch/new")
        page.locator("#job-form select.topics option[value=jobs]").wait_for(state="attached")
        page.fill("#job-form input[name=job_name]", "browser-job")
        page.select_option("#job-form select[name=topic]", "jobs")
        for event in ("JOB_RUNNING", "TASK_INSTANCE_SUCCEED", "JOB_SUCCEED"):
            page.check(f"#job-form input[name=event][value={event}]")
        _submit(page, "#job-form")
        page.wait_for_url(url + "/console/jobs/job-*")
        job_id = page.url.rsplit("/", 1)[1]
        page.locator("#timeline tbody tr", has_text="JOB_SUCCEED").wait_for()
        assert page.locator("#attributes .badge").first.text_content() == "SUCCEED"
        succeed = page.locator("#timeline tbody tr", has_text="JOB_SUCCEED")
        assert "jobs" in succeed.text_content() and job_id in succeed.text_content()
        assert page.locator("#timeline tbody tr", has_text="TASK_INSTANCE_RUNNING").count() == 1  # not notified

        # ... and its events, decoded, in the queue.
        page.goto(url + "/console/queues/inbox")
        event_row = page.locator("#messages tbody tr", has_text="JOB_SUCCEED")
        event_row.wait_for()
        event_row.locator("button.view").click()
        table = page.locator("#detail table.decoded-events")
        table.wait_for()
        assert "JOB_SUCCEED" in table.text_content() and job_id in table.text_content()
        assert page.locator("#detail pre.json", has_text='"JobState": "SUCCEED"').count() == 1

        # The overview follows by itself.
        page.goto(url + "/console/")
        page.locator("#jobs tbody tr", has_text=job_id).locator(".badge.s-succeed").wait_for()


def test_login_and_csrf_in_the_browser(page):
    args = ["--host", "127.0.0.1", "--port", "0", "--secret-id", "AKIDbrowser", "--secret-key", "k3y"]
    with run_broker(args) as broker:
        url = broker.url
        page.goto(url + "/console/queues/none")
        page.wait_for_url(url + "/console/login?next=*")
        page.fill("input[name=secret_id]", "AKIDbrowser")
        page.fill("input[name=secret_key]", "wrong")
        page.locator("form.login button").click()
        assert page.locator("#login-error").text_content() == "Wrong SecretId or SecretKey."
        assert page.request.get(url + "/console/api/overview").status == 401

        page.fill("input[name=secret_id]", "AKIDbrowser")
        page.fill("input[name=secret_key]", "k3y")
        page.locator("form.login button").click()
        page.wait_for_url(url + "/console/queues/none")  # where it was going: a queue that is not there
        assert page.locator("h1").text_content() == "Not found"
        page.goto(url + "/console/")
        page.locator("#queues tbody tr.empty").wait_for()

        # The session alone is not enough to change anything: a post without the token is refused.
        refused = page.request.post(url + "/console/api/queues", form={"queueName": "forged"})
        assert refused.status == 403 and refused.json()["error"]["code"] == "BadCsrfToken"
        token = page.evaluate("document.body.dataset.csrf")
        assert page.request.post(url + "/console/api/queues", form={"queueName": "real", "csrf": token}).ok
        page.locator("#queues tbody tr", has_text="real").wait_for()
        assert page.locator("#queues tbody tr", has_text="forged").count() == 0

        page.locator("form.logout button").click()
        page.wait_for_url(url + "/console/login")
        assert page.request.get(url + "/console/api/overview").status == 401
