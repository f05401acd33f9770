"""Batch event timelines for the job and environment pages.

The simulator hands every event it builds to one listener (batchsim/events.py), whether or
not a notification sends it to a topic; the console keeps the latest ones per job and per
environment, so a job's page shows its whole story even when nobody subscribed to it. Memory is
bounded on both axes; the timelines live in memory only and start empty after a restart.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from ..batchsim import BatchSim
from .decode import event_row

MAX_EVENTS = 500  # per job or environment: a long retrying job keeps its latest events
MAX_SUBJECTS = 2000  # jobs and environments remembered; the least recently active go first


class Timeline:
    def __init__(self, sim: BatchSim):
        self._sim = sim
        self._rows: OrderedDict[str, deque[dict]] = OrderedDict()
        self._env_topics: dict[str, list] = {}  # an environment's notifications outlive it by one event
        self._seq = 0

    def attach(self) -> None:
        """Listen to the simulator's events (beside whoever else listens: tests may)."""
        self._sim.events.add_listener(self.record)

    def record(self, event: dict[str, Any]) -> None:
        row = event_row(event)
        self._seq += 1
        row["seq"] = self._seq
        batch = event.get("Batch") or {}
        job_id, env_id = batch.get("JobId") or "", batch.get("EnvId") or ""
        if job_id:
            job = self._sim.jobs.get(job_id)
            row["topics"] = self._topics(job.notifications if job else [], row["name"])
            self._add(job_id, row)
        if env_id:
            env = self._sim.envs.get(env_id)
            if env is not None:
                self._env_topics[env_id] = env.notifications
            notes = self._env_topics.get(env_id, [])
            if env is None:
                self._env_topics.pop(env_id, None)  # COMPUTE_ENV_DELETED: nothing follows
            self._add(env_id, {**row, "topics": self._topics(notes, row["name"])})

    def rows(self, subject: str) -> list[dict]:
        return list(self._rows.get(subject, ()))

    @staticmethod
    def _topics(notifications: list, name: str) -> list[str]:
        return [n.topic for n in notifications if name in n.events]

    def _add(self, subject: str, row: dict) -> None:
        rows = self._rows.get(subject)
        if rows is None:
            rows = self._rows[subject] = deque(maxlen=MAX_EVENTS)
            while len(self._rows) > MAX_SUBJECTS:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(subject)
        rows.append(row)
