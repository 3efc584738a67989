"""The standalone verbs run a one-stage chain through their output folder's stages.json
(exporter/pipeline/steps.py): the manifest is the one cache, as in a run folder."""

import json
from pathlib import Path

import pytest

from exporter.export import export_onnx, resolve_variant_source


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return export_onnx(resolve_variant_source("lookupvit_tiny32", grid="2"), tmp_path_factory.mktemp("src")).path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _stages(folder: Path) -> dict:
    return json.loads((folder / "stages.json").read_text())["stages"]


def test_precision_is_reused_from_the_folders_manifest_and_runs_again_on_other_settings(cli, fp32, tmp_path):
    out = tmp_path / "m.int8.onnx"
    args = ("precision", str(fp32), "--to", "int8", "--calib-size", "16", "-o", str(out), "--json")
    first, again = _json(cli(*args)), _json(cli(*args))
    assert not first["reused"] and again["reused"] and again["hashes"] == first["hashes"]
    assert again["after"] == first["after"] and again["input"] == str(fp32)
    assert list(_stages(tmp_path)) == ["precision:m.int8.onnx"]
    other = _json(cli(*args[:-3], "--calib-size", "8", "-o", str(out), "--json"))  # other settings: converted again
    assert not other["reused"] and other["calibration"]["calib_size"] == 8
    assert not _json(cli(*args, "--force"))["reused"]


def test_optimize_is_reused_unless_forced_and_an_edited_output_is_made_again(cli, fp32, tmp_path):
    out = tmp_path / "m.opt.onnx"
    args = ("optimize", str(fp32), "-o", str(out), "--json")
    first, again = _json(cli(*args)), _json(cli(*args))
    assert not first["reused"] and again["reused"] and again["passes"] == first["passes"]
    assert again["status"] == "PASSED" and again["output_sha256"] == first["output_sha256"]
    assert not _json(cli(*args, "--force"))["reused"]
    out.write_bytes(out.read_bytes() + b"\0")  # the recorded sha256 no longer holds
    assert not _json(cli(*args))["reused"]
    text = cli("optimize", str(fp32), "-o", str(out))
    assert text.exit_code == 0 and "reused" in text.stdout and "--force" in text.stdout


def test_a_record_whose_report_cannot_be_read_back_runs_again(cli, fp32, tmp_path):
    """A sidecar whose sha256 still matches stages.json but holds no report (both edited): the stage runs."""
    out = tmp_path / "m.fp16.onnx"
    args = ("precision", str(fp32), "--to", "fp16", "-o", str(out), "--json")
    _json(cli(*args))
    side = Path(f"{out}.json")
    side.write_text(json.dumps({"kind": "precision"}))
    doc = json.loads((tmp_path / "stages.json").read_text())
    from exporter.io import sha256_file

    doc["stages"]["precision:m.fp16.onnx"]["outputs"]["m.fp16.onnx.json"] = sha256_file(side)
    (tmp_path / "stages.json").write_text(json.dumps(doc))
    again = _json(cli(*args))
    assert not again["reused"] and json.loads(side.read_text())["after"]


def test_a_failing_step_is_the_users_error_and_records_nothing(cli, fp32, tmp_path):
    """A stage that raises a UserError inside the manifest exits 2 with its message (not the chain's
    StageError), and the folder gets no record of it."""
    r = cli("precision", str(fp32), "--to", "int8", "--calib-size", "0", "-o", str(tmp_path / "m.int8.onnx"))
    assert r.exit_code == 2 and "--calib-size 0 must be at least 1" in r.output
    assert not (tmp_path / "stages.json").exists() and not list(tmp_path.iterdir())


def test_a_bad_stages_json_in_the_output_folder_is_refused_before_any_work(cli, fp32, tmp_path):
    (tmp_path / "stages.json").write_text(json.dumps({"kind": "lookupvit-run-stages", "stages": {
        "precision:x": {"kind": "precision", "key": "k", "outputs": {"../../etc/passwd": "0" * 64}}}}))
    r = cli("precision", str(fp32), "--to", "fp16", "-o", str(tmp_path / "m.fp16.onnx"))
    assert r.exit_code == 2 and "stages.json" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stages.json"]


def test_keep_final_drops_an_exports_external_data_with_it_and_the_resume_still_skips(tmp_path):
    """An export over 2 GB records its .onnx.data as an output: `run --keep final` drops both, so the
    resume skips the export (the recorded sha256 stands in for the files)."""
    from exporter.pipeline import Manifest
    from exporter.run.keep import drop_intermediates

    onnx_dir = tmp_path / "m" / "g2" / "onnx"
    onnx_dir.mkdir(parents=True)
    f = {n: onnx_dir / n for n in ("m_g2.onnx", "m_g2.onnx.data", "m_g2.onnx.json", "m_g2.opt.onnx")}
    for p in f.values():
        p.write_bytes(p.name.encode())
    m = Manifest(tmp_path)
    m.stage("export:m:g2", "export", {"s": 1}, {}, lambda: ({}, [f["m_g2.onnx"], f["m_g2.onnx.data"], f["m_g2.onnx.json"]]))
    m.stage("optimize:m:g2", "optimize", {}, {"model": f["m_g2.onnx"]}, lambda: ({}, [f["m_g2.opt.onnx"]]))
    drop_intermediates(m)
    assert not f["m_g2.onnx"].exists() and not f["m_g2.onnx.data"].exists() and f["m_g2.onnx.json"].exists()
    again = Manifest(tmp_path)
    assert again.stage("export:m:g2", "export", {"s": 1}, {}, lambda: pytest.fail("ran again")).status == "skipped"


def test_a_long_output_path_gets_a_stage_id_stages_json_can_hold(tmp_path):
    from exporter.pipeline.unit import MAX_STAGE_ID, file_stage_id

    short = file_stage_id("build", tmp_path, tmp_path / "engines" / "l4" / "m.fp16.plan")
    assert short == "build:engines/l4/m.fp16.plan"
    a, b = (file_stage_id("build", tmp_path, tmp_path / f"{stem * 300}.fp16.plan") for stem in "ab")
    assert len(a) == len(b) == MAX_STAGE_ID and a != b and a.startswith("build:aaa")


def test_evaluate_refuses_a_batch_below_one(cli):
    r = cli("evaluate", "lookupvit_digits", "--batch", "0")
    assert r.exit_code == 2 and "--batch" in r.output and "Traceback" not in r.output
