"""The machine's pace (exporter.latency.pace): the probe's reference, the record per machine, and
the sweep waiting out slow phases, timing again a chunk that met one, and flagging SLOW once its
budget is spent. The machine is scripted here (probe times, a clock); the timers are real calls."""

from __future__ import annotations

import json
import time

import pytest

from exporter.latency.pace import (
    PACE_THRESHOLD,
    PACE_WAIT,
    Pace,
    PaceRecord,
    PaceSummary,
    pace_text,
    probe_seconds,
    slow_flag,
)

QUIET, SLOW = 34e-6, 66e-6  # the probe's times in a quiet and a slow phase on the 2-core development VM


class ScriptedMachine:
    """Probe times from a script (the last one repeats), a clock that sleeping advances."""

    def __init__(self, probes: list[float]):
        self.probes, self.now, self.slept = list(probes), 0.0, []

    def probe(self) -> float:
        return self.probes.pop(0) if len(self.probes) > 1 else self.probes[0]

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now

    def pace(self, budget: float, record: PaceRecord | None = None) -> Pace:
        return Pace(budget, record=record, probe=self.probe, sleep=self.sleep, clock=self.clock)


def test_the_real_probe_takes_microseconds():
    t = probe_seconds()
    assert 1e-6 < t < 5e-3


def test_settle_waits_while_slow_and_stops_at_the_quiet_pace():
    m = ScriptedMachine([QUIET, SLOW, SLOW, SLOW, QUIET])
    pace = m.pace(budget=10.0)
    assert pace.pace() == pytest.approx(1.0)  # the first probe sets this run's reference
    said: list[str] = []
    assert pace.settle(said.append, "round 1") == pytest.approx(1.0)
    assert m.slept == [0.5, 0.5, 0.5] and pace.waited == pytest.approx(1.5)
    assert len(said) == 1 and "waiting before round 1" in said[0] and "1/1.9" in said[0]


def test_settle_gives_up_when_the_budget_is_spent():
    m = ScriptedMachine([QUIET, SLOW])
    pace = m.pace(budget=1.2)
    pace.pace()
    assert pace.settle(lambda _t: None, "x") > PACE_THRESHOLD
    assert sum(m.slept) == pytest.approx(1.2) and pace.left() == 0
    assert pace.finish().budget_spent


def test_the_record_sets_the_reference_when_a_run_starts_in_a_slow_phase(tmp_path):
    path = tmp_path / "pace.json"
    rec = PaceRecord(path, "this machine", [])
    for best in (QUIET, 0.9 * QUIET, 1.1 * QUIET):
        assert rec.save(best)
        rec = PaceRecord.load(path, "this machine")
    assert rec.bests == pytest.approx([QUIET, 0.9 * QUIET, 1.1 * QUIET])
    assert rec.reference() == pytest.approx(QUIET)  # the second-fastest: one lucky run does not set the bar
    m = ScriptedMachine([SLOW])  # the whole run is slow: only the record can tell
    pace = m.pace(budget=0.0, record=rec)
    assert pace.pace() == pytest.approx(SLOW / QUIET)
    summary = pace.finish()
    assert summary.reference_us == pytest.approx(34.0) and "record of the last 3 run(s)" in summary.source
    assert PaceRecord.load(path, "this machine").bests[-1] == pytest.approx(SLOW)  # this run's best, recorded


def test_the_record_keeps_other_machines_and_ignores_an_unreadable_file(tmp_path):
    path = tmp_path / "pace.json"
    path.write_text(json.dumps({"other machine": [1e-5]}))
    PaceRecord.load(path, "this machine").save(QUIET)
    doc = json.loads(path.read_text())
    assert doc == {"other machine": [1e-5], "this machine": [QUIET]}
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind
    path.write_text("{not json")
    broken = PaceRecord.load(path, "this machine")
    assert broken.bests == [] and "unreadable" in broken.note
    path.write_text(json.dumps({"this machine": ["import os", -1, 5, None, QUIET]}))
    assert PaceRecord.load(path, "this machine").bests == [QUIET]  # only plausible numbers are read


