"""What the console's forms and buttons change: each change declared once, with its route.

Each change is a `Route`: the path it is posted to (under /console/api), its `Action` (the
name is its metric label under api "console"; every change writes), and `args`, which turns
the submitted form and the path's values into the handler's typed arguments (forms.py). The
handler then makes one call: to the store for queues, topics and subscriptions, to the Batch
simulator for jobs and environments, the same calls the CMQ and Batch APIs make, so the console
validates exactly as the APIs do and cannot create what they would refuse.

A handler returns the reply's members: `message` to show, and optionally `goto` (a console
page to open) or data to render. Checking the session and CSRF token, refusing changes while the
disk is backlogged, waiting for durability, stats and errors are the console protocol's and the
pipeline's (protocol.py, broker/pipeline.py).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

from ..batchsim import BatchSim
from ..batchsim.validate import MAX_NODES
from ..engine.limits import MAX_BATCH, MAX_DELAY
from ..engine.settings import QUEUE_SETTINGS, TOPIC_SETTINGS
from ..engine.topic import FILTER_TAGS
from ..pipeline import Action, ActionTable
from ..store import Store
from . import views
from .forms import Form, env_request, job_request

Path = Mapping[str, str]  # the route's {name} values


class Backend(NamedTuple):
    """What the handlers change: every handler's first argument."""

    store: Store
    sim: BatchSim
    region: str  # where the console's Batch jobs and environments are made


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # under /console/api
    action: Action
    args: Callable[[Form, Path], tuple]  # the handler's arguments after the backend


def body_of(form: Form) -> str:
    """The message body as typed (not stripped), or its Base64 when the form asks for that."""
    bodies = form.all("msgBody")
    body = bodies[-1] if bodies else ""
    if form.text("base64"):
        return base64.b64encode(body.encode("utf-8", "surrogatepass")).decode("ascii")
    return body


def page_of(kind: str, name: str) -> str:
    return f"/console/{kind}/{name}"


# -- queues ---------------------------------------------------------------------------------

async def create_queue(b: Backend, name: str, settings: dict[str, int]) -> dict:
    queue = await b.store.create_queue(name, settings)
    return {"message": f"queue {queue.name} created", "goto": page_of("queues", queue.name)}


async def delete_queue(b: Backend, name: str) -> dict:
    await b.store.delete_queue(name)
    return {"message": f"queue {name} deleted", "goto": "/console/"}


async def send_message(b: Backend, queue: str, body: str, delay: int) -> dict:
    [msg_id] = await b.store.send(queue, [body], delay)
    return {"message": f"sent message {msg_id}"}


async def receive_messages(b: Backend, queue: str, count: int) -> dict:
    got, visible_at = await b.store.receive(queue, count, wait=0)  # a person clicked: never a long poll
    text = f"received {len(got)} message(s)" if got else "no message is visible right now"
    return {"message": text, "messages": [views.received_message(m, visible_at) for m in got]}


async def delete_message(b: Backend, queue: str, handle: str) -> dict:
    await b.store.delete(queue, handle)
    return {"message": "message deleted"}


async def purge_queue(b: Backend, queue: str) -> dict:
    return {"message": f"{await b.store.purge_queue(queue)} message(s) removed"}


# -- topics and subscriptions ----------------------------------------------------------------

async def create_topic(b: Backend, name: str, filter_type: int, settings: dict[str, int]) -> dict:
    topic = await b.store.create_topic(name, filter_type, settings)
    return {"message": f"topic {topic.name} created", "goto": page_of("topics", topic.name)}


async def delete_topic(b: Backend, name: str) -> dict:
    await b.store.delete_topic(name)
    return {"message": f"topic {name} deleted", "goto": "/console/"}


async def publish(b: Backend, topic: str, body: str, tags: list[str], routing_key: str) -> dict:
    [msg_id] = await b.store.publish(topic, [body], tags, routing_key)
    return {"message": f"published message {msg_id}"}


async def subscribe(b: Backend, topic: str, name: str, protocol: str, endpoint: str, options: dict[str, Any]) -> dict:
    sub = await b.store.subscribe(topic, name, protocol, endpoint, **options)
    return {"message": f"subscription {sub.name} created"}


async def unsubscribe(b: Backend, topic: str, name: str) -> dict:
    await b.store.unsubscribe(topic, name)
    return {"message": f"subscription {name} deleted"}


def _subscription_options(form: Form) -> dict[str, Any]:
    """Empty fields are left out: the store's defaults apply."""
    return {
        "strategy": form.text("notifyStrategy") or None,
        "content_format": form.text("notifyContentFormat") or None,
        "filter_tags": form.listed("filterTag") or None,
        "binding_keys": form.listed("bindingKey") or None,
    }


