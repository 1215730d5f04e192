"""The CSV dialect of every export, and the spreadsheet formula guard.

Files are UTF-8 with RFC 4180 quoting and CRLF line ends. A missing value is an
empty field; an empty string is `""`. Timestamps are ISO 8601 in UTC with a `Z`.

The formula guard follows OWASP's CSV injection guidance: a cell (header included)
that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`,
which spreadsheets show as text and do not evaluate, and every text cell is quoted so
that a spreadsheet splitting on `;` or tabs cannot start a new cell mid-value. Phone
numbers such as `+1 555-0100` are neutralised too, since a spreadsheet would compute
them. With the guard off, every cell is byte for byte what the store holds.
"""

from __future__ import annotations

import polars as pl

LINE_TERMINATOR = "\r\n"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
GUARD_PREFIX = "'"
UTF8_BOM = b"\xef\xbb\xbf"

_TRIGGER_PATTERN = r"^([=+\-@\t\r])"


def guard_cell(text: str) -> str:
    """One cell as the formula guard writes it."""
    return GUARD_PREFIX + text if text.startswith(FORMULA_TRIGGERS) else text


def guard_expression(column: pl.Expr) -> pl.Expr:
    """`guard_cell` as a Polars expression over a string column."""
    return column.str.replace(_TRIGGER_PATTERN, GUARD_PREFIX + "$1")


def write_options(*, formula_guard: bool) -> dict[str, object]:
    """Keyword arguments of `polars.DataFrame.write_csv` for the dialect."""
    return {
        "line_terminator": LINE_TERMINATOR,
        "quote_style": "non_numeric" if formula_guard else "necessary",
        "null_value": "",
    }
