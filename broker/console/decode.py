"""What a message body says: Base64 undone, JSON pretty-printed, Batch events as table rows.

Bodies are untrusted and arbitrary: this never raises, it only reports what it could make of
the body. Base64 is recognised only when it is strict, standard and padded, and decodes to
printable UTF-8, so plain words that happen to be valid Base64 ("test", "abcd") stay text.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# The Batch object's fields that identify what an event is about, in the order shown.
ID_FIELDS = ("JobId", "TaskName", "TaskInstanceIndex", "ComputeNodeId", "EnvId")
STATE_FIELDS = ("JobState", "TaskState", "TaskInstanceState", "ComputeNodeState")
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def _printable(text: str) -> bool:
    return all(c.isprintable() or c in _ALLOWED_CONTROLS for c in text)


def unbase64(body: str) -> str | None:
    """The text a Base64 body encodes, or None when the body is not Base64 of printable UTF-8."""
    compact = "".join(body.split())
    if len(compact) < 4 or len(compact) % 4:
        return None
    try:
        raw = base64.b64decode(compact, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text and _printable(text) else None


def parse_json(text: str) -> Any:
    """An object or array parsed from `text`, else None (a bare number or string is just text)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def event_row(event: dict) -> dict:
    """One Batch event as a row: name, time, the ids it concerns, state, exit code, vars."""
    batch = event.get("Batch") if isinstance(event.get("Batch"), dict) else {}
    ids = {k: batch[k] for k in ID_FIELDS if batch.get(k) not in (None, "")}
    state = next((batch[k] for k in STATE_FIELDS if batch.get(k)), "")
    raw_vars = event.get("EventVars") if isinstance(event.get("EventVars"), list) else []
    pairs = [(v.get("Name"), v.get("Value")) for v in raw_vars if isinstance(v, dict)]
    return {
        "name": str(event.get("EventName") or ""),
        "time": str(event.get("EventTime") or ""),
        "region": str(event.get("Region") or ""),
        "ids": {k: str(v) for k, v in ids.items()},
        "state": str(state),
        "exitCode": batch.get("ExitCode"),
        "reason": str(batch.get("StateReason") or ""),
        "vars": [{"name": str(n), "value": str(v if v is not None else "")} for n, v in pairs],
    }


def batch_events(value: Any) -> list[dict] | None:
    """Rows for a Batch notification body {"Events": [...]}, else None."""
    if not isinstance(value, dict) or not isinstance(value.get("Events"), list):
        return None
    events = [e for e in value["Events"] if isinstance(e, dict) and e.get("EventName")]
    return [event_row(e) for e in events] if events else None


def decode(body: str) -> dict:
    """{kind, text, json, events}: `kind` is one of text, json, base64, base64-json, batch-event;
    `text` the Base64-decoded text (None when not Base64); `json` pretty JSON or None; `events`
    Batch event rows or None."""
    decoded = unbase64(body)
    source = body if decoded is None else decoded
    value = parse_json(source)
    pretty = None if value is None else json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    events = batch_events(value)
    if events is not None:
        kind = "batch-event"
    elif decoded is not None:
        kind = "base64-json" if value is not None else "base64"
    else:
        kind = "json" if value is not None else "text"
    return {"kind": kind, "text": decoded, "json": pretty, "events": events}


def summary(body: str, limit: int = 160) -> dict:
    """What a list row shows: the kind, a short preview and, for Batch events, their names."""
    info = decode(body)
    if info["events"]:
        first = info["events"][0]
        label = " ".join([first["name"], *first["ids"].values()])
        preview = label if len(info["events"]) == 1 else f"{label} (+{len(info['events']) - 1} more)"
    else:
        text = info["text"] if info["text"] is not None else body
        preview = " ".join(text.split())
    if len(preview) > limit:
        preview = preview[: limit - 1] + "…"
    return {"kind": info["kind"], "preview": preview}
