"""Which columns an export writes, in which order, under which header keys.

Columns come in four groups: the system fields, the source's custom fields in
definition order, its attributes in definition order, then `created_at`,
`updated_at` and `source_id`. Header keys are the field keys. A custom field whose
key is taken by a system field is written as `custom_<key>`; an attribute whose key
is taken by a system or custom column is written as `attribute_<key>`. The prefix
repeats until the key is free, so no column is ever dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from export_pipeline.leads.catalog import SourceCatalog
from export_pipeline.leads.store import SYSTEM_FIELDS, TRAILING_FIELDS

CUSTOM_PREFIX = "custom_"
ATTRIBUTE_PREFIX = "attribute_"


class ColumnKind(StrEnum):
    SYSTEM = "system"
    CUSTOM = "custom"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True)
class Column:
    """One CSV column: its header and where its value comes from."""

    header: str
    kind: ColumnKind
    key: str


class UnknownColumnsError(ValueError):
    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown
        super().__init__(f"unknown column keys: {', '.join(repr(key) for key in unknown)}")


def plan_columns(catalog: SourceCatalog) -> tuple[Column, ...]:
    """Every column of the source's exports, in file order."""
    taken = set(SYSTEM_FIELDS) | set(TRAILING_FIELDS)
    columns = [Column(key, ColumnKind.SYSTEM, key) for key in SYSTEM_FIELDS]
    for field in catalog.fields:
        header = _free_header(field.key, CUSTOM_PREFIX, taken)
        columns.append(Column(header, ColumnKind.CUSTOM, field.key))
    for attribute in catalog.attributes:
        header = _free_header(attribute.key, ATTRIBUTE_PREFIX, taken)
        columns.append(Column(header, ColumnKind.ATTRIBUTE, attribute.key))
    columns.extend(Column(key, ColumnKind.SYSTEM, key) for key in TRAILING_FIELDS)
    return tuple(columns)


def select_columns(columns: tuple[Column, ...], headers: list[str] | None) -> tuple[Column, ...]:
    """The columns named by `headers`, in that order; all of them when None.

    Raises `UnknownColumnsError` naming every header the plan does not have.
    """
    if headers is None:
        return columns
    by_header = {column.header: column for column in columns}
    unknown = [header for header in headers if header not in by_header]
    if unknown:
        raise UnknownColumnsError(unknown)
    return tuple(by_header[header] for header in dict.fromkeys(headers))


def _free_header(key: str, prefix: str, taken: set[str]) -> str:
    header = key
    while header in taken:
        header = prefix + header
    taken.add(header)
    return header
