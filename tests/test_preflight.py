"""Preflight and exit codes: a TensorRT profile without TensorRT or its GPU stops at once and writes
nothing; --prepare-only makes the graphs the profile builds; a run's exit status tells the truth."""

import json
from pathlib import Path

import pytest

from exporter.backends.tensorrt.env import tensorrt_usable
from exporter.pipeline.manifest import StageOutcome
from exporter.run.state import RunState
from exporter.run.verdict import RunVerdict, run_verdict

TINY_TRT = Path(__file__).parent / "profiles" / "tiny-trt.toml"
HAS_TRT = tensorrt_usable()
needs_no_trt = pytest.mark.skipif(HAS_TRT, reason="TensorRT and a GPU are present: the preflight passes here")


@needs_no_trt
@pytest.mark.parametrize("profile", ["h100", str(TINY_TRT)])
def test_run_on_a_tensorrt_profile_stops_at_once_and_writes_nothing(cli, tmp_path, profile):
    result = cli("run", "--profile", profile, "-o", str(tmp_path / "run"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "TensorRT" in result.output and "--prepare-only" in result.output
    assert not (tmp_path / "run").exists()  # stopped before any export: nothing written


@needs_no_trt
def test_a_profile_of_another_backend_is_not_preflighted_as_the_named_backends(cli, tmp_path):
    """`--backend tensorrt --profile cpu`: the CPU profile is not run through TensorRT's preflight (no
    "--prepare-only" advice for a profile that builds nothing); compare names the mismatch."""
    r = cli("latency", "lookupvit_tiny32", "--backend", "tensorrt", "--profile", "cpu", "-o", str(tmp_path / "l"))
    assert r.exit_code == 2 and "Cannot time TensorRT" in r.output and "prepare-only" not in r.output
    r = cli("compare", "lookupvit_tiny32", "--backend", "tensorrt", "--profile", "cpu", "-o", str(tmp_path / "c"))
    assert r.exit_code == 2 and "Profile cpu runs on onnxruntime" in r.output and "--profile l4" in r.output
    assert not (tmp_path / "l").exists() and not (tmp_path / "c").exists()


@needs_no_trt
def test_build_and_compare_stop_before_any_work(cli, tmp_path):
    r = cli("compare", "lookupvit_digits", "--backend", "trt", "--profile", "h100", "-o", str(tmp_path / "c"))
    assert r.exit_code == 2 and not (tmp_path / "c").exists()


def test_prepare_only_makes_and_checks_the_graphs_to_build(cli, tmp_path):
    out = tmp_path / "prep"
    result = cli("run", "--profile", str(TINY_TRT), "--prepare-only", "-o", str(out), "--json")
    doc = json.loads(result.stdout)
    graphs = {(g["model"], g["grid"], g["precision"]): g for g in doc["graphs"]}
    assert set(graphs) == {(m, g, p) for m, g in (("lookupvit_digits", "2"), ("lookupvit_tiny32", "2"), ("vit_tiny32", "-"))
                           for p in ("fp32", "fp16", "int8")}
    for g in graphs.values():
        assert g["path"] and (out / g["path"]).is_file() and g["check"] is not None
    assert not list(out.rglob("*.plan")) and not (out / "report.html").exists()
    assert all(g["check"]["passed"] for g in graphs.values()), doc["graphs"]  # fp16 written for TensorRT's parser
    assert result.exit_code == 0 and doc["verdict"]["exit_code"] == 0, result.output
    assert json.loads((out / "prepared.json").read_text())["graphs"] == doc["graphs"]


def test_run_verdict_exit_codes():
    def outcome(i, status, note=""):
        return StageOutcome(i, i.split(":")[0], status, 0.0, None, note)

    ok = RunState(0.0, validation=[{"model": "m", "grid": "2", "precision": "fp32", "status": "PASSED"}])
    assert run_verdict([outcome("export:m:g2", "ran"), outcome("export:m:g2", "skipped")], ok).exit_code == 0
    bad = RunState(0.0, validation=[{"model": "m", "grid": "2", "precision": "int8", "status": "FAILED", "max_rel": 0.5}],
                   accuracy={"m": [{"cells": [{"grid": "2", "precision": "fp16", "status": "FAILED"}]}]})
    v = run_verdict([], bad)
    assert v.exit_code == 1 and len(v.failed_verdicts) == 2 and v.status == "FAILED"
    v = run_verdict([outcome("precision:m:g2:int8", "failed", "OSError: no space")], ok)
    assert v.exit_code == 1 and "no space" in v.failed_stages[0]
    v = run_verdict([outcome("latency:m:g2:fp32:b8", "not run", "over the time budget")], ok)
    assert v.exit_code == 2 and v.status == "INCOMPLETE"
    assert RunVerdict().exit_code == 0


def test_the_run_report_shows_tensorrt_readiness_per_graph(tmp_path):
    """A TensorRT run checks each graph before its build and the report shows the verdict and how many
    attentions TensorRT is expected to fuse (here from real checks of prepared graphs)."""
    from exporter.pipeline import Artefacts, ChainSettings, Manifest
    from exporter.profiles import load_profile
    from exporter.run.report import write_report
    from exporter.run.stages import record_check
    from exporter.run.state import RunState
    from tests.serve_data import summary, write_run

    prof = load_profile(TINY_TRT)
    artefacts = Artefacts(tmp_path / "graphs", ChainSettings(profile=prof), Manifest(tmp_path / "graphs"))
    state = RunState(float("inf"))
    for p in ("fp32", "fp16"):
        record_check(artefacts, artefacts.manifest, "lookupvit_tiny32", (2, 2), p, state)
    fp32, fp16 = state.checks
    assert fp32["passed"] and fp16["passed"]
    assert fp16["attention"]["fused"] == fp16["attention"]["total"] > 0  # fp16: fused attention expected
    assert fp32["attention"]["fused"] == 0 and any("FP32" in r for r in fp32["attention"]["not_fused"])
    run_dir = write_run(tmp_path / "run")
    s = summary(run_dir)
    s.update({"started": "2026-01-01T00:00:00+00:00", "seconds": 1.0, "tool_version": "0", "stage_counts": {},
              "budget_s": None, "summary": [], "validation": [], "stages": [], "disk": None, "machine": {},
              "versions": {}, "checks": state.checks})
    html = write_report(s, state, run_dir / "report.html").read_text()
    assert "TensorRT readiness (lookupvit check)" in html and "no fused attention kernels in FP32" in html


# --- a machine that builds engines without a GPU (TensorRT-RTX ahead of time) ----------------------

TINY_AOT = Path(__file__).parent / "profiles" / "tiny-aot.toml"


def _builds_without_gpu() -> bool:
    from exporter.backends.tensorrt.env import detect_gpu, rtx_compute_capabilities

    return (8, 9) in rtx_compute_capabilities() and detect_gpu() is None


needs_aot = pytest.mark.skipif(not _builds_without_gpu(),
                               reason="needs TensorRT-RTX (pip install -e '.[tensorrt-rtx]') on a machine without a GPU")


@needs_aot
def test_prepare_then_run_builds_every_engine_ahead_of_time_and_reports_what_needs_a_gpu(cli, tmp_path):
    """--prepare-only builds every engine of an sm_89 profile here (exit 0, prepared.json lists them); the
    full run on the same folder reuses them, reports validation, comparison and timing as not run here
    (exit 2, INCOMPLETE), and lists the engines in summary.json, the report and the terminal."""
    out = tmp_path / "aot"
    prep = cli("run", "--profile", str(TINY_AOT), "--prepare-only", "-o", str(out), "--json")
    assert prep.exit_code == 0, prep.output
    doc = json.loads(prep.stdout)
    assert doc["builds_here"] is True and len(doc["engines"]) == 9
    assert all(e["status"] == "built" and e["ahead_of_time"] and e["target"] == "sm_89" and e["engine_bytes"] > 0
               and (out / e["engine"]).is_file() for e in doc["engines"])
    assert all(g["engine"]["status"] == "built" for g in doc["graphs"])

    run = cli("run", "--profile", str(TINY_AOT), "-o", str(out))
    assert run.exit_code == 2 and run.stdout.strip().splitlines()[-1] == "INCOMPLETE", run.output
    assert "TensorRT engines (9 of 9 built)" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    stages = {s["id"]: s for s in summary["stages"]}
    assert all(s["status"] == "skipped" for i, s in stages.items() if i.startswith("build:"))  # not built again
    validate = [s for i, s in stages.items() if i.startswith("validate:")]
    assert validate and all(s["status"] == "not run" and "Cannot run a TensorRT engine here" in s["note"] for s in validate)
    assert stages["compare:lookupvit_digits:g2"]["status"] == "not run"
    assert summary["verdict"]["failed_stages"] == [] and summary["verdict"]["exit_code"] == 2
    assert len(summary["engines"]) == 9 and all(e["reused"] for e in summary["engines"])
    assert "TensorRT engines" in (out / "report.html").read_text()


@needs_aot
def test_a_prepare_task_builds_the_engines_of_every_profile_sharing_its_graphs(tmp_path):
    """What a cluster's prepare task does for two sm_89/sm_80 profiles sharing one graph set: the graphs
    once, an engine per profile (each under its own stage id), no GPU needed."""
    from exporter.cluster.scheduler import plan_graphs
    from exporter.profiles import load_profile
    from exporter.run.options import RunOptions
    from exporter.run.prepare import prepare_graph

    other = tmp_path / "tiny-aot-a100.toml"
    other.write_text(TINY_AOT.read_text().replace('compute_capability = "8.9"', 'compute_capability = "8.0"'))
    sets = plan_graphs([load_profile(TINY_AOT), load_profile(other)])
    digits = next(g for g in sets.values() if g.variant == "lookupvit_digits")
    assert digits.profiles == ["tiny-aot", "tiny-aot-a100"]
    out = tmp_path / "prep"
    outcomes = prepare_graph(RunOptions(profile=TINY_AOT, out_dir=out), digits.variant, digits.grid, ("fp16",),
                             build_profiles=(TINY_AOT, other))
    builds = {o.id: o for o in outcomes if o.kind == "build"}
    assert set(builds) == {"build:lookupvit_digits:g2:fp16:tiny-aot", "build:lookupvit_digits:g2:fp16:tiny-aot-a100"}
    assert {o.result["target"] for o in builds.values()} == {"sm_89", "sm_80"}
    assert sum(o.kind == "precision" and o.status == "ran" for o in outcomes) == 1  # the graph made once
