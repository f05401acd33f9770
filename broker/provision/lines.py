"""Where each key of a TOML file is written, so an error can name its line.

tomllib returns plain values with no positions, so the text is scanned a second time (after
tomllib accepted it, so it is known to be well formed). Only lines that begin a key/value pair or
a table header count; the scanner follows strings, comments and brackets just far enough to
know when a value spans several lines and its inner lines must be skipped.

Positions are recorded under the same paths as the parsed data, with array-of-tables indices:
the second `[[queue]]` header is ("queue", 1), its `name = ...` line ("queue", 1, "name"), and
`[[compute_env.Notifications]]` under the first env ("compute_env", 0, "Notifications", 0).
`find` answers with the line of the longest recorded prefix of a path, so a key inside an inline
table resolves to the line its outer key is on.
"""

from __future__ import annotations

import json
import re

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})(?:\s*\.\s*(?:{_BARE}|{_BASIC}|{_LITERAL}))*"
_PART = re.compile(rf"{_BARE}|{_BASIC}|{_LITERAL}")
_ARRAY_HEADER = re.compile(rf"\[\[\s*({_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\[\s*({_KEY})\s*\]")
_KEY_LINE = re.compile(rf"({_KEY})\s*=")


def _parts(key: str) -> list[str]:
    out = []
    for part in _PART.findall(key):
        if part.startswith('"'):
            out.append(json.loads(part))  # TOML basic-string escapes are a subset of JSON's, near enough
        elif part.startswith("'"):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


class _Scanner:
    """Follows the lexical state across lines: open brackets, and an open multi-line string."""

    def __init__(self) -> None:
        self.depth = 0
        self.open_string = ""  # '"""' or "'''" while inside a multi-line string

    @property
    def at_statement(self) -> bool:
        return self.depth == 0 and not self.open_string

    def feed(self, line: str, i: int = 0) -> None:
        n = len(line)
        while i < n:
            if self.open_string:
                end = line.find(self.open_string, i)
                if end < 0:
                    return
                i = end + 3
                while i < n and line[i] == self.open_string[0]:  # up to two quotes may close with it
                    i += 1
                self.open_string = ""
                continue
            c = line[i]
            if c == "#":
                return
            if line.startswith('"""', i) or line.startswith("'''", i):
                self.open_string = line[i:i + 3]
                i += 3
            elif c == '"':
                i += 1
                while i < n and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
            elif c == "'":
                end = line.find("'", i + 1)
                i = n if end < 0 else end + 1
            else:
                if c in "[{":
                    self.depth += 1
                elif c in "]}":
                    self.depth -= 1
                i += 1


class KeyLines:
    def __init__(self, text: str):
        self._entries: list[tuple[tuple, int]] = []
        self.last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        arrays: dict[tuple, int] = {}  # array-of-tables path → how many elements so far
        table: tuple = ()
        scanner = _Scanner()
        for number, line in enumerate(text.splitlines(), 1):
            if not scanner.at_statement:
                scanner.feed(line)
                continue
            stripped = line.lstrip()
            start = len(line) - len(stripped)
            if m := _ARRAY_HEADER.match(stripped):
                table = self._resolve(_parts(m.group(1)), arrays, new_element=True)
                self._entries.append((table, number))
                scanner.feed(line, start + m.end())
            elif m := _TABLE_HEADER.match(stripped):
                table = self._resolve(_parts(m.group(1)), arrays, new_element=False)
                self._entries.append((table, number))
                scanner.feed(line, start + m.end())
            elif m := _KEY_LINE.match(stripped):
                self._entries.append((table + tuple(_parts(m.group(1))), number))
                scanner.feed(line, start + m.end())

    @staticmethod
    def _resolve(parts: list[str], arrays: dict[tuple, int], new_element: bool) -> tuple:
        """A header's path with indices: each array of tables on the way means its latest element."""
        path: list = []
        for i, part in enumerate(parts):
            path.append(part)
            key = tuple(path)
            if new_element and i == len(parts) - 1:
                arrays[key] = arrays.get(key, 0) + 1
                path.append(arrays[key] - 1)
            elif key in arrays:
                path.append(arrays[key] - 1)
        return tuple(path)

    def find(self, path: tuple) -> int | None:
        """The line of `path`, or of the longest prefix of it that was written down."""
        best, best_len = None, 0
        for entry, number in self._entries:
            if len(entry) > best_len and path[:len(entry)] == entry:
                best, best_len = number, len(entry)
        return best

    def first(self, prefix: tuple) -> int | None:
        """The first line of anything under `prefix` (a table's first header, say)."""
        return next((number for entry, number in self._entries if entry[:len(prefix)] == prefix), None)
