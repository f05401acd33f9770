"""What the console's forms and buttons do: one function per change, each parse → call → reply.

CMQ changes go through the API's own handlers (protocol/cmq ACTIONS, given `Params` built from
the form), and Batch changes through the same simulator methods the API 3.0 handlers call, so
the console validates exactly as the API does and cannot create what the API would refuse.
Only receive uses the engine directly (`Queue.take`, what ReceiveMessage does without a long
poll), because the console shows the messages it receives decoded.

Each function takes the console, the submitted form and the path's values, and returns a JSON
reply: `message` to show, and optionally `goto` (a console page to open) or data to render.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Awaitable, Callable

from ..errors import InvalidParameter
from ..protocol.cmq.app import ACTIONS as CMQ_ACTIONS
from ..protocol.cmq.params import MAX_BATCH, Params
from ..engine.settings import QUEUE_SETTINGS, TOPIC_SETTINGS
from . import views
from .forms import Form, env_request, job_request

if TYPE_CHECKING:
    from .app import Console

Action = Callable[["Console", Form, dict[str, str]], Awaitable[dict]]


async def cmq(console: "Console", action: str, pairs: list[tuple[str, str]]) -> dict:
    """Call CMQ action `action` as the API would, with these parameters (empty ones left out)."""
    reply = await CMQ_ACTIONS[action](console.broker, Params([(k, v) for k, v in pairs if v != ""]))
    if isinstance(reply, str):  # hot-path handlers answer JSON text: members, each followed by a comma
        reply = json.loads("{" + reply.rstrip(",") + "}")
    return reply


def listed(name: str, text: str) -> list[tuple[str, str]]:
    """A comma-separated form field as CMQ's `name.1`, `name.2`, ... parameters."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [(f"{name}.{i}", item) for i, item in enumerate(items, 1)]


def body_of(form: Form) -> str:
    """The message body as typed, or its Base64 when the form asks for that."""
    body = form.all("msgBody")[-1] if form.all("msgBody") else ""
    if form.text("base64"):
        return base64.b64encode(body.encode("utf-8", "surrogatepass")).decode("ascii")
    return body


def page_of(kind: str, name: str) -> str:
    return f"/console/{kind}/{name}"


# -- queues ---------------------------------------------------------------------------------

async def create_queue(c: "Console", form: Form, args: dict) -> dict:
    name = form.text("queueName")
    await cmq(c, "createqueue", [("queueName", name), *((k, form.text(k)) for k in QUEUE_SETTINGS)])
    return {"message": f"queue {name} created", "goto": page_of("queues", name)}


async def delete_queue(c: "Console", form: Form, args: dict) -> dict:
    await cmq(c, "deletequeue", [("queueName", args["name"])])
    return {"message": f"queue {args['name']} deleted", "goto": "/console/"}


async def send_message(c: "Console", form: Form, args: dict) -> dict:
    reply = await cmq(c, "sendmessage", [("queueName", args["name"]), ("msgBody", body_of(form)),
                                         ("delaySeconds", form.text("delaySeconds"))])
    return {"message": f"sent message {reply['msgId']}"}


async def receive_messages(c: "Console", form: Form, args: dict) -> dict:
    queue = c.broker.get_queue(args["name"])
    count = Params([("numOfMsg", form.text("numOfMsg") or "1")]).int("numOfMsg", lo=1, hi=MAX_BATCH)
    got = queue.take(count)
    offset = views.wall_minus_mono(c.broker)
    messages = [{**views.message_detail(m, offset), "receiptHandle": m.receipt_handle} for m in got]
    text = f"received {len(got)} message(s)" if got else "no message is visible right now"
    return {"message": text, "messages": messages}


async def delete_message(c: "Console", form: Form, args: dict) -> dict:
    await cmq(c, "deletemessage", [("queueName", args["name"]), ("receiptHandle", form.text("receiptHandle"))])
    return {"message": "message deleted"}


async def purge_queue(c: "Console", form: Form, args: dict) -> dict:
    reply = await cmq(c, "purgequeue", [("queueName", args["name"])])
    return {"message": f"{reply['purged']} message(s) removed"}


# -- topics and subscriptions ----------------------------------------------------------------

async def create_topic(c: "Console", form: Form, args: dict) -> dict:
    name = form.text("topicName")
    await cmq(c, "createtopic", [("topicName", name), ("filterType", form.text("filterType")),
                                 *((k, form.text(k)) for k in TOPIC_SETTINGS)])
    return {"message": f"topic {name} created", "goto": page_of("topics", name)}


