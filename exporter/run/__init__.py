"""The main job (``lookupvit run``): the pipeline of a deployment profile, resumable, with a report.

- :mod:`.job`: :func:`run_job`, the orchestration: every stage for a profile's models and grids, in order;
- :mod:`.options`: what a run is asked, its progress receiver, the names of its top-level files;
- :mod:`.scope`: what the profile asks for (models and roles, grids, backend, the latency sweep);
- :mod:`.stages`: the stages as steps recorded in the manifest (chain, check, validate, compare, sweep);
- :mod:`.budget`: ``--budget``, the latency-model cells that fit the time, in priority order;
- :mod:`.prepare`: ``--prepare-only`` and the cluster's graph task (everything that needs no GPU);
- :mod:`.verdict`: the run's verdict and result; :mod:`.state`: what the stages collect;
- :mod:`.keep`: the disk policy; :mod:`.report`: ``summary.json`` and the self-contained ``report.html``;
- :mod:`.outcome`: the types the fleet (exporter/fleet) shares with its executors.
"""

from .job import run_job
from .options import REPORT_HTML, SUMMARY_JSON, RunOptions, RunProgress
from .verdict import RunResult

__all__ = [
    "REPORT_HTML", "SUMMARY_JSON", "RunOptions", "RunProgress", "RunResult", "run_job",
]
