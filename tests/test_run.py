"""`lookupvit run`: the README's quick start on a tiny profile, the report, and resuming."""

import base64
import json
import re
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, TINY
from tests.conftest import files_by_mtime as _files

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def first_run(quickstart_run):
    """The quick-start command of the README, with the tiny profile in place of cpu (conftest)."""
    return quickstart_run


def test_readme_and_makefile_run_the_main_job():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert QUICKSTART in quick
    recipe = re.search(r"^quickstart:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None and "run --profile cpu -o $(OUT)" in recipe.group(1)
    assert re.search(r"^OUT \?= runs/quickstart$", (ROOT / "Makefile").read_text(), re.M)


def test_quickstart_completes_with_a_summary_table(first_run):
    out, result, _ = first_run
    assert result.exit_code == 0, result.output
    assert "lookupvit run --profile tiny" in result.output  # the summary table's title
    for model in ("lookupvit_digits", "lookupvit_tiny32", "vit_tiny32 (baseline)"):
        assert model in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"]["name"] == "tiny" and summary["stage_counts"].get("ran", 0) > 0
    assert "machine pace: the reference loop's quiet time is" in result.output  # and in summary.json:
    assert summary["latency"]["pace"]["reference_us"] > 0 and summary["latency"]["slow"] >= 0
    assert not [s for s in summary["stages"] if s["status"] == "failed" and s["kind"] in ("export", "profile")]


def test_run_folder_layout(first_run):
    out, _, files = first_run
    for f in ("stages.json", "latency.json", "summary.json", "report.html",
              "lookupvit_digits/g2/onnx/lookupvit_digits_g2.opt.onnx", "lookupvit_digits/g2/onnx/lookupvit_digits_g2.onnx.json",
              "lookupvit_tiny32/g2/onnx/lookupvit_tiny32_g2.opt.onnx", "lookupvit_tiny32/g4/onnx/lookupvit_tiny32_g4.opt.onnx",
              "vit_tiny32/onnx/vit_tiny32.opt.onnx"):
        assert f in files, f
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert {"export:lookupvit_tiny32:g4", "validate:lookupvit_tiny32:g4:fp32", "profile"} <= set(stages)
    assert all(len(e["key"]) == 64 and e["outputs"] for e in stages.values())


def test_keep_final_drops_exported_graphs_and_reports_the_disk(first_run):
    out, _, files = first_run
    stages = json.loads((out / "stages.json").read_text())["stages"]
    exports = {k: e for k, e in stages.items() if e["kind"] == "export"}
    assert exports and all(e.get("dropped") for e in exports.values())  # every export was optimised here
    for e in exports.values():
        for rel in e["dropped"]:
            assert rel.endswith(".onnx") and rel not in files  # deleted, yet recorded with its sha256
            assert rel in e["outputs"] and rel + ".json" in files  # the sidecar stays
    disk = json.loads((out / "summary.json").read_text())["disk"]
    assert disk["keep"] == "final" and disk["dropped_files"] == len(exports) and disk["dropped"] > 0
    assert disk["written"] >= disk["dropped"] and 0 < disk["folder"] <= sum(p.stat().st_size for p in out.rglob("*")
                                                                           if p.is_file())
    assert "Disk" in (out / "report.html").read_text()


def test_a_dropped_export_is_made_again_when_its_optimised_graph_must_be(first_run, tmp_path):
    import shutil

    from exporter.run import RunOptions, run_job

    out, _, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "lookupvit_tiny32/g2/onnx/lookupvit_tiny32_g2.opt.onnx").unlink()
    (copy / "lookupvit_digits/g2/accuracy.json").unlink()  # compare runs again, its model's export dropped
    result = run_job(RunOptions(profile=TINY, out_dir=copy, peak_sizes=(64,), keep="all"))
    ran = {o.id for o in result.outcomes if o.status == "ran"}
    assert {"export:lookupvit_tiny32:g2", "optimize:lookupvit_tiny32:g2", "compare:lookupvit_digits:g2"} <= ran
    assert not [o for o in result.outcomes if o.status == "failed"]
    assert "export:lookupvit_digits:g2" not in ran  # compare reads the optimised graph, not the dropped export
    assert (copy / "lookupvit_tiny32/g2/onnx/lookupvit_tiny32_g2.onnx").is_file()  # --keep all: kept this time
    assert "export:lookupvit_tiny32:g4" not in ran and result.summary["disk"]["dropped"] == 0


