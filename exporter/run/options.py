"""What ``lookupvit run`` is asked (:class:`RunOptions`), where it reports its progress
(:class:`RunProgress`), and the names of the files it writes at the top of its folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUMMARY_JSON = "summary.json"
REPORT_HTML = "report.html"
PREPARED_JSON = "prepared.json"  # run --prepare-only


@dataclass(frozen=True)
class RunOptions:
    profile: str | Path = "cpu"
    out_dir: Path = Path("runs/run")
    optimize: bool | None = None  # None: when exporter.passes is available
    validate_iterations: int | None = None  # batches per validation (None: what `lookupvit validate` takes by default)
    repeats: int | None = None  # interleaved rounds of the latency sweep (None: the profile's benchmark.repeats)
    peak_sizes: tuple[int, ...] | None = None  # matrix sizes of the peak measurement (None: default)
    budget_s: float | None = None  # time budget for the latency models (--budget); None or inf: none
    prepare_only: bool = False  # export, optimize, convert (and check for TensorRT) only: no build, no measurement
    keep: str = "final"  # "final": delete exported graphs once optimised (exporter.run.keep); "all": keep every file


class RunProgress:
    """Receives the job's progress: the number of steps up front, then each step's start and end.
    This base class ignores it all; the CLI draws it."""

    def start(self, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def done(self, label: str) -> None:
        pass
