"""The Batch simulator: jobs run on simulated compute nodes, and every state change becomes an event.

Theory of operation
-------------------
Nothing executes. Time moves through timers on the injected clock: a node boots after a delay,
an attempt "runs" for `BATCH_SIM_DURATION` seconds and "exits" with `BATCH_SIM_EXIT_CODE`. Every
change of state goes through one `_enter_*` function per kind, which checks the transition
against `states.py`, stamps times, and emits the event; task and job states are then derived
from their instances, so for one cause the events come out instance, task, job.

Scheduling is a pass over all live jobs, run soon after anything changes (`_kick`): SUBMITTED
instances move to PENDING or RUNNABLE, PENDING ones whose dependencies are met to RUNNABLE (or
FAILED if they can never be), and RUNNABLE ones, by priority, onto an idle RUNNING node of
their environment (EnvId) or onto a private node created for the attempt (ComputeEnv).

Failure injection: the reserved instance types in `validate.FAULT_TYPES` make node creation
fail (`SIM.CREATION_FAILED`) or a running node turn ABNORMAL (`SIM.ABNORMAL`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..engine import Broker
from ..engine.events import Events
from ..errors import BrokerError, ResourceNotFound
from .compute import ComputeMixin
from .events import EventPublisher
from .jobs import JobsMixin
from .model import Env, Job, Task, cancel_timer
from .templates import Templates
from . import persist, validate

log = logging.getLogger("broker.batch")


@dataclass(frozen=True)
class SimSettings:
    """Simulated delays in seconds (all multiplied by `time_scale`). Defaults show a whole
    event stream within seconds of a submit."""

    time_scale: float = 1.0
    node_create: float = 0.3  # CREATING → CREATED (or CREATION_FAILED)
    node_boot: float = 0.5  # CREATED → RUNNING
    node_delete: float = 0.3  # DELETING → gone
    node_abnormal_after: float = 1.0  # RUNNING → ABNORMAL for SIM.ABNORMAL nodes
    node_recreate: float = 1.0  # a failed or abnormal node of a RECREATE env is replaced after this
    instance_start: float = 0.1  # STARTING → RUNNING on a node that is already up
    run: float = 0.2  # an attempt's run time without BATCH_SIM_DURATION
    terminate: float = 0.1  # STARTING/RUNNING → FAILED on termination


class BatchSim(JobsMixin, ComputeMixin):
    def __init__(self, broker: Broker, settings: SimSettings = SimSettings(),
                 listener: Callable[[dict], None] | None = None):
        self.broker = broker
        self.clock = broker.clock
        self.settings = settings
        self.events = EventPublisher(broker, listener)
        self.jobs: dict[str, Job] = {}
        self.envs: dict[str, Env] = {}
        # Its own state changes, as records it owns (persist.py): the write-ahead log records them.
        self.records = Events()
        self.templates = Templates(self._log)
        self._tokens: dict[str, str] = {}  # ClientToken → id, so a retried create is not doubled
        self._pass = None  # the pending scheduling pass, if any
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------

    def _after(self, seconds: float, fn: Callable, *args):
        delay = max(0.0, seconds * self.settings.time_scale)
        return self.clock.call_at(self.clock.monotonic() + delay, lambda: self._run_safely(fn, *args))

    def _run_safely(self, fn: Callable, *args) -> None:
        if self._closed:
            return
        try:
            fn(*args)
        except Exception:  # a simulator bug must not take the broker down with it
            log.exception("batch simulator step %s failed", getattr(fn, "__name__", fn))

    def _log(self, record: tuple) -> None:
        """A state change, as a record (shapes in persist.py), to whoever records them."""
        if self.records.recording:
            self.records.emit(record)

    def dump(self) -> dict:
        return persist.dump(self)

    def load(self, data: dict) -> None:
        persist.load(self, data)

    def _kick(self) -> None:
        if self._pass is None and not self._closed:
            self._pass = self.clock.call_at(self.clock.monotonic(), lambda: self._run_safely(self._schedule))

    def _now(self) -> float:
        return self.clock.time()

    def close(self) -> None:
        """Stop every timer; the world freezes where it is."""
        self._closed = True
        if self._pass is not None:
            self._pass.cancel()
        for job in self.jobs.values():
            for inst in job.instances():
                cancel_timer(inst)
        for env in self.envs.values():
            for node in env.nodes.values():
                cancel_timer(node)

    def topic_exists(self, name: str) -> bool:
        try:
            self.broker.get_topic(name)
            return True
        except BrokerError:
            return False

    # -- lookups --------------------------------------------------------------------------

    def get_job(self, job_id: Any) -> Job:
        job = self.jobs.get(validate.job_id_format(job_id, "JobId"))
        if job is None:
            raise ResourceNotFound(f"job {job_id!r} does not exist", "Job")
        return job

    def get_task(self, job_id: Any, task_name: Any) -> Task:
        task = self.get_job(job_id).tasks.get(task_name) if isinstance(task_name, str) else None
        if task is None:
            raise ResourceNotFound(f"task {task_name!r} does not exist in job {job_id!r}", "Task")
        return task

    def get_env(self, env_id: Any, where: str = "EnvId") -> Env:
        env = self.envs.get(validate.env_id_format(env_id, where))
        if env is None:
            raise ResourceNotFound(f"compute environment {env_id!r} does not exist", "ComputeEnv")
        return env

