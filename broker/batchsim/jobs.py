"""Jobs on the simulated Batch: submit, schedule, run attempts, terminate, retry, delete.

Part of `BatchSim` (see sim.py for the theory of operation). Every change of an instance's state
goes through `_enter`, which checks it against `states.INSTANCE`, emits the instance's event, and
derives the task's and then the job's state, emitting theirs: for one cause the events come out
instance, task, job.
"""

from __future__ import annotations

from typing import Any

from ..engine.names import resource_id
from ..errors import InvalidBatchParameterValue, ResourceInUse, ResourceNotFound, UnsupportedOperation
from . import notifications as notes
from . import states as S
from . import validate
from . import persist
from .model import Instance, Job, Node, Task, build_job, cancel_timer


class JobsMixin:
    # -- jobs -----------------------------------------------------------------------------

    def submit_job(self, placement: Any, raw_job: Any, region: str, client_token: str | None = None) -> Job:
        if client_token and client_token in self._tokens and self._tokens[client_token] in self.jobs:
            return self.jobs[self._tokens[client_token]]
        zone = validate.zone(placement, region)
        spec = validate.job(raw_job, lambda env_id, where: self.get_env(env_id, where), zone)
        raw_notes = spec.get("Notifications", spec.get("notifications"))
        notifications = notes.parse(raw_notes, notes.JOB_SCOPE, self.topic_exists, "Job")
        job = build_job(resource_id("job-"), spec, zone, region, self._now(), notifications)
        self.jobs[job.job_id] = job
        self._log(("bj", job.job_id, persist.job_record(job)))
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
        self._log(("bjd", job.job_id))

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
        cancel_timer(inst)
        inst.timer = self._after(self.settings.terminate, self._finish_termination, inst)

    def _finish_termination(self, inst: Instance) -> None:
        inst.terminating = False
        self._release(inst)
        inst.state_reason = "terminated by the user"
        inst.end_time = self._now()
        self._enter(inst, S.FAILED)
        self._kick()

    def _reset(self, inst: Instance) -> None:
        cancel_timer(inst)
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
        self._log(("bi", job.job_id, inst.task.name, inst.index, persist.instance_record(inst)))
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

