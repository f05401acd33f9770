"""DescribeAvailableCvmInstanceTypes: the static CVM catalogue, filtered by zone and family.

The listing is limited to the request's region (X-TC-Region), as the cloud's is.
"""

from __future__ import annotations

from typing import Any

from ....batchsim import catalogue
from ....pipeline import Action, Call
from .. import params as p


async def describe_available_cvm_instance_types(sim: Any, params: dict, call: Call) -> dict:
    return {"InstanceTypeConfigSet": catalogue.configs(p.filters(params), region=call.region)}


ACTIONS = [
    Action("DescribeAvailableCvmInstanceTypes", describe_available_cvm_instance_types, writes=False),
]
