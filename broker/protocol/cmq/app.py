"""The CMQ API 2.0 endpoint: decode → authenticate → dispatch → render.

Every reply is HTTP 200 with a JSON body holding `code`, `message` and `requestId`, errors
included: the official SDK raises a network error on any other status without reading the body.
The action table below is the whole API surface; each handler is parse → engine → dict.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from bisect import bisect_right
from time import perf_counter
from typing import Awaitable, Callable

from aiohttp import web

from ...engine import Broker
from ...errors import BrokerError, MalformedRequest, MethodNotAllowed, StorageUnavailable, UnknownAction
from ...logs import ACCESS
from ...metrics import LATENCY_BOUNDS, RequestStats, cmq_action_label
from . import messages, queues, subscriptions, topics
from .errors import ReplyError, error_reply
from .params import Params, decode_pairs
from .signature import verify

log = logging.getLogger("broker.cmq")

# A handler returns its reply's members as a dict, or, on the hot paths, as JSON text: members
# each followed by a comma ("" for none), to which code, message and requestId are appended.
Handler = Callable[[Broker, Params], Awaitable[dict | str]]

# Action names are matched case-insensitively (the key is lower case).
ACTIONS: dict[str, Handler] = {
    "createqueue": queues.create_queue,
    "listqueue": queues.list_queue,
    "getqueueattributes": queues.get_queue_attributes,
    "setqueueattributes": queues.set_queue_attributes,
    "deletequeue": queues.delete_queue,
    "rewindqueue": queues.rewind_queue,
    "sendmessage": messages.send_message,
    "batchsendmessage": messages.batch_send_message,
    "receivemessage": messages.receive_message,
    "batchreceivemessage": messages.batch_receive_message,
    "deletemessage": messages.delete_message,
    "batchdeletemessage": messages.batch_delete_message,
    # cmq-broker extensions, for people and tools looking at a queue (the cloud has neither):
    "peekmessage": messages.peek_message,
    "purgequeue": queues.purge_queue,
    "createtopic": topics.create_topic,
    "listtopic": topics.list_topic,
    "gettopicattributes": topics.get_topic_attributes,
    "settopicattributes": topics.set_topic_attributes,
    "deletetopic": topics.delete_topic,
    "publishmessage": topics.publish_message,
    "batchpublishmessage": topics.batch_publish_message,
    "subscribe": subscriptions.subscribe,
    "unsubscribe": subscriptions.unsubscribe,
    "listsubscriptionbytopic": subscriptions.list_subscriptions,
    "getsubscriptionattributes": subscriptions.get_subscription_attributes,
    "setsubscriptionattributes": subscriptions.set_subscription_attributes,
    "clearsubscriptionfiltertags": subscriptions.clear_filter_tags,
}

# Actions that change nothing: still served when the data directory cannot be written.
READ_ONLY = frozenset({"getqueueattributes", "listqueue", "peekmessage", "gettopicattributes", "listtopic",
                       "getsubscriptionattributes", "listsubscriptionbytopic"})

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class CmqEndpoint:
    """The aiohttp handler for /v2/index.php, bound to one broker and its credentials."""

    def __init__(self, broker: Broker, secret_id: str | None, secret_key: str | None, max_body: int,
                 durability=None, max_skew: float = 300):
        self.broker = broker
        self.max_skew = max_skew  # seconds a signed Timestamp may be off: older requests are replays
        self.max_body = max_body
        # With --data-dir: mark() / changed_since(mark) / commit(), so that a reply that
        # acknowledges a change goes out only once the change is on disk.
        self.durability = durability
        self.secrets = (secret_id, secret_key) if secret_id and secret_key else None
        # Request ids: unique per process start, cheap to make.
        self._request_ids = map(f"{os.urandom(4).hex()}-{{}}".format, itertools.count(1))
        self.stats = RequestStats()  # for /metrics, keyed by (ACTIONS key or None, code)
        self.access_log = False  # True: hand action and code to the access log

    async def handle(self, request: web.Request) -> web.Response:
        started = perf_counter()
        request_id = next(self._request_ids)
        key = None  # the action's ACTIONS key once known: metrics labels stay a closed set
        durability = self.durability
        mark = durability.mark() if durability is not None else 0
        try:
            params = Params(await self._pairs(request))
            if self.secrets:
                verify(request.method, request.host, request.path, params.pairs, *self.secrets,
                       now=self.broker.clock.time(), max_skew=self.max_skew)
            action = params.str("Action", "")
            key = action.lower()
            handler = ACTIONS.get(key)
            if handler is None:
                key = None
                raise UnknownAction(action)
            if durability is not None and durability.backlogged() and key not in READ_ONLY:
                raise StorageUnavailable("the data directory has not accepted writes for a while; "
                                         "changes are refused until it does (reads still work)")
            reply = await handler(self.broker, params)
            if type(reply) is str:
                reply = f'{{{reply}"code":0,"message":"","requestId":"{request_id}"}}'
            else:
                reply["code"] = 0
                reply["message"] = ""
                reply["requestId"] = request_id
        except BrokerError as exc:
            reply = error_reply(exc, request_id)
        except ReplyError as exc:
            reply = exc.reply(request_id)
        except Exception:  # a bug of ours: log it, never show a traceback to the client
            log.exception("internal error in request %s", request_id)
            reply = {"code": 6000, "message": "(10050)internal error", "requestId": request_id}
        if durability is not None and durability.changed_since(mark):
            try:
                await durability.commit()
            except BrokerError as exc:
                reply = error_reply(exc, request_id)
        if type(reply) is str:
            text, code = reply, 0
        else:
            text, code = _dumps(reply), reply["code"]
        elapsed = perf_counter() - started
        stat = self.stats[key, code]
        stat[0] += elapsed
        stat[bisect_right(LATENCY_BOUNDS, elapsed) + 1] += 1
        if self.access_log:
            request[ACCESS] = (cmq_action_label(key), str(code), started)
        return web.Response(body=text.encode(), content_type="application/json")

    async def _pairs(self, request: web.Request) -> list[tuple[str, str]]:
        if request.method == "POST":
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise MalformedRequest(f"request body is larger than the limit of {self.max_body} bytes") from None
            except ConnectionResetError:  # the client left, or was cut off for sending too slowly
                raise MalformedRequest("the connection closed before the request body arrived") from None
            if not raw and request.rel_url.raw_query_string:
                return decode_pairs(request.rel_url.raw_query_string)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None
            return decode_pairs(text)
        if request.method == "GET":
            return decode_pairs(request.rel_url.raw_query_string)
        raise MethodNotAllowed(f"method {request.method} is not supported, use GET or POST")
