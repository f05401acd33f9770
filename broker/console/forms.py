"""Submitted forms: typed access to their fields, and the Batch forms turned into the very
objects SubmitJob and CreateComputeEnv take.

A form field is text; `Form` turns it into the typed value a store or simulator method takes,
refusing what is not a number, a number outside the request limits every protocol applies
(engine/limits.py), or a missing required field, naming the field as the form does. Everything
else is checked by whoever is called: queue and topic settings by the engine (engine/settings.py),
Batch rules by the simulator's own validation (`BatchSim.submit_job` / `create_env`, as the API
calls them), so the console cannot create what the API would refuse. What the Batch forms check
themselves is only what the form adds: a topic without events, and the optional raw JSON of the
whole Job.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from ..batchsim.validate import SIM_DURATION, SIM_EXIT_CODE, SIM_FAIL_ATTEMPTS
from ..errors import InvalidBatchParameterValue, MissingParameter, ParameterOutOfRange, ParameterWrongType

SIM_FIELDS = (("exit_code", SIM_EXIT_CODE), ("duration", SIM_DURATION), ("fail_attempts", SIM_FAIL_ATTEMPTS))


class Form:
    """Form fields as submitted: the last value of a field, or all of a repeated one."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> "Form":
        return cls([(k, v) for k, v in data.items() if isinstance(v, str)])

    def text(self, name: str, default: str = "") -> str:
        values = self.all(name)
        return values[-1].strip() if values else default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise MissingParameter(name)
        return value

    def integer(self, name: str, default: int | None = None, lo: int | None = None, hi: int | None = None) -> int:
        """The field as a whole number (`default` when empty; None: required), within [lo, hi] when given."""
        raw = self.text(name)
        if not raw:
            if default is None:
                raise MissingParameter(name)
            return default
        digits = raw.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
            raise ParameterWrongType(name, lambda f: f"{f} must be a whole number, got {raw[:40]!r}")
        value = int(raw)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"at least {lo}" if hi is None else f"at most {hi}" if lo is None else f"from {lo} to {hi}"
            raise ParameterOutOfRange(name, lambda f: f"{f} must be {bounds}, got {value}")
        return value

    def integers(self, names: Iterable[str]) -> dict[str, int]:
        """The named fields that are filled in, as whole numbers (the caller checks their ranges)."""
        return {name: self.integer(name, 0) for name in names if self.text(name)}

    def listed(self, name: str) -> list[str]:
        """A comma-separated field as a list, blanks left out."""
        return [item.strip() for item in self.text(name).split(",") if item.strip()]


def _notifications(form: Form, what: str) -> list[dict] | None:
    topic, events = form.text("topic"), [e for e in form.all("event") if e]
    if not topic and not events:
        return None
    if not topic:
        raise InvalidBatchParameterValue(f"choose the topic that the {what} events go to")
    if not events:
        raise InvalidBatchParameterValue(f"choose at least one event for topic {topic!r}")
    event_vars = _event_vars(form.text("event_vars"))
    return [{"TopicName": topic,
             "EventConfigs": [{"EventName": e, **({"EventVars": event_vars} if event_vars else {})} for e in events]}]


def _event_vars(raw: str) -> list[dict]:
    out = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise InvalidBatchParameterValue(f"event variables: line {n} is not NAME=VALUE")
        out.append({"Name": name.strip(), "Value": value.strip()})
    return out


def job_request(form: Form) -> tuple[dict, Any]:
    """(Placement, Job) for `BatchSim.submit_job`."""
    placement = {"Zone": form.text("zone")}
    raw = form.text("spec")
    if raw:
        try:
            return placement, json.loads(raw)
        except ValueError as exc:
            raise InvalidBatchParameterValue(f"the Job JSON is not valid JSON: {exc}") from None
    task: dict[str, Any] = {
        "TaskName": form.text("task_name") or "main",
        "TaskInstanceNum": form.integer("instances", 1),
        "Application": {"DeliveryForm": "LOCAL", "Command": form.text("command") or "echo hello"},
        "MaxRetryCount": form.integer("max_retry", 0),
    }
    env_id = form.text("env")
    if env_id:
        task["EnvId"] = env_id
    else:
        task["ComputeEnv"] = {"EnvType": "MANAGED", "EnvData": {"InstanceType": form.text("instance_type")}}
    env_vars = [{"Name": var, "Value": form.text(field)} for field, var in SIM_FIELDS if form.text(field)]
    if env_vars:
        task["EnvVars"] = env_vars
    job: dict[str, Any] = {"JobName": form.text("job_name"), "Priority": form.integer("priority", 0),
                           "Tasks": [task]}
    notifications = _notifications(form, "job")
    if notifications:
        job["Notifications"] = notifications
    return placement, job


def env_request(form: Form) -> tuple[dict, dict]:
    """(ComputeEnv, Placement) for `BatchSim.create_env`."""
    env: dict[str, Any] = {
        "EnvName": form.text("env_name"),
        "EnvDescription": form.text("description"),
        "EnvType": "MANAGED",
        "EnvData": {"InstanceType": form.text("instance_type")},
        "DesiredComputeNodeCount": form.integer("desired", 1),
        "ActionIfComputeNodeInactive": form.text("if_inactive") or "RECREATE",
    }
    notifications = _notifications(form, "environment")
    if notifications:
        env["Notifications"] = notifications
    return env, {"Zone": form.text("zone")}
