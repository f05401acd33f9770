"""The domain error tree.

Engine and protocol layers raise these; each protocol maps them to its own wire codes and field
names in exactly one function (`protocol/cmq/errors.py`, `protocol/api3/errors.py`, the
console's table). Nothing here knows a wire code. The message is plain text for humans and
always names the parameter or object at fault.

Field names. The engine names the value at fault neutrally (`InvalidParameter.field`, one of
FIELDS below, or a queue/topic setting by its domain name such as `visibilityTimeout`), with
`index` its 1-based position in a list (0: not in a list). Its message is a function of the
name, so each protocol words it with its own parameter name: CMQ says `msgBody.3`, another API
may say `MsgContent`. Protocol decoders, which know their wire names, raise with those directly.
"""

from __future__ import annotations

from typing import Callable, Mapping

# The engine's neutral field names (each protocol's error function maps them to its own).
FIELDS = ("queue", "topic", "subscription", "body", "tags", "routing_key", "filter_type", "protocol", "endpoint",
          "strategy", "content_format", "filter_tags", "binding_keys", "start_time")


class BrokerError(Exception):
    """Base of every error a client may be told about."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# -- request shape (raised by protocol decoders, but protocol-neutral in meaning) ------------

class MalformedRequest(BrokerError):
    """The request cannot be decoded at all (not UTF-8, too large, bad encoding)."""


class MethodNotAllowed(BrokerError):
    pass


class UnknownAction(BrokerError):
    def __init__(self, action: str):
        super().__init__(f"action name {action!r} is not existed" if action else "parameter Action is missing")
        self.action = action


class InternalError(BrokerError):
    """A bug of ours, already logged with the request id; the client is told only the id."""

    def __init__(self, request_id: str):
        super().__init__(f"internal error; the broker log has request {request_id}")
        self.request_id = request_id


class InvalidParameter(BrokerError):
    """A parameter is present but unusable. `field` names it (neutrally from the engine, by its
    wire name from a protocol decoder), `index` is its 1-based place in a list (0: none), and
    `message` is text, or a function from the field's wire name to text."""

    def __init__(self, field: str, message: str | Callable[[str], str], index: int = 0):
        self.field = field
        self.index = index
        self._text = message
        super().__init__(message(self.param) if callable(message) else message)

    @property
    def param(self) -> str:
        """The field's name as the engine knows it (with its list index, if any)."""
        return f"{self.field}.{self.index}" if self.index else self.field

    def wire_name(self, names: Mapping[str, str]) -> str:
        """The field as a protocol calls it: `names` maps neutral names to its own."""
        name = names.get(self.field, self.field)
        return f"{name}.{self.index}" if self.index else name

    def text(self, names: Mapping[str, str]) -> str:
        """The message, worded with the protocol's name for the field."""
        return self._text(self.wire_name(names)) if callable(self._text) else self._text


class MissingParameter(InvalidParameter):
    def __init__(self, param: str):
        super().__init__(param, lambda name: f"required parameter {name} is missing")


class DuplicateParameter(InvalidParameter):
    def __init__(self, param: str):
        super().__init__(param, lambda name: f"parameter {name} is given more than once")


class ParameterWrongType(InvalidParameter):
    pass


class ParameterOutOfRange(InvalidParameter):
    pass


class TooManyItems(InvalidParameter):
    pass


class ListNotContiguous(InvalidParameter):
    pass


# -- authentication ---------------------------------------------------------------------------

class AuthFailure(BrokerError):
    pass


class UnknownSecretId(AuthFailure):
    pass


class SignatureMismatch(AuthFailure):
    pass


# -- queues -------------------------------------------------------------------------------------

class InvalidQueueName(InvalidParameter):
    def __init__(self, name: str):
        super().__init__(
            "queue",
            lambda field: f"{field} {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
        )


class QueueNotFound(BrokerError):
    def __init__(self, name: str):
        super().__init__(f"queue {name!r} does not exist")


class QueueAlreadyExists(BrokerError):
    def __init__(self, name: str):
        super().__init__(f"queue {name!r} already exists")


class QueueLimitExceeded(BrokerError):
    def __init__(self, limit: int):
        super().__init__(f"the number of queues reached the limit of {limit}")


class TooManyLongPolls(BrokerError):
    def __init__(self, limit: int):
        super().__init__(f"{limit} receivers are already waiting in long polls (the broker's limit, "
                         f"--max-long-polls); retry later or with pollingWaitSeconds=0")


class EmptyMessage(InvalidParameter):
    def __init__(self, index: int = 0):
        super().__init__("body", lambda field: f"{field} is empty", index)


class MessageTooLarge(InvalidParameter):
    def __init__(self, index: int, size: int, limit: int):
        super().__init__("body", lambda field: f"{field} is {size} bytes, larger than maxMsgSize {limit}", index)


class QueueFull(BrokerError):
    def __init__(self, name: str, limit: int):
        super().__init__(f"queue {name!r} holds maxMsgHeapNum={limit} messages; delete some first")