def test_summary_has_latency_accuracy_and_validation(first_run):
    out, _, _ = first_run
    s = json.loads((out / "summary.json").read_text())
    cells = s["latency"]["cells"]
    ok = [c for c in cells if c["status"] == "ok"]
    assert {c["model"] for c in ok} >= {"lookupvit_digits", "lookupvit_tiny32", "vit_tiny32"}
    tiny = [c for c in ok if c["model"] == "lookupvit_tiny32"]
    assert tiny and all(c["speedup"] and c["analytic_speedup"] and c["baseline"] == "vit_tiny32" for c in tiny)
    assert not [c for c in cells if c["model"] == "lookupvit_digits" and c["baseline"]]  # no vit_digits
    assert s["latency"]["peak"]["peaks"]["cpu/fp32"]["gflops"] > 0
    fp32 = [a for a in s["accuracy"] if a["precision"] == "fp32"]
    assert fp32 and fp32[0]["model"] == "lookupvit_digits" and fp32[0]["top1"] > 80  # the trained model
    assert any(v["precision"] == "fp32" and v["status"] == "PASSED" for v in s["validation"])
    assert s["machine"]["cores"] >= 1 and s["versions"]["onnxruntime"]


def test_report_embeds_every_plot(first_run):
    out, _, _ = first_run
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    assert len(summary["plots"]) >= 3
    assert {Path(p).name for p in summary["plots"]} >= {"speedup.png", "accuracy_latency.png", "latency_lookupvit_tiny32.png"}
    for p in summary["plots"]:
        assert base64.b64encode((out / p).read_bytes()).decode() in html, p
    assert 'src="http' not in html and "<link" not in html  # self-contained
    for heading in ("Summary", "Latency per cell", "Speedup over the ViT baseline", "Accuracy per precision",
                    "Validation against PyTorch", "Stages", "Machine", "Tool versions"):
        assert heading in html


