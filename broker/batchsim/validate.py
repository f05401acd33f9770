"""Input checks for SubmitJob, CreateComputeEnv and task templates, with Batch's own error codes.

Each check names the field at fault by its path (`Job.Tasks.1.TaskName`). Everything is checked
before anything is created, so a refused request leaves no trace.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import (
    EnvIdAndComputeEnvConflict,
    InvalidBatchParameter,
    InvalidBatchParameterValue,
    InvalidZone,
    MissingParameter,
)
from . import catalogue

# Instance types reserved for failure injection (see the README): nodes of these types fail.
FAULT_TYPES = {"SIM.CREATION_FAILED": "creation-failed", "SIM.ABNORMAL": "abnormal"}
# Task EnvVars that steer the simulation. EXIT_CODE and DURATION take one value, or a comma-
# separated list by instance index (the last value serves the higher indices); FAIL_ATTEMPTS
# makes the first N attempts of each instance fail (with EXIT_CODE, or 1) and later ones succeed.
SIM_EXIT_CODE, SIM_DURATION, SIM_FAIL_ATTEMPTS = "BATCH_SIM_EXIT_CODE", "BATCH_SIM_DURATION", "BATCH_SIM_FAIL_ATTEMPTS"


def sim_value(env: dict, key: str, index: int, cast, default):
    """The value of a simulation EnvVar for instance `index` (see above)."""
    raw = env.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    values = [v.strip() for v in str(raw).split(",")]
    return cast(values[min(index, len(values) - 1)])
MAX_JOB_NAME, MAX_DESCRIPTION, MAX_TASK_NAME, MAX_RETRY = 60, 200, 60, 10
MAX_INSTANCES, MAX_NODES = 1000, 2000
DEPEND_ON = ("PRE_TASK_SUCCEED", "PRE_TASK_AT_LEAST_PARTLY_SUCCEED", "PRE_TASK_FINISHED")
CVM_FAILED_STATES = ("FAILED", "RUNNABLE")
FAILED_ACTIONS = ("TERMINATE", "INTERRUPT", "FAST_INTERRUPT")


def path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def obj(value: Any, where: str, required: bool = True) -> dict:
    if value is None:
        if required:
            raise MissingParameter(where)
        return {}
    if not isinstance(value, dict):
        raise InvalidBatchParameterValue(f"{where} must be an object")
    return value


def integer(container: dict, key: str, where: str, default: int, lo: int, hi: int, reason: str = "") -> int:
    value = container.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.removeprefix("-").isascii() and value.removeprefix("-").isdigit():
            value = int(value)
        else:
            raise InvalidBatchParameterValue(f"{path(where, key)} must be an integer, got {value!r}")
    if value < 0 and lo >= 0:
        raise InvalidBatchParameterValue(f"{path(where, key)} must not be negative, got {value}", "Negative")
    if not lo <= value <= hi:
        raise InvalidBatchParameterValue(f"{path(where, key)} must be from {lo} to {hi}, got {value}", reason)
    return value


def text(container: dict, key: str, where: str, limit: int, too_long: str, required: bool = False) -> str:
    value = container.get(key)
    if value is None or value == "":
        if required:
            raise MissingParameter(path(where, key))
        return ""
    if not isinstance(value, str):
        raise InvalidBatchParameterValue(f"{path(where, key)} must be a string")
    if len(value) > limit:
        raise InvalidBatchParameter(f"{path(where, key)} is longer than {limit} characters", too_long)
    return value


def choice(container: dict, key: str, where: str, options: tuple[str, ...]) -> str:
    value = container.get(key)
    if value is None:
        return options[0]
    if value not in options:
        raise InvalidBatchParameterValue(f"{path(where, key)} must be one of {', '.join(options)}, got {value!r}")
    return value


def tags(raw: Any, where: str, most: int | None = None) -> list:
    """Tags: a list of {"Key": str, "Value": str}. They are echoed and the Describe* filters
    match on them, so nothing else may be stored."""
    if raw is None:
        return []
    if not isinstance(raw, list) or (most is not None and len(raw) > most):
        raise InvalidBatchParameter(f"{where} must be a list of {f'at most {most} ' if most else ''}tags")
    for i, tag in enumerate(raw):
        if not (isinstance(tag, dict) and isinstance(tag.get("Key"), str) and isinstance(tag.get("Value"), str)):
            raise InvalidBatchParameter(f"{where}.{i} must be an object with a string Key and a string Value")
    return raw


def zone(placement: Any, region: str) -> str:
    placement = obj(placement, "Placement")
    name = placement.get("Zone")
    if not isinstance(name, str) or not name:
        raise MissingParameter("Placement.Zone")
    if not name.startswith(region + "-"):
        raise InvalidZone(f"Placement.Zone {name!r} is not in region {region!r}", "MismatchRegion")
    if name not in catalogue.zones():
        raise InvalidBatchParameterValue(f"Placement.Zone {name!r} is not an available zone", "UnavailableZone")
    return name


def instance_type(env_data: dict, where: str, zone: str | None = None) -> tuple[str, int, int, str]:
    """(type, cpu, mem, fault) of EnvData.InstanceType or the first of EnvData.InstanceTypes;
    with `zone`, the type must also be sold there."""
    name = env_data.get("InstanceType")
    if name is None:
        types = env_data.get("InstanceTypes") or []
        if not isinstance(types, list) or not types:
            raise InvalidBatchParameterValue(f"{path(where, 'EnvData')} needs InstanceType or InstanceTypes",
                                             "InstanceTypesEmpty")
        name = types[0]
    if isinstance(name, str) and name in FAULT_TYPES:  # JSON may give a list or an object here
        return name, 1, 1, FAULT_TYPES[name]
    found = catalogue.instance_type(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidBatchParameterValue(
            f"{path(where, 'EnvData')}.InstanceType {name!r} is not offered (see DescribeAvailableCvmInstanceTypes)",
            "InstanceType",
        )
    if zone is not None and not catalogue.available(name, zone):
        raise InvalidBatchParameterValue(f"{path(where, 'EnvData')}.InstanceType {name!r} is not sold in {zone}",
                                         "InstanceType")
    cpu, mem = found
    return name, cpu, mem, ""


def image(env_data: dict, where: str) -> None:
    image_id = env_data.get("ImageId")
    if image_id is not None and (not isinstance(image_id, str) or not image_id.startswith("img-")):
        raise InvalidBatchParameter(f"{path(where, 'EnvData')}.ImageId {image_id!r} is malformed", "ImageIdMalformed")


def env_vars(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InvalidBatchParameterValue(f"{where}.EnvVars must be a list")
    out = {}
    for i, var in enumerate(raw):
        if not isinstance(var, dict) or not isinstance(var.get("Name"), str):
            raise InvalidBatchParameterValue(f"{where}.EnvVars.{i} needs a Name")
        out[var["Name"]] = var.get("Value")
    for key, cast, what in ((SIM_EXIT_CODE, int, "integers"), (SIM_DURATION, float, "numbers of seconds >= 0"),
                            (SIM_FAIL_ATTEMPTS, int, "integers >= 0")):
        if key in out:
            try:
                values = [cast(v) for v in str(out[key]).split(",")]
                if cast is not int or key != SIM_EXIT_CODE:
                    if any(not v >= 0 for v in values):  # NaN too: it is no number of seconds
                        raise ValueError
            except ValueError:
                raise InvalidBatchParameterValue(
                    f"{where}.EnvVars {key} must be one or more comma-separated {what}, got {out[key]!r}"
                ) from None
    return out


def task(raw: Any, where: str, env_exists, zone: str | None = None) -> dict:
    """Check one Task; return it (the input object, for echoing back)."""
    spec = obj(raw, where)
    text(spec, "TaskName", where, MAX_TASK_NAME, "TaskNameTooLong", required=True)
    obj(spec.get("Application"), f"{where}.Application")
    has_env, has_anon = spec.get("EnvId") not in (None, ""), spec.get("ComputeEnv") is not None
    if has_env == has_anon:
        raise EnvIdAndComputeEnvConflict(f"{where} needs exactly one of EnvId and ComputeEnv")
    if has_env:
        env_exists(spec["EnvId"], f"{where}.EnvId")
    else:
        anonymous = obj(spec["ComputeEnv"], f"{where}.ComputeEnv")
        if (anonymous.get("EnvType") or "MANAGED") != "MANAGED":
            raise InvalidBatchParameterValue(f"{where}.ComputeEnv.EnvType must be MANAGED", "ComputeEnv")
        env_data = obj(anonymous.get("EnvData"), f"{where}.ComputeEnv.EnvData")
        instance_type(env_data, f"{where}.ComputeEnv", zone)
        image(env_data, f"{where}.ComputeEnv")
    integer(spec, "TaskInstanceNum", where, 1, 1, MAX_INSTANCES, "TaskInstanceNum")
    integer(spec, "MaxRetryCount", where, 0, 0, MAX_RETRY, "MaxRetryCount")
    integer(spec, "Timeout", where, 86400, 1, 10 ** 9)
    integer(spec, "MaxConcurrentNum", where, 0, 0, 10 ** 6)
    integer(spec, "ResourceMaxRetryCount", where, 0, 0, 100)
    choice(spec, "FailedAction", where, FAILED_ACTIONS)
    env_vars(spec.get("EnvVars"), where)
    return spec


def job(raw: Any, env_exists, zone: str | None = None) -> dict:
    spec = obj(raw, "Job")
    text(spec, "JobName", "Job", MAX_JOB_NAME, "JobNameTooLong", required=True)
    text(spec, "JobDescription", "Job", MAX_DESCRIPTION, "JobDescriptionTooLong")
    integer(spec, "Priority", "Job", 0, 0, 100)
    choice(spec, "TaskExecutionDependOn", "Job", DEPEND_ON)
    choice(spec, "StateIfCreateCvmFailed", "Job", CVM_FAILED_STATES)
    tags(spec.get("Tags"), "Job.Tags")
    tasks = spec.get("Tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InvalidBatchParameter("Job.Tasks must hold at least one task")
    names = set()
    for i, item in enumerate(tasks):
        task(item, f"Job.Tasks.{i}", env_exists, zone)
        if item["TaskName"] in names:
            raise InvalidBatchParameter(f"Job.Tasks.{i}.TaskName {item['TaskName']!r} is used twice", "TaskName")
        names.add(item["TaskName"])
    edges = dependences(spec.get("Dependences"), names)
    if _has_cycle(names, edges):
        raise InvalidBatchParameterValue("Job.Dependences form a cycle", "DependenceUnfeasible")
    return spec


def dependences(raw: Any, names: set[str]) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidBatchParameterValue("Job.Dependences must be a list")
    edges = []
    for i, dep in enumerate(raw):
        dep = obj(dep, f"Job.Dependences.{i}")
        start, end = dep.get("StartTask"), dep.get("EndTask")
        for key, value in (("StartTask", start), ("EndTask", end)):
            if value not in names:
                raise InvalidBatchParameterValue(
                    f"Job.Dependences.{i}.{key} {value!r} names no task of the job", "DependenceNotFoundTaskName"
                )
        if start == end:
            raise InvalidBatchParameterValue(f"Job.Dependences.{i} makes {start!r} depend on itself",
                                             "DependenceUnfeasible")
        edges.append((start, end))
    return edges


def _has_cycle(names: set[str], edges: list[tuple[str, str]]) -> bool:
    indegree = dict.fromkeys(names, 0)
    after: dict[str, list[str]] = {n: [] for n in names}
    for start, end in edges:
        after[start].append(end)
        indegree[end] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for nxt in after[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return seen != len(names)


def named_env(raw: Any, zone: str | None = None) -> dict:
    spec = obj(raw, "ComputeEnv")
    text(spec, "EnvName", "ComputeEnv", 60, "EnvNameTooLong", required=True)
    text(spec, "EnvDescription", "ComputeEnv", MAX_DESCRIPTION, "EnvDescriptionTooLong")
    if (spec.get("EnvType") or "MANAGED") != "MANAGED":
        raise InvalidBatchParameterValue("ComputeEnv.EnvType must be MANAGED", "ComputeEnv")
    env_data = obj(spec.get("EnvData"), "ComputeEnv.EnvData")
    instance_type(env_data, "ComputeEnv", zone)
    image(env_data, "ComputeEnv")
    integer(spec, "DesiredComputeNodeCount", "ComputeEnv", 0, 0, MAX_NODES)
    integer(spec, "ResourceMaxRetryCount", "ComputeEnv", 7, 0, 100)
    choice(spec, "ActionIfComputeNodeInactive", "ComputeEnv", ("RECREATE", "NOTHING"))
    tags(spec.get("Tags"), "ComputeEnv.Tags")
    return spec


def _id_checker(prefix: str, reason: str) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.startswith(prefix) or len(value) <= len(prefix):
            raise InvalidBatchParameter(f"{where} {value!r} is not a valid id ({prefix}...)", reason)
        return value
    return check


job_id_format = _id_checker("job-", "JobIdMalformed")
env_id_format = _id_checker("env-", "EnvIdMalformed")
node_id_format = _id_checker("node-", "ComputeNodeIdMalformed")
