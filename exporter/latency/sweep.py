"""The latency sweep: compressed grids x precisions x batch sizes x backends, next to a plain ViT.

LookupViT's compute is set by the compressed grid chosen at inference
time, so the sweep times one model per grid and reports, per cell, p50/p90/p99 latency, throughput,
the analytic MACs of that grid (:func:`exporter.models.model_cost`), the achieved GFLOP/s
(2 x MACs / time) and the efficiency against the matrix-multiply peak measured in the same run
with the same threads (:mod:`.peak`).

The ViT baseline of the same width is timed *interleaved* with the LookupViT, so the speedup is a
ratio measured side by side: each round runs a chunk of iterations of one grid and then a chunk of
the baseline (A/B/A/B ...), and the speedup of a grid is the median of the baseline calls that
followed that grid's chunks over the median of that grid's calls. Drifts in machine load (thermal,
other processes) hit both sides alike, and medians over all rounds keep a stalled call from
deciding the ratio. Next to it stands the analytic ratio of MACs.

Timing is bounded by time as well as by count, as NVIDIA's trtexec does (``--warmUp`` in
milliseconds, ``--duration`` and ``--iterations`` as minimums): each cell is warmed up for at least
``warmup`` calls and ``warmup_seconds``, then timed for at least ``iterations`` calls and at least
``seconds``, spread over ``repeats`` rounds. A fast cell thus gets thousands of calls and stable
percentiles, a slow one its minimum count. The spread of a cell is the coefficient of variation of
its round medians (:mod:`.stats`); above ``noise_threshold`` the cell is flagged noisy, with the
machine's load average (``os.getloadavg``) at the time recorded beside it.

A group whose cells came out noisy is timed again after a pause of ``retry_pause`` seconds, up to
``retries`` more times (all its rounds, the baseline with them, so the pairing holds), and the
attempt whose noisiest cell has the smallest spread stands: a burst of other work during one attempt (a cron job, a compile next door) then
costs time rather than a wrong figure. Every attempt is in the execution order (``attempt``), the
cells say how many were timed, and a cell still noisy after the last one keeps its flag.

With ``threads = "auto"`` (the ``profile`` verb's default) each CPU cell first tries a few thread
counts (1, half the cores, all of them), alternating in short rounds, and is timed with the
smallest count whose median is within :data:`THREAD_TOLERANCE` of the fastest. On a small model
the threads of one call spend more time meeting each other than computing, and on a virtual machine
that meeting point is where other guests' work shows (measured on the 2-core development VM: the
digits model on two ONNX Runtime threads ran 1.5x slower in phases of seconds, on one thread not,
docs/latency.md, "Threads: tried per cell"); a large model still gets every core. The count
and the trial's medians are in each cell's result.

Around every chunk the machine's pace is probed (:mod:`.pace`): a shared virtual machine has phases
of seconds in which everything runs up to twice as slowly while its load average says nothing. The
sweep waits such a phase out and times a chunk that met one again, within ``pace_wait`` seconds per
sweep; a cell most of whose kept chunks still met a slow phase is flagged SLOW with their median pace.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from ..backends.registry import known
from ..models.config import Grid, grid_label
from ..profiles import BenchmarkSettings
from .machine import load_average
from .pace import Pace, PaceRecord, PaceSummary
from .peak import MatmulPeak
from .stats import NOISE_THRESHOLD, LatencyStats, gflops, median, summarize, throughput
from .timers import Timer, Unsupported

AUTO_THREADS: Literal["auto"] = "auto"
THREAD_TOLERANCE = 0.05  # fewer threads win unless more are faster by more than 5%


@dataclass(frozen=True)
class SweepModel:
    """One model of the sweep: a LookupViT at several grids, or a ViT baseline (grid ``None``)."""

    name: str
    variant: str | None
    grids: tuple[Grid | None, ...] = (None,)
    baseline: str | None = None  # name of the SweepModel timed next to this one
    is_baseline: bool = False
    precisions: tuple[str, ...] | None = None  # this model's precisions (None: the spec's); a baseline follows its pair
    batches: tuple[int, ...] | None = None  # this model's batches (None: the spec's)


_DEFAULTS = BenchmarkSettings()  # every measurement default is stated once, in exporter.profiles


@dataclass(frozen=True)
class SweepSettings:
    """How long each cell is measured: at least ``iterations`` calls and at least ``seconds``,
    split over ``repeats`` interleaved rounds, after at least ``warmup`` untimed calls and
    ``warmup_seconds``. A cell whose round medians vary by more than ``noise_threshold``
    (coefficient of variation) is flagged noisy."""

    warmup: int = _DEFAULTS.warmup
    iterations: int = _DEFAULTS.iterations
    seconds: float = _DEFAULTS.seconds
    threads: int | Literal["auto"] = 0  # CPU threads for PyTorch, ONNX Runtime and the peak; 0: every core; "auto": per cell
    warmup_seconds: float = _DEFAULTS.warmup_seconds
    noise_threshold: float = _DEFAULTS.noise_threshold
    retries: int = _DEFAULTS.retries  # times a group with a noisy cell is timed again (the quietest attempt stands)
    retry_pause: float = 1.0  # seconds to wait before timing a noisy group again (a burst of other work passes)
    pace_wait: float = _DEFAULTS.pace_wait  # seconds a sweep may spend waiting out the machine's slow phases (0: only flag them)
    repeats: int = _DEFAULTS.repeats

    def rounds(self) -> int:
        return max(1, min(self.repeats, self.iterations)) if self.seconds <= 0 else max(1, self.repeats)

    def chunk_iterations(self) -> int:
        return max(1, math.ceil(self.iterations / self.rounds()))

    def chunk_seconds(self) -> float:
        return self.seconds / self.rounds()

    def predict_seconds(self, call_s: float) -> float:
        """The time one side of a cell takes (thread trial, warm-up, measurement) at ``call_s`` per
        call on every core."""
        warm = max(self.warmup * call_s, self.warmup_seconds)
        return self.trial_seconds(call_s) + warm + self.rounds() * max(self.chunk_iterations() * call_s, self.chunk_seconds())

    def extra_loads(self) -> int:
        """How many more times a cell's model is loaded for its thread trial (one timer per count)."""
        if self.threads != AUTO_THREADS:
            return 0
        return len(thread_candidates(resolve_threads(AUTO_THREADS))) - 1

    def trial_seconds(self, call_s: float) -> float:
        """The thread trial's calls (a first call and three short rounds per count), at worst linear
        slow-down with fewer threads; 0 without threads = "auto"."""
        if self.threads != AUTO_THREADS:
            return 0.0
        cores = resolve_threads(AUTO_THREADS)
        return sum(4 * max(call_s * cores / n, 0.05) for n in thread_candidates(cores))


