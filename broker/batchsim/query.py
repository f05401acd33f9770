"""Filters and paging for the Describe* listings: `Filters` = [{Name, Values}], all must match,
one of a filter's Values is enough. `tag-key`, `tag-value` and `tag:<key>` look at `Tags`."""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from ..errors import InvalidFilter

T = TypeVar("T")
Fields = dict[str, Callable[[Any], Any]]


def _tag_values(tags: list, want: str, key: str | None = None) -> list[str]:
    out = []
    for tag in tags or []:
        if not isinstance(tag, dict):
            continue
        if want == "key":
            out.append(tag.get("Key"))
        elif key is None or tag.get("Key") == key:
            out.append(tag.get("Value"))
    return out


def select(items: Iterable[T], filters: list[dict], fields: Fields, tags: Callable[[T], list] | None = None) -> list[T]:
    checks = []
    for f in filters:
        name, values = f["Name"], set(f["Values"])
        if name in fields:
            get = fields[name]
            checks.append(lambda item, get=get, values=values: str(get(item)) in values)
        elif tags is not None and name == "tag-key":
            checks.append(lambda item, values=values: bool(values & set(_tag_values(tags(item), "key"))))
        elif tags is not None and name == "tag-value":
            checks.append(lambda item, values=values: bool(values & set(_tag_values(tags(item), "value"))))
        elif tags is not None and name.startswith("tag:"):
            key = name[4:]
            checks.append(lambda item, key=key, values=values: bool(values & set(_tag_values(tags(item), "value", key))))
        else:
            known = ", ".join([*fields, *(["tag-key", "tag-value", "tag:<key>"] if tags else [])])
            raise InvalidFilter(f"filter {name!r} is not supported here; use one of {known}")
    return [item for item in items if all(check(item) for check in checks)]
