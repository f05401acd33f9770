"""Compute environment actions: Create/Describe/Modify/DeleteComputeEnv, their create infos and
activities, and TerminateComputeNode(s)."""

from __future__ import annotations

from ....batchsim import BatchSim
from ....batchsim.query import select
from ....batchsim.views import activity_view, env_create_info, env_view, node_view
from ....pipeline import Action, Call
from .. import params as p
from .listing import listing

ENV_FILTERS = {
    "zone": lambda e: e.zone,
    "env-id": lambda e: e.env_id,
    "env-name": lambda e: e.name,
    "resource-type": lambda e: "CVM",
}


async def create_compute_env(sim: BatchSim, params: dict, call: Call) -> dict:
    token = p.string(params, "ClientToken", max_len=64)
    env = sim.create_env(params.get("ComputeEnv"), params.get("Placement"), call.region, token)
    return {"EnvId": env.env_id}


async def describe_compute_env(sim: BatchSim, params: dict, call: Call) -> dict:
    env = sim.get_env(p.string(params, "EnvId", required=True))
    return {**env_view(env), "ComputeNodeSet": [node_view(n) for n in env.nodes.values()]}


def _envs(sim: BatchSim, params: dict) -> list:
    return listing(params, "EnvIds", sim.get_env, sim.envs.values(), ENV_FILTERS, tags=lambda e: e.tags)


async def describe_compute_envs(sim: BatchSim, params: dict, call: Call) -> dict:
    envs = _envs(sim, params)
    offset, limit = p.page(params)
    return {"ComputeEnvSet": [env_view(e) for e in envs[offset:offset + limit]], "TotalCount": len(envs)}


async def describe_compute_env_create_info(sim: BatchSim, params: dict, call: Call) -> dict:
    return env_create_info(sim.get_env(p.string(params, "EnvId", required=True)))


async def describe_compute_env_create_infos(sim: BatchSim, params: dict, call: Call) -> dict:
    envs = _envs(sim, params)
    offset, limit = p.page(params)
    return {"ComputeEnvCreateInfoSet": [env_create_info(e) for e in envs[offset:offset + limit]],
            "TotalCount": len(envs)}


async def describe_compute_env_activities(sim: BatchSim, params: dict, call: Call) -> dict:
    env = sim.get_env(p.string(params, "EnvId", required=True))
    offset, limit = p.page(params)
    activities = select(env.activities, p.filters(params), {"compute-node-id": lambda a: a.node_id})
    return {"ActivitySet": [activity_view(a) for a in activities[offset:offset + limit]],
            "TotalCount": len(activities)}


async def modify_compute_env(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.modify_env(
        p.string(params, "EnvId", required=True),
        desired=p.integer(params, "DesiredComputeNodeCount"),
        name=p.string(params, "EnvName"),
        description=p.string(params, "EnvDescription"),
        env_data=p.obj(params, "EnvData"),
    )
    return {}


async def delete_compute_env(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.delete_env(p.string(params, "EnvId", required=True))
    return {}


async def terminate_compute_node(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.terminate_nodes(p.string(params, "EnvId", required=True), [p.string(params, "ComputeNodeId", required=True)])
    return {}


async def terminate_compute_nodes(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.terminate_nodes(p.string(params, "EnvId", required=True),
                        p.string_list(params, "ComputeNodeIds", required=True, max_items=100))
    return {}


# This family's declarations (batch_service collects them); Describe* change nothing.
ACTIONS = [
    Action("CreateComputeEnv", create_compute_env),
    Action("DescribeComputeEnv", describe_compute_env, writes=False),
    Action("DescribeComputeEnvs", describe_compute_envs, writes=False),
    Action("DescribeComputeEnvCreateInfo", describe_compute_env_create_info, writes=False),
    Action("DescribeComputeEnvCreateInfos", describe_compute_env_create_infos, writes=False),
    Action("DescribeComputeEnvActivities", describe_compute_env_activities, writes=False),
    Action("ModifyComputeEnv", modify_compute_env),
    Action("DeleteComputeEnv", delete_compute_env),
    Action("TerminateComputeNode", terminate_compute_node),
    Action("TerminateComputeNodes", terminate_compute_nodes),
]
