"""Decoding a CMQ API 2.0 request into parameters, and typed access to them.

The official SDK posts a form body with no Content-Type, so the raw body is parsed here (blank
values kept: they are signed). Parameter names are matched case-insensitively, since CMQ's own
SDKs disagree on the capitals (`ClearSUbscriptionFIlterTags`). Lists arrive as `name.1`,
`name.2`, ... (or from `.0`) and must be contiguous.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from ...errors import (
    DuplicateParameter,
    ListNotContiguous,
    MalformedRequest,
    MissingParameter,
    ParameterOutOfRange,
    ParameterWrongType,
    TooManyItems,
)

MAX_FIELDS = 1000
from ...engine.limits import MAX_BATCH  # noqa: E402  (re-exported: lists default to it)
_MISSING = object()


def decode_pairs(text: str) -> list[tuple[str, str]]:
    """Form-decode `text` (as parse_qsl with blank values kept, but only unquoting what needs
    it: most keys and many values have no escapes). Escapes must decode to UTF-8."""
    if not text:
        return []
    parts = text.split("&")
    if len(parts) > MAX_FIELDS:
        raise MalformedRequest(f"too many parameters: {len(parts)}, at most {MAX_FIELDS}")
    pairs = []
    try:
        for part in parts:
            if not part:
                continue
            key, _, value = part.partition("=")
            if "%" in key or "+" in key:
                key = unquote_plus(key, errors="strict")
            if "%" in value or "+" in value:
                value = unquote_plus(value, errors="strict")
            pairs.append((key, value))
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"request parameters are not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    return pairs


class Params:
    __slots__ = ("pairs", "_values")

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        values: dict[str, str] = {}
        for key, value in pairs:
            lower = key.lower()
            if lower in values:
                raise DuplicateParameter(key)
            values[lower] = value
        self._values = values

    @classmethod
    def parse(cls, text: str) -> "Params":
        """The parameters of a form-encoded request body or query string."""
        return cls(decode_pairs(text))

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def str(self, name: str, default=_MISSING) -> str:
        value = self._values.get(name.lower())
        if value is None:
            if default is _MISSING:
                raise MissingParameter(name)
            return default
        return value

    def int(self, name: str, default=_MISSING, lo: int | None = None, hi: int | None = None) -> int:
        raw = self._values.get(name.lower())
        if raw is None:
            if default is _MISSING:
                raise MissingParameter(name)
            return default
        digits = raw[1:] if raw[:1] == "-" else raw
        if not (digits.isdigit() and digits.isascii()) or len(digits) > 18:
            raise ParameterWrongType(name, f"{name} must be an integer, got {raw[:40]!r}")
        value = int(raw)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ParameterOutOfRange(name, f"{name} must be from {lo} to {hi}, got {value}")
        return value

    def optional_ints(self, names) -> dict[str, int]:
        """The given integer parameters that are present, by their canonical names."""
        return {name: self.int(name) for name in names if name.lower() in self._values}

    def list(self, name: str, required: bool = True, max_items: int = MAX_BATCH) -> list[str]:
        """`name.n` values in index order."""
        prefix = name.lower() + "."
        cut = len(prefix)
        items: dict[int, str] = {}
        for key, value in self._values.items():
            if key.startswith(prefix):
                index = key[cut:]
                if not (index.isdigit() and index.isascii()):
                    raise ParameterWrongType(name, f"{name}.{index[:20]} has an index that is not a number")
                items[int(index)] = value
        if not items:
            if required:
                raise MissingParameter(f"{name}.1")
            return []
        if len(items) > max_items:
            raise TooManyItems(name, f"{name} has {len(items)} items, at most {max_items} are allowed")
        first = min(items)
        if first not in (0, 1) or max(items) - first + 1 != len(items):
            raise ListNotContiguous(name, f"{name}.n indices must be contiguous from 0 or 1, got {sorted(items)}")
        return [items[i] for i in range(first, first + len(items))]
