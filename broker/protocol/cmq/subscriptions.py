"""Subscription actions: Subscribe, Unsubscribe, ListSubscriptionByTopic,
Get/SetSubscriptionAttributes, ClearSubscriptionFilterTags."""

from __future__ import annotations

from ...errors import BrokerError
from ...store import Store, SubscriptionInfo
from .params import Params


def _optional_list(p: Params, name: str) -> list[str] | None:
    values = p.list(name, required=False)
    return values or None


def _options(p: Params) -> dict:
    return {
        "strategy": p.get("notifyStrategy") or None,
        "content_format": p.get("notifyContentFormat") or None,
        "filter_tags": _optional_list(p, "filterTag"),
        "binding_keys": _optional_list(p, "bindingKey"),
    }


async def subscribe(store: Store, p: Params) -> dict:
    sub = await store.subscribe(p.str("topicName"), p.str("subscriptionName"), p.str("protocol"),
                                p.str("endpoint"), **_options(p))
    return {"subscriptionId": sub.sub_id}


async def set_subscription_attributes(store: Store, p: Params) -> dict:
    await store.update_subscription(p.str("topicName"), p.str("subscriptionName"), **_options(p))
    return {}


def _attributes(owner: int, sub: SubscriptionInfo) -> dict:
    return {
        "topicOwner": owner,
        "topicName": sub.topic,
        "subscriptionName": sub.name,
        "subscriptionId": sub.sub_id,
        "msgCount": sub.pending,
        "protocol": sub.protocol,
        "protocal": sub.protocol,  # the spelling the Python SDK reads
        "endpoint": sub.endpoint,
        "notifyStrategy": sub.strategy,
        "notifyContentFormat": sub.content_format,
        "filterTags": list(sub.filter_tags),  # Python SDK
        "filterTag": list(sub.filter_tags),  # Java SDK
        "bindingKey": list(sub.binding_keys),
        "createTime": sub.create_time,
        "lastModifyTime": sub.last_modify_time,
    }


async def get_subscription_attributes(store: Store, p: Params) -> dict:
    return _attributes(store.app_id, await store.get_subscription(p.str("topicName"), p.str("subscriptionName")))


async def unsubscribe(store: Store, p: Params) -> dict:
    await store.unsubscribe(p.str("topicName"), p.str("subscriptionName"))
    return {}


async def clear_filter_tags(store: Store, p: Params) -> dict:
    await store.update_subscription(p.str("topicName"), p.str("subscriptionName"), filter_tags=[])
    return {}


async def list_subscriptions(store: Store, p: Params) -> dict:
    topic = p.str("topicName")
    try:
        search, offset, limit = p.str("searchWord", ""), p.int("offset", 0, 0, 1000), p.int("limit", 20, 0, 100)
    except BrokerError:  # CMQ's order of errors: a missing topic first
        await store.get_topic(topic)
        raise
    total, page = await store.list_subscriptions(topic, search, offset, limit)
    return {
        "totalCount": total,
        "subscriptionList": [
            {"subscriptionId": s.sub_id, "subscriptionName": s.name, "protocol": s.protocol, "endpoint": s.endpoint}
            for s in page
        ],
    }
