"""DescribeAvailableCvmInstanceTypes: the static CVM catalogue, filtered by zone and family.

The listing is limited to the request's region (X-TC-Region), as the cloud's is.
"""

from __future__ import annotations

from typing import Any

from ...batchsim import catalogue
from . import params as p
from .app import Context, register


@register("DescribeAvailableCvmInstanceTypes")
async def describe_available_cvm_instance_types(sim: Any, params: dict, ctx: Context) -> dict:
    return {"InstanceTypeConfigSet": catalogue.configs(p.filters(params), region=ctx.region)}