async def delete_topic(c: "Console", form: Form, args: dict) -> dict:
    await cmq(c, "deletetopic", [("topicName", args["name"])])
    return {"message": f"topic {args['name']} deleted", "goto": "/console/"}


async def publish(c: "Console", form: Form, args: dict) -> dict:
    reply = await cmq(c, "publishmessage", [("topicName", args["name"]), ("msgBody", body_of(form)),
                                            *listed("msgTag", form.text("msgTag")),
                                            ("routingKey", form.text("routingKey"))])
    return {"message": f"published message {reply['msgId']}"}


async def subscribe(c: "Console", form: Form, args: dict) -> dict:
    name = form.text("subscriptionName")
    await cmq(c, "subscribe", [
        ("topicName", args["name"]), ("subscriptionName", name), ("protocol", form.text("protocol")),
        ("endpoint", form.text("endpoint")), ("notifyStrategy", form.text("notifyStrategy")),
        ("notifyContentFormat", form.text("notifyContentFormat")),
        *listed("filterTag", form.text("filterTag")), *listed("bindingKey", form.text("bindingKey")),
    ])
    return {"message": f"subscription {name} created"}


async def unsubscribe(c: "Console", form: Form, args: dict) -> dict:
    await cmq(c, "unsubscribe", [("topicName", args["name"]), ("subscriptionName", args["sub"])])
    return {"message": f"subscription {args['sub']} deleted"}


# -- Batch ----------------------------------------------------------------------------------

async def submit_job(c: "Console", form: Form, args: dict) -> dict:
    placement, job = job_request(form)
    created = c.sim.submit_job(placement, job, c.region)
    return {"message": f"job {created.job_id} submitted", "goto": page_of("jobs", created.job_id)}


async def terminate_job(c: "Console", form: Form, args: dict) -> dict:
    c.sim.terminate_job(args["id"])
    return {"message": "termination under way"}


async def retry_job(c: "Console", form: Form, args: dict) -> dict:
    c.sim.retry_jobs([args["id"]])
    return {"message": "failed instances resubmitted"}


async def delete_job(c: "Console", form: Form, args: dict) -> dict:
    c.sim.delete_job(args["id"])
    return {"message": f"job {args['id']} deleted", "goto": "/console/"}


async def create_env(c: "Console", form: Form, args: dict) -> dict:
    spec, placement = env_request(form)
    env = c.sim.create_env(spec, placement, c.region)
    return {"message": f"environment {env.env_id} created", "goto": page_of("envs", env.env_id)}


async def resize_env(c: "Console", form: Form, args: dict) -> dict:
    raw = form.text("desired")
    if not raw.isdigit():
        raise InvalidParameter("desired", f"desired nodes must be a whole number from 0, got {raw[:40]!r}")
    c.sim.modify_env(args["id"], desired=int(raw))
    return {"message": f"resizing to {int(raw)} node(s)"}


async def delete_env(c: "Console", form: Form, args: dict) -> dict:
    c.sim.delete_env(args["id"])
    return {"message": f"environment {args['id']} is being deleted", "goto": "/console/"}


async def terminate_node(c: "Console", form: Form, args: dict) -> dict:
    c.sim.terminate_nodes(args["id"], [args["node"]])
    return {"message": f"node {args['node']} is being terminated"}


# path (under /console/api) → (action, error vocabulary: "cmq" codes or Batch "api3" codes)
ROUTES: dict[str, tuple[Action, str]] = {
    "/queues": (create_queue, "cmq"),
    "/queues/{name}/delete": (delete_queue, "cmq"),
    "/queues/{name}/send": (send_message, "cmq"),
    "/queues/{name}/receive": (receive_messages, "cmq"),
    "/queues/{name}/delete-message": (delete_message, "cmq"),
    "/queues/{name}/purge": (purge_queue, "cmq"),
    "/topics": (create_topic, "cmq"),
    "/topics/{name}/delete": (delete_topic, "cmq"),
    "/topics/{name}/publish": (publish, "cmq"),
    "/topics/{name}/subscribe": (subscribe, "cmq"),
    "/topics/{name}/subscriptions/{sub}/delete": (unsubscribe, "cmq"),
    "/jobs": (submit_job, "api3"),
    "/jobs/{id}/terminate": (terminate_job, "api3"),
    "/jobs/{id}/retry": (retry_job, "api3"),
    "/jobs/{id}/delete": (delete_job, "api3"),
    "/envs": (create_env, "api3"),
    "/envs/{id}/modify": (resize_env, "api3"),
    "/envs/{id}/delete": (delete_env, "api3"),
    "/envs/{id}/nodes/{node}/terminate": (terminate_node, "api3"),
}
