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
from ..engine.names import resource_id
from ..errors import (
    BrokerError,
    InvalidBatchParameter,
    InvalidBatchParameterValue,
    ResourceInUse,
    ResourceNotFound,
    UnsupportedOperation,
)
from . import notifications as notes
from . import states as S
from . import validate
from .events import EventPublisher
from .model import Activity, Env, Instance, Job, Node, Task
from .templates import Templates

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


def _id_checker(prefix: str, reason: str) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.startswith(prefix) or len(value) <= len(prefix):
            raise InvalidBatchParameter(f"{where} {value!r} is not a valid id ({prefix}...)", reason)
        return value
    return check


job_id_format = _id_checker("job-", "JobIdMalformed")
env_id_format = _id_checker("env-", "EnvIdMalformed")
node_id_format = _id_checker("node-", "ComputeNodeIdMalformed")


class BatchSim:
    def __init__(self, broker: Broker, settings: SimSettings = SimSettings(),
                 listener: Callable[[dict], None] | None = None):
        self.broker = broker
        self.clock = broker.clock
        self.settings = settings
        self.events = EventPublisher(broker, listener)
        self.jobs: dict[str, Job] = {}
        self.envs: dict[str, Env] = {}
        self.templates = Templates()
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
                _cancel(inst)
        for env in self.envs.values():
            for node in env.nodes.values():
                _cancel(node)

    def topic_exists(self, name: str) -> bool:
        try:
            self.broker.get_topic(name)
            return True
        except BrokerError:
            return False

    # -- lookups --------------------------------------------------------------------------

    def get_job(self, job_id: Any) -> Job:
        job = self.jobs.get(job_id_format(job_id, "JobId"))
        if job is None:
            raise ResourceNotFound(f"job {job_id!r} does not exist", "Job")
        return job

    def get_task(self, job_id: Any, task_name: Any) -> Task:
        task = self.get_job(job_id).tasks.get(task_name) if isinstance(task_name, str) else None
        if task is None:
            raise ResourceNotFound(f"task {task_name!r} does not exist in job {job_id!r}", "Task")
        return task

    def get_env(self, env_id: Any, where: str = "EnvId") -> Env:
        env = self.envs.get(env_id_format(env_id, where))
        if env is None:
            raise ResourceNotFound(f"compute environment {env_id!r} does not exist", "ComputeEnv")
        return env

    # -- jobs -----------------------------------------------------------------------------

    def submit_job(self, placement: Any, raw_job: Any, region: str, client_token: str | None = None) -> Job:
        if client_token and client_token in self._tokens and self._tokens[client_token] in self.jobs:
            return self.jobs[self._tokens[client_token]]
        zone = validate.zone(placement, region)
        spec = validate.job(raw_job, lambda env_id, where: self.get_env(env_id, where))
        raw_notes = spec.get("Notifications", spec.get("notifications"))
        notifications = notes.parse(raw_notes, notes.JOB_SCOPE, self.topic_exists, "Job")
        now = self._now()
        job = Job(resource_id("job-"), spec, zone, region, now, notifications,
                  name=spec["JobName"], priority=int(spec.get("Priority") or 0),
                  depend_on=spec.get("TaskExecutionDependOn") or "PRE_TASK_SUCCEED",
                  cvm_failed_state=spec.get("StateIfCreateCvmFailed") or "FAILED")
        for order, task_spec in enumerate(spec["Tasks"]):
            job.tasks[task_spec["TaskName"]] = Task(job, order, task_spec, now)
        for start, end in validate.dependences(spec.get("Dependences"), set(job.tasks)):
            job.tasks[end].upstream.append(job.tasks[start])
        self.jobs[job.job_id] = job
        if client_token:
            self._tokens[client_token] = job.job_id
        self._kick()
        return job

    def terminate_job(self, job_id: Any) -> None:
        job = self.get_job(job_id)
        if not job.started:
            raise UnsupportedOperation(f"job {job.job_id} is still SUBMITTED; terminate it once it is scheduled")
        if job.state == S.SUCCEED:
            return
        for inst in list(job.instances()):
            self._terminate_instance(inst)

    def terminate_instance(self, job_id: Any, task_name: Any, index: Any) -> None:
        task = self.get_task(job_id, task_name)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(task.instances):
            raise ResourceNotFound(f"task {task.name!r} has no instance {index!r}", "TaskInstance")
        self._terminate_instance(task.instances[index])

    def delete_job(self, job_id: Any) -> None:
        job = self.get_job(job_id)
        if job.state not in (S.SUCCEED, S.FAILED) or any(
            i.state not in (S.SUCCEED, S.FAILED) for i in job.instances()
        ):
            raise ResourceInUse(f"job {job.job_id} is {job.state}; only a finished job can be deleted", "Job")
        del self.jobs[job.job_id]

    def retry_jobs(self, job_ids: Any) -> None:
        if not isinstance(job_ids, list) or not job_ids:
            raise InvalidBatchParameterValue("JobIds must be a non-empty list")
        if len(job_ids) > 100:
            raise InvalidBatchParameterValue("JobIds holds more than 100 ids")
        jobs = [self.get_job(j) for j in job_ids]
        for job in jobs:
            if job.state != S.FAILED:
                raise UnsupportedOperation(f"job {job.job_id} is {job.state}; only FAILED jobs can be retried")
        for job in jobs:
            for inst in job.instances():
                if inst.state == S.FAILED:
                    self._reset(inst)
            job.end_time = None
            job.state_reason = ""
            for task in job.tasks.values():
                self._derive_task(task)
        self._kick()

    # -- the scheduling pass --------------------------------------------------------------

    def _schedule(self) -> None:
        self._pass = None
        runnable: list[Instance] = []
        for job in list(self.jobs.values()):
            if job.state in S.TERMINAL:
                continue
            job.started = True
            for task in job.tasks.values():
                for inst in task.instances:
                    if inst.state == S.SUBMITTED:
                        self._enter(inst, S.PENDING if task.upstream else S.RUNNABLE)
                if any(i.state == S.PENDING for i in task.instances):
                    readiness = self._dependency_readiness(task)
                    for inst in task.instances:
                        if inst.state != S.PENDING:
                            continue
                        if readiness == "ready":
                            self._enter(inst, S.RUNNABLE)
                        elif readiness == "never":
                            inst.state_reason = "a task it depends on did not end as required"
                            inst.end_time = self._now()
                            self._enter(inst, S.FAILED)
                runnable.extend(i for i in task.instances if i.state == S.RUNNABLE and not i.terminating
                                and not i.blocked)
        runnable.sort(key=lambda i: (-i.task.job.priority, i.task.job.create_time, i.task.order, i.index))
        for inst in runnable:
            task = inst.task
            if task.max_concurrent and sum(
                i.state in (S.STARTING, S.RUNNING) for i in task.instances
            ) >= task.max_concurrent:
                continue
            if task.env_id:
                env = self.envs.get(task.env_id)
                node = next((n for n in env.nodes.values() if n.available), None) if env else None
                if node is None:
                    continue
                node.busy_with = inst
                self._start_attempt(inst, node)
                inst.timer = self._after(self.settings.instance_start, self._begin_run, inst, node)
            else:
                itype, cpu, mem, fault = validate.instance_type(task.anon_env_data, "ComputeEnv")
                node = Node(resource_id("node-"), None, itype, cpu, mem, fault)
                node.owner = node.busy_with = inst
                self._start_attempt(inst, node)
                self._boot(node)

    def _dependency_readiness(self, task: Task) -> str:
        """"ready", "wait" or "never", by the job's TaskExecutionDependOn."""
        mode = task.job.depend_on
        verdict = "ready"
        for up in task.upstream:
            done = up.state in S.TERMINAL
            if mode == "PRE_TASK_SUCCEED":
                ok, impossible = up.state == S.SUCCEED, done and up.state != S.SUCCEED
            elif mode == "PRE_TASK_AT_LEAST_PARTLY_SUCCEED":
                some = any(i.state == S.SUCCEED for i in up.instances)
                ok, impossible = done and some, done and not some
            else:
                ok, impossible = done, False
            if impossible:
                return "never"
            if not ok:
                verdict = "wait"
        return verdict

    # -- one attempt of a task instance ---------------------------------------------------

    def _start_attempt(self, inst: Instance, node: Node) -> None:
        inst.attempts += 1
        inst.node = node
        inst.node_instance_id = node.instance_id
        inst.launch_time = self._now()
        inst.exit_code = None
        inst.state_reason = ""
        self._enter(inst, S.STARTING)

    def _begin_run(self, inst: Instance, node: Node) -> None:
        if inst.state != S.STARTING or inst.node is not node or inst.terminating:
            return
        inst.node_instance_id = node.instance_id
        inst.running_time = self._now()
        self._enter(inst, S.RUNNING)
        env = inst.task.env_vars
        code = validate.sim_value(env, validate.SIM_EXIT_CODE, inst.index, int, 0)
        duration = validate.sim_value(env, validate.SIM_DURATION, inst.index, float, self.settings.run)
        failing_attempts = validate.sim_value(env, validate.SIM_FAIL_ATTEMPTS, inst.index, int, None)
        if failing_attempts is not None:
            code = (code or 1) if inst.attempts <= failing_attempts else 0
        if duration > inst.task.timeout:
            inst.timer = self._after(inst.task.timeout, self._end_attempt, inst, -1,
                                     f"the attempt ran past the task Timeout of {inst.task.timeout:g}s")
        else:
            inst.timer = self._after(duration, self._end_attempt, inst, code, "" if code == 0 else
                                     f"the command exited with code {code}")

    def _end_attempt(self, inst: Instance, code: int | None, reason: str) -> None:
        """Finish the current attempt: success, a retry, or the final failure. The instance's
        event comes first, then its node is released (a private node is destroyed)."""
        if inst.state not in (S.STARTING, S.RUNNING):
            return
        inst.timer = None
        inst.exit_code = code
        inst.logs.append(self._log_line(inst, code, reason))
        task = inst.task
        keep_node = False
        if code == 0:
            inst.end_time = self._now()
            self._enter(inst, S.SUCCEED)
        elif inst.attempts <= task.max_retry:
            inst.state_reason = f"attempt {inst.attempts} failed ({reason}); retrying"
            inst.node_instance_id = ""
            self._enter(inst, S.RUNNABLE)
        else:
            inst.state_reason = reason
            inst.end_time = self._now()
            keep_node = task.failed_action in ("INTERRUPT", "FAST_INTERRUPT")  # kept until terminated
            self._enter(inst, S.FAILED_INTERRUPTED if keep_node else S.FAILED)
        if not keep_node:
            self._release(inst)
        self._kick()

    def _log_line(self, inst: Instance, code: int | None, reason: str) -> str:
        return (f"[batch-sim] job {inst.task.job.job_id} task {inst.task.name} instance {inst.index} "
                f"attempt {inst.attempts} on {inst.node.node_id if inst.node else '-'}: "
                f"exit code {code}{' (' + reason + ')' if reason else ''}\n")

    def _release(self, inst: Instance) -> None:
        """The attempt's node is done with it: a private node is destroyed, an env node freed."""
        node, inst.node = inst.node, None
        if node is None:
            return
        if node.busy_with is inst:
            node.busy_with = None
        if node.env is None:
            if node.state not in (S.DELETING,):
                self._delete_node(node)
        elif inst.task.restart_node and node.state == S.N_RUNNING:
            node.busy_with = inst  # a restart keeps it unavailable for a moment
            node.timer = self._after(self.settings.node_boot, self._restarted, node, inst)

    def _restarted(self, node: Node, inst: Instance) -> None:
        if node.busy_with is inst:
            node.busy_with = None
            self._kick()

    def _terminate_instance(self, inst: Instance) -> None:
        if inst.state in (S.SUCCEED, S.FAILED) or inst.terminating:
            return
        if inst.state in (S.SUBMITTED, S.PENDING, S.RUNNABLE):
            inst.state_reason = "terminated by the user"
            inst.end_time = self._now()
            self._enter(inst, S.FAILED)
            self._kick()
            return
        inst.terminating = True
        _cancel(inst)
        inst.timer = self._after(self.settings.terminate, self._finish_termination, inst)

    def _finish_termination(self, inst: Instance) -> None:
        inst.terminating = False
        self._release(inst)
        inst.state_reason = "terminated by the user"
        inst.end_time = self._now()
        self._enter(inst, S.FAILED)
        self._kick()

    def _reset(self, inst: Instance) -> None:
        _cancel(inst)
        inst.exit_code = None
        inst.state_reason = ""
        inst.node_instance_id = ""
        inst.launch_time = inst.running_time = inst.end_time = None
        inst.attempts = inst.cvm_failures = 0
        inst.blocked = False
        self._enter(inst, S.SUBMITTED)

    # -- state entry, events and derived states -------------------------------------------

    def _enter(self, inst: Instance, state: str) -> None:
        S.check(S.INSTANCE, "task instance", inst.state, state)
        inst.state = state
        job = inst.task.job
        if state in S.INSTANCE_EVENTS:
            self.events.emit(job.notifications, S.INSTANCE_EVENTS[state], inst.batch_object(), job.region)
        self._derive_task(inst.task)

    def _derive_task(self, task: Task) -> None:
        state = S.derive([i.state for i in task.instances], task.state)
        if state != task.state:
            task.state = state
            task.end_time = self._now() if state in S.TERMINAL else None
            if state in S.TASK_EVENTS:
                self.events.emit(task.job.notifications, S.TASK_EVENTS[state], task.batch_object(), task.job.region)
        self._derive_job(task.job)

    def _derive_job(self, job: Job) -> None:
        state = S.derive([t.state for t in job.tasks.values()], job.state)
        if state != job.state:
            job.state = state
            job.end_time = self._now() if state in S.TERMINAL else None
            if state in (S.FAILED, S.FAILED_INTERRUPTED):
                failed = [t.name for t in job.tasks.values() if t.state != S.SUCCEED]
                job.state_reason = f"task(s) not succeeded: {', '.join(failed)}"
            if state in S.JOB_EVENTS:
                self.events.emit(job.notifications, S.JOB_EVENTS[state], job.batch_object(), job.region)

    # -- compute nodes (shared by named environments and private attempt nodes) ------------

    def _node_notifications(self, node: Node) -> tuple[list, str]:
        if node.env is not None:
            return node.env.notifications, node.env.region
        job = node.owner.task.job
        return job.notifications, job.region

    def _enter_node(self, node: Node, state: str) -> None:
        S.check(S.NODE, "compute node", node.state, state)
        node.state = state
        if state in S.NODE_EVENTS:
            targets, region = self._node_notifications(node)
            self.events.emit(targets, S.NODE_EVENTS[state], node.batch_object(), region)

    def _boot(self, node: Node) -> None:
        self._enter_node(node, S.CREATING)
        node.timer = self._after(self.settings.node_create, self._created, node)

    def _created(self, node: Node) -> None:
        if node.state != S.CREATING:
            return
        if node.fault == "creation-failed":
            self._enter_node(node, S.CREATION_FAILED)
            self._finish_activity(node, "FAILED", "the CVM could not be created (SIM.CREATION_FAILED)")
            if node.env is None:
                self._private_node_failed(node)
            elif node.env.recreate:
                node.timer = self._after(self.settings.node_recreate, self._replace, node)
            return
        node.instance_id = resource_id("ins-")
        node.created_time = self._now()
        self._enter_node(node, S.CREATED)
        self._finish_activity(node, "SUCCEED", "")
        node.timer = self._after(self.settings.node_boot, self._running, node)

    def _running(self, node: Node) -> None:
        if node.state != S.CREATED:
            return
        self._enter_node(node, S.N_RUNNING)
        if node.fault == "abnormal":
            node.timer = self._after(self.settings.node_abnormal_after, self._abnormal, node)
        if node.owner is not None:
            self._begin_run(node.owner, node)
        else:
            self._kick()

    def _abnormal(self, node: Node) -> None:
        if node.state != S.N_RUNNING:
            return
        self._enter_node(node, S.ABNORMAL)
        inst = node.busy_with
        if inst is not None and inst.state in (S.STARTING, S.RUNNING) and not inst.terminating:
            _cancel(inst)
            self._end_attempt(inst, None, f"compute node {node.node_id} became ABNORMAL")
        if node.env is not None and node.env.recreate:
            node.timer = self._after(self.settings.node_recreate, self._replace, node)

    def _replace(self, node: Node) -> None:
        """RECREATE: a node that failed creation or went ABNORMAL is destroyed and replaced."""
        env = node.env
        if env is None or node.state not in (S.CREATION_FAILED, S.ABNORMAL) or env.state != S.ENV_ACTIVE:
            return
        self._delete_node(node, cause="RECREATE: replacing a failed node")
        if env.recreate_budget > 0:
            env.recreate_budget -= 1
            self._add_node(env, "RECREATE: replacing a failed node")

    def _private_node_failed(self, node: Node) -> None:
        inst = node.owner
        self._delete_node(node)
        if inst is None or inst.state != S.STARTING or inst.terminating:
            return
        inst.node = None
        inst.cvm_failures += 1
        if inst.cvm_failures <= inst.task.resource_max_retry:
            inst.state_reason = "CVM creation failed; trying again"
            inst.attempts -= 1  # a resource retry is not a run attempt
            self._enter(inst, S.RUNNABLE)
            self._kick()
        elif inst.task.job.cvm_failed_state == "RUNNABLE":
            inst.state_reason = "CVM creation failed; waiting (StateIfCreateCvmFailed=RUNNABLE)"
            inst.attempts -= 1
            inst.blocked = True  # no further CVM: it waits until terminated
            self._enter(inst, S.RUNNABLE)
        else:
            self._end_attempt(inst, None, "CVM creation failed")

    def _delete_node(self, node: Node, cause: str = "") -> None:
        _cancel(node)
        inst = node.busy_with if node.owner is None else None
        self._finish_activity(node, "FAILED", "the node was destroyed before it was up")
        self._enter_node(node, S.DELETING)
        if node.env is not None:
            node.env.activities.append(Activity(
                resource_id("act-"), node.node_id, node.env.env_id, "TERMINATE_COMPUTE_NODE",
                cause or "TerminateComputeNode", self._now(), instance_id=node.instance_id,
            ))
            node.activity = node.env.activities[-1]
        if inst is not None and inst.state in (S.STARTING, S.RUNNING) and not inst.terminating:
            node.busy_with = None
            _cancel(inst)
            self._end_attempt(inst, None, f"compute node {node.node_id} was destroyed")
        node.timer = self._after(self.settings.node_delete, self._gone, node)

    def _gone(self, node: Node) -> None:
        self._finish_activity(node, "SUCCEED", "")
        env = node.env
        if env is None:
            return
        env.nodes.pop(node.node_id, None)
        if env.state == S.ENV_DELETING and not env.nodes:
            self.envs.pop(env.env_id, None)
            self.events.emit(env.notifications, S.ENV_DELETED_EVENT, env.batch_object(), env.region)

    def _finish_activity(self, node: Node, state: str, reason: str) -> None:
        activity = node.activity
        if activity is not None and activity.state == "PROCESSING":
            activity.state, activity.reason, activity.end_time = state, reason, self._now()
            activity.instance_id = node.instance_id or activity.instance_id

    # -- named compute environments -------------------------------------------------------

    def create_env(self, raw_env: Any, placement: Any, region: str, client_token: str | None = None) -> Env:
        if client_token and self._tokens.get(client_token) in self.envs:
            return self.envs[self._tokens[client_token]]
        zone = validate.zone(placement, region)
        spec = validate.named_env(raw_env)
        raw_notes = spec.get("Notifications", spec.get("notifications"))
        notifications = notes.parse(raw_notes, notes.ENV_SCOPE, self.topic_exists, "ComputeEnv")
        itype, cpu, mem, fault = validate.instance_type(spec["EnvData"], "ComputeEnv")
        env = Env(resource_id("env-"), spec, zone, region, self._now(), notifications, itype, cpu, mem, fault)
        self.envs[env.env_id] = env
        if client_token:
            self._tokens[client_token] = env.env_id
        self.events.emit(env.notifications, S.ENV_CREATED_EVENT, env.batch_object(), region)
        for _ in range(env.desired):
            self._add_node(env, f"CreateComputeEnv: {env.desired} node(s)")
        return env

    def _add_node(self, env: Env, cause: str) -> Node:
        node = Node(resource_id("node-"), env, env.instance_type, env.cpu, env.mem, env.fault)
        env.nodes[node.node_id] = node
        node.activity = Activity(resource_id("act-"), node.node_id, env.env_id, "CREATE_COMPUTE_NODE",
                                 cause, self._now())
        env.activities.append(node.activity)
        self._boot(node)
        return node

    def modify_env(self, env_id: Any, desired: Any = None, name: Any = None, description: Any = None,
                   env_data: Any = None) -> None:
        env = self._active_env(env_id)
        if env_data is not None:
            data = validate.obj(env_data, "EnvData")
            itype, cpu, mem, fault = validate.instance_type(data, "")
        if name is not None:
            validate.text({"EnvName": name}, "EnvName", "", 60, "EnvNameTooLong")
        if description is not None:
            validate.text({"EnvDescription": description}, "EnvDescription", "", validate.MAX_DESCRIPTION,
                          "EnvDescriptionTooLong")
        victims: list[Node] = []
        if desired is not None:
            desired = validate.integer({"DesiredComputeNodeCount": desired}, "DesiredComputeNodeCount", "",
                                       0, 0, validate.MAX_NODES)
            shrink = env.desired - desired
            if shrink > 0:
                victims = self._scale_down_victims(env, shrink)
        # Everything is valid: apply.
        if env_data is not None:
            env.instance_type, env.cpu, env.mem, env.fault = itype, cpu, mem, fault
        if name is not None:
            env.name = name
        if description is not None:
            env.description = description
        if desired is not None:
            old, env.desired = env.desired, desired
            cause = f"ModifyComputeEnv: from {old} to {desired} node(s)"
            for node in victims:
                self._delete_node(node, cause)
            for _ in range(desired - old):
                self._add_node(env, cause)

    def _scale_down_victims(self, env: Env, count: int) -> list[Node]:
        rank = {S.ABNORMAL: 0, S.CREATED: 1, S.N_RUNNING: 2}
        eligible = [n for n in env.nodes.values() if n.state in rank]
        eligible.sort(key=lambda n: (rank[n.state], n.busy_with is not None))
        if len(eligible) < count:
            raise UnsupportedOperation(
                f"only {len(eligible)} node(s) are CREATED, RUNNING or ABNORMAL; cannot remove {count}",
                "NotEnoughComputeNodesToTerminate",
            )
        return eligible[:count]

    def terminate_nodes(self, env_id: Any, node_ids: Any) -> None:
        env = self._active_env(env_id)
        if not isinstance(node_ids, list) or not node_ids or len(node_ids) > 100:
            raise InvalidBatchParameterValue("ComputeNodeIds must be a list of 1 to 100 ids")
        nodes = []
        for node_id in node_ids:
            node = env.nodes.get(node_id_format(node_id, "ComputeNodeId"))
            if node is None:
                raise ResourceNotFound(f"compute node {node_id!r} is not in {env.env_id}", "ComputeNode")
            if node.state == S.DELETING:
                raise UnsupportedOperation(f"compute node {node_id} is already terminating", "ComputeNodeIsTerminating")
            if node.state not in (S.CREATED, S.CREATION_FAILED, S.N_RUNNING, S.ABNORMAL):
                raise UnsupportedOperation(f"compute node {node_id} is {node.state} and cannot be terminated yet",
                                           "ComputeNodeForbidTerminate")
            nodes.append(node)
        for node in dict.fromkeys(nodes):
            env.desired = max(0, env.desired - 1)  # so the node is not recreated
            self._delete_node(node, "TerminateComputeNode")

    def delete_env(self, env_id: Any) -> None:
        env = self.get_env(env_id)
        if env.state == S.ENV_DELETING:
            raise UnsupportedOperation(f"compute environment {env.env_id} is already being deleted",
                                       "ComputeEnvOperation")
        busy = [n.node_id for n in env.nodes.values() if n.busy_with is not None]
        if busy:
            raise UnsupportedOperation(f"node(s) {', '.join(busy)} are running task instances",
                                       "ComputeNodeForbidTerminate")
        S.check(S.ENV, "compute environment", env.state, S.ENV_DELETING)
        env.state = S.ENV_DELETING
        live = [n for n in env.nodes.values() if n.state != S.DELETING]
        for node in live:
            self._delete_node(node, "DeleteComputeEnv")
        if not env.nodes:
            self.envs.pop(env.env_id, None)
            self.events.emit(env.notifications, S.ENV_DELETED_EVENT, env.batch_object(), env.region)

    def _active_env(self, env_id: Any) -> Env:
        env = self.get_env(env_id)
        if env.state != S.ENV_ACTIVE:
            raise UnsupportedOperation(f"compute environment {env.env_id} is being deleted", "ComputeEnvOperation")
        return env


def _cancel(entity: Instance | Node) -> None:
    if entity.timer is not None:
        entity.timer.cancel()
        entity.timer = None
