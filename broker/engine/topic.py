"""Topics, their subscriptions, and which subscriptions a published message matches.

A topic filters either by tags (filterType 1) or by routing key (filterType 2), fixed at
creation:

- tags: a subscription with filter tags receives a message that carries any of them; one
  without filter tags receives everything;
- routing keys: dot-separated words; a binding key's `*` matches exactly one word and `#` zero or
  more (RabbitMQ's topic exchange); a subscription matches if any of its binding keys does. An
  empty routing key is zero words, so it matches `#` but not `*`.

Fan-out itself lives in `Broker.publish`, which spans topics and queues.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import (
    EndpointHasWhitespace,
    InvalidEndpoint,
    InvalidNotifyContentFormat,
    InvalidNotifyStrategy,
    InvalidParameter,
    InvalidProtocol,
    QueueSubscriptionNeedsSimplified,
    SubscriptionAlreadyExists,
    SubscriptionLimitExceeded,
    SubscriptionNotFound,
    TooManyBindingKeys,
    TooManyDelimiters,
    TooManyFilterTags,
)
from .names import page
from .settings import TopicSettings

FILTER_TAGS, FILTER_ROUTING = 1, 2
MAX_TAGS = 5  # per message (msgTag) and per subscription (filterTag)
MAX_TAG_CHARS = 16
MAX_BINDING_KEYS = 5
MAX_KEY_BYTES = 64  # routing and binding keys
MAX_KEY_DOTS = 15
MAX_ENDPOINT_CHARS = 500
MAX_SUBSCRIPTIONS = 100

PROTOCOLS = ("http", "queue")
STRATEGIES = ("BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY")
FORMATS = ("JSON", "SIMPLIFIED")


# -- validation of tags and keys ---------------------------------------------------------------

def check_tags(tags: list[str], param: str, too_many: type[InvalidParameter]) -> tuple[str, ...]:
    if len(tags) > MAX_TAGS:
        raise too_many(param, lambda f: f"{f} has {len(tags)} tags, at most {MAX_TAGS} are allowed")
    for tag in tags:
        if not tag or len(tag) > MAX_TAG_CHARS:
            raise InvalidParameter(param, lambda f: f"{f} {tag!r} must be 1 to {MAX_TAG_CHARS} characters")
    return tuple(tags)


def check_key(key: str, param: str, wildcards: bool) -> tuple[str, ...]:
    """Validate a routing key (no wildcards) or binding key; return its words."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidParameter(param, lambda f: f"{f} {key[:80]!r} is longer than {MAX_KEY_BYTES} bytes")
    if key.count(".") > MAX_KEY_DOTS:
        raise TooManyDelimiters(param, lambda f: f"{f} {key!r} has more than {MAX_KEY_DOTS} dots")
    words = tuple(key.split(".")) if key else ()
    if not wildcards and ("*" in words or "#" in words):
        raise InvalidParameter(param, lambda f: f"{f} {key!r} may not contain the wildcards '*' or '#'")
    return words


