"""The domain error tree.

Engine and protocol layers raise these; each protocol maps them to its own wire codes in exactly
one table (`protocol/cmq/errors.py`). Nothing here knows a wire code. The message is plain text
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
