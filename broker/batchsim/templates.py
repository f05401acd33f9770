"""Task templates: named, stored Task definitions (CreateTaskTemplate and friends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..engine.names import resource_id
from ..errors import AtLeastOneAttribute, InvalidBatchParameter, LimitExceeded, ResourceNotFound
from . import validate

MAX_NAME, MAX_TEMPLATES = 60, 1000


@dataclass
class Template:
    template_id: str
    name: str
    info: dict[str, Any]
    description: str
    tags: list
    create_time: float

    def record(self) -> dict:
        return {"id": self.template_id, "name": self.name, "info": self.info, "description": self.description,
                "tags": self.tags, "created": self.create_time}


class Templates:
    def __init__(self, journal: Callable[[tuple], None]) -> None:
        self.items: dict[str, Template] = {}
        self.journal: Callable[[tuple], None] = journal  # the simulator's records (persist.py)

    def get(self, template_id: Any) -> Template:
        if not isinstance(template_id, str) or not template_id.startswith("tmpl-"):
            raise InvalidBatchParameter(f"TaskTemplateId {template_id!r} is malformed", "TaskTemplateIdMalformed")
        found = self.items.get(template_id)
        if found is None:
            raise ResourceNotFound(f"task template {template_id!r} does not exist", "TaskTemplate")
        return found

    def create(self, name: Any, info: Any, description: Any, tags: Any, now: float, env_exists) -> Template:
        name = _name(name)
        validate.task(info, "TaskTemplateInfo", env_exists)
        description = validate.text({"TaskTemplateDescription": description}, "TaskTemplateDescription", "",
                                    validate.MAX_DESCRIPTION,
                                    "TaskTemplateDescriptionTooLong")
        if len(self.items) >= MAX_TEMPLATES:
            raise LimitExceeded(f"at most {MAX_TEMPLATES} task templates", "TaskTemplateQuota")
        template = Template(resource_id("tmpl-"), name, info, description, list(tags or []), now)
        self.items[template.template_id] = template
        self.journal(("bt", template.template_id, template.record()))
        return template

    def modify(self, template_id: Any, name: Any, description: Any, info: Any, env_exists) -> None:
        template = self.get(template_id)
        if name is None and description is None and info is None:
            raise AtLeastOneAttribute("give at least one of TaskTemplateName, TaskTemplateDescription, "
                                      "TaskTemplateInfo")
        new_name = _name(name) if name is not None else template.name
        if info is not None:
            validate.task(info, "TaskTemplateInfo", env_exists)
        if description is not None:
            validate.text({"TaskTemplateDescription": description}, "TaskTemplateDescription", "",
                          validate.MAX_DESCRIPTION,
                          "TaskTemplateDescriptionTooLong")
        template.name = new_name
        if info is not None:
            template.info = info
        if description is not None:
            template.description = description
        self.journal(("bt", template.template_id, template.record()))

    def delete(self, template_ids: list[str]) -> None:
        found = [self.get(t) for t in template_ids]
        for template in found:
            self.items.pop(template.template_id, None)
            self.journal(("btd", template.template_id))


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidBatchParameter("TaskTemplateName is required", "TaskTemplateName")
    if len(name) > MAX_NAME:
        raise InvalidBatchParameter(f"TaskTemplateName is longer than {MAX_NAME} characters", "TaskTemplateNameTooLong")
    return name
