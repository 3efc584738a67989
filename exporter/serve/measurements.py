"""What a run folder measured, as typed candidates: one (model, grid, precision, batch) with its
latency (p50, p99 of one batch call) and its top-1.

Sources, in a folder written by ``lookupvit run``: ``summary.json`` (its ``latency.cells`` and
``accuracy`` rows); where the summary lacks the cells, the ``latency.json`` it names; where it lacks
accuracy rows, the ``<model>/g<grid>/accuracy.json`` files that ``compare`` wrote. Loading reads
JSON only: nothing in the folder is executed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

SUMMARY_JSON = "summary.json"  # exporter.run.job.SUMMARY_JSON (not imported: that module pulls in the pipeline)
PERCENTILES = ("p50", "p99")


@dataclass(frozen=True)
class Candidate:
    """One (grid, precision) of a model at one batch, with what the run measured for it."""

    model: str
    grid: str
    precision: str
    batch: int
    backend: str
    p50_ms: float
    p99_ms: float
    top1: float | None  # percent; None: no accuracy measured for this cell
    samples: int | None = None  # test images behind top1
    accuracy_status: str | None = None  # compare's verdict (PASSED / FAILED)
    noisy: bool = False

    @property
    def label(self) -> str:
        return f"g{self.grid} {self.precision}"

    def latency(self, percentile: str) -> float:
        return self.p99_ms if percentile == "p99" else self.p50_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyRow:
    model: str
    grid: str
    precision: str
    top1: float | None
    samples: int | None
    status: str | None


@dataclass(frozen=True)
class RunMeasurements:
    """Everything ``pick`` needs from one run folder."""

    run_dir: Path
    profile: str
    backend: str  # the profile's backend (onnxruntime / tensorrt / tensorrt-rtx)
    accuracy_models: tuple[str, ...]  # the profile's [models] accuracy
    latency_models: tuple[str, ...]  # the profile's [models] latency
    candidates: tuple[Candidate, ...]  # every timed cell of a LookupViT (baselines left out)
    accuracy: tuple[AccuracyRow, ...]
    profile_path: str | None = None  # the profile file the run read, as it recorded it

    @property
    def profile_spec(self) -> str:
        """The run's profile as ``load_profile`` finds it: its recorded file when that still exists, else its name."""
        return self.profile_path if self.profile_path and Path(self.profile_path).is_file() else self.profile

    def batches(self, model: str) -> tuple[int, ...]:
        return tuple(sorted({c.batch for c in self.candidates if c.model == model}))

    def has_accuracy(self, model: str) -> bool:
        return any(a.model == model and a.top1 is not None for a in self.accuracy)

    def timed(self, model: str) -> bool:
        return any(c.model == model for c in self.candidates)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: {what}.",
                        "Give the folder of a finished `lookupvit run` (its -o DIR), e.g. "
                        "`lookupvit run --profile cpu -o runs/cpu` first.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}).",
                        "Rerun `lookupvit run` into that folder: it rewrites summary.json (finished stages are skipped).") from None


def _accuracy_rows(run_dir: Path, summary: dict[str, Any]) -> list[AccuracyRow]:
    rows = [AccuracyRow(str(a["model"]), str(a["grid"]), str(a["precision"]), a.get("top1"), a.get("samples"),
                        a.get("status")) for a in summary.get("accuracy") or []]
    if rows:
        return rows
    for f in sorted(run_dir.glob("*/g*/accuracy.json")):  # compare's own results
        d = _read_json(f, "an accuracy result")
        model = f.parent.parent.name
        for c in d.get("cells", []):
            rows.append(AccuracyRow(model, str(c["grid"]), str(c["precision"]), c.get("top1"), c.get("samples"),
                                    c.get("status")))
    return rows


def _cells(run_dir: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    lat = summary.get("latency") or {}
    cells = lat.get("cells")
    if cells:
        return list(cells)
    file = run_dir / (lat.get("file") or "latency.json")
    if file.is_file():
        return list(_read_json(file, "the run's latency sweep").get("cells") or [])
    return []


def candidates_from(summary: dict[str, Any], run_dir: Path | None = None) -> tuple[list[Candidate], list[AccuracyRow]]:
    """The candidates of a summary (as ``summary.json`` holds it) joined with its accuracy rows on
    (model, grid, precision); a cell without an accuracy row keeps ``top1 = None``."""
    run_dir = Path(run_dir or summary.get("run_dir") or ".")
    acc = _accuracy_rows(run_dir, summary)
    by_key = {(a.model, a.grid, a.precision): a for a in acc}
    out: list[Candidate] = []
    for c in _cells(run_dir, summary):
        lat = c.get("latency") or {}
        if c.get("status") != "ok" or c.get("role") == "baseline" or lat.get("p50_ms") is None:
            continue
        a = by_key.get((str(c["model"]), str(c["grid"]), str(c["precision"])))
        out.append(Candidate(
            model=str(c["model"]), grid=str(c["grid"]), precision=str(c["precision"]), batch=int(c["batch"]),
            backend=str(c.get("backend") or ""), p50_ms=float(lat["p50_ms"]), p99_ms=float(lat.get("p99_ms") or lat["p50_ms"]),
            top1=None if a is None or a.top1 is None else float(a.top1), samples=a.samples if a else None,
            accuracy_status=a.status if a else None, noisy=bool(c.get("noisy")),
        ))
    return out, acc


def load_run(run_dir: str | Path) -> RunMeasurements:
    """Read a ``lookupvit run`` folder (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder.",
                        "Give the folder a `lookupvit run` wrote (its -o DIR), e.g. runs/quickstart.")
    summary = _read_json(run_dir / SUMMARY_JSON, "this folder holds no finished run")
    if summary.get("kind") != "lookupvit-run":
        raise UserError(f"{run_dir / SUMMARY_JSON} is not the summary of a `lookupvit run` (kind {summary.get('kind')!r}).",
                        "Give the folder of a finished `lookupvit run`.")
    return run_measurements(summary, run_dir)


def run_measurements(summary: dict[str, Any], run_dir: Path) -> RunMeasurements:
    """What ``pick`` needs from a run's summary (as ``summary.json`` holds it), e.g. while the run
    writes its report."""
    prof = summary.get("profile") or {}
    models = prof.get("models") or {}
    cands, acc = candidates_from(summary, run_dir)
    return RunMeasurements(
        run_dir=run_dir, profile=str(prof.get("name") or "?"), backend=str(prof.get("backend") or "?"),
        accuracy_models=tuple(m["variant"] for m in models.get("accuracy") or []),
        latency_models=tuple(m["variant"] for m in models.get("latency") or []),
        candidates=tuple(cands), accuracy=tuple(acc), profile_path=prof.get("path"),
    )