@dataclass(frozen=True)
class SweepSpec:
    models: tuple[SweepModel, ...]
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = ("ort",)
    settings: SweepSettings = field(default_factory=SweepSettings)

    def model(self, name: str) -> SweepModel:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def groups(self) -> list[Group]:
        """Measurement groups: one LookupViT's grids plus its baseline, per precision/batch/backend."""
        out = []
        for m in self.models:
            if m.is_baseline:
                continue
            base = self.model(m.baseline) if m.baseline else None
            for backend in self.backends:
                for precision in m.precisions or self.precisions:
                    for batch in m.batches or self.batches:
                        cells = [Cell(m.name, m.variant, g, precision, batch, backend) for g in m.grids]
                        bcell = Cell(base.name, base.variant, None, precision, batch, backend, m.name) if base else None
                        out.append(Group(cells, bcell))
        return out


@dataclass(frozen=True)
class Cell:
    model: str
    variant: str | None
    grid: Grid | None
    precision: str
    batch: int
    backend: str
    paired_with: str | None = None  # set on a baseline cell: the LookupViT it is timed against
    threads: int | None = None  # set on a thread trial's cell: the CPU threads its timer uses

    @property
    def grid_text(self) -> str:
        return grid_label(self.grid) if self.grid else "-"

    @property
    def key(self) -> str:
        pair = f"@{self.paired_with}" if self.paired_with else ""
        return f"{self.model}{pair}|g{self.grid_text}|{self.precision}|b{self.batch}|{self.backend}"