def test_rerun_skips_finished_stages(first_run):
    from click.testing import CliRunner

    from exporter.cli import main

    out, _, before = first_run
    result = CliRunner().invoke(main, ["run", "--profile", str(TINY), "-o", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    statuses = {s["id"]: s["status"] for s in summary["stages"]}
    assert statuses and "ran" not in statuses.values()
    assert statuses["profile"] == "skipped" and statuses["export:lookupvit_tiny32:g2"] == "skipped"
    after = _files(out)
    changed = {f for f in before if after.get(f) != before[f]}
    assert changed <= {"summary.json", "report.html"}  # no model, measurement or plot was made again


def test_a_moved_run_folder_resumes_with_its_own_files(first_run, tmp_path):
    """The manifest records paths relative to the folder and the stages hand back this folder's
    files, so a run folder moved elsewhere (or copied back from another machine) resumes."""
    import shutil

    from click.testing import CliRunner

    from exporter.cli import main

    out, _, _ = first_run
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    shutil.rmtree(out / "lookupvit_tiny32" / "g4", ignore_errors=False)  # the old place loses a grid's files
    try:
        result = CliRunner().invoke(main, ["run", "--profile", str(TINY), "-o", str(moved), "--json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        statuses = {s["id"]: s["status"] for s in json.loads(result.stdout)["stages"]}
        assert "ran" not in statuses.values() and statuses["profile"] == "skipped"
        assert not (out / "lookupvit_tiny32" / "g4").exists()  # nothing was read from or written to the old place
    finally:
        shutil.rmtree(out)
        shutil.copytree(moved, out)  # the module's fixture folder back for the tests after this one


def test_rerun_after_a_change_reruns_only_what_depends_on_it(first_run, tmp_path):
    import shutil

    from exporter.run import RunOptions, run_job

    out, _, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "latency.json").unlink()  # the sweep's output is gone: that stage runs again, nothing else
    result = run_job(RunOptions(profile=TINY, out_dir=copy, peak_sizes=(64,)))
    ran = [o.id for o in result.outcomes if o.status == "ran"]
    assert ran == ["profile"]
    assert (copy / "latency.json").is_file()


def test_cpu_profile_plan():
    from exporter.profiles import load_profile
    from exporter.run.scope import plan_models, sweep_spec

    prof = load_profile("cpu")
    models = plan_models(prof)
    roles = {variant: role for role, variant, _ in models}
    assert roles == {"lookupvit_digits": "accuracy", "lookupvit_b16": "latency", "vit_b16": "baseline"}
    spec = sweep_spec(prof, "ort", models, repeats=3)
    b16 = spec.model("lookupvit_b16")
    assert b16.baseline == "vit_b16" and spec.model("vit_b16").is_baseline
    assert spec.model("lookupvit_digits").baseline is None


def test_work_over_the_time_budget_is_reported_not_run(first_run, tmp_path):
    import shutil

    from exporter.run import RunOptions, run_job

    out, _, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = run_job(RunOptions(profile=TINY, out_dir=copy, budget_s=1e-6, peak_sizes=(64,)))
    budget = [o for o in result.outcomes if o.kind == "budget"]
    assert {o.id for o in budget} == {
        "latency:lookupvit_tiny32:g2:fp32:b1", "latency:lookupvit_tiny32:g4:fp32:b1",
        "latency:lookupvit_tiny32:g2:int8:b1", "latency:lookupvit_tiny32:g4:int8:b1",
    }
    assert all(o.status == "not run" and "budget" in o.note for o in budget)
    cells = result.summary["latency"]["cells"]
    assert {c["status"] for c in cells if c["model"] != "lookupvit_digits"} == {"not run"}
    assert any(c["status"] == "ok" for c in cells if c["model"] == "lookupvit_digits")  # accuracy models always run
    assert result.summary["budget_s"] == pytest.approx(1e-6)


def test_the_sweep_holds_only_the_cells_the_profile_asks_for():
    """The cpu profile times lookupvit_b16 in fp32 at batch 1 only ([models] latency_precisions and
    latency_batches): those are the only b16 cells of the sweep (no "not run" rows for the others),
    while the accuracy model is timed at every precision and batch."""
    from exporter.profiles import load_profile
    from exporter.run.scope import plan_models, sweep_spec

    prof = load_profile("cpu")
    spec = sweep_spec(prof, "ort", plan_models(prof))
    cells = [(c.model, c.precision, c.batch) for g in spec.groups() for c in [*g.cells, *([g.baseline] if g.baseline else [])]]
    assert {(p, b) for m, p, b in cells if m in ("lookupvit_b16", "vit_b16")} == {("fp32", 1)}
    assert {(p, b) for m, p, b in cells if m == "lookupvit_digits"} == {(p, b) for p in prof.precisions for b in prof.batch_sizes}


def test_validate_on_a_runs_graph_agrees_with_the_run_and_leaves_its_folder_untouched(first_run, cli):
    """`lookupvit validate` on the run's int8 graph, with its defaults: the verdict and the inputs of the
    run's own validation, and every file of the run folder byte-identical afterwards."""
    import hashlib

    out, _, _ = first_run
    rows = [v for v in json.loads((out / "summary.json").read_text())["validation"] if v["precision"] == "int8"]
    row = next(v for v in rows if v["model"] == "lookupvit_digits")
    graph = out / row["file"].removesuffix(".validate.json")
    graph = graph.with_name(graph.name + ".onnx")

    def digests() -> dict[str, str]:
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
                if p.is_file()}

    before = digests()
    result = cli("validate", str(graph), "--json")
    doc = json.loads(result.stdout)
    assert doc["status"] == row["status"] and doc["data"] == row["data"] and doc["samples"] == row["samples"]
    assert result.exit_code == (0 if row["status"] == "PASSED" else 1)
    assert digests() == before


def test_the_report_and_the_terminal_lead_with_the_answer(first_run):
    """The verdict and why, pick's choice for the profile's [pick] budget (or why none), and the deploy
    model's speed over its ViT: first in report.html, and printed last by `run`."""
    from exporter.run.report import answer

    out, result, _ = first_run
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    assert html.index("class='answer'") < html.index("<h2>Summary</h2>")
    assert "Recommended setting" in html and "Deploy model" in html
    a = answer(summary, out)
    assert a.status == summary["verdict"]["status"]
    assert a.deploy and a.deploy[0].startswith("lookupvit_tiny32 fp32 batch 1") and "speedup over vit_tiny32" in a.deploy[0]
    assert "no [pick] latency_ms" in a.recommendation  # the tiny profile names no budget
    summary["profile"]["pick"] = {"latency_ms": 1e6, "min_top1": None, "percentile": "p50"}
    chosen = answer(summary, out).recommendation
    assert chosen.startswith("lookupvit_digits grid 2 ") and "lookupvit pick" in chosen
    summary["profile"]["pick"]["latency_ms"] = 1e-6
    assert answer(summary, out).recommendation.startswith("none within the profile's budget")
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == summary["verdict"]["status"] and any(ln.startswith("recommended: ") for ln in lines[-6:])
