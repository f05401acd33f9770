"""Reading a provisioning file: TOML in, a checked `Plan` out, or one error naming line and key.

Everything that can be judged from the file alone is judged here, before the broker touches its
data directory: unknown keys, wrong types, bad names, attribute values out of range, duplicate
names. The checks are the engine's and the simulator's own (settings tables, name rules,
`Subscription.configure`, `validate.named_env`, `notifications.parse`), so a file is refused
exactly when the same request would be. What depends on the broker's state (does the topic a
subscription names exist?) is checked by `apply.py` once the state is recovered.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..batchsim import catalogue, validate
from ..batchsim import notifications as notes
from ..batchsim.notifications import Notification
from ..engine.names import check_name
from ..engine.settings import QUEUE_SETTINGS, TOPIC_SETTINGS, QueueSettings, TopicSettings
from ..engine.topic import FILTER_ROUTING, FILTER_TAGS, Subscription, Topic, check_endpoint
from ..errors import BrokerError, InvalidParameter, InvalidQueueName, InvalidSubscriptionName, InvalidTopicName
from .lines import KeyLines


class ProvisionError(Exception):
    """A provisioning file that cannot be used; the message names the file, line and key."""


def show(value: Any) -> str:
    """A value as it would be written in TOML, shortened, for error messages."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + " }"
    else:  # dates and times
        text = value.isoformat()
    return text if len(text) <= 80 else text[:77] + "..."


def strip_subject(message: str, key: str) -> str:
    """Engine messages start with the parameter's name; the error already names the key."""
    return message[len(key) + 1:] if message.startswith(key + " ") else message


@dataclass(frozen=True)
class Where:
    """One [[table]] of the file, for error messages: `config.toml:12: [[queue]] "orders": ...`."""

    file: str
    lines: KeyLines = field(repr=False)
    table: str
    index: int
    label: str

    def line(self, key: str | None = None) -> int | None:
        """`key` may be a dotted path into the table's value: `EnvData.InstanceType`, `Notifications.0`."""
        parts = [int(p) if p.isdigit() else p for p in key.split(".")] if key else []
        return self.lines.find((self.table, self.index, *parts))

    def error(self, key: str | None, detail: str) -> ProvisionError:
        line = self.line(key)
        at = f"{self.file}:{line}" if line else self.file
        return ProvisionError(f'{at}: {self.label}: key "{key}": {detail}' if key else f"{at}: {self.label}: {detail}")


@dataclass(frozen=True)
class QueueDecl:
    name: str
    settings: dict[str, int]
    where: Where


@dataclass(frozen=True)
class TopicDecl:
    name: str
    filter_type: int | None  # None: not declared (a new topic filters by tags)
    settings: dict[str, int]
    where: Where


@dataclass(frozen=True)
class SubscriptionDecl:
    topic: str
    name: str
    protocol: str
    endpoint: str
    strategy: str | None  # None: not declared; the engine's default applies on creation
    content_format: str | None
    filter_tags: list[str] | None
    binding_keys: list[str] | None
    where: Where


@dataclass(frozen=True)
class EnvDecl:
    name: str
    zone: str
    spec: dict[str, Any]  # the NamedComputeEnv of CreateComputeEnv: every declared key but Zone
    notifications: list[Notification]
    where: Where


@dataclass(frozen=True)
class Plan:
    file: str
    queues: list[QueueDecl]
    topics: list[TopicDecl]
    subscriptions: list[SubscriptionDecl]
    envs: list[EnvDecl]


# -- one [[table]] ----------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", dict: "a table", list: "an array"}


class _Table:
    def __init__(self, raw: dict, where: Where):
        self.raw, self.where = raw, where

    def check_keys(self, allowed: list[str]) -> None:
        for key in self.raw:
            if key not in allowed:
                hint = [k for k in allowed if k.lower() == key.lower()] or difflib.get_close_matches(key, allowed, 1)
                tip = f'did you mean "{hint[0]}"? ' if hint else ""
                table = self.where.label.split()[0]
                raise self.where.error(key, f"unknown key; {tip}{table} takes {', '.join(allowed)}")

    def get(self, key: str, kind: type, required: bool = False) -> Any:
        if key not in self.raw:
            if required:
                raise self.where.error(key, "required, but missing")
            return None
        value = self.raw[key]
        if type(value) is not kind:  # exact: a TOML boolean is no integer
            raise self.where.error(key, f"must be {_TYPE_NAMES[kind]}, got {show(value)}")
        return value

    def name(self, key: str, error: type[InvalidParameter]) -> str:
        value = self.get(key, str, required=True)
        try:
            return check_name(value, error)
        except InvalidParameter:
            raise self.where.error(key, f"{show(value)} is not a valid name: 1 to 64 characters, a letter first, "
                                        "then letters, digits, '-' or '_'") from None

    def strings(self, key: str) -> list[str] | None:
        value = self.get(key, list)
        if value is not None and not all(isinstance(v, str) for v in value):
            raise self.where.error(key, f"must be an array of strings, got {show(value)}")
        return value

    def settings(self, table: dict[str, tuple[int, int, int]]) -> dict[str, int]:
        out = {}
        for key, (_, lo, hi) in table.items():
            value = self.raw.get(key)
            if key in self.raw and (type(value) is not int or not lo <= value <= hi):
                raise self.where.error(key, f"must be an integer from {lo} to {hi}, got {show(value)}")
            if key in self.raw:
                out[key] = value
        return out


