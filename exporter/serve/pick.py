"""``lookupvit pick``: the (grid, precision) that meets a latency budget with the best accuracy.

The run measured latency per (model, grid, precision, batch) and top-1 per (model, grid,
precision) of its accuracy models. Accuracy and latency are joined on the same model: on the cpu
profile the accuracy model (``lookupvit_digits``) is timed in the same sweep as the 224-px latency
model, whose accuracy is not measured, so the choice is made for the accuracy model and says so.

Rule: among the candidates whose latency of one batch call (p50, or p99 with ``--percentile p99``)
is within the budget, the most accurate (ties: the faster); with ``--min-top1`` the fastest whose
top-1 reaches the floor. Either way the choice lies on the Pareto front (:mod:`.pareto`). Every
other candidate gets the reason it lost: over the budget, below the accuracy floor, dominated by a
named setting, or on the front but less accurate (or slower) than the choice.

A setting whose accuracy verdict is not PASSED (FAILED, NOT MEANINGFUL) is never chosen unless the
user asks with ``--allow-failed``; then the chosen row says so (docs/security.md). Before a choice is
returned, every graph of the model's candidates that the run folder holds is checked against the
sha256 ``summary.json`` records for it: a changed graph is refused (exit 2), since the figures are
claims about the bytes that were measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .measurements import PERCENTILES, Candidate, RunMeasurements
from .pareto import dominator, pareto_front


@dataclass(frozen=True)
class Verdict:
    """One candidate's outcome: the choice, or why it lost."""

    candidate: Candidate
    on_front: bool
    chosen: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.candidate.to_dict(), "on_front": self.on_front, "chosen": self.chosen, "reason": self.reason}


@dataclass(frozen=True)
class PickRequest:
    budget_ms: float
    batch: int | None = None  # None: the smallest batch the run measured
    min_top1: float | None = None  # percent
    percentile: str = "p50"
    model: str | None = None  # None: the first model with both accuracy and latency
    allow_failed: bool = False  # a setting whose accuracy verdict is FAILED / NOT MEANINGFUL may be chosen


TRUSTED_VERDICTS = ("PASSED",)


def verdict_ok(c: Candidate) -> bool:
    """Whether ``c``'s accuracy verdict lets it be chosen without ``--allow-failed``."""
    return c.accuracy_status is None or c.accuracy_status in TRUSTED_VERDICTS


@dataclass(frozen=True)
class Decision:
    run_dir: Path
    profile: str
    backend: str
    model: str
    batch: int
    percentile: str
    budget_ms: float
    min_top1: float | None
    chosen: Candidate
    verdicts: tuple[Verdict, ...]  # every candidate, fastest first
    front: tuple[Candidate, ...]
    note: str  # which model the choice is for, and why
    warning: str | None = None  # the chosen setting's accuracy verdict is not PASSED (--allow-failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "lookupvit-pick", "run_dir": str(self.run_dir), "profile": self.profile, "backend": self.backend,
            "model": self.model, "batch": self.batch, "percentile": self.percentile, "budget_ms": self.budget_ms,
            "min_top1": self.min_top1, "chosen": self.chosen.to_dict(), "note": self.note, "warning": self.warning,
            "front": [f"g{c.grid} {c.precision}" for c in self.front],
            "candidates": [v.to_dict() for v in self.verdicts],
        }


def _ms(v: float) -> str:
    return f"{v:.3g} ms" if v < 10 else f"{v:.1f} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


