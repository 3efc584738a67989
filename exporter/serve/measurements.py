"""What a run folder measured, as typed candidates: one (model, grid, precision, batch) with its
latency (p50, p99 of one batch call) and its top-1.

Sources, in a folder written by ``lookupvit run``: ``summary.json`` (its ``latency.cells`` and
``accuracy`` rows); where the summary lacks the cells, the ``latency.json`` it names; where it lacks
accuracy rows, the ``<model>/g<grid>/accuracy.json`` files that ``compare`` wrote. Loading reads
JSON only: nothing in the folder is executed.

Every document is read through the schema layer (exporter.schema: types and ranges, a latency above
0 ms, 0 <= top-1 <= 100), a path named in one (``latency.file``) stays inside the run folder
(exporter.safe_paths), and a file a claim is about is checked against the sha256 the summary records
for it (:meth:`RunMeasurements.verified`) before the claim is trusted (docs/security.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UntrustedFile, UserError
from ..io import sha256_file
from ..safe_paths import confined, relative_inside
from ..schema.run_folder import AccuracyDoc, LatencyCell, LatencyDoc, SummaryDoc

SUMMARY_JSON = "summary.json"  # exporter.run.options.SUMMARY_JSON (not imported: serve sits below run)
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
    artefacts: dict[str, str] | None = None  # the files its claims were measured on: relative path -> sha256

    @property
    def profile_spec(self) -> str:
        """The run's profile as ``load_profile`` finds it: its recorded file when that is still a ``.toml``
        file named after the profile, else its name, looked up in the profile folders. The name is one path
        component (exporter.safe_paths), so a summary never makes ``load_profile`` open another file."""
        from ..safe_paths import is_plain_file, single_component

        name = single_component(self.profile, f"The profile name in {self.run_dir / SUMMARY_JSON} (key profile.name)")
        path = Path(self.profile_path) if self.profile_path else None
        if path is not None and path.suffix == ".toml" and path.stem == name and is_plain_file(path):
            return str(path)
        return name

    def batches(self, model: str) -> tuple[int, ...]:
        return tuple(sorted({c.batch for c in self.candidates if c.model == model}))

    def has_accuracy(self, model: str) -> bool:
        return any(a.model == model and a.top1 is not None for a in self.accuracy)

    def timed(self, model: str) -> bool:
        return any(c.model == model for c in self.candidates)

    def graph_names(self, variant: str, grid: str, precision: str) -> list[Path]:
        """Where the run layout keeps the graph of (variant, grid, precision), most processed first."""
        folder = self.run_dir / variant / f"g{grid}" / "onnx"
        stem = f"{variant}_g{grid}"
        names = ([f"{stem}.opt.onnx", f"{stem}.onnx"] if precision == "fp32"
                 else [f"{stem}.opt.{precision}.onnx", f"{stem}.{precision}.onnx"])
        return [folder / n for n in names]

    def graph(self, variant: str, grid: str, precision: str) -> Path | None:
        """The graph of (variant, grid, precision) in the run folder (inside it), or None."""
        for p in self.graph_names(variant, grid, precision):
            rel = str(p.relative_to(self.run_dir))
            if confined(self.run_dir, rel, self.run_dir, "the run layout").is_file():
                return p
        return None

    def verified(self, path: Path) -> Path:
        """``path`` when its bytes are those the run measured: its sha256 equals the one ``summary.json``
        records for it (``artefacts``); else :class:`UntrustedFile` (exit 2) naming the file and the key."""
        source = self.run_dir / SUMMARY_JSON
        rel = relative_inside(self.run_dir, path)
        if rel is None:
            confined(self.run_dir, str(path), source, "artefacts")  # raises: outside the run folder
        assert rel is not None
        hint = (f"Rerun `lookupvit run -o {self.run_dir}` with the run's profile: it remakes what changed, measures it "
                "again and records the files' sha256 in summary.json (finished stages whose files are intact are kept).")
        if self.artefacts is None:
            raise UntrustedFile(f"{source} records no sha256 of the files its claims were measured on (key artefacts; "
                                f"written by an older version of this tool), so no claim about {rel} can be trusted.", hint)
        recorded = self.artefacts.get(rel)
        if recorded is None:
            raise UntrustedFile(f"{source} has no record of {rel} (key artefacts.{rel}): no measurement of this run is "
                                "about that file.", hint)
        now = sha256_file(path)
        if now != recorded:
            raise UntrustedFile(f"{path} has changed since the run measured it: sha256 {now[:12]}..., while {source} "
                                f"records {recorded[:12]}... (key artefacts.{rel}). Its top-1 and latency are claims "
                                "about other bytes.", hint)
        return path


def _document(kind: Any, path: Path, what: str) -> Any:
    """``path`` read through the schema layer as ``kind`` (docs/security.md, "Documents we read")."""
    from ..schema import load_document

    try:
        return load_document(kind, path)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: {what}.",
                        "Give the folder of a finished `lookupvit run` (its -o DIR), e.g. "
                        "`lookupvit run --profile cpu -o runs/cpu` first.") from None


def _accuracy_rows(run_dir: Path, summary: SummaryDoc) -> list[AccuracyRow]:
    rows = [AccuracyRow(a.model or "?", a.grid, a.precision, a.top1, a.samples, a.status) for a in summary.accuracy or []]
    if rows:
        return rows
    for f in sorted(run_dir.glob("*/g*/accuracy.json")):  # compare's own results
        rel = str(f.relative_to(run_dir))
        confined(run_dir, rel, run_dir / SUMMARY_JSON, "accuracy (compare's accuracy.json)")
        d = _document(AccuracyDoc, f, "an accuracy result")
        model = f.parent.parent.name
        rows += [AccuracyRow(model, c.grid, c.precision, c.top1, c.samples, c.status) for c in d.cells]
    return rows


def _cells(run_dir: Path, summary: SummaryDoc) -> list[LatencyCell]:
    lat = summary.latency
    if lat is not None and lat.cells:
        return list(lat.cells)
    name = (lat.file if lat is not None else None) or "latency.json"
    file = confined(run_dir, name, run_dir / SUMMARY_JSON, "latency.file")
    if file.is_file():
        return list(_document(LatencyDoc, file, "the run's latency sweep").cells)
    return []


def summary_doc(summary: dict[str, Any] | SummaryDoc, source: str | Path = SUMMARY_JSON) -> SummaryDoc:
    """A summary as :class:`~exporter.schema.run_folder.SummaryDoc` (validated when given as a dict)."""
    from ..schema import validate

    return summary if isinstance(summary, SummaryDoc) else validate(SummaryDoc, summary, source)


def candidates_from(summary: dict[str, Any] | SummaryDoc,
                    run_dir: Path | None = None) -> tuple[list[Candidate], list[AccuracyRow]]:
    """The candidates of a summary (as ``summary.json`` holds it) joined with its accuracy rows on
    (model, grid, precision); a cell without an accuracy row keeps ``top1 = None``."""
    doc = summary_doc(summary)
    run_dir = Path(run_dir or doc.run_dir or ".")
    acc = _accuracy_rows(run_dir, doc)
    by_key = {(a.model, a.grid, a.precision): a for a in acc}
    out: list[Candidate] = []
    for c in _cells(run_dir, doc):
        if c.status != "ok" or c.role == "baseline" or c.latency is None:
            continue
        a = by_key.get((c.model, c.grid, c.precision))
        out.append(Candidate(
            model=c.model, grid=c.grid, precision=c.precision, batch=c.batch, backend=c.backend or "",
            p50_ms=c.latency.p50_ms, p99_ms=c.latency.p99_ms or c.latency.p50_ms,
            top1=None if a is None else a.top1, samples=a.samples if a else None,
            accuracy_status=a.status if a else None, noisy=bool(c.noisy),
        ))
    return out, acc


def load_run(run_dir: str | Path) -> RunMeasurements:
    """Read a ``lookupvit run`` folder (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder.",
                        "Give the folder a `lookupvit run` wrote (its -o DIR), e.g. runs/quickstart.")
    return run_measurements(_document(SummaryDoc, run_dir / SUMMARY_JSON, "this folder holds no finished run"), run_dir)


def run_measurements(summary: dict[str, Any] | SummaryDoc, run_dir: Path) -> RunMeasurements:
    """What ``pick`` needs from a run's summary (``summary.json``, or the document a run is writing
    its report from: validated the same way)."""
    summary = summary_doc(summary)
    prof = summary.profile
    cands, acc = candidates_from(summary, run_dir)
    return RunMeasurements(
        run_dir=run_dir, profile=prof.name, backend=prof.backend,
        accuracy_models=tuple(m.variant for m in prof.models.accuracy),
        latency_models=tuple(m.variant for m in prof.models.latency),
        candidates=tuple(cands), accuracy=tuple(acc), profile_path=prof.path, artefacts=summary.artefacts,
    )
