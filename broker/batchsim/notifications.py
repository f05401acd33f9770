"""Notifications: which events go to which CMQ topics, validated and normalised at submit time.

People write event names the way the product document does (`JobFailed`, `JobSucceed`,
`job_succeed`): names are normalised by dropping `_`, `-` and spaces and comparing without case,
then stored, echoed and emitted only in canonical form (`JOB_FAILED`). The document's lower-case
keys (`topic_name`, `event_configs`, `event_name`, `event_vars`, `name`, `value`) are accepted
too; they can only arrive over raw HTTP, since the SDK's typed models drop unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import InvalidBatchParameter, InvalidBatchParameterValue
from . import states

JOB_SCOPE = frozenset(
    [*states.JOB_EVENTS.values(), *states.TASK_EVENTS.values(), *states.INSTANCE_EVENTS.values(),
     *states.NODE_EVENTS.values()]
)
ENV_SCOPE = frozenset([states.ENV_CREATED_EVENT, states.ENV_DELETED_EVENT, *states.NODE_EVENTS.values()])
ALL_EVENTS = JOB_SCOPE | ENV_SCOPE
_BY_FOLDED = {name.replace("_", "").lower(): name for name in ALL_EVENTS}
# The product document writes "JobSucceed"; a reader may well write "JobSucceeded".
_BY_FOLDED.update({k.replace("succeed", "succeeded"): v for k, v in list(_BY_FOLDED.items()) if "succeed" in k})

MAX_TOPIC_NAME = 64


@dataclass(frozen=True)
class Notification:
    topic: str
    events: dict[str, list[dict[str, str]]]  # canonical event name → EventVars [{Name, Value}]

    def as_dict(self) -> dict:
        return {
            "TopicName": self.topic,
            "EventConfigs": [{"EventName": n, "EventVars": v} for n, v in self.events.items()],
        }


def canonical_event(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    return _BY_FOLDED.get(name.replace("_", "").replace("-", "").replace(" ", "").lower())


def _get(obj: dict, key: str, alias: str) -> Any:
    return obj[key] if key in obj else obj.get(alias)


def parse(raw: Any, scope: frozenset[str], topic_exists: Callable[[str], bool], where: str) -> list[Notification]:
    """Validate a Notifications list (PascalCase or the document's snake_case keys)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidBatchParameterValue(f"{where}.Notifications must be a list")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}.Notifications.{i}"
        if not isinstance(item, dict):
            raise InvalidBatchParameterValue(f"{at} must be an object")
        topic = _get(item, "TopicName", "topic_name")
        if not isinstance(topic, str) or not topic:
            raise InvalidBatchParameter(f"{at}.TopicName is required", "NotificationTopicName")
        if len(topic) > MAX_TOPIC_NAME:
            raise InvalidBatchParameter(
                f"{at}.TopicName is longer than {MAX_TOPIC_NAME} characters", "NotificationTopicNameTooLong"
            )
        if not topic_exists(topic):
            raise InvalidBatchParameter(
                f"{at}.TopicName {topic!r}: no such CMQ topic; create it first (CreateTopic)", "NotificationTopicName"
            )
        configs = _get(item, "EventConfigs", "event_configs") or []
        if not isinstance(configs, list) or not configs:
            raise InvalidBatchParameterValue(f"{at}.EventConfigs must be a non-empty list")
        events: dict[str, list[dict[str, str]]] = {}
        for j, config in enumerate(configs):
            cat = f"{at}.EventConfigs.{j}"
            if not isinstance(config, dict):
                raise InvalidBatchParameterValue(f"{cat} must be an object")
            given = _get(config, "EventName", "event_name")
            name = canonical_event(given)
            if name is None:
                raise InvalidBatchParameterValue(f"{cat}.EventName {given!r} is not a Batch event")
            if name not in scope:
                raise InvalidBatchParameterValue(f"{cat}.EventName {name} cannot be configured here")
            if name in events:
                raise InvalidBatchParameter(
                    f"{cat}.EventName {name} appears twice in one notification", "NotificationEventNameDuplicate"
                )
            events[name] = _event_vars(_get(config, "EventVars", "event_vars"), cat)
        out.append(Notification(topic, events))
    return out


def _event_vars(raw: Any, at: str) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidBatchParameterValue(f"{at}.EventVars must be a list")
    out = []
    for k, var in enumerate(raw):
        if not isinstance(var, dict):
            raise InvalidBatchParameterValue(f"{at}.EventVars.{k} must be an object")
        name, value = _get(var, "Name", "name"), _get(var, "Value", "value")
        if not isinstance(name, str) or not isinstance(value, (str, type(None))):
            raise InvalidBatchParameterValue(f"{at}.EventVars.{k} needs a string Name and Value")
        out.append({"Name": name, "Value": value or ""})
    return out
