"""The JSON values in a model's ``lookupvit.*`` metadata (exporter.export.metadata): normalisation
and input shape. ``std`` must be above 0 (a 0 would fold a division by zero into a packaged graph,
and the served model would answer NaN for every input); every value is finite."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

MAX_CHANNELS = 16
MAX_SIDE = 4096
MAX_FRAMES = 512

Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE, strict=True)]

MEAN = TypeAdapter(Annotated[list[Finite], Field(min_length=1, max_length=MAX_CHANNELS)])
STD = TypeAdapter(Annotated[list[PositiveFinite], Field(min_length=1, max_length=MAX_CHANNELS)])
INPUT_SHAPE = TypeAdapter(Annotated[list[Side], Field(min_length=3, max_length=4)])
