"""One API 3.0 product (Batch, TDMQ, ...) as the API 3.0 layer serves it.

A service is data, built by its package (`batch.batch_service(sim)`) and handed to
`Api3Protocol` by server.py: nothing registers itself on import. Its `name` is the product's
API name, which is at once the TC3 credential-scope service (`Credential=ID/DATE/batch/tc3_request`),
the first label of its cloud host (`batch.tencentcloudapi.com`) and the `api` label of its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ...pipeline import ActionTable


@dataclass(frozen=True, eq=False)
class Service:
    name: str  # "batch": credential scope, host label, metrics api label
    versions: frozenset[str]  # the X-TC-Version values it answers, e.g. {"2017-03-12"}
    # Case-sensitive, api=name. A handler is `async (target, params, call) -> dict of response
    # fields`; `Action(name, None)` is an SDK action deliberately not offered (UnsupportedOperation).
    actions: ActionTable
    target: Any  # what its handlers get first (Batch: the BatchSim)
    label: str  # for people: "Batch" in "X-TC-Version is missing: Batch speaks 2017-03-12"
    errors: Mapping[type, str] = field(default_factory=dict)  # its rows in the one API 3.0 error table
    fields: Mapping[str, str] = field(default_factory=dict)  # the engine's neutral field names → its own

    def __post_init__(self) -> None:
        if self.actions.api != self.name or not self.actions.case_sensitive:
            raise ValueError(f"service {self.name}: its ActionTable must be case-sensitive with api={self.name!r}")
        if not self.versions:
            raise ValueError(f"service {self.name} speaks no version")

    def speaks(self) -> str:
        return ", ".join(sorted(self.versions))
