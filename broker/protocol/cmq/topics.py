"""Topic actions: CreateTopic, ListTopic, Get/SetTopicAttributes, DeleteTopic, (Batch)PublishMessage."""

from __future__ import annotations

from ...engine.settings import TOPIC_SETTINGS
from ...engine.topic import FILTER_TAGS
from ...store import Store, TopicInfo
from .params import Params


async def create_topic(store: Store, p: Params) -> dict:
    topic = await store.create_topic(p.str("topicName"), p.int("filterType", FILTER_TAGS),
                                     p.optional_ints(TOPIC_SETTINGS))
    return {"topicId": topic.topic_id}


async def set_topic_attributes(store: Store, p: Params) -> dict:
    topic = await store.set_topic_attributes(p.str("topicName"), p.optional_ints(TOPIC_SETTINGS))
    return {**topic.settings, "topicId": topic.topic_id}


def _attributes(topic: TopicInfo) -> dict:
    return {
        "topicId": topic.topic_id,
        "topicName": topic.name,
        "msgCount": topic.pending,
        **topic.settings,
        "createTime": topic.create_time,
        "lastModifyTime": topic.last_modify_time,
        "filterType": topic.filter_type,
        "qps": 5000,
        "tags": [],
    }


async def get_topic_attributes(store: Store, p: Params) -> dict:
    return _attributes(await store.get_topic(p.str("topicName")))


async def delete_topic(store: Store, p: Params) -> dict:
    await store.delete_topic(p.str("topicName"))
    return {}


async def list_topic(store: Store, p: Params) -> dict:
    total, page = await store.list_topics(
        p.str("searchWord", ""), p.int("offset", 0, 0, 1_000_000), p.int("limit", 20, 1, 50)
    )
    return {"totalCount": total, "topicList": [{"topicId": t.topic_id, "topicName": t.name} for t in page]}


async def publish_message(store: Store, p: Params) -> dict:
    [msg_id] = await store.publish(
        p.str("topicName"), [p.str("msgBody")], p.list("msgTag", required=False), p.str("routingKey", "")
    )
    return {"msgId": str(msg_id)}


async def batch_publish_message(store: Store, p: Params) -> dict:
    ids = await store.publish(
        p.str("topicName"), p.list("msgBody"), p.list("msgTag", required=False), p.str("routingKey", "")
    )
    return {"msgList": [{"msgId": str(i)} for i in ids]}
