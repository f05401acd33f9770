"""The one function from domain errors to CMQ replies: wire codes and CMQ's field names.

A CMQ error reply is `{"code": C, "message": "(M)text", "requestId": ...}` with HTTP 200: `C` is
the public code the SDK raises with, `M` the finer "module" code CMQ prints in the message.
Lookup walks the exception's class hierarchy, so a subclass without a row uses its parent's.
"""

from __future__ import annotations

from ... import errors as e

# exception class: (code, module code)
CODES: dict[type, tuple[int, int]] = {
    e.BrokerError: (6000, 10050),
    e.MalformedRequest: (4000, 10420),
    e.MethodNotAllowed: (4000, 10410),
    e.UnknownAction: (4000, 10430),
    e.InvalidParameter: (4000, 10110),
    e.MissingParameter: (4000, 10390),
    e.DuplicateParameter: (4000, 10330),
    e.ParameterOutOfRange: (4000, 10350),
    e.ParameterWrongType: (4000, 10360),
    e.TooManyItems: (4000, 10370),
    e.ListNotContiguous: (4000, 10380),
    e.AuthFailure: (4100, 10030),
    e.SignatureMismatch: (4100, 10030),
    e.UnknownSecretId: (4100, 10270),
    e.InvalidQueueName: (4000, 10020),
    e.QueueNotFound: (4440, 10100),
    e.QueueAlreadyExists: (4460, 10210),
    e.QueueLimitExceeded: (4450, 10220),
    e.EmptyMessage: (4000, 10120),
    e.MessageTooLarge: (4400, 10230),
    e.QueueFull: (4410, 10240),
    e.NoMessage: (7000, 10200),
    e.InvalidReceiptHandle: (4430, 10260),
    e.RewindDisabled: (6050, 10670),
    e.InvalidRewindTime: (4000, 10680),
    e.InvalidTopicName: (4000, 10590),
    e.TopicNotFound: (4440, 10600),
    e.TopicAlreadyExists: (4460, 10550),
    e.TopicLimitExceeded: (4450, 10610),
    e.TopicHasSubscriptions: (4000, 10540),
    e.InvalidSubscriptionName: (4000, 10580),
    e.SubscriptionNotFound: (4000, 10560),
    e.SubscriptionAlreadyExists: (4490, 10470),
    e.SubscriptionLimitExceeded: (4500, 10480),
    e.InvalidEndpoint: (4000, 10500),
    e.EndpointHasWhitespace: (4510, 10570),
    e.InvalidProtocol: (4000, 10510),
    e.InvalidNotifyStrategy: (4000, 10520),
    e.InvalidNotifyContentFormat: (4000, 10530),
    e.QueueSubscriptionNeedsSimplified: (4000, 10640),
    e.TooManyFilterTags: (4000, 10490),
    e.TooManyBindingKeys: (4000, 10680),
    e.TooManyMessageTags: (4000, 10720),
    e.TooManyDelimiters: (4000, 10691),
    e.BindingKeyRequired: (4000, 10710),
    e.NoSubscription: (6030, 10650),
    e.NoMatchingSubscription: (6030, 10730),
    e.StorageUnavailable: (6000, 10090),
    e.TooManyLongPolls: (6000, 10050),
}

# Batch delete outcomes, which are replies of their own rather than domain errors.
BATCH_DELETE_PARTIAL = (6010, 10150)
BATCH_DELETE_FAILED = (6020, 10290)


def codes_for(exc: e.BrokerError) -> tuple[int, int]:
    for cls in type(exc).__mro__:
        found = CODES.get(cls)
        if found is not None:
            return found
    return CODES[e.BrokerError]


# The engine's neutral field names (errors.FIELDS) as CMQ's parameters call them.
FIELDS = {
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


def describe(exc: e.BrokerError) -> str:
    """The error's message in CMQ's words: "(module code)text", naming fields as CMQ does."""
    code, module = codes_for(exc)
    text = exc.text(FIELDS) if isinstance(exc, e.InvalidParameter) else exc.message
    return f"({module}){text}"


def error_reply(exc: e.BrokerError, request_id: str) -> dict:
    if isinstance(exc, ReplyError):
        return exc.reply(request_id)
    return {"code": codes_for(exc)[0], "message": describe(exc), "requestId": request_id}


class ReplyError(e.BrokerError):
    """A failure reply that carries more than code and message (BatchDeleteMessage's errorList)."""

    def __init__(self, codes: tuple[int, int], message: str, extra: dict):
        super().__init__(message)
        self.codes = codes
        self.extra = extra

    def reply(self, request_id: str) -> dict:
        code, module = self.codes
        return {"code": code, "message": f"({module}){self.message}", "requestId": request_id, **self.extra}
