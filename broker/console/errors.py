"""The console's one table from errors to HTTP answers, and its own few errors.

The console speaks plain HTTP to its own script, so an error is an HTTP status and a body
`{"error": {"code": C, "message": M}}`. `C` is neutral and readable: the error's class name
(QueueNotFound, InvalidQueueName, BadCsrfToken), with a Batch error's `reason` after a dot
(InvalidZone.MismatchRegion), never a wire code of the CMQ or API 3.0 protocols. `M` names a
field as the console's forms do (queueName, msgBody, delaySeconds, ...).

Lookup walks the exception's class hierarchy, so a subclass without a row takes its parent's.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import (
    BrokerError,
    InternalError,
    InvalidParameter,
    QueueNotFound,
    ResourceNotFound,
    StorageUnavailable,
    SubscriptionNotFound,
    TopicNotFound,
)


class ConsoleError(BrokerError):
    """An error only the console has."""


class LoginRequired(ConsoleError):
    """The broker has secrets and the request has no logged-in session."""


class NoSession(ConsoleError):
    """A change without the console's session cookie (another site's form, an expired session)."""


class BadCsrfToken(ConsoleError):
    """A change whose CSRF token is missing or not its session's."""


class MessageGone(ConsoleError):
    """The message a page asks to show has left the queue since the page listed it."""


# error class → HTTP status (the whole table: everything else a client did wrong is a 400)
STATUS: Mapping[type, int] = {
    BrokerError: 400,
    InternalError: 500,
    StorageUnavailable: 503,
    QueueNotFound: 404,
    TopicNotFound: 404,
    SubscriptionNotFound: 404,
    ResourceNotFound: 404,
    MessageGone: 404,
    LoginRequired: 401,
    NoSession: 403,
    BadCsrfToken: 403,
}

# The engine's neutral field names (errors.FIELDS) as the console's forms call them. A queue or
# topic setting keeps its domain name, which is its form field's name too (visibilityTimeout).
FIELDS: Mapping[str, str] = {
    "queue": "queueName",
    "topic": "topicName",
    "subscription": "subscriptionName",
    "body": "msgBody",
    "tags": "msgTag",
    "routing_key": "routingKey",
    "filter_type": "filterType",
    "protocol": "protocol",
    "endpoint": "endpoint",
    "strategy": "notifyStrategy",
    "content_format": "notifyContentFormat",
    "filter_tags": "filterTag",
    "binding_keys": "bindingKey",
    "start_time": "startConsumeTime",
}


def status_of(exc: BrokerError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 400


def code_of(exc: BrokerError) -> str:
    reason = getattr(exc, "reason", "")
    name = type(exc).__name__
    return f"{name}.{reason}" if reason else name


def message_of(exc: BrokerError) -> str:
    return exc.text(FIELDS) if isinstance(exc, InvalidParameter) else exc.message


def error_body(exc: BrokerError) -> dict:
    return {"error": {"code": code_of(exc), "message": message_of(exc)}}
