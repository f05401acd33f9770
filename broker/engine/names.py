"""Names, resource ids and paging, shared by queues, topics and subscriptions."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any, TypeVar

from ..errors import InvalidParameter

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_ID_ALPHABET = string.ascii_lowercase + string.digits

T = TypeVar("T")


def check_name(name: Any, error: type[InvalidParameter]) -> str:
    """CMQ names: 1-64 characters, a letter first, then letters, digits, '-' or '_'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise error(str(name))
    return name


def resource_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def page(registry: dict[str, T], search: str, offset: int, limit: int) -> tuple[int, list[T]]:
    """(number of all matches, one page of them): objects whose lower-case key contains `search`,
    ordered by name so that paging is stable."""
    needle = search.lower()
    matches = sorted((obj for key, obj in registry.items() if needle in key), key=lambda o: o.name.lower())
    return len(matches), matches[offset : offset + limit]
