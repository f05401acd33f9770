"""Compute nodes and named compute environments of the simulated Batch.

Part of `BatchSim` (see sim.py). Nodes serve both named environments (EnvId) and, one per
attempt, tasks with an anonymous ComputeEnv; node events go to the environment's notifications
or, for a private node, to its job's. Every node change goes through `_enter_node`, checked
against `states.NODE`.
"""

from __future__ import annotations

from typing import Any

from ..engine.names import resource_id
from ..errors import InvalidBatchParameterValue, ResourceNotFound, UnsupportedOperation
from . import notifications as notes
from . import persist
from . import states as S
from . import validate
from .model import Activity, Env, Node, cancel_timer


class ComputeMixin:
    # -- compute nodes (shared by named environments and private attempt nodes) ------------

    def _node_notifications(self, node: Node) -> tuple[list, str]:
        if node.env is not None:
            return node.env.notifications, node.env.region
        job = node.owner.task.job
        return job.notifications, job.region

    def _enter_node(self, node: Node, state: str) -> None:
        S.check(S.NODE, "compute node", node.state, state)
        node.state = state
        if node.env is not None:
            self._log(("bn", node.env.env_id, node.node_id, persist.node_record(node)))
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
            cancel_timer(inst)
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
        """The private node of an attempt could not be created. The instance's events come
        first, then the node is destroyed (by `_release`)."""
        inst = node.owner
        if inst is None or inst.state != S.STARTING:
            self._delete_node(node)
            return
        if inst.terminating:
            return  # the termination under way releases the node
        inst.cvm_failures += 1
        if inst.cvm_failures <= inst.task.resource_max_retry:
            inst.state_reason = "CVM creation failed; trying again"
            inst.attempts -= 1  # a resource retry is not a run attempt
            self._enter(inst, S.RUNNABLE)
            self._release(inst)
            self._kick()
        elif inst.task.job.cvm_failed_state == "RUNNABLE":
            inst.state_reason = "CVM creation failed; waiting (StateIfCreateCvmFailed=RUNNABLE)"
            inst.attempts -= 1
            inst.blocked = True  # no further CVM: it waits until terminated
            self._enter(inst, S.RUNNABLE)
            self._release(inst)
        else:
            self._end_attempt(inst, None, "CVM creation failed")

    def _delete_node(self, node: Node, cause: str = "") -> None:
        cancel_timer(node)
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
            cancel_timer(inst)
            self._end_attempt(inst, None, f"compute node {node.node_id} was destroyed")
        node.timer = self._after(self.settings.node_delete, self._gone, node)

    def _gone(self, node: Node) -> None:
        self._finish_activity(node, "SUCCEED", "")
        env = node.env
        if env is None:
            return
        env.nodes.pop(node.node_id, None)
        self._log(("bnd", env.env_id, node.node_id))
        if env.state == S.ENV_DELETING and not env.nodes:
            self._remove_env(env)

    def _remove_env(self, env: Env) -> None:
        self.envs.pop(env.env_id, None)
        self._log(("bed", env.env_id))
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
        spec = validate.named_env(raw_env, zone)
        raw_notes = spec.get("Notifications", spec.get("notifications"))
        notifications = notes.parse(raw_notes, notes.ENV_SCOPE, self.topic_exists, "ComputeEnv")
        itype, cpu, mem, fault = validate.instance_type(spec["EnvData"], "ComputeEnv")
        env = Env(resource_id("env-"), spec, zone, region, self._now(), notifications, itype, cpu, mem, fault)
        self.envs[env.env_id] = env
        if client_token:
            self._tokens[client_token] = env.env_id
        self._log_env(env)
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
        self._log_env(env)

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
            node = env.nodes.get(validate.node_id_format(node_id, "ComputeNodeId"))
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
        self._log_env(env)

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
        self._log_env(env)
        live = [n for n in env.nodes.values() if n.state != S.DELETING]
        for node in live:
            self._delete_node(node, "DeleteComputeEnv")
        if not env.nodes:
            self._remove_env(env)

    def _log_env(self, env: Env) -> None:
        self._log(("be", env.env_id, persist.env_record(env)))

    def _active_env(self, env_id: Any) -> Env:
        env = self.get_env(env_id)
        if env.state != S.ENV_ACTIVE:
            raise UnsupportedOperation(f"compute environment {env.env_id} is being deleted", "ComputeEnvOperation")
        return env