def _label(table: str, index: int, raw: dict, *keys: str) -> str:
    names = [raw.get(k) for k in keys]
    if all(isinstance(n, str) and n for n in names):
        return f"[[{table}]] " + json.dumps("/".join(names), ensure_ascii=False)
    return f"[[{table}]] #{index + 1}"


# -- the four kinds -----------------------------------------------------------------------------

def _queue(t: _Table) -> QueueDecl:
    t.check_keys(["name", *QUEUE_SETTINGS])
    name = t.name("name", InvalidQueueName)
    settings = t.settings(QUEUE_SETTINGS)
    try:
        QueueSettings().updated(settings)  # the rules between attributes (rewindSeconds)
    except BrokerError as exc:
        raise engine_error(t.where, exc, "name") from None
    return QueueDecl(name, settings, t.where)


def _topic(t: _Table) -> TopicDecl:
    t.check_keys(["name", "filterType", *TOPIC_SETTINGS])
    name = t.name("name", InvalidTopicName)
    filter_type = t.get("filterType", int)
    if filter_type not in (None, FILTER_TAGS, FILTER_ROUTING):
        raise t.where.error("filterType", f"must be 1 (tags) or 2 (routing key), got {filter_type}")
    settings = t.settings(TOPIC_SETTINGS)
    return TopicDecl(name, filter_type, settings, t.where)


SUBSCRIPTION_KEYS = ["topic", "name", "protocol", "endpoint", "notifyStrategy", "notifyContentFormat",
                     "filterTags", "bindingKey"]


def _subscription(t: _Table) -> SubscriptionDecl:
    t.check_keys(SUBSCRIPTION_KEYS)
    topic = t.name("topic", InvalidTopicName)
    name = t.name("name", InvalidSubscriptionName)
    protocol = t.get("protocol", str, required=True)
    endpoint = t.get("endpoint", str, required=True)
    strategy, content_format = t.get("notifyStrategy", str), t.get("notifyContentFormat", str)
    tags, keys = t.strings("filterTags"), t.strings("bindingKey")
    try:
        protocol, endpoint = check_endpoint(protocol, endpoint)
        if protocol == "queue":
            check_name(endpoint, InvalidQueueName)
        # A stand-in subscription runs the engine's own checks of these attributes.
        stand_in = Subscription(Topic(topic, "", FILTER_TAGS, TopicSettings(), 0), name, "", protocol, endpoint, 0)
        stand_in.configure(strategy, content_format, tags, keys)
    except InvalidQueueName:
        raise t.where.error("endpoint", f"{show(endpoint)} is not a valid queue name") from None
    except BrokerError as exc:
        raise engine_error(t.where, exc, "name") from None
    return SubscriptionDecl(topic, name, protocol, endpoint, strategy, content_format, tags, keys, t.where)


ENV_KEYS = ["EnvName", "Zone", "EnvData", "DesiredComputeNodeCount", "EnvDescription", "EnvType",
            "ActionIfComputeNodeInactive", "ResourceMaxRetryCount", "Notifications", "Tags"]
_ENV_TYPES = {"EnvName": str, "Zone": str, "EnvData": dict, "DesiredComputeNodeCount": int, "EnvDescription": str,
              "EnvType": str, "ActionIfComputeNodeInactive": str, "ResourceMaxRetryCount": int,
              "Notifications": list, "Tags": list}
_BATCH_PATH = re.compile(r"ComputeEnv\.([\w.]*\w)")


def batch_error_key(message: str, default: str = "EnvName") -> tuple[str, str]:
    """(key, detail) of a simulator message such as `ComputeEnv.EnvData.InstanceType 'X' is not
    offered`: the key is the path into the table (its line is found from it), the detail the rest."""
    m = _BATCH_PATH.search(message)
    if m is None or m.group(1).split(".")[0] not in ENV_KEYS:
        return default, message
    rest = message[m.end():].strip() if m.start() == 0 else message.replace("ComputeEnv.", "")
    return m.group(1), rest


# The engine names parameters as the CMQ API does; the file uses the attributes' names.
# The engine's neutral field names (errors.FIELDS) as the provisioning file's keys call them.
FILE_KEYS = {"queue": "name", "topic": "name", "subscription": "name", "filter_type": "filterType",
             "protocol": "protocol", "endpoint": "endpoint", "strategy": "notifyStrategy",
             "content_format": "notifyContentFormat", "filter_tags": "filterTags", "binding_keys": "bindingKey"}