@dataclass(frozen=True)
class Group:
    cells: list[Cell]
    baseline: Cell | None


TimerFactory = Callable[[Cell], Timer]
"""Loads what a cell runs (a module, an ONNX session, an engine); raises Unsupported if it can't."""


@dataclass
class CellResult:
    model: str
    variant: str | None
    grid: str  # label, "-" for a ViT
    tokens: int | None  # compressed tokens M (None for a ViT)
    precision: str
    batch: int
    backend: str
    status: str  # "ok", "unsupported" or "failed"
    reason: str = ""
    device: str = ""
    detail: str = ""
    role: str = "lookupvit"  # or "baseline"
    paired_with: str | None = None
    latency: LatencyStats | None = None
    throughput: float | None = None  # images / s at p50
    gmacs: float | None = None  # analytic, per image
    gflops: float | None = None  # achieved at p50
    efficiency: float | None = None  # gflops / peak
    efficiency_error: float | None = None  # its uncertainty from the cell's and the peak's spreads
    peak: str | None = None  # which measured peak, e.g. "cpu/fp32"
    baseline: str | None = None
    speedup: float | None = None  # measured, paired with the baseline
    analytic_speedup: float | None = None  # baseline MACs / these MACs
    noisy: bool = False  # the spread of the round medians exceeds the sweep's noise threshold
    load: float | None = None  # 1-minute load average (os.getloadavg) when the cell's timing ended
    attempts: int = 1  # how many times its group was timed (a noisy group is timed again)
    pace: float | None = None  # the median machine pace its kept chunks met (1.0: the quiet speed; .pace)
    slow: bool = False  # most of its calls ran in a slow phase of the machine (median pace above the threshold)
    threads: int | None = None  # CPU threads it was timed with, when chosen per cell (threads = "auto")
    thread_trial: dict[str, float] | None = None  # threads -> median ms in the trial that chose them
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["latency"] = self.latency.to_dict() if self.latency else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CellResult:
        d = dict(d)
        d["latency"] = LatencyStats(**d["latency"]) if d.get("latency") else None
        return cls(**d)


@dataclass
class SweepResult:
    spec: dict[str, object]
    cells: list[CellResult]
    peak: MatmulPeak | None
    order: list[dict[str, object]]  # the execution order of timed chunks
    machine: dict[str, object] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    threads: int = 0
    seconds: float = 0.0
    noise_threshold: float = NOISE_THRESHOLD
    load: list[float] = field(default_factory=list)  # load averages (1, 5, 15 min) when the sweep began
    pace: PaceSummary | None = None  # the machine's pace during the sweep (.pace)

    def ok(self) -> list[CellResult]:
        return [c for c in self.cells if c.status == "ok"]

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "latency-sweep",
            "spec": self.spec,
            "threads": self.threads,
            "peak": self.peak.to_dict() if self.peak else None,
            "cells": [c.to_dict() for c in self.cells],
            "order": self.order,
            "machine": self.machine,
            "versions": self.versions,
            "seconds": round(self.seconds, 3),
            "noise_threshold": self.noise_threshold,
            "load": self.load,
            "pace": self.pace.to_dict() if self.pace else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SweepResult:
        return cls(
            spec=d["spec"], cells=[CellResult.from_dict(c) for c in d["cells"]],
            peak=MatmulPeak.from_dict(d["peak"]) if d.get("peak") else None, order=d.get("order", []),
            machine=d.get("machine", {}), versions=d.get("versions", {}), threads=d.get("threads", 0),
            seconds=d.get("seconds", 0.0), noise_threshold=d.get("noise_threshold", NOISE_THRESHOLD),
            load=d.get("load", []), pace=PaceSummary.from_dict(d["pace"]) if d.get("pace") else None,
        )


def spec_to_dict(spec: SweepSpec) -> dict[str, object]:
    return {
        "models": [
            {"name": m.name, "variant": m.variant, "grids": [grid_label(g) if g else "-" for g in m.grids],
             "baseline": m.baseline, "is_baseline": m.is_baseline}
            for m in spec.models
        ],
        "precisions": list(spec.precisions),
        "batches": list(spec.batches),
        "backends": list(spec.backends),
        "settings": asdict(spec.settings),
    }


