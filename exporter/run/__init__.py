"""The main job (``lookupvit run``): the pipeline of a deployment profile, resumable, with a report.

- :mod:`.manifest`: ``DIR/stages.json``, which stage ran on which inputs (resume = skip unchanged);
- :mod:`.artefacts`: the model files of a run folder, stage by stage (export, optimize, precision, build);
- :mod:`.job`: :func:`run_job`, chaining every stage for a profile's models and grids;
- :mod:`.report`: ``summary.json`` and the self-contained ``report.html``.
"""

from .job import REPORT_HTML, SUMMARY_JSON, RunOptions, RunProgress, RunResult, run_job
from .manifest import Manifest, StageError, StageOutcome

__all__ = [
    "REPORT_HTML", "SUMMARY_JSON", "Manifest", "RunOptions", "RunProgress", "RunResult", "StageError", "StageOutcome",
    "run_job",
]
