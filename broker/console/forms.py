"""The console's Batch forms turned into the very objects SubmitJob and CreateComputeEnv take.

The forms only shape the request: every rule is checked by the simulator's own validation
(`BatchSim.submit_job` / `create_env`, as the API calls them), so the console cannot create
what the API would refuse. What is checked here is only what the form itself adds: numbers
typed as text, a topic without events, and the optional raw JSON of the whole Job.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..batchsim.validate import SIM_DURATION, SIM_EXIT_CODE, SIM_FAIL_ATTEMPTS
from ..errors import InvalidBatchParameterValue

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

    def integer(self, name: str, label: str, default: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise InvalidBatchParameterValue(f"{label} must be a whole number, got {raw[:40]!r}") from None


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
        "TaskInstanceNum": form.integer("instances", "instances", 1),
        "Application": {"DeliveryForm": "LOCAL", "Command": form.text("command") or "echo hello"},
        "MaxRetryCount": form.integer("max_retry", "retries", 0),
    }
    env_id = form.text("env")
    if env_id:
        task["EnvId"] = env_id
    else:
        task["ComputeEnv"] = {"EnvType": "MANAGED", "EnvData": {"InstanceType": form.text("instance_type")}}
    env_vars = [{"Name": var, "Value": form.text(field)} for field, var in SIM_FIELDS if form.text(field)]
    if env_vars:
        task["EnvVars"] = env_vars
    job: dict[str, Any] = {"JobName": form.text("job_name"), "Priority": form.integer("priority", "priority", 0),
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
        "DesiredComputeNodeCount": form.integer("desired", "desired nodes", 1),
        "ActionIfComputeNodeInactive": form.text("if_inactive") or "RECREATE",
    }
    notifications = _notifications(form, "environment")
    if notifications:
        env["Notifications"] = notifications
    return env, {"Zone": form.text("zone")}
