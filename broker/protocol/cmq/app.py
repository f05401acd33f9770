"""The CMQ API 2.0 protocol: its declared actions, and decode / render for the request pipeline.

Every reply is HTTP 200 with a JSON body holding `code`, `message` and `requestId`, errors
included: the official SDK raises a network error on any other status without reading the body.
`ACTIONS` is the whole API surface, one declaration per action (matched case-insensitively);
each handler is parse → one store call → reply members. The steps around it (durability,
stats, access log) are the pipeline's (broker/pipeline.py).
"""

from __future__ import annotations

import json

from aiohttp import web

from ...errors import BrokerError, MalformedRequest, MethodNotAllowed, UnknownAction
from ...pipeline import Action, ActionTable, Call, Pipeline
from ...store import Store
from . import messages, queues, subscriptions, topics
from .errors import error_reply
from .params import Params
from .signature import verify

ACTIONS = ActionTable("cmq", [
    Action("CreateQueue", queues.create_queue),
    Action("ListQueue", queues.list_queue, writes=False),
    Action("GetQueueAttributes", queues.get_queue_attributes, writes=False),
    Action("SetQueueAttributes", queues.set_queue_attributes),
    Action("DeleteQueue", queues.delete_queue),
    Action("RewindQueue", queues.rewind_queue),
    Action("SendMessage", messages.send_message),
    Action("BatchSendMessage", messages.batch_send_message),
    Action("ReceiveMessage", messages.receive_message),
    Action("BatchReceiveMessage", messages.batch_receive_message),
    Action("DeleteMessage", messages.delete_message),
    Action("BatchDeleteMessage", messages.batch_delete_message),
    # cmq-broker extensions, for people and tools looking at a queue (the cloud has neither):
    Action("PeekMessage", messages.peek_message, writes=False),
    Action("PurgeQueue", queues.purge_queue),
    Action("CreateTopic", topics.create_topic),
    Action("ListTopic", topics.list_topic, writes=False),
    Action("GetTopicAttributes", topics.get_topic_attributes, writes=False),
    Action("SetTopicAttributes", topics.set_topic_attributes),
    Action("DeleteTopic", topics.delete_topic),
    Action("PublishMessage", topics.publish_message),
    Action("BatchPublishMessage", topics.batch_publish_message),
    Action("Subscribe", subscriptions.subscribe),
    Action("Unsubscribe", subscriptions.unsubscribe),
    Action("ListSubscriptionByTopic", subscriptions.list_subscriptions, writes=False),
    Action("GetSubscriptionAttributes", subscriptions.get_subscription_attributes, writes=False),
    Action("SetSubscriptionAttributes", subscriptions.set_subscription_attributes),
    Action("ClearSubscriptionFilterTags", subscriptions.clear_filter_tags),
], case_sensitive=False)

_find = ACTIONS.finder()  # lower-case name → Action (a dict's get: the hot path)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class CmqProtocol:
    """/v2/index.php, bound to one store and its credentials."""

    api = "cmq"

    def __init__(self, store: Store, pipeline: Pipeline, clock, secret_id: str | None, secret_key: str | None,
                 max_body: int, max_skew: float = 300):
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.max_skew = max_skew  # seconds a signed Timestamp may be off: older requests are replays
        self.max_body = max_body
        self.secrets = (secret_id, secret_key) if secret_id and secret_key else None

        self.handle = pipeline.handler(self)  # the aiohttp handler for /v2/index.php

    async def decode(self, call: Call) -> tuple[Action, tuple]:
        request = call.http
        if request.method == "POST":
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise MalformedRequest(f"request body is larger than the limit of {self.max_body} bytes") from None
            except ConnectionResetError:  # the client left, or was cut off for sending too slowly
                raise MalformedRequest("the connection closed before the request body arrived") from None
            if not raw and request.rel_url.raw_query_string:
                params = Params.parse(request.rel_url.raw_query_string)
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MalformedRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None
                params = Params.parse(text)
        elif request.method == "GET":
            params = Params.parse(request.rel_url.raw_query_string)
        else:
            raise MethodNotAllowed(f"method {request.method} is not supported, use GET or POST")
        if self.secrets:
            verify(request.method, request.host, request.path, params.pairs, *self.secrets,
                   now=self.clock.time(), max_skew=self.max_skew)
        name = params.str("Action", "")
        action = _find(name.lower())
        if action is None:
            raise UnknownAction(name)
        return action, (self.store, params)

    def render(self, reply: dict | str, call: Call) -> tuple[web.Response, int]:
        # A handler returns its reply's members as a dict, or, on the hot paths, as JSON text:
        # members each followed by a comma ("" for none), to which code, message and requestId go.
        if type(reply) is str:
            text = f'{{{reply}"code":0,"message":"","requestId":"{call.id}"}}'
        else:
            reply["code"] = 0
            reply["message"] = ""
            reply["requestId"] = call.id
            text = _dumps(reply)
        return web.Response(body=text.encode(), content_type="application/json"), 0

    def render_error(self, error: BrokerError, call: Call) -> tuple[web.Response, int]:
        reply = error_reply(error, call.id)
        return web.Response(body=_dumps(reply).encode(), content_type="application/json"), reply["code"]
