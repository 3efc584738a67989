"""Latency statistics over timed samples: percentiles, spread across rounds, throughput, FLOP rate.

Percentiles use linear interpolation between closest ranks (the ``linear`` method of
``numpy.percentile``, Hyndman and Fan's definition 7): for sorted samples ``x[0..n-1]`` the q-th
percentile sits at rank ``h = (n - 1) q / 100`` and is ``x[floor h] + (h - floor h)(x[ceil h] - x[floor h])``.

The spread of a cell is the coefficient of variation of its round medians (sample standard
deviation over mean): the calls are timed in interleaved rounds (:mod:`.sweep`), so a drift in the
machine's load between rounds shows up here, while a single stalled call does not. Next to it
stands the distribution-free 95% confidence interval of the median from order statistics: with
``n`` samples the interval runs from rank ``n/2 - 1.96 sqrt(n)/2`` to ``n/2 + 1.96 sqrt(n)/2``
(the normal approximation to the binomial count of samples below the median).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..profiles import BenchmarkSettings

NOISE_THRESHOLD = BenchmarkSettings().noise_threshold  # a cell whose round medians vary by more (CV) is noisy


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, linearly interpolated between ranks (numpy)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q, method="linear"))


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50.0)


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; None for fewer than two values."""
    if len(values) < 2:
        return None
    xs = np.asarray(values, dtype=np.float64)
    mean = float(xs.mean())
    if mean <= 0:
        return None
    return float(xs.std(ddof=1)) / mean


def median_ci(samples: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """The distribution-free confidence interval of the median (95% for ``z`` = 1.96)."""
    xs = sorted(samples)
    n = len(xs)
    half = z * math.sqrt(n) / 2.0
    lo = max(0, math.floor(n / 2.0 - half))
    hi = min(n - 1, math.ceil(n / 2.0 + half) - 1)
    return xs[lo], xs[max(lo, hi)]


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
    p10_ms: float | None = None
    p25_ms: float | None = None  # the interquartile range, p25..p75, is what the plots' bars show
    p75_ms: float | None = None
    rounds: int = 1  # interleaved rounds the calls were timed in
    spread: float | None = None  # coefficient of variation of the round medians (None: one round)
    ci_low_ms: float | None = None  # 95% confidence interval of the median
    ci_high_ms: float | None = None
    seconds: float = 0.0  # timed seconds (sum of the calls)

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def noisy(self, threshold: float = NOISE_THRESHOLD) -> bool:
        return self.spread is not None and self.spread > threshold


def summarize(seconds: Sequence[float], rounds: Sequence[Sequence[float]] | None = None) -> LatencyStats:
    """Statistics of per-call latencies given in seconds; ``rounds``: the same calls grouped by the
    round they were timed in (for the spread)."""
    ms = [1e3 * s for s in seconds]
    n = len(ms)
    mean = sum(ms) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in ms) / (n - 1)) if n > 1 else 0.0
    groups = [r for r in (rounds or []) if r]
    round_medians = [1e3 * median(r) for r in groups]
    lo, hi = median_ci(ms)
    return LatencyStats(
        n=n,
        p50_ms=percentile(ms, 50.0),
        p90_ms=percentile(ms, 90.0),
        p99_ms=percentile(ms, 99.0),
        mean_ms=mean,
        min_ms=min(ms),
        max_ms=max(ms),
        std_ms=std,
        p10_ms=percentile(ms, 10.0),
        p25_ms=percentile(ms, 25.0),
        p75_ms=percentile(ms, 75.0),
        rounds=max(1, len(groups)),
        spread=coefficient_of_variation(round_medians),
        ci_low_ms=lo,
        ci_high_ms=hi,
        seconds=sum(seconds),
    )


def throughput(batch: int, latency_ms: float) -> float:
    """Images per second at ``batch`` images per call of ``latency_ms``."""
    return 1e3 * batch / latency_ms if latency_ms > 0 else math.nan


def gflops(macs_per_image: int, batch: int, latency_ms: float) -> float:
    """Achieved GFLOP/s: two floating-point operations per multiply-accumulate."""
    return 2.0 * macs_per_image * batch / (latency_ms * 1e-3) / 1e9 if latency_ms > 0 else math.nan
