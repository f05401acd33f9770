"""A static catalogue of CVM instance types and the zones that sell them.

The simulator needs it to validate InstanceType/InstanceTypes, to give compute nodes their Cpu
and Mem, and to answer DescribeAvailableCvmInstanceTypes. The numbers follow Tencent's public
type names (S5.LARGE8 = 4 cores, 8 GiB); availability per zone is made up but stable, with the
older families only in the older zones, so zone filters have something to show.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InvalidFilter

# instance type → (cpu cores, memory GiB); the family is the part before the dot.
_TYPES: dict[str, tuple[int, int]] = {
    "S1.SMALL1": (1, 1),
    "S1.SMALL2": (1, 2),
    "S1.MEDIUM4": (2, 4),
    "S2.SMALL1": (1, 1),
    "S2.MEDIUM4": (2, 4),
    "S5.SMALL2": (1, 2),
    "S5.MEDIUM4": (2, 4),
    "S5.LARGE8": (4, 8),
    "S5.2XLARGE16": (8, 16),
    "SA2.MEDIUM4": (2, 4),
    "SA2.LARGE8": (4, 8),
    "C3.LARGE8": (4, 8),
    "C3.2XLARGE16": (8, 16),
    "M5.MEDIUM16": (2, 16),
}

# region → its zones, in the order they are listed
_REGIONS: dict[str, tuple[str, ...]] = {
    "ap-guangzhou": ("ap-guangzhou-2", "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"),
    "ap-shanghai": ("ap-shanghai-2", "ap-shanghai-4", "ap-shanghai-5"),
    "ap-beijing": ("ap-beijing-3", "ap-beijing-5", "ap-beijing-6"),
}

_OLD_ZONES = ("ap-guangzhou-2", "ap-guangzhou-3", "ap-shanghai-2", "ap-beijing-3")
_ALL_ZONES = tuple(z for zs in _REGIONS.values() for z in zs)

# family → zones selling it
_FAMILY_ZONES: dict[str, tuple[str, ...]] = {
    "S1": _OLD_ZONES,
    "S2": _OLD_ZONES,
    "S5": _ALL_ZONES,
    "SA2": ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-shanghai-4", "ap-shanghai-5",
            "ap-beijing-5", "ap-beijing-6"),
    "C3": ("ap-guangzhou-3", "ap-guangzhou-4", "ap-shanghai-4", "ap-beijing-3", "ap-beijing-5"),
    "M5": ("ap-guangzhou-4", "ap-guangzhou-6", "ap-shanghai-5", "ap-beijing-6"),
}

_ZONE_REGION = {zone: region for region, zs in _REGIONS.items() for zone in zs}

FILTER_NAMES = ("zone", "instance-family")


def family(name: str) -> str:
    return name.split(".", 1)[0]


# (zone, type) rows in listing order: zones as above, then types as above.
_ROWS: tuple[dict, ...] = tuple(
    {"Mem": mem, "Cpu": cpu, "InstanceType": name, "Zone": zone, "InstanceFamily": family(name)}
    for zone in _ALL_ZONES
    for name, (cpu, mem) in _TYPES.items()
    if zone in _FAMILY_ZONES[family(name)]
)


def instance_type(name: str) -> tuple[int, int] | None:
    """(cpu, mem GiB) of an instance type, or None if there is no such type."""
    return _TYPES.get(name)


def zones() -> set[str]:
    return set(_ALL_ZONES)


def region_of(zone: str) -> str | None:
    """The region a zone belongs to (ap-guangzhou-3 → ap-guangzhou), or None if unknown."""
    return _ZONE_REGION.get(zone)


def available(name: str, zone: str) -> bool:
    """Whether `zone` sells instance type `name`."""
    return name in _TYPES and zone in _FAMILY_ZONES[family(name)]


def configs(filters: Iterable[dict] = (), region: str | None = None) -> list[dict]:
    """Rows {Mem, Cpu, InstanceType, Zone, InstanceFamily} matching every filter.

    A filter is {"Name": ..., "Values": [...]}: filters are ANDed, a filter's values ORed.
    `region` limits the rows to that region's zones (None: every region).
    Raises InvalidFilter for a filter name other than zone and instance-family.
    """
    wanted: dict[str, set[str]] = {}
    for f in filters:
        name = f["Name"]
        if name not in FILTER_NAMES:
            raise InvalidFilter(f"filter name {name!r} is not supported here: use {' or '.join(FILTER_NAMES)}")
        values = set(f["Values"])
        wanted[name] = wanted[name] & values if name in wanted else values
    zone_ok = wanted.get("zone")
    family_ok = wanted.get("instance-family")
    return [
        dict(row)
        for row in _ROWS
        if (region is None or _ZONE_REGION[row["Zone"]] == region)
        and (zone_ok is None or row["Zone"] in zone_ok)
        and (family_ok is None or row["InstanceFamily"] in family_ok)
    ]
