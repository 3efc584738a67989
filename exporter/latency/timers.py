"""What a latency sweep needs of a backend's timer; each backend's timer lives in its folder of
:mod:`exporter.backends` and is reached through the registry (docs/architecture.md, The backend axis).
"""

from __future__ import annotations

from ..backends.base import NotRun, StageFailed, Timer, Unsupported, random_batch

__all__ = ["NotRun", "StageFailed", "Timer", "Unsupported", "random_batch"]
