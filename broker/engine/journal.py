"""The journal: every state change as a plain record, and the plain state they rebuild.

This is the vocabulary of the write-ahead log (design.md rule 4). The engine hands each record
to `Broker.journal` as it changes state; storage persists them without looking inside. To
recover, `replay` applies records to a plain state (the shape `Broker.dump` produces and the
snapshot holds), and `Broker.load` builds live objects from it.

Records are tuples whose first item names the change:

    qc name-key, dump-of-queue           qu key, settings, modified      qd key      qp key (purge)
    ms key, [[id, body, enqueued, visible_at (0 = now)], ...]            send
    mr key, [[id, dequeue_count, first_dequeue, visible_until], ...]     receive
    md key, [id, ...], kept                                              delete (kept for rewind)
    rw key, [id, ...]                                                    rewind: kept -> visible
    tc key, dump-of-topic   tu key, settings, modified   td key
    sc topic-key, sub-key, dump-of-subscription   su topic-key, sub-key, dump   sd topic-key, sub-key
    pp pending-key, [topic-key, sub-key, msg_id, body, tags, published, attempts]   a push waits
    pa pending-key, attempts                                             it failed once more
    ps pending-key                                                       it settled

and for the Batch simulator (shapes in batchsim/persist.py):

    bj job-id, job     bi job-id, task, index, instance     bjd job-id
    be env-id, env     bn env-id, node-id, node     bnd env-id, node-id     bed env-id
    bt template-id, template     btd template-id

Times are wall-clock seconds: on recovery an in-flight message whose visibility timeout passed
while the broker was down is simply visible again.
"""

from __future__ import annotations

from typing import Any

VERSION = 1


def empty_state() -> dict[str, Any]:
    return {"v": VERSION, "next_id": 0, "queues": {}, "topics": {}, "pending": {}, "batch": empty_batch()}


def empty_batch() -> dict[str, Any]:
    return {"jobs": {}, "envs": {}, "templates": {}}


def pending_key(topic_key: str, sub_key: str, msg_id: int) -> str:
    return f"{topic_key}/{sub_key}/{msg_id}"


def replay(state: dict[str, Any], records) -> dict[str, Any]:
    """Apply records, in order, to a plain state (modified in place and returned)."""
    queues, topics, pending = state["queues"], state["topics"], state["pending"]
    next_id = state["next_id"]
    for record in records:
        kind = record[0]
        if kind == "ms":
            q = queues.get(record[1])
            if q is not None:
                msgs = q["messages"]
                for mid, body, enqueued, visible_at in record[2]:
                    msgs[mid] = [body, enqueued, 0, 0, visible_at, False]
                    if mid >= next_id:
                        next_id = mid + 1
        elif kind == "mr":
            q = queues.get(record[1])
            if q is not None:
                msgs = q["messages"]
                for mid, count, first, until in record[2]:
                    m = msgs.get(mid)
                    if m is not None:
                        m[2], m[3], m[4] = count, first, until
        elif kind == "md":
            q = queues.get(record[1])
            if q is not None:
                msgs = q["messages"]
                for mid in record[2]:
                    if record[3]:
                        m = msgs.get(mid)
                        if m is not None:
                            m[4], m[5] = 0, True
                    else:
                        msgs.pop(mid, None)
        elif kind == "rw":
            q = queues.get(record[1])
            if q is not None:
                for mid in record[2]:
                    m = q["messages"].get(mid)
                    if m is not None:
                        m[4], m[5] = 0, False
        elif kind == "qc":
            queues[record[1]] = record[2]
        elif kind == "qu":
            q = queues.get(record[1])
            if q is not None:
                q["settings"], q["modified"] = record[2], record[3]
                if not record[2].get("rewindSeconds"):
                    q["messages"] = {k: m for k, m in q["messages"].items() if not m[5]}
        elif kind == "qd":
            queues.pop(record[1], None)
        elif kind == "qp":
            q = queues.get(record[1])
            if q is not None:
                q["messages"] = {}
        elif kind == "tc":
            topics[record[1]] = record[2]
        elif kind == "tu":
            t = topics.get(record[1])
            if t is not None:
                t["settings"], t["modified"] = record[2], record[3]
        elif kind == "td":
            topics.pop(record[1], None)
        elif kind in ("sc", "su"):
            t = topics.get(record[1])
            if t is not None:
                t["subs"][record[2]] = record[3]
        elif kind == "sd":
            t = topics.get(record[1])
            if t is not None:
                t["subs"].pop(record[2], None)
        elif kind == "pp":
            pending[record[1]] = record[2]
        elif kind == "pa":
            p = pending.get(record[1])
            if p is not None:
                p[6] = record[2]
        elif kind == "ps":
            pending.pop(record[1], None)
        elif kind[0] == "b":
            _replay_batch(state.setdefault("batch", empty_batch()), record)
        else:
            raise ValueError(f"unknown journal record {kind!r}")
    state["next_id"] = next_id
    return state


def _replay_batch(batch: dict[str, Any], record) -> None:
    kind, jobs, envs = record[0], batch["jobs"], batch["envs"]
    if kind == "bi":
        job = jobs.get(record[1])
        if job is not None:
            job["instances"][f"{record[2]}/{record[3]}"] = record[4]
    elif kind == "bn":
        env = envs.get(record[1])
        if env is not None:
            env["nodes"][record[2]] = record[3]
    elif kind == "bj":
        jobs[record[1]] = {"job": record[2], "instances": {}}
    elif kind == "bjd":
        jobs.pop(record[1], None)
    elif kind == "be":
        if record[1] in envs:
            envs[record[1]]["env"] = record[2]
        else:
            envs[record[1]] = {"env": record[2], "nodes": {}}
    elif kind == "bnd":
        env = envs.get(record[1])
        if env is not None:
            env["nodes"].pop(record[2], None)
    elif kind == "bed":
        envs.pop(record[1], None)
    elif kind == "bt":
        batch["templates"][record[1]] = record[2]
    elif kind == "btd":
        batch["templates"].pop(record[1], None)
    else:
        raise ValueError(f"unknown journal record {kind!r}")
