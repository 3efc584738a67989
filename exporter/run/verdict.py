"""What a run answers: its verdict (the exit status and the lines behind it) and its result
(docs/architecture.md, The stages). 0 everything asked for ran and passed; 1 a verdict FAILED or a
stage failed; 2 work that could not run here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline.manifest import StageOutcome
from .state import RunState


@dataclass(frozen=True)
class RunVerdict:
    """What a run's exit status says: 0 everything asked for ran and passed; 1 a verdict FAILED or a
    stage failed; 2 work that could not run here (over the time budget, a backend missing)."""

    failed_verdicts: tuple[str, ...] = ()  # "validate lookupvit_digits g2 int8: FAILED"
    failed_stages: tuple[str, ...] = ()  # "<stage id>: <reason>"
    not_run: tuple[str, ...] = ()  # "<stage id>: <reason>"

    @property
    def exit_code(self) -> int:
        if self.failed_verdicts or self.failed_stages:
            return 1
        return 2 if self.not_run else 0

    @property
    def status(self) -> str:
        return {0: "PASSED", 1: "FAILED", 2: "INCOMPLETE"}[self.exit_code]

    def lines(self, limit: int = 10) -> list[str]:
        out = []
        for title, items in (("FAILED", self.failed_verdicts), ("stage failed", self.failed_stages),
                             ("not run", self.not_run)):
            out += [f"{title}: {x}" for x in items[:limit]]
            if len(items) > limit:
                out.append(f"{title}: ... and {len(items) - limit} more (see stages.json and the report)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "failed_verdicts": list(self.failed_verdicts),
                "failed_stages": list(self.failed_stages), "not_run": list(self.not_run)}


def run_verdict(outcomes: list[StageOutcome], state: RunState) -> RunVerdict:
    """Every failed verdict, failed stage and stage not run, from the manifest's outcomes."""
    verdicts = [f"validate {v['model']} g{v['grid']} {v['precision']}: FAILED (max rel {v.get('max_rel')})"
                for v in state.validation if v and v.get("status") == "FAILED"]
    for variant, results in state.accuracy.items():
        for r in results:
            for c in (r or {}).get("cells", []):
                if c.get("status") == "FAILED":
                    verdicts.append(f"compare {variant} g{c['grid']} {c['precision']}: FAILED")
    latest: dict[str, StageOutcome] = {}
    for o in outcomes:
        latest[o.id] = o
    failed = tuple(f"{o.id}: {o.note}" for o in latest.values() if o.status == "failed")
    not_run = tuple(f"{o.id}: {o.note}" for o in latest.values() if o.status in ("not run", "unavailable"))
    return RunVerdict(tuple(verdicts), failed, not_run)


@dataclass
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    report: Path | None
    summary_path: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0
    verdict: RunVerdict = field(default_factory=RunVerdict)
