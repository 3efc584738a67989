"""Validation stage: a candidate backend against the PyTorch reference, with per-precision tolerances."""

from .comparison import OutputComparison, compare_runners, output_metrics
from .tolerances import TOLERANCES, Tolerance, tolerance_for
from .validate import ValidationReport, make_feeds, reference_source, run_validation, validate_model

__all__ = [
    "TOLERANCES", "OutputComparison", "Tolerance", "ValidationReport", "compare_runners", "make_feeds",
    "output_metrics", "reference_source", "run_validation", "tolerance_for", "validate_model",
]
