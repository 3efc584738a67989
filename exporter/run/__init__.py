"""The main job (``lookupvit run``): the pipeline of a deployment profile, resumable, with a report.

- :mod:`.job`: :func:`run_job`, chaining every stage for a profile's models and grids;
- :mod:`.report`: ``summary.json`` and the self-contained ``report.html``;
- :mod:`.fleet`: several profiles (here, or on a Ray cluster through :mod:`exporter.cluster`) and the
  fleet report that sets them side by side.
"""

from .job import REPORT_HTML, SUMMARY_JSON, RunOptions, RunProgress, RunResult, run_job

__all__ = [
    "REPORT_HTML", "SUMMARY_JSON", "RunOptions", "RunProgress", "RunResult", "run_job",
]
