"""Field types shared by the document schemas: hashes, bounded numbers, grid labels."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StringConstraints

STRICT = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)
# A table of a file a person writes (a deployment profile): STRICT, but an unknown key is refused (a typo is an
# error, never a setting silently left at its default); a field may be read under its TOML key (validation_alias)
# while code builds it by attribute name.
TOML_TABLE = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True, validate_by_name=True,
                        validate_by_alias=True)

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(max_length=4096)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Milliseconds = Annotated[float, Field(gt=0, le=3.6e6, description="a latency: > 0 ms, at most an hour")]
Percent = Annotated[float, Field(ge=0, le=100)]
Count = Annotated[int, Field(ge=0, le=10**12)]
Batch = Annotated[int, Field(ge=1, le=1 << 20)]
Seconds = Annotated[float, Field(ge=0, le=1e9)]


def _grid_text(v: Any) -> Any:
    """A grid label as the run writes it ("2", "3x4", "-"); an integer grid is read as its label."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


GridText = Annotated[str, BeforeValidator(_grid_text), StringConstraints(min_length=1, max_length=64)]


def _positive_finite(v: float) -> float:
    if not (math.isfinite(v) and v > 0):
        raise ValueError("must be a finite number above 0")
    return v


PositiveFloat = Annotated[float, AfterValidator(_positive_finite)]
