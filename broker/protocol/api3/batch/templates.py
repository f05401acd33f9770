"""Task template actions: Create/Describe/Modify/DeleteTaskTemplates."""

from __future__ import annotations

from ....batchsim import BatchSim, validate
from ....batchsim.events import iso
from ....pipeline import Action, Call
from .. import params as p
from .listing import listing


def _env_checker(sim: BatchSim):
    return lambda env_id, where: sim.get_env(env_id, where)


async def create_task_template(sim: BatchSim, params: dict, call: Call) -> dict:
    tags = validate.tags(params.get("Tags"), "Tags", most=10)
    template = sim.templates.create(
        params.get("TaskTemplateName"), params.get("TaskTemplateInfo"), params.get("TaskTemplateDescription"),
        tags, sim.clock.time(), _env_checker(sim),
    )
    return {"TaskTemplateId": template.template_id}


async def describe_task_templates(sim: BatchSim, params: dict, call: Call) -> dict:
    found = listing(params, "TaskTemplateIds", sim.templates.get, sim.templates.items.values(),
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


async def modify_task_template(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.templates.modify(params.get("TaskTemplateId"), params.get("TaskTemplateName"),
                         params.get("TaskTemplateDescription"), params.get("TaskTemplateInfo"), _env_checker(sim))
    return {}


async def delete_task_templates(sim: BatchSim, params: dict, call: Call) -> dict:
    sim.templates.delete(p.string_list(params, "TaskTemplateIds", required=True, max_items=100))
    return {}


# This family's declarations (batch_service collects them); Describe* change nothing.
ACTIONS = [
    Action("CreateTaskTemplate", create_task_template),
    Action("DescribeTaskTemplates", describe_task_templates, writes=False),
    Action("ModifyTaskTemplate", modify_task_template),
    Action("DeleteTaskTemplates", delete_task_templates),
]
