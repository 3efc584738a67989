"""The accuracy comparison across precisions (``lookupvit compare``): above the stage chain, whose
graphs it compares (docs/architecture.md, The stages)."""

from .compare import ComparisonResult, compare_precisions, locate_divergence

__all__ = ["ComparisonResult", "compare_precisions", "locate_divergence"]