def _choose_model(run: RunMeasurements, req: PickRequest) -> tuple[str, str]:
    """The model to pick for and a sentence saying why it is that one."""
    usable = [m for m in dict.fromkeys([*run.accuracy_models, *(c.model for c in run.candidates)])
              if run.has_accuracy(m) and run.timed(m)]
    if req.model is not None:
        if not run.timed(req.model):
            timed = sorted({c.model for c in run.candidates})
            raise UserError(
                f"Run {run.run_dir} has no latency for {req.model} (timed: {', '.join(timed) or 'nothing'}).",
                f"Pick one of {', '.join(usable) or 'the timed models'} with --model, or rerun `lookupvit run` with a "
                f"profile that times {req.model}.",
            )
        if not run.has_accuracy(req.model):
            raise UserError(
                f"Run {run.run_dir} has latency but no accuracy for {req.model}: profile {run.profile} measures "
                f"top-1 only for its accuracy models ({', '.join(run.accuracy_models) or 'none'}).",
                f"Pick for an accuracy model (--model {usable[0]})." if usable else
                "Add the model to [models] accuracy in the profile and rerun `lookupvit run`.",
            )
        return req.model, f"picked for {req.model}, as asked"
    if not usable:
        if not run.candidates:
            raise UserError(
                f"Run {run.run_dir} has no latency measurements (no timed cell in summary.json or latency.json).",
                "Rerun `lookupvit run` into the same folder (finished stages are skipped); if cells were over the time "
                "budget, give it --budget 0.",
            )
        raise UserError(
            f"Run {run.run_dir} has no accuracy for any timed model (accuracy models of profile {run.profile}: "
            f"{', '.join(run.accuracy_models) or 'none'}; their compare stage has no top-1).",
            "Rerun `lookupvit run` into the same folder so that the compare stages finish (see the report's stages), "
            "or use a profile with [models] accuracy.",
        )
    model = usable[0]
    others = [m for m in run.latency_models if m != model and not run.has_accuracy(m)]
    why = f"picked for {model}, the model whose accuracy and latency this run both measured"
    if others:
        why += (f"; the latency model{'s' if len(others) > 1 else ''} {', '.join(others)} "
                f"{'have' if len(others) > 1 else 'has'} no measured accuracy, so no choice is made for it")
    return model, why


def pick(run: RunMeasurements, req: PickRequest) -> Decision:
    """The decision for ``req`` on ``run`` (see the module docstring); raises UserError when nothing
    can be chosen, naming the closest candidate."""
    if req.percentile not in PERCENTILES:
        raise UserError(f"--percentile {req.percentile} is not one of {', '.join(PERCENTILES)}.")
    if not (req.budget_ms > 0 and math.isfinite(req.budget_ms)):
        raise UserError(f"--latency-ms {req.budget_ms} must be a positive number of milliseconds.")
    model, note = _choose_model(run, req)
    batches = run.batches(model)
    batch = req.batch if req.batch is not None else batches[0]
    if batch not in batches:
        raise UserError(
            f"Run {run.run_dir} has no latency for {model} at batch {batch} (measured batches: "
            f"{', '.join(map(str, batches))}).",
            f"Use --batch {' or --batch '.join(map(str, batches))}, or add {batch} to [batch] opt in profile "
            f"{run.profile} and rerun `lookupvit run`.",
        )
    p = req.percentile
    cands = sorted((c for c in run.candidates if c.model == model and c.batch == batch),
                   key=lambda c: (c.latency(p), -(c.top1 or 0.0)))
    measured = [c for c in cands if c.top1 is not None]
    if not measured:
        raise UserError(f"Run {run.run_dir} has no accuracy for {model} at the grids it timed.",
                        "Rerun `lookupvit run` so that its compare stages finish.")
    scored = [c for c in measured if req.allow_failed or verdict_ok(c)]
    if not scored:
        seen = ", ".join(sorted({str(c.accuracy_status) for c in measured}))
        raise UserError(f"Every measured setting of {model} in run {run.run_dir} has an accuracy verdict other than "
                        f"PASSED ({seen}): none is chosen.",
                        "Fix the cause (see the run's report), or pass --allow-failed to choose among them anyway.")
    for c in cands:  # the figures are claims about the bytes measured: the graphs must still be those
        graph = run.graph(c.model, c.grid, c.precision)
        if graph is not None and run.artefacts is not None:
            run.verified(graph)
    front = pareto_front(scored, p)
    within = [c for c in scored if c.latency(p) <= req.budget_ms]
    floor = req.min_top1
    ok = [c for c in within if floor is None or (c.top1 or 0.0) >= floor]
    if not ok:
        raise _nothing_fits(run, model, batch, p, req, scored, within)
    if floor is None:
        chosen = max(ok, key=lambda c: (c.top1 or 0.0, -c.latency(p)))
    else:
        chosen = min(ok, key=lambda c: (c.latency(p), -(c.top1 or 0.0)))
    verdicts = tuple(_verdict(c, chosen, scored, front, req) for c in cands)
    warning = None if verdict_ok(chosen) else (
        f"the chosen setting g{chosen.grid} {chosen.precision} has the accuracy verdict {chosen.accuracy_status}: "
        "chosen only because --allow-failed was given")
    return Decision(run.run_dir, run.profile, run.backend, model, batch, p, req.budget_ms, floor, chosen, verdicts,
                    tuple(front), note, warning)


