"""What a Batch Describe* listing covers: the objects named by id, or those matching `Filters`."""

from __future__ import annotations

from ....batchsim.query import select
from ....errors import InvalidBatchParameter
from .. import params as p


def listing(params: dict, ids_key: str, by_id, items, fields, tags=None) -> list:
    """The objects named by `ids_key`, or else every object matching `Filters`, newest first.
    Giving both is refused, as the cloud does."""
    ids = p.string_list(params, ids_key, max_items=100)
    given_filters = p.filters(params)
    if ids is not None and given_filters:
        raise InvalidBatchParameter(f"give {ids_key} or Filters, not both", "InvalidParameterCombination")
    if ids is not None:
        return [by_id(i) for i in ids]
    newest_first = sorted(items, key=lambda x: x.create_time, reverse=True)
    return select(newest_first, given_filters, fields, tags=tags)
