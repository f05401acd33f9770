"""Queue and topic settings: defaults and allowed ranges, in one table each.

The names are CMQ's own attribute names (`visibilityTimeout`, ...): they are the domain's
vocabulary, used verbatim in the docs users read. Errors name a setting this way as its
neutral field name; a protocol with other spellings maps them in its error function.

One deliberate difference from the cloud: `maxMsgHeapNum` accepts any value from 1 (the cloud
demands at least 1,000,000), so tests can reach a full queue without sending a million messages.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import InvalidParameter, ParameterOutOfRange

# name: (default, lowest, highest)
QUEUE_SETTINGS: dict[str, tuple[int, int, int]] = {
    "maxMsgHeapNum": (100_000_000, 1, 1_000_000_000),
    "pollingWaitSeconds": (0, 0, 30),
    "visibilityTimeout": (30, 1, 43_200),
    "maxMsgSize": (65_536, 1_024, 65_536),
    "msgRetentionSeconds": (345_600, 60, 1_296_000),
    "rewindSeconds": (0, 0, 1_296_000),
}


@dataclass(frozen=True, slots=True)
class QueueSettings:
    maxMsgHeapNum: int = QUEUE_SETTINGS["maxMsgHeapNum"][0]
    pollingWaitSeconds: int = QUEUE_SETTINGS["pollingWaitSeconds"][0]
    visibilityTimeout: int = QUEUE_SETTINGS["visibilityTimeout"][0]
    maxMsgSize: int = QUEUE_SETTINGS["maxMsgSize"][0]
    msgRetentionSeconds: int = QUEUE_SETTINGS["msgRetentionSeconds"][0]
    rewindSeconds: int = QUEUE_SETTINGS["rewindSeconds"][0]

    def updated(self, changes: dict[str, Any]) -> "QueueSettings":
        """A validated copy with `changes` applied; raises on an unknown name or a bad value."""
        _check(QUEUE_SETTINGS, "queue", changes)
        new = replace(self, **changes)
        if new.rewindSeconds > new.msgRetentionSeconds:
            raise ParameterOutOfRange(
                "rewindSeconds",
                lambda f: f"{f} ({new.rewindSeconds}) cannot exceed msgRetentionSeconds ({new.msgRetentionSeconds})",
            )
        return new

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


TOPIC_SETTINGS: dict[str, tuple[int, int, int]] = {
    "maxMsgSize": (65_536, 1_024, 65_536),
    "msgRetentionSeconds": (86_400, 60, 86_400),
}


@dataclass(frozen=True, slots=True)
class TopicSettings:
    maxMsgSize: int = TOPIC_SETTINGS["maxMsgSize"][0]
    msgRetentionSeconds: int = TOPIC_SETTINGS["msgRetentionSeconds"][0]

    def updated(self, changes: dict[str, Any]) -> "TopicSettings":
        _check(TOPIC_SETTINGS, "topic", changes)
        return replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(table: dict[str, tuple[int, int, int]], kind: str, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name not in table:
            raise InvalidParameter(name, lambda f: f"{f} is not a {kind} attribute")
        _, lo, hi = table[name]
        if type(value) is not int or not lo <= value <= hi:
            raise ParameterOutOfRange(name, lambda f: f"{f} must be an integer from {lo} to {hi}, got {value!r}")
