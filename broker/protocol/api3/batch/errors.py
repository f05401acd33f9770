"""Batch's rows in the one API 3.0 error table (the common rows are in ../errors.py).

A BatchError's `reason` is appended to its code: InvalidZone with reason MismatchRegion is
`InvalidZone.MismatchRegion`.
"""

from __future__ import annotations

from typing import Mapping

from .... import errors as e
from .. import errors as api3

ERRORS: Mapping[type, str] = {
    e.InvalidBatchParameter: "InvalidParameter",
    e.InvalidBatchParameterValue: "InvalidParameterValue",
    e.InvalidFilter: "InvalidFilter",
    e.EnvIdAndComputeEnvConflict: "AllowedOneAttributeInEnvIdAndComputeEnv",
    e.InvalidZone: "InvalidZone",
    e.AtLeastOneAttribute: "InvalidParameterAtLeastOneAttribute",
}

# The table as a broker serving Batch alone has it (for tests, and whoever words Batch's errors).
CODES: Mapping[type, str] = api3.merged(ERRORS)


def code_for(exc: e.BrokerError) -> str:
    return api3.code_for(exc, CODES)
