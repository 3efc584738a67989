"""The machine's pace: is this CPU running at its quiet speed while a cell is timed?

On a shared virtual machine the same code runs up to twice as slowly for seconds at a time, while
the load average inside the machine stays where it was: another guest is busy on the host's core.
Measured on a 2-core KVM guest (AMD EPYC; docs/latency.md, "The machine's pace" and
"How stable, measured"): during such phases a pure-Python loop took 62-68 us instead of
31-36 us, LookupViT-digits on ONNX Runtime 0.45-0.50 ms instead of 0.32-0.34 ms and on PyTorch up to
1.7x its quiet time, while a 256x256 matrix multiply slowed by 5% at most. The phases come in
bursts of a fraction of a second and in episodes of ten seconds or more; an episode that covers a
whole cell moves its p50 by 1.4x and nothing in the cell's own spread shows it.

So the sweep watches a fixed reference workload, the *probe*: the median time of seven runs of a
2,000-step pure-Python loop (about 0.25 ms in all). Scalar, branchy interpreter code is what such
phases slow the most, which makes the probe a sensitive detector; it is never used to correct a
figure. Its *pace* is the probe's time over the machine's quiet time (the reference): 1.0 at the
quiet speed, about 2 in a slow phase. The reference is the fastest probe of this run or, when lower,
the second-fastest best of the last runs on this machine, recorded in ``pace.json`` in the cache
folder (read through exporter.schema.pace: a value outside the plausible band of a probe's time is
refused as a reference, and the note names the file and the key) (``$LOOKUPVIT_CACHE``, else ``$XDG_CACHE_HOME/lookupvit-deploy``, else
``~/.cache/lookupvit-deploy``), keyed by CPU, core count, host name and Python version. A run that
starts inside an episode thus still knows how fast the machine can be; the first run on a machine
knows only itself.

The sweep probes before and after every timed chunk. Before one, while the pace is above
:data:`PACE_THRESHOLD` it waits (probing every half second); a chunk (with the baseline chunk paired
with it) that met a slow probe is discarded and timed again. Waiting and discarded time come out of
one budget per sweep (``pace_wait`` seconds); once it is spent, chunks are kept as timed, and a cell
most of whose chunks met a slow phase (the median of its chunks' paces above the threshold: its p50
moved) is flagged SLOW with that pace. The budget, the time spent, the
chunks timed again and the reference are in ``latency.json``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..profiles import BenchmarkSettings
from ..schema.pace import PACE_MAX_S, PACE_MIN_S
from .machine import available_cores, cpu_name

PACE_THRESHOLD = 1.5  # a probe 1.5x its quiet time marks a slow phase (seen here: quiet probes within 1.33x, slow 1.7x to 2.6x)
PACE_WAIT = BenchmarkSettings().pace_wait  # seconds a sweep may spend waiting out slow phases, by default
PROBE_STEPS = 2_000
PROBE_RUNS = 7
RECORD_RUNS = 20  # run bests kept per machine
CACHE_VAR = "LOOKUPVIT_CACHE"
_POLL = 0.5  # seconds between probes while waiting


def probe_seconds() -> float:
    """The probe: the median time of seven runs of a fixed 2,000-step pure-Python loop."""
    times = []
    for _ in range(PROBE_RUNS):
        t0 = time.perf_counter()
        x = 0
        for k in range(PROBE_STEPS):
            x += k
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cache_dir() -> Path:
    """Where the project keeps per-machine records: ``$LOOKUPVIT_CACHE``, else the XDG cache folder."""
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lookupvit-deploy"


def machine_key() -> str:
    """What the probe's quiet time depends on: the CPU, the cores, the host and the Python."""
    return (f"{cpu_name()} | {available_cores()} cores | {socket.gethostname()} | "
            f"{platform.python_implementation()} {platform.python_version()}")


@dataclass
class PaceRecord:
    """The best probe times of the last runs on this machine (seconds), oldest first."""

    path: Path
    key: str
    bests: list[float]
    note: str = ""  # why the record (or values of it) was not used: unreadable, or outside the plausible band

    @classmethod
    def load(cls, path: Path | None = None, key: str | None = None) -> PaceRecord | None:
        """This machine's record; None where no cache folder can be named (no home folder)."""
        try:
            path = path or cache_dir() / "pace.json"
        except RuntimeError:  # Path.home() without HOME or a passwd entry
            return None
        from ..errors import UntrustedFile
        from ..schema import read_json
        from ..schema.pace import ProbeSecondsType

        key = key or machine_key()
        try:
            doc = read_json(path)
        except FileNotFoundError:
            return cls(path, key, [])
        except (OSError, UntrustedFile) as e:
            why = e.message.rstrip(".") if isinstance(e, UntrustedFile) else type(e).__name__
            return cls(path, key, [], f"{path} unreadable ({why}), ignored")
        entry = doc.get(key) if isinstance(doc, dict) else None
        values = entry if isinstance(entry, list) else []
        bests, refused = [], []
        for i, v in enumerate(values):
            try:
                bests.append(ProbeSecondsType.validate_python(v))
            except ValueError:
                refused.append(f"[{key!r}][{i}] = {str(v)[:40]}")
        note = "" if not refused else (
            f"{path}: key{'s' if len(refused) > 1 else ''} {'; '.join(refused[:3])} refused as the reference (not a "
            f"probe time between {PACE_MIN_S:g} and {PACE_MAX_S:g} s)")
        return cls(path, key, bests[-RECORD_RUNS:], note)

    def reference(self) -> float | None:
        """The second-fastest recorded best (the fastest with fewer than three), so that one lucky run
        does not set the bar."""
        if not self.bests:
            return None
        ranked = sorted(self.bests)
        return ranked[1] if len(ranked) >= 3 else ranked[0]

    def save(self, best: float) -> bool:
        """Add this run's best and write the file atomically; False when it cannot be written, or
        is not a valid record (left as it is: docs/security.md)."""
        if not (PACE_MIN_S <= best <= PACE_MAX_S):
            return False
        from ..errors import UntrustedFile
        from ..schema import read_json

        try:
            doc = read_json(self.path) if self.path.exists() else {}
        except (OSError, UntrustedFile):
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        doc[self.key] = [*self.bests, best][-RECORD_RUNS:]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, self.path)
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # the folder itself is not there or not writable
                pass
            return False
        return True


