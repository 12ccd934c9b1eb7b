"""How to read one raw file when detection is not enough: the schema of an entry of ``data/sources.yaml``.

Every option is validated when the sources file loads (a bad ``date_format``, an unknown encoding, a
column mapped to an unknown role), so a mistake is reported once, naming the file and the key, before
any bar is read. :func:`ktrdr_assets.core.data.bars.load_sources_config` reads the file.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: What a raw column can be mapped to with ``columns:`` (``date`` + ``time`` form a stamp together).
Role = Literal["time", "date", "open", "high", "low", "close", "volume", "adj_close"]
#: Options that only make sense for CSV text (a parquet file carries its own types).
CSV_OPTIONS = ("separator", "decimal", "thousands", "encoding")
_THOUSANDS = (",", ".", " ", "'", "_", "\u00a0", "\u202f")
_YEAR_DIRECTIVES = ("%Y", "%y", "%G")
_PROBE = pd.Timestamp("2001-02-03 04:05:06.789")


class SourceOverride(BaseModel):
    """How to read one raw file when its layout cannot be detected from the data (``data/sources.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dayfirst: bool | None = Field(
        None, description="day/month order of d.m.y / m/d/y stamps when the data cannot decide it"
    )
    date_format: str | None = Field(
        None, description="explicit strptime format for the time column; replaces layout detection"
    )
    epoch: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="the time column holds Unix epoch numbers in this unit (detected when 1980-2099)"
    )
    timezone: str = Field("UTC", description="IANA zone of naive stamps; stamps that carry an offset keep their offset")
    separator: str | None = Field(None, description="field separator; None: detected from the header line")
    decimal: Literal[".", ","] = Field(".", description="decimal mark of the numbers")
    thousands: str | None = Field(None, description="thousands mark inside numbers (1.234,5 or 1,234.5)")
    encoding: str = Field("utf-8", description="text encoding of a CSV file (utf-8, cp1252, latin-1, ...)")
    columns: dict[str, Role] = Field(
        default_factory=dict, description="raw column name -> role, for headers the loader does not know"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {name!r}") from exc
        return name

    @field_validator("date_format")
    @classmethod
    def _usable_format(cls, fmt: str | None) -> str | None:
        if fmt is None:
            return None
        if re.search(r"%[-#]?s", fmt):
            raise ValueError(f"{fmt!r}: %s (epoch seconds) is not a strptime directive; use epoch: s (or ms, us)")
        try:  # a round trip through pandas' own parser: what loads here parses the file the same way
            pd.to_datetime([_PROBE.strftime(fmt)], format=fmt)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{fmt!r} is not a usable strptime format: {exc}") from None
        if not any(d in fmt for d in _YEAR_DIRECTIVES):
            raise ValueError(f"{fmt!r} has no year (%Y or %y); a bar stamp needs a date")
        return fmt

    @field_validator("separator")
    @classmethod
    def _one_separator(cls, sep: str | None) -> str | None:
        if sep is not None and (len(sep) != 1 or sep.isalnum() or sep in '"\r\n.'):
            raise ValueError(f"{sep!r}: expected one character such as ',' ';' '|' or a tab (\"\\t\")")
        return sep

    @field_validator("thousands")
    @classmethod
    def _known_thousands(cls, mark: str | None) -> str | None:
        if mark is not None and mark not in _THOUSANDS:
            raise ValueError(f"{mark!r}: expected one of {', '.join(map(repr, _THOUSANDS))}")
        return mark

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, name: str) -> str:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(f"unknown encoding {name!r} (e.g. utf-8, utf-16, cp1252, latin-1)") from None
        return name

    @field_validator("columns")
    @classmethod
    def _one_column_per_role(cls, columns: dict[str, Role]) -> dict[str, Role]:
        seen: dict[str, str] = {}
        for name, role in columns.items():
            if not name.strip():
                raise ValueError("an empty column name cannot be mapped")
            if role in seen:
                raise ValueError(f"columns {seen[role]!r} and {name!r} are both mapped to {role}")
            seen[role] = name
        return columns

    @model_validator(mode="after")
    def _one_way_to_read_dates(self) -> SourceOverride:
        if self.date_format is not None and self.dayfirst is not None:
            raise ValueError("give either dayfirst or date_format, not both (date_format fixes the order)")
        if self.epoch is not None and (self.date_format is not None or self.dayfirst is not None):
            raise ValueError("epoch numbers have no date layout: drop dayfirst / date_format")
        if self.epoch is not None and self.timezone != "UTC":
            raise ValueError("epoch numbers are UTC by definition: drop timezone")
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}")
        return self

    def csv_options_set(self) -> list[str]:
        """The CSV-only options this entry sets explicitly."""
        return [name for name in CSV_OPTIONS if name in self.model_fields_set]
