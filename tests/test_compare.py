"""`lookupvit compare`: accuracy across precisions and grids, unsupported cells, --locate, CLI."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from exporter.backends.tensorrt.env import module_status
from exporter.compare import compare_precisions, locate_divergence
from exporter.errors import UserError
from exporter.precision import convert_precision
from exporter.validate.tolerances import TOLERANCES, Tolerance, tolerance_for


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def result(run_dir):
    return compare_precisions("lookupvit_digits", precisions="fp32,fp16,bf16,int8", grids="2", out_dir=run_dir, calib_size=64)


def test_cells_metrics_and_files(result, run_dir):
    assert result.grids == ["2"] and result.precisions == ["fp32", "fp16", "bf16", "int8"]
    assert [(c.grid, c.precision) for c in result.cells] == [("2", p) for p in result.precisions]
    assert result.samples == 360 and result.data == "digits (test split)"
    assert 0 <= result.reference["2"] <= 100
    fp32 = result.cell("2", "fp32")
    assert fp32.status == "PASSED" and fp32.agreement == 100.0 and fp32.max_rel < 1e-4
    assert fp32.top1 == pytest.approx(result.reference["2"])
    for p in ("fp16", "int8"):
        c = result.cell("2", p)
        assert c.ran and c.samples == 360 and c.tolerance == tolerance_for(p).to_dict()
        assert c.max_abs > 0 and 0 < c.mean_abs <= c.max_abs and 0.9 < c.cosine <= 1.0
        assert c.top1_delta == pytest.approx(c.top1 - result.reference["2"])
        assert c.model.endswith(f"lookupvit_digits/g2/onnx/lookupvit_digits_g2.opt.{p}.onnx")  # the pipeline's file
    doc = json.loads((run_dir / "accuracy.json").read_text())
    assert doc == json.loads(json.dumps(result.to_dict(), default=str))
    assert {"grids", "precisions", "reference", "cells", "calibration", "versions", "status"} <= set(doc)
    png = (run_dir / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bf16_on_cpu_is_unsupported_with_the_runtime_reason(result):
    c = result.cell("2", "bf16")
    assert c.status == "unsupported" and c.top1 is None
    assert "ONNX Runtime (CPUExecutionProvider) cannot run this graph" in c.reason
    assert "Could not find an implementation" in c.reason  # ONNX Runtime's own words
    assert result.passed  # unsupported cells do not fail the comparison


def test_onnx_input_uses_its_grid(result, run_dir, tmp_path):
    fp32 = run_dir / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.onnx"
    r = compare_precisions(str(fp32), precisions="fp32,fp16", out_dir=tmp_path)
    assert r.grids == ["2"] and r.name == "lookupvit_digits_g2"
    assert r.cell("2", "fp16").top1 == pytest.approx(result.cell("2", "fp16").top1)
    with pytest.raises(UserError, match="exported for grid 2"):
        compare_precisions(str(fp32), precisions="fp32", grids="4", out_dir=tmp_path)
    with pytest.raises(UserError, match="it is compared as it is, in int8"):
        compare_precisions(result.cell("2", "int8").model, precisions="fp32", out_dir=tmp_path)
    given = compare_precisions(result.cell("2", "int8").model, out_dir=tmp_path / "given")  # a converted file, as it is
    assert given.precisions == ["int8"] and given.cell("2", "int8").model == result.cell("2", "int8").model
    assert given.cell("2", "int8").top1 == pytest.approx(result.cell("2", "int8").top1)
    assert not list((tmp_path / "given").rglob("*.onnx"))  # never converted again


def test_locate_finds_a_broken_weight(result, run_dir):  # the graphs `result` wrote
    fp32 = run_dir / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.opt.onnx"
    fp16 = run_dir / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.opt.fp16.onnx"
    model = onnx.load(str(fp16))
    inits = {t.name: t for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    target = matmuls[3]  # a projection in the first block, after others that stay within tolerance
    w = numpy_helper.to_array(inits[target.input[1]]).copy()
    w[0, 0] += 50.0 * float(np.abs(w).max())  # one weight of the converted graph, broken
    inits[target.input[1]].CopyFrom(numpy_helper.from_array(w, target.input[1]))
    broken = run_dir / "broken.fp16.onnx"
    onnx.save(model, str(broken))
    images = np.random.default_rng(0).standard_normal((8, 1, 32, 32), dtype=np.float32)
    loc = locate_divergence(fp32, broken, {"images": images}, tolerance_for("fp16"))
    assert loc.found and loc.node == target.name and loc.op == "MatMul" and loc.tensor == target.output[0]
    assert loc.max_rel > tolerance_for("fp16").max_error and loc.checked > 5 and loc.samples == 8
    assert "TensorRT" in loc.note and "fusion" in loc.note
    clean = locate_divergence(fp32, fp16, {"images": images}, tolerance_for("fp16"))
    assert not clean.found and clean.reason is None and clean.checked > 50


def test_cli_locate_on_a_failing_precision(run_dir, cli, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "fp16", Tolerance(max_error=1e-7, min_cosine=1.0))  # fp16 cannot meet this
    result = cli("compare", "lookupvit_digits", "--grids", "2", "--precisions", "fp32,fp16", "--locate",
                 "-o", str(run_dir))
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout and "first tensor over tolerance" in result.stdout
    assert "changes which layers are fused" in result.stdout and "would pass with max_error" in result.stdout
    doc = json.loads((run_dir / "accuracy.json").read_text())
    loc = doc["cells"][1]["locate"]
    assert doc["cells"][1]["status"] == "FAILED" and loc["found"] and loc["op"] and loc["node"]
    assert doc["cells"][0]["locate"] is None  # fp32 passed: nothing to locate


def test_cli_json_is_one_document(run_dir, cli):
    result = cli("compare", "lookupvit_digits", "--grids", "2", "--precisions", "fp32,int8", "--calib-size", "64",
                 "--json", "-o", str(run_dir))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "PASSED" and [c["precision"] for c in doc["cells"]] == ["fp32", "int8"]
    assert doc["cells"][1]["agreement"] >= 90.0


@pytest.mark.skipif(module_status("tensorrt").installed, reason="TensorRT is installed here")
def test_trt_backend_without_tensorrt_reports_unsupported(run_dir, cli):
    """The preflight: without TensorRT and a GPU, --backend trt stops at once, having written nothing."""
    result = cli("compare", "lookupvit_digits", "--grids", "2", "--precisions", "fp32,fp16", "--backend", "trt",
                 "--json", "-o", str(run_dir / "trt"))
    assert "Traceback" not in result.output
    assert result.exit_code == 2 and "TensorRT" in result.output and "prepare-only" not in result.stdout
    assert not (run_dir / "trt").exists()
    result = cli("compare", "lookupvit_digits", "--grids", "2", "--backend", "trt", "--profile", "h100",
                 "-o", str(run_dir / "trt"))
    assert result.exit_code == 2 and "--prepare-only" in result.output and not (run_dir / "trt").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["lookupvit_tiny23"], "Did you mean lookupvit_tiny32"),
        (["lookupvit_digits", "--precisions", "fp32,fp12"], "Unknown precision 'fp12'"),
        (["lookupvit_digits", "--grids", "9"], "does not fit the lookup grid"),
        (["{o}/missing.onnx"], "does not exist"),
        (["lookupvit_digits", "--backend", "tvm"], "--backend 'tvm' is not a backend this verb runs"),
        (["lookupvit_digits", "--data", "{o}/nowhere"], "Cannot read dataset"),
        (["lookupvit_digits", "--precisions", "int8", "--calib", "{o}/nowhere"], "does not exist"),
        (["lookupvit_digits", "--backend", "trt", "--profile", "h10"], "Unknown profile 'h10'"),
    ],
)
def test_cli_bad_input(cli, tmp_path, args, message):
    result = cli("compare", *[a.format(o=tmp_path) for a in args], "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert json.loads(result.stdout)["exit"] == 2  # with --json the error is also a document on stdout


def test_conversion_failure_is_a_cell_error(run_dir, tmp_path, monkeypatch):
    """A precision whose conversion fails (here: int8 with every quantizable op kept in fp32 is
    refused) is reported in its cell; the other cells still run."""
    import exporter.precision as precision_package  # the pipeline's precision stage calls it from here

    real = precision_package.convert_precision

    def keep_all(in_path, out_path, to, **kw):
        return real(in_path, out_path, to, **{**kw, "keep_fp32": "MatMul,Gemm,Conv,Attention"})

    monkeypatch.setattr(precision_package, "convert_precision", keep_all)
    r = compare_precisions("lookupvit_digits", precisions="int8,fp32", grids="2", out_dir=tmp_path)
    assert r.cell("2", "int8").status == "error" and "excludes every quantizable op" in r.cell("2", "int8").reason
    assert r.cell("2", "fp32").status == "PASSED" and not r.passed
    assert convert_precision  # the library entry point stays importable from exporter.precision


def test_compare_and_run_make_the_same_file_for_the_same_cell(tmp_path):
    """One pipeline: `compare` and `run` obtain a cell's graph from the same stage chain, so the int8
    graph of lookupvit_digits at grid 2 is the same file, byte for byte, whichever verb made it."""
    from exporter.run import RunOptions, run_job

    profile = tmp_path / "digits.toml"
    profile.write_text('backend = "onnxruntime"\nprecisions = ["fp32", "int8"]\n[models]\n'
                       'accuracy = ["lookupvit_digits"]\n[grids]\naccuracy = [2]\n[benchmark]\niterations = 2\n'
                       'seconds = 0\nwarmup = 0\nwarmup_seconds = 0\nrepeats = 1\n')
    run = run_job(RunOptions(profile=profile, out_dir=tmp_path / "run", peak_sizes=(64,)))
    from_run = tmp_path / "run" / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.opt.int8.onnx"
    result = compare_precisions("lookupvit_digits", precisions="int8", grids="2", out_dir=tmp_path / "compare")
    from_compare = Path(result.cell("2", "int8").model)
    assert from_compare != from_run and from_run.read_bytes() == from_compare.read_bytes()
    int8 = next(c for c in run.summary["accuracy"] if c["model"] == "lookupvit_digits" and c["precision"] == "int8")
    assert int8["top1"] == pytest.approx(result.cell("2", "int8").top1)