def route_matches(binding: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """Topic-exchange matching by dynamic programming over words (at most 16 x 16)."""
    # reach[j]: the binding words seen so far can match exactly the first j words of the key.
    reach = [True] + [False] * len(key)
    for word in binding:
        if word == "#":
            seen = False
            for j in range(len(reach)):
                seen = seen or reach[j]
                reach[j] = seen
        else:
            for j in range(len(key), 0, -1):
                reach[j] = reach[j - 1] and (word == "*" or word == key[j - 1])
            reach[0] = False
    return reach[-1]


# -- subscriptions --------------------------------------------------------------------------------

class Subscription:
    """One subscriber of a topic: a queue (by name) or an HTTP endpoint."""

    def __init__(self, topic: "Topic", name: str, sub_id: str, protocol: str, endpoint: str, now: int):
        self.topic = topic
        self.name = name
        self.sub_id = sub_id
        self.protocol = protocol
        self.endpoint = endpoint
        self.notify_strategy = "EXPONENTIAL_DECAY_RETRY"
        self.notify_content_format = "SIMPLIFIED" if protocol == "queue" else "JSON"
        self.filter_tags: tuple[str, ...] = ()
        self.binding_keys: tuple[str, ...] = ()
        self._bindings: tuple[tuple[str, ...], ...] = ()  # binding keys split into words
        self.create_time = self.last_modify_time = now
        self.active = True  # False once unsubscribed: pending deliveries stop
        self.pending = 0  # copies handed to the deliverer and not yet settled (msgCount)
        self.delivered = 0
        self.dropped = 0

    def configure(
        self,
        strategy: str | None = None,
        content_format: str | None = None,
        filter_tags: list[str] | None = None,
        binding_keys: list[str] | None = None,
    ) -> None:
        """Validate everything first, then apply: a refused change changes nothing."""
        if strategy is not None:
            strategy = strategy.upper()
            if strategy not in STRATEGIES:
                raise InvalidNotifyStrategy("strategy", lambda f: f"{f} must be one of {', '.join(STRATEGIES)}")
        if content_format is not None:
            content_format = content_format.upper()
            if content_format not in FORMATS:
                raise InvalidNotifyContentFormat("content_format", lambda f: f"{f} must be one of {', '.join(FORMATS)}")
            if self.protocol == "queue" and content_format != "SIMPLIFIED":
                raise QueueSubscriptionNeedsSimplified(
                    "content_format", lambda f: f"a subscription with protocol queue needs {f} SIMPLIFIED"
                )
        tags = None if filter_tags is None else check_tags(filter_tags, "filter_tags", TooManyFilterTags)
        bindings = None
        if binding_keys is not None:
            if len(binding_keys) > MAX_BINDING_KEYS:
                raise TooManyBindingKeys(
                    "binding_keys", lambda f: f"{f} has {len(binding_keys)} keys, at most {MAX_BINDING_KEYS} are allowed"
                )
            bindings = tuple(check_key(k, "binding_keys", wildcards=True) for k in binding_keys)
        if strategy is not None:
            self.notify_strategy = strategy
        if content_format is not None:
            self.notify_content_format = content_format
        if tags is not None:
            self.filter_tags = tags
        if bindings is not None:
            self.binding_keys = tuple(binding_keys)
            self._bindings = bindings

    def dump(self) -> dict:
        return {"name": self.name, "id": self.sub_id, "protocol": self.protocol, "endpoint": self.endpoint,
                "strategy": self.notify_strategy, "format": self.notify_content_format,
                "tags": list(self.filter_tags), "keys": list(self.binding_keys),
                "created": self.create_time, "modified": self.last_modify_time}

    @classmethod
    def restore(cls, topic: "Topic", d: dict) -> "Subscription":
        sub = cls(topic, d["name"], d["id"], d["protocol"], d["endpoint"], d["created"])
        sub.configure(d["strategy"], d["format"], d["tags"], d["keys"])
        sub.last_modify_time = d["modified"]
        return sub

    def matches(self, tags: tuple[str, ...], route: tuple[str, ...]) -> bool:
        if self.topic.filter_type == FILTER_ROUTING:
            if not self._bindings:
                return True  # no binding key: everything (lenient; strict mode refuses such subscriptions)
            return any(route_matches(b, route) for b in self._bindings)
        if not self.filter_tags:
            return True
        return any(t in self.filter_tags for t in tags)


def check_endpoint(protocol: str, endpoint: str) -> tuple[str, str]:
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise InvalidProtocol("protocol", lambda f: f"{f} must be http or queue, got {protocol[:40]!r}")
    if not endpoint:
        raise InvalidEndpoint("endpoint", lambda f: f"{f} is empty")
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise InvalidEndpoint("endpoint", lambda f: f"{f} is longer than {MAX_ENDPOINT_CHARS} characters")
    if any(c.isspace() for c in endpoint):
        raise EndpointHasWhitespace("endpoint", lambda f: f"{f} {endpoint[:80]!r} contains whitespace")
    if protocol == "http":
        scheme, _, rest = endpoint.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#:":
            raise InvalidEndpoint(
                "endpoint", lambda f: f"an http {f} must be http:// or https:// followed by a host, got {endpoint[:80]!r}"
            )
    return protocol, endpoint


# -- topics ---------------------------------------------------------------------------------------

class Topic:
    def __init__(self, name: str, topic_id: str, filter_type: int, settings: TopicSettings, now: int):
        self.name = name
        self.topic_id = topic_id
        self.filter_type = filter_type
        self.settings = settings
        self.create_time = self.last_modify_time = now
        self.subscriptions: dict[str, Subscription] = {}  # by lower-case name
        self.published = 0  # messages accepted, for metrics
        self.copies = {"queue": 0, "http": 0}  # copies made for matching subscriptions, by protocol

    def dump(self) -> dict:
        return {"name": self.name, "id": self.topic_id, "filter": self.filter_type,
                "settings": self.settings.as_dict(), "created": self.create_time, "modified": self.last_modify_time,
                "subs": {key: sub.dump() for key, sub in self.subscriptions.items()}}

    def get_subscription(self, name: str) -> Subscription:
        sub = self.subscriptions.get(name.lower())
        if sub is None:
            raise SubscriptionNotFound(self.name, name)
        return sub

    def add_subscription(self, sub: Subscription) -> None:
        key = sub.name.lower()
        if key in self.subscriptions:
            raise SubscriptionAlreadyExists(self.name, sub.name)
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise SubscriptionLimitExceeded(self.name, MAX_SUBSCRIPTIONS)
        self.subscriptions[key] = sub

    def remove_subscription(self, name: str) -> Subscription:
        sub = self.get_subscription(name)
        del self.subscriptions[name.lower()]
        sub.active = False
        return sub

    def list_subscriptions(self, search: str, offset: int, limit: int) -> tuple[int, list[Subscription]]:
        return page(self.subscriptions, search, offset, limit)

    def matching(self, tags: tuple[str, ...], route: tuple[str, ...]) -> Iterable[Subscription]:
        return [s for s in self.subscriptions.values() if s.matches(tags, route)]

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.subscriptions.values())


class TopicMessage:
    """A published message on its way to one subscription that could not take it at once."""

    __slots__ = ("msg_id", "body", "tags", "publish_time")

    def __init__(self, msg_id: int, body: str, tags: tuple[str, ...], publish_time: float):
        self.msg_id = msg_id
        self.body = body
        self.tags = tags
        self.publish_time = publish_time
