"""Typed reads of an API 3.0 JSON request body (a dict with PascalCase keys), and the body itself.

`decode_body` turns the raw body into that dict, refusing what is not a JSON object of
parameters (or nests deeper than MAX_DEPTH). Each getter names the field in its error
(`Job.Tasks.0.TaskName`), so the client can find it. Absent and JSON null mean the same thing,
as in the SDKs, which omit fields left as None. JSON booleans are not integers here, although
Python says they are. These are common to every API 3.0 service; a service keeps its own
conventions (Batch's Describe* listings) in its package.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import MalformedRequest, MissingParameter, ParameterOutOfRange, ParameterWrongType

MAX_DEPTH = 32  # levels of JSON objects and arrays in a request; Batch's own models use under 10

_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(raw: bytes) -> dict:
    """The request's parameters: a JSON object (an empty or blank body means `{}`)."""
    if not raw.strip():
        return {}  # what `{}` would mean; curl users often send nothing
    try:
        params = json.loads(raw, parse_constant=_no_constants)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # json.loads recurses once per level: "[[[[..." exhausts the stack
        raise MalformedRequest(f"request body is nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(params, dict):
        kind = _JSON_KINDS.get(type(params), "value")
        raise MalformedRequest(f"request body must be a JSON object of parameters, got a JSON {kind}")
    if _deeper_than(params, MAX_DEPTH):  # what is kept is echoed and journaled later, recursively too
        raise MalformedRequest(f"request body is nested deeper than {MAX_DEPTH} levels")
    return params


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


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

    A single Filter object is taken as a list of one: Batch's DescribeComputeEnvActivities documents
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

