"""Typed reads of an API 3.0 JSON request body (a dict with PascalCase keys).

Each getter names the field in its error (`Job.Tasks.0.TaskName`), so the client can find it.
Absent and JSON null mean the same thing, as in the SDK, which omits fields left as None.
JSON booleans are not integers here, although Python says they are.
"""

from __future__ import annotations

from typing import Any

from ...batchsim.query import select
from ...errors import InvalidBatchParameter, MissingParameter, ParameterOutOfRange, ParameterWrongType

_MISSING = object()


def _get(params: dict, key: str, required: bool, name: str) -> Any:
    value = params.get(key)
    if value is None:
        if required:
            raise MissingParameter(name)
        return _MISSING
    return value


def string(params: dict, key: str, *, required: bool = False, default: str | None = None,
           max_len: int | None = None, name: str | None = None) -> str | None:
    name = name or key
    value = _get(params, key, required, name)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise ParameterWrongType(name, f"{name} must be a string, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise ParameterOutOfRange(name, f"{name} is {len(value)} characters long, more than {max_len}")
    return value


def integer(params: dict, key: str, *, required: bool = False, default: int | None = None,
            lo: int | None = None, hi: int | None = None, name: str | None = None) -> int | None:
    name = name or key
    value = _get(params, key, required, name)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterWrongType(name, f"{name} must be an integer, got {type(value).__name__}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"from {lo} to {hi}" if lo is not None and hi is not None else (
            f"at least {lo}" if lo is not None else f"at most {hi}")
        raise ParameterOutOfRange(name, f"{name} must be {bounds}, got {value}")
    return value


def string_list(params: dict, key: str, *, required: bool = False, max_items: int | None = None,
                name: str | None = None) -> list[str] | None:
    name = name or key
    value = _get(params, key, required, name)
    if value is _MISSING:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParameterWrongType(name, f"{name} must be a list of strings")
    if max_items is not None and len(value) > max_items:
        raise ParameterOutOfRange(name, f"{name} has {len(value)} items, more than {max_items}")
    return value


def obj(params: dict, key: str, *, required: bool = False, name: str | None = None) -> dict | None:
    name = name or key
    value = _get(params, key, required, name)
    if value is _MISSING:
        return None
    if not isinstance(value, dict):
        raise ParameterWrongType(name, f"{name} must be an object, got {type(value).__name__}")
    return value


def filters(params: dict, key: str = "Filters") -> list[dict]:
    """`Filters` as a list of {"Name": str, "Values": [str, ...]}; absent means [].

    A single Filter object is taken as a list of one: DescribeComputeEnvActivities documents
    its Filters that way.
    """
    value = params.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ParameterWrongType(key, f"{key} must be a list of {{Name, Values}} objects")
    result = []
    for i, item in enumerate(value):
        where = f"{key}.{i}"
        if not isinstance(item, dict):
            raise ParameterWrongType(where, f"{where} must be an object with Name and Values")
        name = string(item, "Name", required=True, name=f"{where}.Name")
        values = string_list(item, "Values", required=True, name=f"{where}.Values")
        result.append({"Name": name, "Values": values})
    return result


def page(params: dict, default: int = 20, most: int = 100) -> tuple[int, int]:
    """(Offset, Limit) of a Describe* listing."""
    return integer(params, "Offset", default=0, lo=0), integer(params, "Limit", default=default, lo=1, hi=most)


def listing(params: dict, ids_key: str, by_id, items, fields, tags=None) -> list:
    """What a Describe* listing covers: the objects named by `ids_key`, or else every object
    matching `Filters`, newest first. Giving both is refused, as the cloud does."""
    ids = string_list(params, ids_key, max_items=100)
    given_filters = filters(params)
    if ids is not None and given_filters:
        raise InvalidBatchParameter(f"give {ids_key} or Filters, not both", "InvalidParameterCombination")
    if ids is not None:
        return [by_id(i) for i in ids]
    newest_first = sorted(items, key=lambda x: x.create_time, reverse=True)
    return select(newest_first, given_filters, fields, tags=tags)