def cell_macs(cell: Cell) -> int | None:
    """Analytic MACs per image of a cell's model at its grid (None for a model of unknown config)."""
    if not cell.variant:
        return None
    from ..models import get_variant, model_cost

    return model_cost(get_variant(cell.variant).config, cell.grid).macs


Progress = Callable[[str], None]


class _Measured:
    """Samples of one cell as the rounds go, with each round's chunk kept for pairing."""

    def __init__(self, cell: Cell, timer: Timer):
        self.cell, self.timer = cell, timer
        self.samples: list[float] = []
        self.chunks: list[list[float]] = []
        self.error: str | None = None
        self.load: float | None = None
        self.paces: list[float] = []  # per kept chunk: the slowest pace probed around it
        self.threads: int | None = None  # chosen by a thread trial
        self.trial: dict[str, float] | None = None

    def warm_up(self, calls: int, seconds: float) -> None:
        t_end = time.perf_counter() + seconds
        n = 0
        while n < calls or time.perf_counter() < t_end:
            self.timer()
            n += 1

    def run_chunk(self, iterations: int, seconds: float) -> list[float]:
        chunk: list[float] = []
        t_end = time.perf_counter() + seconds
        while len(chunk) < iterations or time.perf_counter() < t_end:
            chunk.append(self.timer())
        self.samples += chunk
        self.chunks.append(chunk)
        self.load = load_average()
        return chunk

    def drop_last(self) -> None:
        """Forget the last chunk (timed in a slow phase of the machine; it is timed again)."""
        chunk = self.chunks.pop()
        del self.samples[len(self.samples) - len(chunk):]

    def spread(self) -> float:
        """The coefficient of variation of this attempt's round medians (0 with fewer than two rounds)."""
        return summarize(self.samples, self.chunks).spread or 0.0 if self.samples else 0.0

    def take(self) -> _Kept:
        """This attempt's samples, handed over; the cell starts the next attempt empty."""
        kept = _Kept(self.samples, self.chunks, self.load, self.paces)
        self.samples, self.chunks, self.load, self.paces = [], [], None, []
        return kept

    def restore(self, kept: _Kept) -> None:
        self.samples, self.chunks, self.load, self.paces = kept.samples, kept.chunks, kept.load, kept.paces


@dataclass
class _Kept:
    """One cell's share of an attempt."""

    samples: list[float]
    chunks: list[list[float]]
    load: float | None
    paces: list[float]


@dataclass
class _Attempt:
    """One timing of a whole group: every cell's samples and the baseline calls paired with each."""

    kept: dict[Cell, _Kept]
    pairs: dict[Cell, list[float]]
    worst: float  # the largest spread among its cells


def noise_advice(load: list[float], cores: int | None) -> str:
    """What to do about noisy cells, given the load averages when the sweep began."""
    if load and cores and load[0] > cores:
        return (f"the load average ({load[0]:g}) exceeds the {cores} cores: other processes compete for them and each "
                "thread of a timed call waits its turn; rerun when the load is lower, or with fewer --threads")
    return "rerun on a quieter machine or with a longer --seconds"




def resolve_threads(threads: int | str) -> int:
    """The thread count the sweep's peak and a cell's first timer use: every core for 0 or "auto"."""
    from .machine import available_cores

    return threads if isinstance(threads, int) and threads > 0 else available_cores()


