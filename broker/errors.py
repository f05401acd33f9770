"""The domain error tree.

Engine and protocol layers raise these; each protocol maps them to its own wire codes in exactly
one table (`protocol/cmq/errors.py`, `protocol/batch/errors.py`). Nothing here knows a wire code. The message is plain text
for humans and always names the parameter or object at fault.
"""

from __future__ import annotations


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


class InvalidParameter(BrokerError):
    """A parameter is present but unusable. `param` is the name the client used."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class MissingParameter(InvalidParameter):
    def __init__(self, param: str):
        super().__init__(param, f"required parameter {param} is missing")


class DuplicateParameter(InvalidParameter):
    def __init__(self, param: str):
        super().__init__(param, f"parameter {param} is given more than once")


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
            "queueName",
            f"queueName {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
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
    def __init__(self, param: str = "msgBody"):
        super().__init__(param, f"{param} is empty")


class MessageTooLarge(InvalidParameter):
    def __init__(self, param: str, size: int, limit: int):
        super().__init__(param, f"{param} is {size} bytes, larger than maxMsgSize {limit}")


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
            "topicName",
            f"topicName {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
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
            "subscriptionName",
            f"subscriptionName {name!r} is invalid: 1-64 characters, a letter first, then letters, digits, '-' or '_'",
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
# Batch errors carry a `reason` (e.g. kind "Job" for a missing job): protocol/batch/errors.py
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
