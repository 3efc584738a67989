"""What one profile's run comes to, and its progress line: shared by the fleet (exporter/fleet) and
its executors (here, or a Ray cluster: exporter/cluster), which sit above the run (docs/architecture.md,
Distribution)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def rel_to(p: Path, root: Path) -> Path:
    try:
        return p.resolve().relative_to(root.resolve())
    except ValueError:
        return p


@dataclass(frozen=True)
class ProfileLine:
    """One profile's progress line: stages done / total, the current stage, the node."""

    profile: str
    state: str  # waiting, preparing, running, PASSED, FAILED, INCOMPLETE, not run, failed
    done: int = 0
    total: int = 0
    stage: str = ""
    node: str = ""
    note: str = ""

    def text(self) -> str:
        count = f" {self.done}/{self.total}" if self.total else ""
        head = f"{count.strip()} graphs prepared" if self.state == "preparing" else f"{self.state}{count}"
        parts = [f"{self.profile}: {head}"]
        if self.stage:
            parts.append(self.stage)
        if self.node:
            parts.append(f"on {self.node}")
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)


class FleetProgress:
    """Receives each profile's line when it changes; this base class ignores them, the CLI draws them."""

    def update(self, line: ProfileLine) -> None:
        pass


@dataclass
class ProfileOutcome:
    name: str
    folder: Path
    status: str  # PASSED, FAILED, INCOMPLETE (the run's verdict), or "not run" / "failed" (its task)
    exit_code: int
    message: str = ""
    lines: list[str] = field(default_factory=list)
    node: str | None = None
    seconds: float = 0.0

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {"profile": self.name, "folder": str(rel_to(self.folder, root)), "status": self.status,
                "exit_code": self.exit_code, "message": self.message, "verdict_lines": self.lines,
                "node": self.node, "seconds": round(self.seconds, 2)}


