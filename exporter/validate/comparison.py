"""Run a reference and a candidate runner on the same inputs (Polygraphy ``Comparator``) and
measure, per output: max and mean absolute error, max error relative to the output scale, cosine
similarity and top-1 agreement, with PASSED/FAILED against a :class:`Tolerance`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from ..backends.polygraphy_log import quiet_polygraphy
from .tolerances import Tolerance


@dataclass
class OutputComparison:
    output: str
    shape: list[int]
    max_abs: float
    mean_abs: float
    max_rel: float  # max abs error / output scale (max |reference|)
    cosine: float
    top1_agreement: float | None  # for (B, K) outputs: fraction of samples with the same argmax
    tolerance: dict[str, float]
    passed: bool
    polygraphy_passed: bool  # Polygraphy's elementwise check at atol = max_error * scale
    would_pass: dict[str, float] | None  # when failing: the tolerance that would have passed

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def output_metrics(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    a = candidate.astype(np.float64)
    r = reference.astype(np.float64)
    diff = np.abs(a - r)
    scale = float(np.abs(r).max()) or 1.0
    denom = float(np.linalg.norm(a) * np.linalg.norm(r))
    cosine = float((a * r).sum() / denom) if denom > 0 else float(np.array_equal(a, r))
    top1 = None
    if r.ndim == 2 and r.shape[1] > 1:
        top1 = float((a.argmax(-1) == r.argmax(-1)).mean())
    return {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "max_rel": float(diff.max() / scale) if diff.size else 0.0,
        "cosine": cosine,
        "top1_agreement": top1,
        "scale": scale,
    }


def compare_runners(reference, candidate, feeds: Iterable[dict[str, np.ndarray]], tolerance: Tolerance) -> list[OutputComparison]:
    """Run both runners over ``feeds`` and compare every output the candidate shares with the reference."""
    from polygraphy.comparator import Comparator
    from polygraphy.comparator.compare import SimpleCompareFunc

    quiet_polygraphy()
    results = Comparator.run([reference, candidate], data_loader=list(feeds))
    (ref_name, ref_iters), (cand_name, cand_iters) = results[0], results[1]
    names = [n for n in ref_iters[0] if n in cand_iters[0]]
    joined = {
        n: (np.concatenate([it[n] for it in cand_iters]), np.concatenate([it[n] for it in ref_iters])) for n in names
    }
    for n in names:
        if joined[n][0].shape != joined[n][1].shape:
            from ..errors import UserError

            raise UserError(
                f"The model's output {n!r} has shape {list(joined[n][0].shape)}, its reference's "
                f"{list(joined[n][1].shape)}: the reference is not this model's.",
                "Compare against the variant the model was exported from (--reference VARIANT).",
            )
    metrics = {n: output_metrics(*joined[n]) for n in names}
    atol = {n: tolerance.max_error * m["scale"] for n, m in metrics.items()}  # type: ignore[operator]
    accuracy = Comparator.compare_accuracy(
        results,
        compare_func=SimpleCompareFunc(atol=atol, rtol={n: 0.0 for n in names}, check_shapes=True),
    )
    per_iteration = accuracy[0][(ref_name, cand_name)]  # one AccuracyResult per compare function
    out = []
    for n in names:
        m = metrics[n]
        poly_ok = all(bool(it[n]) for it in per_iteration if n in it)
        ok = poly_ok and m["max_rel"] <= tolerance.max_error and m["cosine"] >= tolerance.min_cosine  # type: ignore[operator]
        would = None
        if not ok:
            would = {
                "max_error": float(f"{max(m['max_rel'], tolerance.max_error) * 1.01:.3g}"),  # type: ignore[arg-type]
                "min_cosine": math.floor(min(m["cosine"], tolerance.min_cosine) * 1e6) / 1e6,  # type: ignore[type-var,operator]
            }
        out.append(
            OutputComparison(
                output=n, shape=list(joined[n][1].shape), max_abs=m["max_abs"], mean_abs=m["mean_abs"],  # type: ignore[arg-type]
                max_rel=m["max_rel"], cosine=m["cosine"], top1_agreement=m["top1_agreement"],  # type: ignore[arg-type]
                tolerance=tolerance.to_dict(), passed=ok, polygraphy_passed=poly_ok, would_pass=would,
            )
        )
    return out
