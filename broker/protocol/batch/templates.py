"""Task template actions: Create/Describe/Modify/DeleteTaskTemplates."""

from __future__ import annotations

from ...batchsim import BatchSim, validate
from ...batchsim.events import iso
from . import params as p
from .app import Context, register


def _env_checker(sim: BatchSim):
    return lambda env_id, where: sim.get_env(env_id, where)


@register("CreateTaskTemplate")
async def create_task_template(sim: BatchSim, params: dict, ctx: Context) -> dict:
    tags = validate.tags(params.get("Tags"), "Tags", most=10)
    template = sim.templates.create(
        params.get("TaskTemplateName"), params.get("TaskTemplateInfo"), params.get("TaskTemplateDescription"),
        tags, sim.clock.time(), _env_checker(sim),
    )
    return {"TaskTemplateId": template.template_id}


@register("DescribeTaskTemplates")
async def describe_task_templates(sim: BatchSim, params: dict, ctx: Context) -> dict:
    found = p.listing(params, "TaskTemplateIds", sim.templates.get, sim.templates.items.values(),
                      {"task-template-name": lambda t: t.name}, tags=lambda t: t.tags)
    offset, limit = p.page(params)
    return {
        "TaskTemplateSet": [
            {"TaskTemplateId": t.template_id, "TaskTemplateName": t.name, "TaskTemplateDescription": t.description,
             "TaskTemplateInfo": t.info, "CreateTime": iso(t.create_time), "Tags": t.tags}
            for t in found[offset:offset + limit]
        ],
        "TotalCount": len(found),
    }


@register("ModifyTaskTemplate")
async def modify_task_template(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.templates.modify(params.get("TaskTemplateId"), params.get("TaskTemplateName"),
                         params.get("TaskTemplateDescription"), params.get("TaskTemplateInfo"), _env_checker(sim))
    return {}


@register("DeleteTaskTemplates")
async def delete_task_templates(sim: BatchSim, params: dict, ctx: Context) -> dict:
    sim.templates.delete(p.string_list(params, "TaskTemplateIds", required=True, max_items=100))
    return {}