def thread_candidates(cores: int) -> tuple[int, ...]:
    """The counts a cell tries with threads = "auto": 1, half the cores and all of them."""
    return tuple(sorted({1, max(1, cores // 2), cores}))


def fewest_threads_within(medians: dict[int, float], tolerance: float = THREAD_TOLERANCE) -> int:
    """The smallest thread count whose median is within ``tolerance`` of the fastest."""
    fastest = min(medians.values())
    return min(n for n, v in medians.items() if v <= (1 + tolerance) * fastest)


def _choose_threads(m: _Measured, make_timer: TimerFactory, cores: int, say: Progress) -> None:
    """Time ``m``'s cell at each candidate count in alternating short rounds; keep the smallest count
    within THREAD_TOLERANCE of the fastest (the others' timers are closed)."""
    timers = {cores: m.timer}  # built with the sweep's count: every core
    try:
        for n in thread_candidates(cores):
            if n not in timers:
                timers[n] = make_timer(replace(m.cell, threads=n))
        say(f"trying {', '.join(map(str, timers))} threads: {m.cell.key}")
        for t in timers.values():
            t()  # first call: allocations, lazy initialisation
        trial: dict[int, list[float]] = {n: [] for n in timers}
        for _ in range(3):
            for n, t in timers.items():
                t_end = time.perf_counter() + 0.05
                trial[n].append(t())
                while time.perf_counter() < t_end:
                    trial[n].append(t())
        medians = {n: median(v) for n, v in trial.items()}
    except Exception:
        for t in timers.values():
            if t is not m.timer:
                t.close()
        raise
    chosen = fewest_threads_within(medians)
    for n, t in timers.items():
        if n != chosen:
            t.close()
    m.timer, m.threads = timers[chosen], chosen
    m.trial = {str(n): round(1e3 * v, 4) for n, v in sorted(medians.items())}


def run_sweep(
    spec: SweepSpec,
    make_timer: TimerFactory,
    peak: MatmulPeak | None = None,
    progress: Progress | None = None,
    measure_peak_sizes: tuple[int, ...] | None = None,
    pace: Pace | None = None,
) -> SweepResult:
    """Time every cell of ``spec`` (see the module docstring for the interleaving); ``pace``: the
    watch over the machine's pace (by default the real probe and this machine's record)."""
    import torch

    from ..versions import tool_versions
    from .machine import machine_info
    from .peak import DEFAULT_SIZES, measure_peak

    say = progress or (lambda _text: None)
    t_start = time.perf_counter()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = []
    threads = resolve_threads(spec.settings.threads)
    pace = pace or Pace(spec.settings.pace_wait, record=PaceRecord.load())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if peak is None:  # at every thread count a cell may run on: each cell is divided by its own
            counts = thread_candidates(threads) if spec.settings.threads == AUTO_THREADS else ()
            say(f"measuring the matrix-multiply peak ({', '.join(map(str, counts or (threads,)))} threads)")
            peak = measure_peak(threads, sizes=measure_peak_sizes or DEFAULT_SIZES, thread_counts=counts, pace=pace,
                                say=say)
        results: list[CellResult] = []
        order: list[dict[str, object]] = []
        for group in spec.groups():
            results += _run_group(group, spec.settings, make_timer, peak, order, say, pace)
    finally:
        torch.set_num_threads(previous_threads)
    return SweepResult(
        spec=spec_to_dict(spec), cells=results, peak=peak, order=order, machine=machine_info(),
        versions=tool_versions(), threads=threads, seconds=time.perf_counter() - t_start,
        noise_threshold=spec.settings.noise_threshold, load=load, pace=pace.finish(),
    )


def _run_group(
    group: Group, settings: SweepSettings, make_timer: TimerFactory, peak: MatmulPeak,
    order: list[dict[str, object]], say: Progress, pace: Pace,
) -> list[CellResult]:
    failed: dict[Cell, tuple[str, str]] = {}
    live: list[_Measured] = []
    base: _Measured | None = None
    for cell in group.cells:
        say(f"loading {cell.key}")
        try:
            live.append(_Measured(cell, make_timer(cell)))
        except Unsupported as e:
            failed[cell] = (e.status, str(e))
    if group.baseline is not None and live:  # the baseline is made (converted, built) only when timed
        say(f"loading {group.baseline.key}")
        try:
            base = _Measured(group.baseline, make_timer(group.baseline))
        except Unsupported as e:
            failed[group.baseline] = (e.status, str(e))
    try:
        if settings.threads == AUTO_THREADS:
            for m in [*live, *([base] if base and live else [])]:
                be = known(m.cell.backend)
                if m.timer.device == "cpu" and be is not None and be.cpu_threads:  # a GPU cell keeps the sweep's count
                    try:
                        _choose_threads(m, make_timer, resolve_threads(AUTO_THREADS), say)
                    except Unsupported as e:
                        m.error = str(e)
                    except Exception as e:
                        m.error = f"{type(e).__name__}: {e}"
        for m in [*live, *([base] if base and live else [])]:
            if m.error:
                continue
            say(f"warming up {m.cell.key}")
            try:
                m.warm_up(settings.warmup, settings.warmup_seconds)
            except Exception as e:
                m.error = f"{type(e).__name__}: {e}"
        live = [m for m in live if m.error is None]
        if base is not None and base.error is not None:
            failed[base.cell] = ("failed", base.error)
            base = None
        attempts: list[_Attempt] = []
        for attempt in range(1 + max(0, settings.retries)):
            pairs = _time_rounds(live, base, settings, order, say, attempt, pace)
            timed = [m for m in [*live, *([base] if base else [])] if m.error is None and m.samples]
            worst = max((m.spread() for m in timed), default=0.0)
            attempts.append(_Attempt({m.cell: m.take() for m in timed}, pairs, worst))
            if worst <= settings.noise_threshold or len(timed) < len(live) + (base is not None):
                break  # quiet enough, or a cell failed (a failure is not noise)
            if attempt < settings.retries:
                say(f"noisy (round medians vary by {worst:.0%}): timing {live[0].cell.model} again "
                    f"in {settings.retry_pause:g} s")
                time.sleep(settings.retry_pause)
        best = min(attempts, key=lambda a: a.worst)
        for m in [*live, *([base] if base else [])]:
            if m.cell in best.kept:
                m.restore(best.kept[m.cell])
        pairs = best.pairs
    finally:
        for m in [*live, *([base] if base else [])]:
            m.timer.close()

    out: list[CellResult] = []
    base_macs = cell_macs(group.baseline) if group.baseline else None
    for cell in group.cells:
        found = next((x for x in live if x.cell == cell), None)
        if found is None or found.error:
            status, reason = failed.get(cell, ("failed", (found.error if found else None) or "not measured"))
            out.append(_empty(cell, status, reason))
            continue
        res = _result(cell, found, peak, "lookupvit", settings.noise_threshold, len(attempts), pace.threshold)
        if base is not None and base.error is None and pairs[cell]:
            res.baseline = group.baseline.model if group.baseline else None
            res.speedup = median(pairs[cell]) / median(found.samples)
            if base_macs and res.gmacs:
                res.analytic_speedup = base_macs / (res.gmacs * 1e9)
        elif group.baseline is not None:
            res.baseline = group.baseline.model
            why = failed.get(group.baseline, ("", (base.error if base else None) or "not measured"))[1]
            res.reason = f"baseline not measured: {why}"
        out.append(res)
    if group.baseline is not None:
        if base is not None and base.error is None and base.samples:
            out.append(_result(group.baseline, base, peak, "baseline", settings.noise_threshold, len(attempts),
                               pace.threshold))
        elif not live or (base is not None and base.error is None):  # timed only next to a LookupViT
            out.append(_empty(group.baseline, "not run", "no LookupViT cell of its group ran to time it against",
                              "baseline"))
        else:
            status, reason = failed.get(group.baseline, ("failed", (base.error if base else None) or "not measured"))
            out.append(_empty(group.baseline, status, reason, "baseline"))
    return out


def _time_rounds(
    live: list[_Measured], base: _Measured | None, settings: SweepSettings, order: list[dict[str, object]],
    say: Progress, attempt: int, pace: Pace,
) -> dict[Cell, list[float]]:
    """One attempt: every round times a chunk of each grid, each followed by a chunk of the baseline
    (A/B/A/B); returns the baseline calls that followed each grid's chunks, for its speedup. The pace
    is probed before, between and after the two chunks; a pair that met a slow phase is timed again
    while the pace budget lasts."""
    pairs: dict[Cell, list[float]] = {m.cell: [] for m in live}
    n_iter, n_sec = settings.chunk_iterations(), settings.chunk_seconds()
    again = f" (attempt {attempt + 1})" if attempt else ""
    for r in range(settings.rounds()):
        for m in live:
            if m.error:
                continue
            say(f"round {r + 1}/{settings.rounds()}{again}: {m.cell.key}")
            while True:
                before = pace.settle(say, f"round {r + 1} of {m.cell.key}")
                t0 = time.perf_counter()
                try:
                    a = m.run_chunk(n_iter, n_sec)
                except Exception as e:
                    m.error = f"{type(e).__name__}: {e}"
                    break
                middle = pace.pace()
                b: list[float] | None = None
                if base is not None and base.error is None:
                    try:
                        b = base.run_chunk(n_iter, n_sec)
                    except Exception as e:
                        base.error = f"{type(e).__name__}: {e}"
                after = pace.pace() if b is not None else middle
                worst = max(before, middle, after)
                if worst > pace.threshold and pace.left() > 0:
                    pace.discard(time.perf_counter() - t0)
                    m.drop_last()
                    if b is not None and base is not None:
                        base.drop_last()
                    say(f"round {r + 1} of {m.cell.key} met a slow phase (pace {worst:.2f}): timing it again")
                    continue
                m.paces.append(max(before, middle))
                order.append(_order_entry(r, m.cell, "lookupvit", len(a), attempt, max(before, middle)))
                if b is not None and base is not None:
                    base.paces.append(max(middle, after))
                    order.append(_order_entry(r, base.cell, "baseline", len(b), attempt, max(middle, after)))
                    pairs[m.cell] += b
                break
    return pairs


def _order_entry(r: int, cell: Cell, role: str, n: int, attempt: int = 0, pace: float | None = None) -> dict[str, object]:
    return {"round": r, "cell": cell.key, "model": cell.model, "grid": cell.grid_text, "role": role,
            "iterations": n, "attempt": attempt, "pace": round(pace, 3) if pace is not None else None}


def _tokens(cell: Cell) -> int | None:
    return math.prod(cell.grid) if cell.grid else None


def _empty(cell: Cell, status: str, reason: str, role: str = "lookupvit") -> CellResult:
    macs = cell_macs(cell)
    return CellResult(
        cell.model, cell.variant, cell.grid_text, _tokens(cell), cell.precision, cell.batch, cell.backend,
        status, reason, role=role, paired_with=cell.paired_with, gmacs=macs / 1e9 if macs else None,
    )


def _trial_note(m: _Measured) -> str:
    """``; 1 thread (trial: 1 0.310 ms, 2 0.331 ms)`` for a cell whose thread count was tried."""
    if not m.trial or m.threads is None:
        return ""
    tried = ", ".join(f"{n} {v:.3f} ms" for n, v in m.trial.items())
    return f"; {m.threads} thread{'s' if m.threads > 1 else ''} (trial: {tried})"


def _result(
    cell: Cell, m: _Measured, peak: MatmulPeak, role: str, threshold: float, attempts: int = 1,
    pace_threshold: float = math.inf,
) -> CellResult:
    stats = summarize(m.samples, m.chunks)
    macs = cell_macs(cell)
    achieved = gflops(macs, cell.batch, stats.p50_ms) if macs else None
    ref = peak.for_cell(m.timer.device, cell.precision, m.threads)  # the peak at the cell's own thread count
    efficiency = (achieved / ref.gflops) if (achieved and ref) else None
    error = None
    if efficiency is not None and ref is not None:  # relative errors add in quadrature for a ratio
        error = efficiency * math.hypot(stats.spread or 0.0, ref.spread or 0.0)
    return CellResult(
        cell.model, cell.variant, cell.grid_text, _tokens(cell), cell.precision, cell.batch, cell.backend,
        "ok", device=m.timer.device, detail=m.timer.detail + _trial_note(m), role=role, paired_with=cell.paired_with,
        latency=stats, throughput=throughput(cell.batch, stats.p50_ms), gmacs=macs / 1e9 if macs else None,
        gflops=achieved, efficiency=efficiency, efficiency_error=error,
        peak=ref.label if ref else None, noisy=stats.noisy(threshold), load=m.load, attempts=attempts,
        pace=round(median(m.paces), 3) if m.paces else None, slow=bool(m.paces) and median(m.paces) > pace_threshold,
        threads=m.threads, thread_trial=m.trial,
        samples_ms=[round(1e3 * s, 4) for s in m.samples],
    )