# -- Batch ----------------------------------------------------------------------------------

async def submit_job(b: Backend, placement: dict, job: Any) -> dict:
    created = b.sim.submit_job(placement, job, b.region)
    return {"message": f"job {created.job_id} submitted", "goto": page_of("jobs", created.job_id)}


async def terminate_job(b: Backend, job_id: str) -> dict:
    b.sim.terminate_job(job_id)
    return {"message": "termination under way"}


async def retry_job(b: Backend, job_id: str) -> dict:
    b.sim.retry_jobs([job_id])
    return {"message": "failed instances resubmitted"}


async def delete_job(b: Backend, job_id: str) -> dict:
    b.sim.delete_job(job_id)
    return {"message": f"job {job_id} deleted", "goto": "/console/"}


async def create_env(b: Backend, spec: dict, placement: dict) -> dict:
    env = b.sim.create_env(spec, placement, b.region)
    return {"message": f"environment {env.env_id} created", "goto": page_of("envs", env.env_id)}


async def resize_env(b: Backend, env_id: str, desired: int) -> dict:
    b.sim.modify_env(env_id, desired=desired)
    return {"message": f"resizing to {desired} node(s)"}


async def delete_env(b: Backend, env_id: str) -> dict:
    b.sim.delete_env(env_id)
    return {"message": f"environment {env_id} is being deleted", "goto": "/console/"}


async def terminate_node(b: Backend, env_id: str, node_id: str) -> dict:
    b.sim.terminate_nodes(env_id, [node_id])
    return {"message": f"node {node_id} is being terminated"}


# -- the declarations -------------------------------------------------------------------------

ROUTES: tuple[Route, ...] = (
    Route("/queues", Action("CreateQueue", create_queue),
          lambda f, p: (f.required("queueName"), f.integers(QUEUE_SETTINGS))),
    Route("/queues/{name}/delete", Action("DeleteQueue", delete_queue), lambda f, p: (p["name"],)),
    Route("/queues/{name}/send", Action("SendMessage", send_message),
          lambda f, p: (p["name"], body_of(f), f.integer("delaySeconds", 0, 0, MAX_DELAY))),
    Route("/queues/{name}/receive", Action("ReceiveMessage", receive_messages),
          lambda f, p: (p["name"], f.integer("numOfMsg", 1, 1, MAX_BATCH))),
    Route("/queues/{name}/delete-message", Action("DeleteMessage", delete_message),
          lambda f, p: (p["name"], f.required("receiptHandle"))),
    Route("/queues/{name}/purge", Action("PurgeQueue", purge_queue), lambda f, p: (p["name"],)),
    Route("/topics", Action("CreateTopic", create_topic),
          lambda f, p: (f.required("topicName"), f.integer("filterType", FILTER_TAGS), f.integers(TOPIC_SETTINGS))),
    Route("/topics/{name}/delete", Action("DeleteTopic", delete_topic), lambda f, p: (p["name"],)),
    Route("/topics/{name}/publish", Action("PublishMessage", publish),
          lambda f, p: (p["name"], body_of(f), f.listed("msgTag"), f.text("routingKey"))),
    Route("/topics/{name}/subscribe", Action("Subscribe", subscribe),
          lambda f, p: (p["name"], f.required("subscriptionName"), f.required("protocol"), f.required("endpoint"),
                        _subscription_options(f))),
    Route("/topics/{name}/subscriptions/{sub}/delete", Action("Unsubscribe", unsubscribe),
          lambda f, p: (p["name"], p["sub"])),
    Route("/jobs", Action("SubmitJob", submit_job), lambda f, p: job_request(f)),
    Route("/jobs/{id}/terminate", Action("TerminateJob", terminate_job), lambda f, p: (p["id"],)),
    Route("/jobs/{id}/retry", Action("RetryJob", retry_job), lambda f, p: (p["id"],)),
    Route("/jobs/{id}/delete", Action("DeleteJob", delete_job), lambda f, p: (p["id"],)),
    Route("/envs", Action("CreateComputeEnv", create_env), lambda f, p: env_request(f)),
    Route("/envs/{id}/modify", Action("ModifyComputeEnv", resize_env),
          lambda f, p: (p["id"], f.integer("desired", None, 0, MAX_NODES))),
    Route("/envs/{id}/delete", Action("DeleteComputeEnv", delete_env), lambda f, p: (p["id"],)),
    Route("/envs/{id}/nodes/{node}/terminate", Action("TerminateComputeNode", terminate_node),
          lambda f, p: (p["id"], p["node"])),
)

ACTIONS = ActionTable("console", [route.action for route in ROUTES])  # refuses a name declared twice
