"""The Batch service (API 3.0, version 2017-03-12) over the simulator.

Each handler module (jobs, envs, templates, cvm) declares its family's actions in a list named
`ACTIONS`; `batch_service(sim)` gathers them with the SDK actions the simulator deliberately
does not offer into the service's one `ActionTable`. Nothing is registered on import.
"""

from __future__ import annotations

from typing import Any

from ....pipeline import Action, ActionTable
from ..service import Service
from . import cvm, envs, jobs, templates
from .errors import ERRORS

NAME = "batch"  # the TC3 credential scope, host label and metrics api label
VERSION = "2017-03-12"

# Actions the SDK has but the simulator deliberately does not offer (UnsupportedOperation).
NOT_OFFERED = [
    Action("AttachInstances", None),
    Action("DetachInstances", None),
    Action("DescribeJobMonitorData", None, writes=False),
    Action("DescribeCvmZoneInstanceConfigInfos", None, writes=False),
    Action("DescribeInstanceCategories", None, writes=False),
]

DECLARED: tuple[Action, ...] = (*jobs.ACTIONS, *envs.ACTIONS, *templates.ACTIONS, *cvm.ACTIONS, *NOT_OFFERED)
SUPPORTED = frozenset(a.name for a in DECLARED if a.handler is not None)  # names, for tests and tools
UNSUPPORTED = frozenset(a.name for a in NOT_OFFERED)


def batch_service(sim: Any) -> Service:
    """Batch as `Api3Protocol` serves it, its handlers bound to `sim` (a BatchSim)."""
    return Service(name=NAME, versions=frozenset({VERSION}), actions=ActionTable(NAME, DECLARED, case_sensitive=True),
                   target=sim, label="Batch", errors=ERRORS)


__all__ = ["DECLARED", "NAME", "SUPPORTED", "UNSUPPORTED", "VERSION", "batch_service"]