def test_a_record_that_cannot_be_written_is_skipped(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not PaceRecord(blocker / "pace.json", "k", []).save(QUIET)


def test_texts():
    assert slow_flag(True, 1.93) == " SLOW (pace 1.93)" and slow_flag(False, 1.93) == ""
    s = PaceSummary(PACE_THRESHOLD, PACE_WAIT, 34.0, "this run only", 3.5, 0.4, 2, 1.95, False)
    text = pace_text(s, 0)
    assert "3.5 s of waiting and 2 chunk(s) timed again" in text and "SLOW" not in text
    assert "1 cell(s) marked SLOW" in pace_text(s, 1)
    assert PaceSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def _sweep(machine: ScriptedMachine, budget: float, baseline: bool = True):
    from exporter.latency.peak import MatmulPeak
    from exporter.latency.sweep import Cell, SweepModel, SweepSettings, SweepSpec, run_sweep
    from exporter.latency.timers import Timer

    def call() -> float:
        t0 = time.perf_counter()
        sum(range(2000))
        return time.perf_counter() - t0

    def factory(cell: Cell) -> Timer:
        return Timer("torch", "cpu", "a loop", call)

    settings = SweepSettings(warmup=0, warmup_seconds=0.0, iterations=6, seconds=0.0, repeats=3, threads=1,
                             retries=0, pace_wait=budget)
    models = (SweepModel("m", None, (None,), "b" if baseline else None), SweepModel("b", None, (None,), is_baseline=True))
    spec = SweepSpec(models, ("fp32",), (1,), ("torch",), settings)
    return run_sweep(spec, factory, peak=MatmulPeak(threads=1), pace=machine.pace(budget))


def test_a_chunk_that_met_a_slow_phase_is_timed_again():
    """Probes: round 1 before/between/after, then round 2's pair meets a slow probe between its two
    chunks, then all quiet: round 2 is timed again, and no cell is flagged."""
    m = ScriptedMachine([QUIET] * 4 + [SLOW] + [QUIET])
    result = _sweep(m, budget=30.0)
    cell, base = result.cells
    assert not cell.slow and not base.slow and cell.pace == pytest.approx(1.0)
    assert cell.latency is not None and cell.latency.n == 6 and cell.latency.rounds == 3
    assert [o["round"] for o in result.order if o["role"] == "lookupvit"] == [0, 1, 2]
    assert result.pace is not None and result.pace.retimed_chunks == 1 and result.pace.waited_s == 0
    assert result.pace.slowest == pytest.approx(SLOW / QUIET, rel=1e-3)
    again = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.pace == result.pace and again.cells == result.cells


def test_without_budget_a_slow_phase_is_kept_and_flagged():
    """Round 1 quiet, then slow: two of three chunks met the slow phase, so the cells' median pace
    is slow and they are flagged; one slow round of three would not be (the p50 did not move)."""
    m = ScriptedMachine([QUIET] * 3 + [SLOW])
    result = _sweep(m, budget=0.0)
    cell, base = result.cells
    assert cell.slow and base.slow and cell.pace == pytest.approx(SLOW / QUIET, rel=1e-3)
    one = _sweep(ScriptedMachine([QUIET] * 4 + [SLOW] + [QUIET]), budget=0.0).cells[0]
    assert not one.slow and one.pace == pytest.approx(1.0)
    assert result.pace is not None and result.pace.retimed_chunks == 0 and result.pace.budget_spent
    from exporter.cli.profile import spread_text

    assert "SLOW (pace 1.94)" in spread_text(cell)


def test_a_run_that_starts_slow_waits_for_the_quiet_pace(tmp_path):
    """With the record's reference, a sweep that starts in a slow phase waits until it passes."""
    m = ScriptedMachine([SLOW] * 5 + [QUIET])
    rec = PaceRecord(tmp_path / "pace.json", "k", [QUIET] * 3)
    pace = Pace(30.0, record=rec, probe=m.probe, sleep=m.sleep, clock=m.clock)
    from exporter.latency.peak import MatmulPeak
    from exporter.latency.sweep import Cell, SweepModel, SweepSettings, SweepSpec, run_sweep
    from exporter.latency.timers import Timer

    def factory(cell: Cell) -> Timer:
        return Timer("torch", "cpu", "a loop", lambda: 1e-4)

    spec = SweepSpec((SweepModel("m", None, (None,)),), ("fp32",), (1,), ("torch",),
                     SweepSettings(warmup=0, warmup_seconds=0.0, iterations=3, seconds=0.0, repeats=3, retries=0))
    result = run_sweep(spec, factory, peak=MatmulPeak(threads=1), pace=pace)
    assert sum(m.slept) == pytest.approx(2.5)  # five slow probes waited out, half a second each
    assert not result.cells[0].slow


def test_profile_verb_reports_the_pace(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKUPVIT_CACHE", str(tmp_path / "cache"))
    result = cli("profile", "lookupvit_tiny32", "--grids", "2", "--backends", "ort", "--baseline", "none", "--iters", "4",
                 "--repeats", "2", "--warmup", "1", "--threads", "1", "--peak-sizes", "64", "--no-optimize",
                 "--pace-wait", "5", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["pace"]["budget_s"] == 5.0 and doc["pace"]["reference_us"] > 0
    assert doc["cells"][0]["pace"] is not None
    assert next(iter(json.loads((tmp_path / "cache" / "pace.json").read_text()).values()))  # this run recorded
    bad = cli("profile", "lookupvit_tiny32", "--pace-wait", "-1", "-o", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "--pace-wait" in bad.output


# --- threads = "auto": the thread trial ---------------------------------------------------------------


def _trial_sweep(work: dict[int, int]):
    """A sweep whose timer does ``work[threads]`` steps of a real loop: the count with less work is faster."""
    from exporter.latency.machine import available_cores
    from exporter.latency.peak import MatmulPeak
    from exporter.latency.sweep import AUTO_THREADS, Cell, SweepModel, SweepSettings, SweepSpec, run_sweep
    from exporter.latency.timers import Timer

    cores = available_cores()
    made: list[int | None] = []

    def factory(cell: Cell) -> Timer:
        n = cell.threads or cores
        made.append(cell.threads)
        steps = work.get(n, work[max(work)])

        def call() -> float:
            t0 = time.perf_counter()
            sum(range(steps))
            return time.perf_counter() - t0

        return Timer("ort", "cpu", "a loop", call)

    settings = SweepSettings(warmup=0, warmup_seconds=0.0, iterations=4, seconds=0.0, repeats=2, threads=AUTO_THREADS,
                             retries=0)
    spec = SweepSpec((SweepModel("m", None, (None,)),), ("fp32",), (1,), ("ort",), settings)
    return run_sweep(spec, factory, peak=MatmulPeak(threads=1), pace=ScriptedMachine([QUIET]).pace(0.0)), made, cores


def test_the_thread_trial_keeps_the_fewest_threads_unless_more_are_clearly_faster():
    from exporter.latency.machine import available_cores

    if available_cores() < 2:
        pytest.skip("a thread trial needs two cores or more (one candidate only here)")
    cores = available_cores()
    # one thread faster than all cores (the small-model case here): one thread is kept
    result, made, _ = _trial_sweep({max(1, cores // 2): 40_000, cores: 40_000} | {1: 10_000})  # half may be 1
    cell = result.cells[0]
    assert cell.threads == 1 and set(cell.thread_trial or {}) == {str(n) for n in {1, cores // 2, cores}}
    assert made[0] is None and 1 in made  # the first timer with the sweep's count, then the trial's
    assert "1 thread (trial: 1 " in cell.detail
    # all cores much faster (a large model): all cores are kept
    result, _, _ = _trial_sweep({1: 200_000, max(1, cores // 2): 200_000} | {cores: 20_000})
    assert result.cells[0].threads == cores


def test_fewer_threads_win_within_five_percent():
    from exporter.latency.sweep import fewest_threads_within

    assert fewest_threads_within({1: 1.00, 2: 0.97}) == 1  # 3% faster on two: not worth a second core
    assert fewest_threads_within({1: 1.00, 2: 0.90}) == 2
    assert fewest_threads_within({1: 2.0, 8: 1.04, 16: 1.0}) == 8
    assert fewest_threads_within({4: 1.0}) == 4


def test_profile_threads_option(cli, tmp_path):
    bad = cli("profile", "lookupvit_tiny32", "--threads", "many", "-o", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "--threads 'many'" in bad.output and "auto" in bad.output
    result = cli("profile", "lookupvit_tiny32", "--grids", "2", "--backends", "torch", "--baseline", "none", "--iters", "4",
                 "--repeats", "2", "--warmup", "1", "--peak-sizes", "64", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)["cells"][0]
    assert cell["threads"] >= 1 and cell["thread_trial"] and str(cell["threads"]) in cell["thread_trial"]


def test_no_home_folder_means_no_record(monkeypatch):
    """Where no cache folder can be named (Path.home() fails without HOME or a passwd entry) the
    sweep goes on with this run's own reference."""
    from pathlib import Path

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("LOOKUPVIT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert PaceRecord.load() is None
    pace = ScriptedMachine([QUIET]).pace(0.0, record=PaceRecord.load())
    pace.pace()
    assert pace.finish().source == "this run only"
