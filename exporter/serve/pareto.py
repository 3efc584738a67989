"""The Pareto front of (grid, precision) settings over latency and accuracy.

A setting *dominates* another when it is at least as fast (at the chosen percentile of one batch
call) and at least as accurate (top-1), and strictly better in one of the two. The front is the set
of settings no other setting dominates; sorted by latency, its accuracy rises strictly, so for any
latency budget the most accurate setting within it is a front point: the last one at or under the
budget. Settings without a measured accuracy take no part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .measurements import PERCENTILES, Candidate


def dominates(a: Candidate, b: Candidate, percentile: str) -> bool:
    """Whether ``a`` dominates ``b`` (both need a top-1)."""
    if a.top1 is None or b.top1 is None:
        return False
    la, lb = a.latency(percentile), b.latency(percentile)
    return la <= lb and a.top1 >= b.top1 and (la < lb or a.top1 > b.top1)


def pareto_front(cands: Sequence[Candidate], percentile: str = "p50") -> list[Candidate]:
    """The non-dominated candidates with an accuracy, fastest first."""
    scored = [c for c in cands if c.top1 is not None]
    front = [c for c in scored if not any(dominates(o, c, percentile) for o in scored if o is not c)]
    out: list[Candidate] = []
    for c in sorted(front, key=lambda c: (c.latency(percentile), -(c.top1 or 0.0))):
        if not out or (c.top1 or 0.0) > (out[-1].top1 or 0.0):  # exact ties: the first (fastest) stays
            out.append(c)
    return out


def dominator(c: Candidate, cands: Sequence[Candidate], percentile: str) -> Candidate | None:
    """The fastest candidate that dominates ``c``, or None."""
    doms = [o for o in cands if o is not c and dominates(o, c, percentile)]
    return min(doms, key=lambda o: (o.latency(percentile), -(o.top1 or 0.0))) if doms else None


@dataclass(frozen=True)
class FrontPoint:
    """A front point and the latency budgets for which ``pick`` returns it: from its own latency up
    to (not including) the next front point's."""

    candidate: Candidate
    budget_from_ms: float
    budget_to_ms: float | None  # None: every larger budget

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"grid": c.grid, "precision": c.precision, "p50_ms": c.p50_ms, "p99_ms": c.p99_ms, "top1": c.top1,
                "samples": c.samples, "noisy": c.noisy, "budget_from_ms": self.budget_from_ms,
                "budget_to_ms": self.budget_to_ms}


@dataclass(frozen=True)
class Front:
    """The front of one model at one batch and percentile; ``best`` is its most accurate point (what
    ``pick`` returns for any budget at or above its latency)."""

    model: str
    batch: int
    percentile: str
    points: tuple[FrontPoint, ...]
    others: tuple[Candidate, ...]  # the dominated candidates (and those without accuracy)

    @property
    def best(self) -> Candidate | None:
        return self.points[-1].candidate if self.points else None

    def to_dict(self) -> dict[str, Any]:
        b = self.best
        return {"model": self.model, "batch": self.batch, "percentile": self.percentile,
                "front": [p.to_dict() for p in self.points],
                "best": None if b is None else {"grid": b.grid, "precision": b.precision},
                "dominated": [f"g{c.grid} {c.precision}" for c in self.others]}


def make_front(cands: Sequence[Candidate], model: str, batch: int, percentile: str) -> Front:
    mine = [c for c in cands if c.model == model and c.batch == batch]
    front = pareto_front(mine, percentile)
    points = tuple(FrontPoint(c, c.latency(percentile), front[i + 1].latency(percentile) if i + 1 < len(front) else None)
                   for i, c in enumerate(front))
    others = tuple(c for c in mine if c not in front)
    return Front(model, batch, percentile, points, others)


def run_fronts(cands: Sequence[Candidate]) -> list[Front]:
    """Every front of a run: per model with an accuracy, batch and percentile (p50, p99)."""
    models = sorted({c.model for c in cands if c.top1 is not None})
    return [make_front(cands, m, b, p) for m in models for b in sorted({c.batch for c in cands if c.model == m})
            for p in PERCENTILES]


def fronts_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The ``pareto`` entry of ``summary.json``: the fronts of the run (see :func:`run_fronts`)."""
    from .measurements import candidates_from

    cands, _ = candidates_from(summary)
    return {
        "rule": "non-dominated (grid, precision) settings over latency of one batch call (p50 or p99) and top-1; "
                "`lookupvit pick DIR --latency-ms X` returns the most accurate point whose latency is within X",
        "fronts": [f.to_dict() for f in run_fronts(cands)],
    }