@dataclass
class PaceSummary:
    """How a sweep fared against the machine's pace (in ``latency.json`` as ``pace``)."""

    threshold: float
    budget_s: float
    reference_us: float
    source: str  # where the reference came from
    waited_s: float  # spent waiting for the quiet pace
    discarded_s: float  # spent on chunks timed in a slow phase and timed again
    retimed_chunks: int
    slowest: float  # the largest pace a probe saw during the sweep
    budget_spent: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PaceSummary:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Pace:
    """Watches the pace during one sweep (see the module docstring); ``probe``, ``sleep`` and
    ``clock`` are the real ones unless a test scripts a machine."""

    def __init__(
        self, budget: float = PACE_WAIT, threshold: float = PACE_THRESHOLD, record: PaceRecord | None = None,
        probe: Callable[[], float] = probe_seconds, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.budget, self.threshold, self.record = budget, threshold, record
        self._probe, self._sleep, self._clock = probe, sleep, clock
        self.best = math.inf
        self.waited = self.discarded = 0.0
        self.retimed = 0
        self.slowest = 0.0

    def reference(self) -> float:
        recorded = self.record.reference() if self.record else None
        return min(self.best, recorded if recorded is not None else math.inf)

    def pace(self) -> float:
        """Probe now: this probe's time over the quiet reference."""
        t = self._probe()
        self.best = min(self.best, t)
        ratio = t / self.reference()
        self.slowest = max(self.slowest, ratio)
        return ratio

    def left(self) -> float:
        return max(0.0, self.budget - self.waited - self.discarded)

    def settle(self, say: Callable[[str], None], what: str) -> float:
        """Wait while the machine runs slow, within the budget; the pace when timing may start."""
        ratio = self.pace()
        told = False
        while ratio > self.threshold and self.left() > 0:
            if not told:
                say(f"the machine runs at 1/{ratio:.1f} of its quiet pace (a reference loop takes {ratio:.1f}x its "
                    f"quiet time): waiting before {what} ({self.left():.0f} s of waiting left)")
                told = True
            t0 = self._clock()
            self._sleep(min(_POLL, self.left()))
            self.waited += self._clock() - t0
            ratio = self.pace()
        return ratio

    def discard(self, seconds: float) -> None:
        """A chunk timed in a slow phase is thrown away: its time comes out of the budget."""
        self.discarded += seconds
        self.retimed += 1

    def finish(self) -> PaceSummary:
        """The summary; this run's best probe is added to the machine's record."""
        recorded = self.record.reference() if self.record else None
        if self.record is None:
            source = "this run only"
        elif self.record.note and not self.record.bests:
            source = f"this run only ({self.record.note})"
        elif recorded is not None and recorded < self.best:
            source = f"the record of the last {len(self.record.bests)} run(s) on this machine ({self.record.path})"
        else:
            source = "this run (faster than any recorded run)" if recorded is not None else "this run only (first run on this machine)"
        if self.record is not None and self.record.note and self.record.bests:
            source += f"; {self.record.note}"
        if self.record is not None and math.isfinite(self.best):
            self.record.save(self.best)
        ref = self.reference()
        return PaceSummary(
            threshold=self.threshold, budget_s=self.budget, reference_us=round(ref * 1e6, 2) if math.isfinite(ref) else 0.0,
            source=source, waited_s=round(self.waited, 3), discarded_s=round(self.discarded, 3),
            retimed_chunks=self.retimed, slowest=round(self.slowest, 3), budget_spent=self.left() <= 0,
        )


def slow_flag(slow: bool | None, pace: float | None) -> str:
    """`` SLOW (pace 1.9)`` for a cell whose kept calls met a slow phase, else empty."""
    return f" SLOW (pace {pace:.2f})" if slow and pace is not None else ""


def pace_text(s: PaceSummary, slow_cells: int) -> str:
    """One paragraph on the machine's pace during a sweep, for the terminal and the report."""
    text = (f"machine pace: the reference loop's quiet time is {s.reference_us:.1f} us ({s.source}); the slowest "
            f"probe took {s.slowest:.2f}x that. ")
    if s.waited_s or s.retimed_chunks:
        text += (f"Slow phases (above {s.threshold:g}x) cost {s.waited_s:.1f} s of waiting and {s.retimed_chunks} "
                 f"chunk(s) timed again ({s.discarded_s:.1f} s) of a {s.budget_s:g} s budget. ")
    else:
        text += f"No slow phase (above {s.threshold:g}x) was met. " if s.slowest <= s.threshold else ""
    if slow_cells:
        text += (f"{slow_cells} cell(s) marked SLOW: most of their calls ran in a slow phase of the machine after the "
                 f"waiting budget was spent; their figures are slower than this machine's quiet speed. Rerun later or "
                 f"with a larger --pace-wait (profile key [benchmark] pace_wait).")
    return text.strip()
