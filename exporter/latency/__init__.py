"""Latency per compressed-token setting (docs/architecture.md, The stages): the ``profile`` stage.

- :mod:`.stats`: percentiles, the spread of round medians (the noise flag), throughput, achieved GFLOP/s;
- :mod:`.peak`: the machine's measured matrix-multiply peak with its spread (the yardstick for efficiency);
- :mod:`.machine`: what the measurements ran on, and the load average while they ran;
- :mod:`.pace`: the machine's pace (a probe against its quiet time), so that slow phases are waited out or flagged;
- :mod:`.timers`: what a sweep needs of a backend's timer (each backend's timer is in its folder of
  :mod:`exporter.backends`, reached through its registry);
- :mod:`.sweep`: the sweep definition (grids x precisions x batches x backends), the thread trial
  and the interleaved measurement next to the ViT baseline;
- :mod:`.plots`: latency vs grid, measured vs analytic speedup, accuracy vs latency;
- :mod:`.api`: targets (variant, ONNX file, engine) and :func:`profile_latency`, behind the verb.
"""

from .peak import MatmulPeak, PeakMeasurement, measure_peak
from .stats import LatencyStats, gflops, median, percentile, summarize, throughput
from .sweep import Cell, CellResult, SweepModel, SweepResult, SweepSettings, SweepSpec, run_sweep
from .timers import Timer, Unsupported

__all__ = [
    "Cell", "CellResult", "LatencyStats", "MatmulPeak", "PeakMeasurement", "SweepModel", "SweepResult",
    "SweepSettings", "SweepSpec", "Timer", "Unsupported", "gflops", "measure_peak", "median", "percentile",
    "run_sweep", "summarize", "throughput",
]
