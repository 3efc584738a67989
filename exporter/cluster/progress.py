"""Progress of a cluster run: tasks report to one small Ray actor, the driver reads it.

Ray's rule (docs.ray.io, "Actors"): an actor is a process holding state that tasks on any node call
by handle; calls from one caller run in order. A device task sends (stages done, total, current
stage, node) after each step; the driver polls :meth:`ProgressBoard.read` while it waits and draws
one line per profile. The actor asks for no CPU, so it never takes a slot a stage needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..run.options import RunProgress


@dataclass(frozen=True)
class StepReport:
    profile: str
    done: int
    total: int
    stage: str
    node: str


class ProgressBoard:
    """The actor's class (made remote by the scheduler): the latest report per profile."""

    def __init__(self) -> None:
        self.latest: dict[str, StepReport] = {}

    def report(self, r: StepReport) -> None:
        self.latest[r.profile] = r

    def read(self) -> dict[str, StepReport]:
        return dict(self.latest)


class BoardProgress(RunProgress):
    """A run's progress (:class:`exporter.run.options.RunProgress`) sent to the board; fire and forget."""

    def __init__(self, board: Any, profile: str, node: str) -> None:
        self.board, self.profile, self.node = board, profile, node
        self.total, self.n = 0, 0

    def _send(self, stage: str) -> None:
        if self.board is not None:
            self.board.report.remote(StepReport(self.profile, self.n, self.total, stage, self.node))

    def start(self, total: int) -> None:
        self.total = total
        self._send("starting")

    def step(self, label: str) -> None:
        self._send(label)

    def done(self, label: str) -> None:
        self.n += 1
        if self.n >= self.total:
            self._send("finishing")
