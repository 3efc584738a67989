"""``pace.json`` in the cache folder (exporter.latency.pace): per machine key, the best probe times
of the last runs, in seconds.

A value is a plausible quiet time of the probe (2,000 steps of a pure-Python loop) only within
:data:`PACE_MIN_S` .. :data:`PACE_MAX_S`: below 2 us would be 1 ns per step, which no interpreter
reaches, and a reference of 1e-12 s would mark every cell SLOW; above half a second the machine
could not time a model either.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

PACE_MIN_S = 2e-6
PACE_MAX_S = 0.5

ProbeSeconds = Annotated[float, Field(ge=PACE_MIN_S, le=PACE_MAX_S, allow_inf_nan=False, strict=True)]
ProbeSecondsType = TypeAdapter(ProbeSeconds)
