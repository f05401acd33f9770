"""Compute environment actions: Create/Describe/Modify/DeleteComputeEnv, their create infos and
activities, and TerminateComputeNode(s)."""

from __future__ import annotations

from ...batchsim import BatchSim
from ...batchsim.query import select
from . import params as p
from .app import Context, register
from ...batchsim.views import activity_view, env_create_info, env_view, node_view

ENV_FILTERS = {
    "zone": lambda e: e.zone,
    "env-id": lambda e: e.env_id,
    "env-name": lambda e: e.name,
    "resource-type": lambda e: "CVM",
}


@register("CreateComputeEnv")
async def create_compute_env(sim: BatchSim, params: dict, ctx: Context) -> dict:
    token = p.string(params, "ClientToken", max_len=64)
    env = sim.create_env(params.get("ComputeEnv"), params.get("Placement"), ctx.region, token)
    return {"EnvId": env.env_id}


@register("DescribeComputeEnv")
async def describe_compute_env(sim: BatchSim, params: dict, ctx: Context) -> dict:
    env = sim.get_env(p.string(params, "EnvId", required=True))
    return {**env_view(env), "ComputeNodeSet": [node_view(n) for n in env.nodes.values()]}


def _envs(sim: BatchSim, params: dict) -> list:
    return p.listing(params, "EnvIds", sim.get_env, sim.envs.values(), ENV_FILTERS, tags=lambda e: e.tags)


@register("DescribeComputeEnvs")
async def describe_compute_envs(sim: BatchSim, params: dict, ctx: Context) -> dict:
    envs = _envs(sim, params)
    offset, limit = p.page(params)
    return {"ComputeEnvSet": [env_view(e) for e in envs[offset:offset + limit]], "TotalCount": len(envs)}


@register("DescribeComputeEnvCreateInfo")
async def describe_compute_env_create_info(sim: BatchSim, params: dict, ctx: Context) -> dict:
    return env_create_info(sim.get_env(p.string(params, "EnvId", required=True)))


@register("DescribeComputeEnvCreateInfos")
async def describe_compute_env_create_infos(sim: BatchSim, params: dict, ctx: Context) -> dict:
    envs = _envs(sim, params)
    offset, limit = p.page(params)
    return {"ComputeEnvCreateInfoSet": [env_create_info(e) for e in envs[offset:offset + limit]],
            "TotalCount": len(envs)}


@register("DescribeComputeEnvActivities")
async def describe_compute_env_activities(sim: BatchSim, params: dict, ctx: Context) -> dict:
    env = sim.get_env(p.string(params, "EnvId", required=True))
    offset, limit = p.page(params)
    activities = select(env.activities, p.filters(params), {"compute-node-id": lambda a: a.node_id})
    return {"ActivitySet": [activity_view(a) for a in activities[offset:offset + limit]],
            "TotalCount": len(activities)}


@register("ModifyComputeEnv")
async def modify_compute_env(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.modify_env(
        p.string(params, "EnvId", required=True),
        desired=p.integer(params, "DesiredComputeNodeCount"),
        name=p.string(params, "EnvName"),
        description=p.string(params, "EnvDescription"),
        env_data=p.obj(params, "EnvData"),
    )
    return {}


@register("DeleteComputeEnv")
async def delete_compute_env(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.delete_env(p.string(params, "EnvId", required=True))
    return {}


@register("TerminateComputeNode")
async def terminate_compute_node(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.terminate_nodes(p.string(params, "EnvId", required=True), [p.string(params, "ComputeNodeId", required=True)])
    return {}


@register("TerminateComputeNodes")
async def terminate_compute_nodes(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.terminate_nodes(p.string(params, "EnvId", required=True),
                        p.string_list(params, "ComputeNodeIds", required=True, max_items=100))
    return {}
