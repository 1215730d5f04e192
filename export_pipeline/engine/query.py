"""The parameterised lead query that applies frozen filters.

User text reaches DuckDB only as bound parameters; the SQL text itself is built from
fixed fragments, so no filter value can change the query's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from export_pipeline.engine.filters import FrozenFilters
from export_pipeline.leads.store import SYSTEM_FIELDS, TRAILING_FIELDS

LEAD_COLUMNS = (*SYSTEM_FIELDS, *TRAILING_FIELDS)

_FINAL_SIGMA, _SIGMA = "\u03c2", "\u03c3"
_PHONE_LIKE = re.compile(r"[\d\s().+\-/]*\d[\d\s().+\-/]*", re.ASCII)


@dataclass(frozen=True)
class LeadQuery:
    """The conditions selecting the matching leads of one source within a window of
    lead ids (`window_start` included, `window_end` excluded), and their parameters."""

    where: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def select_sql(self) -> str:
        """The matching leads of one window, ordered by `lead_id`."""
        columns = ", ".join(f"l.{name}" for name in LEAD_COLUMNS)
        return f"SELECT {columns}\nFROM leads l\nWHERE {self.where}\nORDER BY l.lead_id"

    @property
    def count_sql(self) -> str:
        """How many leads match in each bucket of `$bucket_size` consecutive ids."""
        return (
            "SELECT l.lead_id // $bucket_size AS bucket, count(*) AS leads\n"
            f"FROM leads l\nWHERE {self.where}\nGROUP BY bucket ORDER BY bucket"
        )

    def in_window(self, start: int, end: int) -> dict[str, Any]:
        return {**self.params, "window_start": start, "window_end": end}

    def counted(self, bucket_size: int) -> dict[str, Any]:
        """Parameters of `count_sql`, over every lead id."""
        return {**self.in_window(0, MAX_LEAD_ID), "bucket_size": bucket_size}


MAX_LEAD_ID = 2**63 - 1


def build_lead_query(source_id: int, filters: FrozenFilters) -> LeadQuery:
    """The leads of `source_id` that match every frozen filter.

    The query covers one window of lead ids at a time, so that sorting its result
    needs memory for one window only, and DuckDB reads only the row groups whose id
    range overlaps the window.
    """
    conditions = [
        "l.lead_id >= $window_start",
        "l.lead_id < $window_end",
        "l.source_id = $source_id",
        "l.created_at <= $cutoff",
        "l.inserted_at <= $cutoff",
    ]
    params: dict[str, Any] = {"source_id": source_id, "cutoff": filters.cutoff}
    if filters.statuses:
        conditions.append("list_contains($statuses, l.status)")
        params["statuses"] = list(filters.statuses)
    if filters.created_from is not None:
        conditions.append("l.created_at >= $created_from")
        params["created_from"] = filters.created_from
    if filters.created_to is not None:
        conditions.append("l.created_at < $created_to")
        params["created_to"] = filters.created_to
    if filters.attribute_key is not None:
        conditions.append(_attribute_condition(filters.attribute_value is not None))
        params["attribute_key"] = filters.attribute_key
        if filters.attribute_value is not None:
            params["attribute_value"] = filters.attribute_value
    if filters.search is not None:
        condition, search_params = _search_condition(filters.search)
        conditions.append(condition)
        params.update(search_params)
    return LeadQuery(where="\n  AND ".join(conditions), params=params)


def phone_digits(search: str) -> str | None:
    """The digits to look for in phone numbers, or None when `search` is no phone.

    A search counts as a phone number when it holds digits and nothing but phone
    punctuation, so "(555) 010" finds "+1 555-0100" while "Suite 5" does not match
    every phone with a 5 in it.
    """
    if not _PHONE_LIKE.fullmatch(search):
        return None
    return re.sub(r"\D", "", search, flags=re.ASCII)


def _attribute_condition(with_value: bool) -> str:
    if with_value:
        return (
            "EXISTS (SELECT 1 FROM lead_attributes a WHERE a.lead_id = l.lead_id "
            "AND a.lead_id >= $window_start AND a.lead_id < $window_end "
            "AND a.key = $attribute_key AND a.value = $attribute_value)"
        )
    return (
        "EXISTS (SELECT 1 FROM lead_attributes a WHERE a.lead_id = l.lead_id "
        "AND a.lead_id >= $window_start AND a.lead_id < $window_end "
        "AND a.key = $attribute_key)"
    )


def _folded(text: str) -> str:
    """`text` in the form a case-insensitive search compares: every letter lowercased on
    its own (so a dotted capital I is "i"), and the Greek final sigma (U+03C2) taken as
    the sigma (U+03C3) that a capital sigma lowercases to, wherever it stands."""
    return f"replace(lower({text}), '{_FINAL_SIGMA}', '{_SIGMA}')"


def _search_condition(search: str) -> tuple[str, dict[str, Any]]:
    texts = [
        "l.first_name",
        "l.last_name",
        "concat_ws(' ', l.first_name, l.last_name)",
        "l.email",
        "l.phone",
    ]
    matches = [f"contains({_folded(text)}, {_folded('$search')})" for text in texts]
    params: dict[str, Any] = {"search": search}
    digits = phone_digits(search)
    if digits:
        matches.append("contains(regexp_replace(l.phone, '[^0-9]', '', 'g'), $phone_digits)")
        params["phone_digits"] = digits
    return "(" + " OR ".join(matches) + ")", params
