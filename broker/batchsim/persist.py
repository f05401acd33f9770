"""Batch state as plain data: the simulator's own log records, their replay, and its snapshot part.

The simulator owns its records (storage only frames and stores them). Each is a tuple:

    bj job-id, job     bi job-id, task, index, instance     bjd job-id
    be env-id, env     bn env-id, node-id, node     bnd env-id, node-id     bed env-id
    bt template-id, template     btd template-id

replayed by `REPLAY` onto the "batch" part of the snapshot ({"jobs", "envs", "templates"}),
which `dump` writes and `load` reads. `BatchPart` plugs all of it into storage/recovery.py.

What a restart does to the simulated world (the broker was down, so nothing "ran" meanwhile):
- finished jobs, and instances that were waiting (SUBMITTED, PENDING, RUNNABLE), come back as
  they were; the scheduler picks the waiting ones up again;
- an instance that was STARTING or RUNNING has lost its attempt: it fails with StateReason
  "the broker restarted during this attempt" and is retried if MaxRetryCount allows, exactly as
  if its node had been lost; a FAILED_INTERRUPTED instance stays so until terminated;
- environments come back with their desired count; nodes that were up come back RUNNING and
  idle, nodes still booting boot again, nodes being deleted are gone; the private node of an
  anonymous-environment attempt does not come back (its attempt failed as above);
- compute environment activities and task logs are not kept.
"""

from __future__ import annotations

from typing import Any

from . import states as S
from .model import Env, Instance, Job, Node, build_job
from .notifications import Notification
from .templates import Template


def notifications_out(items: list[Notification]) -> list:
    return [[n.topic, n.events] for n in items]


def notifications_in(items: list) -> list[Notification]:
    return [Notification(topic, events) for topic, events in items]


def job_record(job: Job) -> dict:
    return {"id": job.job_id, "spec": job.spec, "zone": job.zone, "region": job.region,
            "created": job.create_time, "notes": notifications_out(job.notifications)}


def instance_record(inst: Instance) -> list:
    return [inst.state, inst.exit_code, inst.state_reason, inst.node_instance_id, inst.create_time,
            inst.launch_time, inst.running_time, inst.end_time, inst.attempts, inst.cvm_failures, inst.blocked]


def env_record(env: Env) -> dict:
    return {"id": env.env_id, "spec": env.spec, "zone": env.zone, "region": env.region, "created": env.create_time,
            "notes": notifications_out(env.notifications), "type": [env.instance_type, env.cpu, env.mem, env.fault],
            "desired": env.desired, "name": env.name, "description": env.description,
            "budget": env.recreate_budget, "state": env.state}


def node_record(node: Node) -> list:
    return [node.state, node.instance_id, node.created_time, node.instance_type, node.cpu, node.mem, node.fault]


def dump(sim) -> dict[str, Any]:
    return {
        "jobs": {
            job_id: {"job": job_record(job),
                     "instances": {f"{i.task.name}/{i.index}": instance_record(i) for i in job.instances()}}
            for job_id, job in sim.jobs.items()
        },
        "envs": {
            env_id: {"env": env_record(env),
                     "nodes": {n.node_id: node_record(n) for n in env.nodes.values()}}
            for env_id, env in sim.envs.items()
        },
        "templates": {t.template_id: t.record() for t in sim.templates.items.values()},
    }


