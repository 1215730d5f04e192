"""How an export's CSV is written, as a request may ask for it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportOptions(BaseModel):
    """Options of the CSV file.

    `formula_guard` neutralises cells a spreadsheet would run as a formula; turn it
    off for machine consumers that need every value byte for byte. `columns` picks a
    subset of the header keys, in the order given.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    formula_guard: bool = True
    columns: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=10_000
    )
    include_bom: bool = False
    compression: Literal["none", "gzip"] = "none"

    @property
    def file_suffix(self) -> str:
        return ".csv.gz" if self.compression == "gzip" else ".csv"
