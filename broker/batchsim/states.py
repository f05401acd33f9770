"""Every state machine of the Batch simulator, as tables (design.md rule 8).

Job, task and task-instance states share one vocabulary. Only instances move by transitions;
tasks and jobs are derived from what they contain (`derive`). Nodes and environments have
tables of their own. `check` guards every move, so an illegal one is a loud bug, not a
silently wrong event stream.
"""

from __future__ import annotations

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING = "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"
SUCCEED, FAILED, FAILED_INTERRUPTED = "SUCCEED", "FAILED", "FAILED_INTERRUPTED"

# Task instance: from → allowed next states.
INSTANCE = {
    SUBMITTED: {PENDING, RUNNABLE, FAILED},
    PENDING: {RUNNABLE, FAILED},  # FAILED: its dependencies can never be met, or terminated
    RUNNABLE: {STARTING, FAILED},
    STARTING: {RUNNING, RUNNABLE, FAILED, FAILED_INTERRUPTED},  # RUNNABLE: a retry or a CVM that failed
    RUNNING: {SUCCEED, RUNNABLE, FAILED, FAILED_INTERRUPTED},  # RUNNABLE: a failed attempt with retries left
    FAILED_INTERRUPTED: {FAILED},  # only by termination
    FAILED: {SUBMITTED},  # RetryJobs
    SUCCEED: set(),
}
TERMINAL = frozenset({SUCCEED, FAILED, FAILED_INTERRUPTED})
# Non-terminal states by how far along they are: a task or job shows its most advanced one.
PROGRESS = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING)
ALL_STATES = PROGRESS + (SUCCEED, FAILED_INTERRUPTED, FAILED)


def derive(states: list[str], current: str) -> str:
    """The state of a task from its instances' states, or of a job from its tasks' states.
    Once RUNNING, it stays RUNNING until it ends: a retry or a task between two others does
    not make a job "start running" twice."""
    if all(s in TERMINAL for s in states):
        if all(s == SUCCEED for s in states):
            return SUCCEED
        return FAILED_INTERRUPTED if FAILED_INTERRUPTED in states else FAILED
    if current == RUNNING:
        return RUNNING
    return max((s for s in states if s not in TERMINAL), key=PROGRESS.index)


# Compute node.
N_SUBMITTED, CREATING, CREATED, CREATION_FAILED = "SUBMITTED", "CREATING", "CREATED", "CREATION_FAILED"
N_RUNNING, ABNORMAL, DELETING = "RUNNING", "ABNORMAL", "DELETING"
NODE = {
    N_SUBMITTED: {CREATING, DELETING},
    CREATING: {CREATED, CREATION_FAILED, DELETING},
    CREATED: {N_RUNNING, DELETING},
    CREATION_FAILED: {DELETING},
    N_RUNNING: {ABNORMAL, DELETING},
    ABNORMAL: {N_RUNNING, DELETING},
    DELETING: set(),  # then the node is removed
}
NODE_STATES = (N_SUBMITTED, CREATING, CREATION_FAILED, CREATED, N_RUNNING, DELETING, ABNORMAL)

# Compute environment (API 2017-03-12 shows no state field; NextAction says DELETING).
ENV_ACTIVE, ENV_DELETING = "ACTIVE", "DELETING"
ENV = {ENV_ACTIVE: {ENV_DELETING}, ENV_DELETING: set()}

# Event names by entity and the state whose entry fires them.
INSTANCE_EVENTS = {RUNNING: "TASK_INSTANCE_RUNNING", SUCCEED: "TASK_INSTANCE_SUCCEED",
                   FAILED: "TASK_INSTANCE_FAILED", FAILED_INTERRUPTED: "TASK_INSTANCE_FAILED_INTERRUPTED"}
TASK_EVENTS = {RUNNING: "TASK_RUNNING", SUCCEED: "TASK_SUCCEED",
               FAILED: "TASK_FAILED", FAILED_INTERRUPTED: "TASK_FAILED_INTERRUPTED"}
JOB_EVENTS = {RUNNING: "JOB_RUNNING", SUCCEED: "JOB_SUCCEED",
              FAILED: "JOB_FAILED", FAILED_INTERRUPTED: "JOB_FAILED_INTERRUPTED"}
NODE_EVENTS = {CREATED: "COMPUTE_NODE_CREATED", CREATION_FAILED: "COMPUTE_NODE_CREATION_FAILED",
               N_RUNNING: "COMPUTE_NODE_RUNNING", ABNORMAL: "COMPUTE_NODE_ABNORMAL", DELETING: "COMPUTE_NODE_DELETING"}
ENV_CREATED_EVENT, ENV_DELETED_EVENT = "COMPUTE_ENV_CREATED", "COMPUTE_ENV_DELETED"


class IllegalTransition(RuntimeError):
    pass


def check(table: dict[str, set[str]], kind: str, old: str, new: str) -> None:
    if new not in table[old]:
        raise IllegalTransition(f"{kind}: {old} -> {new} is not a transition")