def load(sim, data: dict[str, Any]) -> None:
    """Rebuild jobs, environments and templates (see the module docstring for the rules)."""
    for d in data.get("templates", {}).values():
        sim.templates.items[d["id"]] = Template(d["id"], d["name"], d["info"], d["description"], d["tags"],
                                                d["created"])
    for entry in data.get("envs", {}).values():
        d = entry["env"]
        itype, cpu, mem, fault = d["type"]
        env = Env(d["id"], d["spec"], d["zone"], d["region"], d["created"], notifications_in(d["notes"]),
                  itype, cpu, mem, fault)
        env.desired, env.name, env.description, env.recreate_budget = d["desired"], d["name"], d["description"], \
            d["budget"]
        env.state = d["state"]
        sim.envs[env.env_id] = env
        for node_id, (state, instance_id, created, ntype, ncpu, nmem, nfault) in entry["nodes"].items():
            if state == S.DELETING:
                continue
            node = Node(node_id, env, ntype, ncpu, nmem, nfault)
            node.instance_id, node.created_time = instance_id, created
            env.nodes[node_id] = node
            if state in (S.CREATED, S.N_RUNNING):
                node.state = S.N_RUNNING
                if nfault == "abnormal":
                    node.timer = sim._after(sim.settings.node_abnormal_after, sim._abnormal, node)
            elif state in (S.N_SUBMITTED, S.CREATING):
                sim._boot(node)
            else:  # CREATION_FAILED, ABNORMAL: as they were, and replaced in due course
                node.state = state
                if env.recreate and env.state == S.ENV_ACTIVE:
                    node.timer = sim._after(sim.settings.node_recreate, sim._replace, node)
        if env.state == S.ENV_DELETING:
            for node in list(env.nodes.values()):  # finish the deletion that was under way
                sim._delete_node(node, "DeleteComputeEnv")
            if not env.nodes:
                sim._remove_env(env)
    for entry in data.get("jobs", {}).values():
        d = entry["job"]
        job = build_job(d["id"], d["spec"], d["zone"], d["region"], d["created"], notifications_in(d["notes"]))
        job.started = True
        lost = []
        for key, record in entry["instances"].items():
            task_name, index = key.rsplit("/", 1)
            inst = job.tasks[task_name].instances[int(index)]
            (inst.state, inst.exit_code, inst.state_reason, inst.node_instance_id, inst.create_time,
             inst.launch_time, inst.running_time, inst.end_time, inst.attempts, inst.cvm_failures,
             inst.blocked) = record
            if inst.state in (S.STARTING, S.RUNNING):
                lost.append(inst)
        for task in job.tasks.values():  # derived, as always; "started" ones show RUNNING
            started = any(i.attempts for i in task.instances)
            task.state = S.derive([i.state for i in task.instances], S.RUNNING if started else S.SUBMITTED)
            ends = [i.end_time for i in task.instances if i.end_time]
            task.end_time = max(ends) if task.state in S.TERMINAL and ends else None
        started = any(i.attempts for i in job.instances())
        job.state = S.derive([t.state for t in job.tasks.values()], S.RUNNING if started else S.SUBMITTED)
        ends = [t.end_time for t in job.tasks.values() if t.end_time]
        job.end_time = max(ends) if job.state in S.TERMINAL and ends else None
        sim.jobs[job.job_id] = job
        for inst in lost:
            sim._end_attempt(inst, None, "the broker restarted during this attempt")
    sim._kick()


# -- records and their replay -------------------------------------------------------------------

def empty() -> dict[str, Any]:
    return {"jobs": {}, "envs": {}, "templates": {}}


def _instance(batch: dict, r: tuple) -> None:
    job = batch["jobs"].get(r[1])
    if job is not None:
        job["instances"][f"{r[2]}/{r[3]}"] = r[4]


def _node(batch: dict, r: tuple) -> None:
    env = batch["envs"].get(r[1])
    if env is not None:
        env["nodes"][r[2]] = r[3]


def _env(batch: dict, r: tuple) -> None:
    envs = batch["envs"]
    if r[1] in envs:
        envs[r[1]]["env"] = r[2]
    else:
        envs[r[1]] = {"env": r[2], "nodes": {}}


def _node_deleted(batch: dict, r: tuple) -> None:
    env = batch["envs"].get(r[1])
    if env is not None:
        env["nodes"].pop(r[2], None)


REPLAY = {
    "bi": _instance,
    "bn": _node,
    "bj": lambda batch, r: batch["jobs"].__setitem__(r[1], {"job": r[2], "instances": {}}),
    "bjd": lambda batch, r: batch["jobs"].pop(r[1], None),
    "be": _env,
    "bnd": _node_deleted,
    "bed": lambda batch, r: batch["envs"].pop(r[1], None),
    "bt": lambda batch, r: batch["templates"].__setitem__(r[1], r[2]),
    "btd": lambda batch, r: batch["templates"].pop(r[1], None),
}


class BatchPart:
    """The simulator as a part of the durable state (see `Part` in storage/recovery.py): its
    records, their replay onto the snapshot's "batch" entry, and loading once the loop runs."""

    key = "batch"
    kinds = tuple(REPLAY)
    load_at_start = True  # its timers need the running event loop

    def __init__(self, sim) -> None:
        self.sim = sim

    def events(self):
        return self.sim.records

    def empty(self) -> dict[str, Any]:
        return empty()

    def encode(self, record: tuple) -> tuple:
        return record  # already a record

    def replay(self, state: dict[str, Any], record: tuple) -> None:
        REPLAY[record[0]](state, record)

    def dump(self) -> dict[str, Any]:
        return dump(self.sim)

    def load(self, state: dict[str, Any]) -> None:
        if state:
            load(self.sim, state)
