"""The per-precision tolerance table, shared by ``validate`` and ``compare`` (docs/architecture.md, Precisions).

A comparison of a candidate output ``a`` with the reference ``r`` passes when

    max |a - r|  <=  max_error * scale,   scale = max |r| over that output   (elementwise, via Polygraphy)
    cosine(a, r) >=  min_cosine

so tolerances are relative to the output's scale and do not depend on how large a model's logits
happen to be. A failing comparison reports the ``max_error`` that would have passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Tolerance:
    max_error: float  # max abs error relative to the output scale
    min_cosine: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_error=1e-4, min_cosine=0.99999),
    "fp16": Tolerance(max_error=1e-2, min_cosine=0.9995),
    "bf16": Tolerance(max_error=4e-2, min_cosine=0.998),
    # int8 / fp8 rows set from `lookupvit compare lookupvit_digits` (360 held-out images, grids 1-6):
    # largest logit error / logit scale 0.067-0.134 for int8 (minmax) and 0.17-0.22 for fp8 (amax/448),
    # cosine >= 0.9998 / 0.9993, top-1 within 0.6 / 0.9 points; the rows leave about 1.5x headroom.
    # (fp16 measured 0.0016-0.0052 there, bf16 0.0064 at grid 4 with onnx.reference: rows kept.)
    "int8": Tolerance(max_error=0.2, min_cosine=0.98),
    "fp8": Tolerance(max_error=0.3, min_cosine=0.97),
}


def tolerance_for(precision: str) -> Tolerance:
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise UserError(
            f"No tolerance for precision {precision!r}.", f"Known precisions: {', '.join(TOLERANCES)}."
        ) from None
