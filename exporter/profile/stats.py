"""Latency statistics over timed samples: percentiles, throughput and achieved FLOP rate.

Percentiles use linear interpolation between closest ranks (the ``linear`` method of
``numpy.percentile``, Hyndman and Fan's definition 7): for sorted samples ``x[0..n-1]`` the q-th
percentile sits at rank ``h = (n - 1) q / 100`` and is ``x[floor h] + (h - floor h)(x[ceil h] - x[floor h])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, linearly interpolated between ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(samples)
    h = (len(xs) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50.0)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-call latencies in milliseconds (one call = one batch)."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(seconds: Sequence[float]) -> LatencyStats:
    """Statistics of per-call latencies given in seconds."""
    ms = [1e3 * s for s in seconds]
    n = len(ms)
    mean = sum(ms) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in ms) / (n - 1)) if n > 1 else 0.0
    return LatencyStats(
        n=n,
        p50_ms=percentile(ms, 50.0),
        p90_ms=percentile(ms, 90.0),
        p99_ms=percentile(ms, 99.0),
        mean_ms=mean,
        min_ms=min(ms),
        max_ms=max(ms),
        std_ms=std,
    )


def throughput(batch: int, latency_ms: float) -> float:
    """Images per second at ``batch`` images per call of ``latency_ms``."""
    return 1e3 * batch / latency_ms if latency_ms > 0 else math.nan


def gflops(macs_per_image: int, batch: int, latency_ms: float) -> float:
    """Achieved GFLOP/s: two floating-point operations per multiply-accumulate."""
    return 2.0 * macs_per_image * batch / (latency_ms * 1e-3) / 1e9 if latency_ms > 0 else math.nan
