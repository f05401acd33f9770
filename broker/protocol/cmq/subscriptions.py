"""Subscription actions: Subscribe, Unsubscribe, ListSubscriptionByTopic,
Get/SetSubscriptionAttributes, ClearSubscriptionFilterTags."""

from __future__ import annotations

from ...engine import Broker, Subscription
from .params import Params


def _optional_list(p: Params, name: str) -> list[str] | None:
    values = p.list(name, required=False)
    return values or None


async def subscribe(broker: Broker, p: Params) -> dict:
    sub = broker.subscribe(
        p.str("topicName"),
        p.str("subscriptionName"),
        p.str("protocol"),
        p.str("endpoint"),
        strategy=p.get("notifyStrategy") or None,
        content_format=p.get("notifyContentFormat") or None,
        filter_tags=_optional_list(p, "filterTag"),
        binding_keys=_optional_list(p, "bindingKey"),
    )
    return {"subscriptionId": sub.sub_id}


async def set_subscription_attributes(broker: Broker, p: Params) -> dict:
    broker.update_subscription(
        p.str("topicName"),
        p.str("subscriptionName"),
        strategy=p.get("notifyStrategy") or None,
        content_format=p.get("notifyContentFormat") or None,
        filter_tags=_optional_list(p, "filterTag"),
        binding_keys=_optional_list(p, "bindingKey"),
    )
    return {}


def _attributes(broker: Broker, sub: Subscription) -> dict:
    return {
        "topicOwner": broker.app_id,
        "topicName": sub.topic.name,
        "subscriptionName": sub.name,
        "subscriptionId": sub.sub_id,
        "msgCount": sub.pending,
        "protocol": sub.protocol,
        "protocal": sub.protocol,  # the spelling the Python SDK reads
        "endpoint": sub.endpoint,
        "notifyStrategy": sub.notify_strategy,
        "notifyContentFormat": sub.notify_content_format,
        "filterTags": list(sub.filter_tags),  # Python SDK
        "filterTag": list(sub.filter_tags),  # Java SDK
        "bindingKey": list(sub.binding_keys),
        "createTime": sub.create_time,
        "lastModifyTime": sub.last_modify_time,
    }


async def get_subscription_attributes(broker: Broker, p: Params) -> dict:
    return _attributes(broker, broker.get_subscription(p.str("topicName"), p.str("subscriptionName")))


async def unsubscribe(broker: Broker, p: Params) -> dict:
    broker.unsubscribe(p.str("topicName"), p.str("subscriptionName"))
    return {}


async def clear_filter_tags(broker: Broker, p: Params) -> dict:
    broker.update_subscription(p.str("topicName"), p.str("subscriptionName"), filter_tags=[])
    return {}


async def list_subscriptions(broker: Broker, p: Params) -> dict:
    topic = broker.get_topic(p.str("topicName"))
    total, page = topic.list_subscriptions(
        p.str("searchWord", ""), p.int("offset", 0, 0, 1000), p.int("limit", 20, 0, 100)
    )
    return {
        "totalCount": total,
        "subscriptionList": [
            {"subscriptionId": s.sub_id, "subscriptionName": s.name, "protocol": s.protocol, "endpoint": s.endpoint}
            for s in page
        ],
    }