class NoMessage(BrokerError):
    def __init__(self) -> None:
        super().__init__("no message")


class InvalidReceiptHandle(BrokerError):
    def __init__(self, handle: str):
        super().__init__(
            f"receiptHandle {handle!r} is invalid or expired "
            "(the message was deleted, received again, or its visibility timeout passed)"
        )
        self.handle = handle


class RewindDisabled(BrokerError):
    def __init__(self, name: str):
        super().__init__(f"queue {name!r} has rewindSeconds=0, so it cannot be rewound")


class InvalidRewindTime(InvalidParameter):
    pass


# -- topics and subscriptions -----------------------------------------------------------------

class InvalidTopicName(InvalidParameter):
    def __init__(self, name: str):
        super().__init__(
            "topic",
            lambda field: f"{field} {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
        )


class TopicNotFound(BrokerError):
    def __init__(self, name: str):
        super().__init__(f"topic {name!r} does not exist")


class TopicAlreadyExists(BrokerError):
    def __init__(self, name: str):
        super().__init__(f"topic {name!r} already exists")


class TopicLimitExceeded(BrokerError):
    def __init__(self, limit: int):
        super().__init__(f"the number of topics reached the limit of {limit}")


class TopicHasSubscriptions(BrokerError):
    def __init__(self, name: str, count: int):
        super().__init__(f"topic {name!r} still has {count} subscription(s); unsubscribe them first (strict mode)")


class InvalidSubscriptionName(InvalidParameter):
    def __init__(self, name: str):
        super().__init__(
            "subscription",
            lambda field: f"{field} {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
        )


class SubscriptionNotFound(BrokerError):
    def __init__(self, topic: str, name: str):
        super().__init__(f"subscription {name!r} does not exist on topic {topic!r}")


class SubscriptionAlreadyExists(BrokerError):
    def __init__(self, topic: str, name: str):
        super().__init__(f"subscription {name!r} already exists on topic {topic!r}")


class SubscriptionLimitExceeded(BrokerError):
    def __init__(self, topic: str, limit: int):
        super().__init__(f"topic {topic!r} already has the maximum of {limit} subscriptions")


class InvalidEndpoint(InvalidParameter):
    pass


class EndpointHasWhitespace(InvalidParameter):
    pass


class InvalidProtocol(InvalidParameter):
    pass


class InvalidNotifyStrategy(InvalidParameter):
    pass


class InvalidNotifyContentFormat(InvalidParameter):
    pass


class QueueSubscriptionNeedsSimplified(InvalidParameter):
    pass


class TooManyFilterTags(InvalidParameter):
    pass


class TooManyBindingKeys(InvalidParameter):
    pass


class TooManyMessageTags(InvalidParameter):
    pass


class TooManyDelimiters(InvalidParameter):
    pass


class BindingKeyRequired(InvalidParameter):
    pass


class NoSubscription(BrokerError):
    def __init__(self, topic: str):
        super().__init__(f"topic {topic!r} has no subscription, so the message reached nobody (strict mode)")


class NoMatchingSubscription(BrokerError):
    def __init__(self, topic: str):
        super().__init__(f"no subscription of topic {topic!r} matched the message's tags or routing key (strict mode)")


# -- API 3.0 transport and the Batch simulator ------------------------------------------------
# Batch errors carry a `reason` (e.g. kind "Job" for a missing job): protocol/api3/errors.py
# appends it to the code of the error's class ("ResourceNotFound" + ".Job").

class InvalidAuthorization(AuthFailure):
    """The Authorization header is missing or cannot be parsed."""


class SignatureExpired(AuthFailure):
    """The request's timestamp is too far from the server's clock."""


class UnsupportedVersion(BrokerError):
    pass


class BatchError(BrokerError):
    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class ResourceNotFound(BatchError):
    """reason: Job, Task, TaskInstance, ComputeEnv, ComputeNode, TaskTemplate."""


class ResourceInUse(BatchError):
    pass


class UnsupportedOperation(BatchError):
    pass


class LimitExceeded(BatchError):
    pass


class InvalidBatchParameter(BatchError):
    """InvalidParameter(.reason): a field is malformed (an id with the wrong prefix, too long)."""


class InvalidBatchParameterValue(BatchError):
    """InvalidParameterValue(.reason): a field is well formed but its value is not allowed."""


class InvalidFilter(BatchError):
    pass


class EnvIdAndComputeEnvConflict(BatchError):
    """A task names both (or neither) of EnvId and ComputeEnv."""


class InvalidZone(BatchError):
    pass


class AtLeastOneAttribute(BatchError):
    """A modify call that changes nothing."""


# -- durability -------------------------------------------------------------------------------

class StorageUnavailable(BrokerError):
    """The data directory refused a write: the change is not acknowledged (it may still land
    later, when the write succeeds on retry; it is never acknowledged and then lost)."""