def engine_error(where: Where, exc: BrokerError, key: str) -> ProvisionError:
    """An engine or simulator refusal as a ProvisionError naming the key at fault (`key` when the
    refusal does not say)."""
    if not isinstance(exc, InvalidParameter) or exc.param.startswith("ComputeEnv."):
        return where.error(*batch_error_key(exc.message, key))
    name = exc.wire_name(FILE_KEYS)
    return where.error(name, strip_subject(exc.text(FILE_KEYS), name))


def _plain(value: Any) -> bool:
    """Whether a value can travel as JSON (the journal and the API views hold env specs)."""
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _compute_env(t: _Table) -> EnvDecl:
    t.check_keys(ENV_KEYS)
    for key, kind in _ENV_TYPES.items():
        t.get(key, kind, required=key in ("EnvName", "Zone", "EnvData"))
        if key in t.raw and not _plain(t.raw[key]):
            raise t.where.error(key, "dates, times, nan and inf have no place here")
    zone = t.raw["Zone"]
    if zone not in catalogue.zones():
        zones = ", ".join(sorted(catalogue.zones()))
        raise t.where.error("Zone", f"{show(zone)} is not a simulated zone; use one of {zones}")
    for i, tag in enumerate(t.raw.get("Tags") or []):
        ok = isinstance(tag, dict) and set(tag) == {"Key", "Value"} and all(isinstance(v, str) for v in tag.values())
        if not ok:
            raise t.where.error("Tags", f"item {i + 1} must be {{ Key = \"...\", Value = \"...\" }}, got {show(tag)}")
    spec = {k: v for k, v in t.raw.items() if k != "Zone"}
    try:
        validate.named_env(spec, zone)
        found = notes.parse(spec.get("Notifications"), notes.ENV_SCOPE, lambda topic: True, "ComputeEnv")
    except BrokerError as exc:
        raise engine_error(t.where, exc, "EnvName") from None
    return EnvDecl(spec["EnvName"], zone, spec, found, t.where)


_KINDS = {"queue": _queue, "topic": _topic, "subscription": _subscription, "compute_env": _compute_env}
_LABEL_KEYS = {"queue": ("name",), "topic": ("name",), "subscription": ("topic", "name"), "compute_env": ("EnvName",)}


# -- the file ---------------------------------------------------------------------------------

def _syntax_error(file: str, exc: tomllib.TOMLDecodeError, lines: int) -> ProvisionError:
    text = str(exc)
    if m := re.search(r"\s*\(at line (\d+), column (\d+)\)$", text):
        return ProvisionError(f"{file}:{m.group(1)}:{m.group(2)}: {text[:m.start()]} (not valid TOML)")
    if m := re.search(r"\s*\(at end of document\)$", text):
        return ProvisionError(f"{file}:{lines}: {text[:m.start()]} at the end of the file (not valid TOML)")
    return ProvisionError(f"{file}: {text} (not valid TOML)")


def load_plan(path: str) -> Plan:
    """Read and check a provisioning file; raise ProvisionError naming the line and key at fault."""
    file = str(path)
    try:
        with open(file, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise ProvisionError(f"cannot read the provisioning file {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ProvisionError(f"{file}: not UTF-8 text (byte offset {exc.start})") from None
    lines = KeyLines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(file, exc, lines.last_line) from None

    for key, value in data.items():
        line = lines.first((key,))
        at = f"{file}:{line}" if line else file
        if key not in _KINDS:
            hint = difflib.get_close_matches(key, list(_KINDS), 1)
            tip = f"did you mean [[{hint[0]}]]? " if hint else ""
            raise ProvisionError(f"{at}: unknown table {key!r}; {tip}the file holds [[queue]], [[topic]], "
                                 "[[subscription]] and [[compute_env]] tables")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ProvisionError(f"{at}: {key!r} must be an array of tables: write [[{key}]] above each one")

    found: dict[str, list] = {}
    for kind, check in _KINDS.items():
        items = found[kind] = []
        seen: dict[Any, Any] = {}
        for index, raw in enumerate(data.get(kind, [])):
            where = Where(file, lines, kind, index, _label(kind, index, raw, *_LABEL_KEYS[kind]))
            decl = check(_Table(raw, where))
            identity = (decl.topic.lower(), decl.name.lower()) if kind == "subscription" else (
                decl.name if kind == "compute_env" else decl.name.lower())
            if identity in seen:
                first = seen[identity].where.line(_LABEL_KEYS[kind][-1])
                raise where.error(_LABEL_KEYS[kind][-1], f"declared twice (first at line {first})"
                                  + ("; names are compared without case" if kind != "compute_env" else ""))
            seen[identity] = decl
            items.append(decl)
    return Plan(file, found["queue"], found["topic"], found["subscription"], found["compute_env"])