def _verdict(c: Candidate, chosen: Candidate, scored: list[Candidate], front: list[Candidate], req: PickRequest) -> Verdict:
    p = req.percentile
    on_front = c in front
    if c is chosen:
        why = (f"the fastest setting within {_ms(req.budget_ms)} whose top-1 reaches {req.min_top1:g}%"
               if req.min_top1 is not None else f"the most accurate setting within {_ms(req.budget_ms)}")
        if not verdict_ok(c):
            why += f" (its accuracy verdict is {c.accuracy_status}: chosen because of --allow-failed)"
        return Verdict(c, on_front, True, f"chosen: {why}")
    if c.top1 is None:
        reason = "no accuracy measured for it"
    elif not verdict_ok(c) and c not in scored:
        reason = f"its accuracy verdict is {c.accuracy_status}: never chosen without --allow-failed"
    elif c.latency(p) > req.budget_ms:
        reason = f"slower than the budget: {p} {_ms(c.latency(p))} > {_ms(req.budget_ms)}"
    elif req.min_top1 is not None and c.top1 < req.min_top1:
        reason = f"below the accuracy floor: top-1 {_pct(c.top1)} < {req.min_top1:g}%"
    elif (d := dominator(c, scored, p)) is not None:
        reason = f"dominated by g{d.grid} {d.precision} ({p} {_ms(d.latency(p))}, top-1 {_pct(d.top1)})"
    elif req.min_top1 is not None:
        reason = f"slower than the choice ({_ms(c.latency(p))} > {_ms(chosen.latency(p))})"
    else:
        reason = f"less accurate than the choice (top-1 {_pct(c.top1)} < {_pct(chosen.top1)})"
    if not verdict_ok(c) and c in scored:
        reason += f"; its accuracy verdict is {c.accuracy_status}"
    return Verdict(c, on_front, False, reason)


def _nothing_fits(run: RunMeasurements, model: str, batch: int, p: str, req: PickRequest, scored: list[Candidate],
                  within: list[Candidate]) -> UserError:
    if req.min_top1 is not None and within:
        best = max(within, key=lambda c: (c.top1 or 0.0, -c.latency(p)))
        reaching = [c for c in scored if (c.top1 or 0.0) >= req.min_top1]
        closest = min(reaching, key=lambda c: c.latency(p)) if reaching else None
        msg = (f"No setting of {model} (batch {batch}) within {_ms(req.budget_ms)} reaches top-1 {req.min_top1:g}%: the "
               f"most accurate within the budget is g{best.grid} {best.precision} at {_pct(best.top1)} ({p} "
               f"{_ms(best.latency(p))})")
        if closest is not None:
            msg += (f"; the fastest that reaches it is g{closest.grid} {closest.precision} ({p} "
                    f"{_ms(closest.latency(p))}, top-1 {_pct(closest.top1)})")
            hint = f"Raise --latency-ms to {closest.latency(p):.3g} or lower --min-top1 to {best.top1:.2f}."
        else:
            hint = f"Lower --min-top1 to {best.top1:.2f} (no measured setting reaches {req.min_top1:g}%)."
        return UserError(msg + ".", hint)
    fastest = min(scored, key=lambda c: (c.latency(p), -(c.top1 or 0.0)))
    return UserError(
        f"No setting of {model} (batch {batch}) meets the budget of {_ms(req.budget_ms)} at {p}: the closest is "
        f"g{fastest.grid} {fastest.precision} at {_ms(fastest.latency(p))} (top-1 {_pct(fastest.top1)}).",
        f"Raise --latency-ms to at least {fastest.latency(p):.3g}"
        + (", or compare at --percentile p50" if p == "p99" else "")
        + (f", or use a smaller --batch ({', '.join(map(str, run.batches(model)))} measured)" if batch > min(run.batches(model)) else "")
        + ".",
    )


def decision_rows(d: Decision) -> list[list[str]]:
    """The decision as table rows: every candidate, fastest first."""
    rows = []
    for v in d.verdicts:
        c = v.candidate
        mark = "*" if v.chosen else ("front" if v.on_front else "")
        rows.append([f"g{c.grid}", c.precision, f"{c.p50_ms:.3f}", f"{c.p99_ms:.3f}", _pct(c.top1),
                     "NOISY" if c.noisy else "", mark, v.reason])
    return rows


DECISION_COLUMNS = ["grid", "prec", "p50 ms", "p99 ms", "top-1", "noise", "front", "outcome"]
