"""Dynamic-grid models: one ONNX graph whose compressed grid (arXiv 2407.12753) is chosen per call by
the shape of its `grid` input (docs/dynamic-grid.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporter.errors import UserError
from exporter.export import (
    dynamic_grid_source,
    export_onnx,
    read_model_metadata,
    resolve_variant_source,
)
from exporter.export.grid_input import check_node_name
from exporter.export.metadata import parse_metadata
from exporter.models import create_model
from exporter.validate import validate_model

DIGITS_GRIDS = [(1, 1), (2, 2), (3, 3), (4, 4), (6, 6)]


def _dynamic(variant: str, grids: list[str], out: Path, head: str = "logits"):
    sources = [resolve_variant_source(variant, grid=g, head=head) for g in grids]
    return export_onnx(dynamic_grid_source(sources[0], [s.grid for s in sources]), out)


@pytest.fixture(scope="module")
def digits_dynamic(tmp_path_factory) -> Path:
    return _dynamic("lookupvit_digits", ["1", "2", "3", "4", "6"], tmp_path_factory.mktemp("dyn")).path


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_one_graph_with_a_grid_input_and_its_contract_in_the_metadata(digits_dynamic: Path):
    assert digits_dynamic.name == "lookupvit_digits_gdynamic.onnx"
    assert [p.name for p in digits_dynamic.parent.glob("*.onnx")] == [digits_dynamic.name]
    model = onnx.load(str(digits_dynamic), load_external_data=False)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert inputs == {"images": ["batch", 1, 32, 32], "grid": ["grid_h", "grid_w"]}
    assert sum(n.op_type == "Resize" for n in model.graph.node) == 1
    meta = read_model_metadata(digits_dynamic)
    assert meta.grids == tuple(DIGITS_GRIDS) and meta.grid is None
    assert meta.grid_input is not None and meta.grid_input.name == "grid" and meta.grid_input.dtype == "float32"
    assert meta.source is not None and meta.source.grids == tuple(DIGITS_GRIDS)
    sidecar = json.loads(Path(f"{digits_dynamic}.json").read_text())
    assert sidecar["settings"]["grids"] == ["1x1", "2x2", "3x3", "4x4", "6x6"]


def test_every_allowed_grid_matches_pytorch_at_that_grid(digits_dynamic: Path):
    sess = _session(digits_dynamic)
    model = create_model("lookupvit_digits").eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32), dtype=np.float32)
    outs = {}
    for g in DIGITS_GRIDS:
        (got,) = sess.run(None, {"images": x, "grid": np.zeros(g, np.float32)})
        with torch.inference_mode():
            want = model(torch.from_numpy(x), grid=g).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        outs[g] = got
    assert not np.allclose(outs[(1, 1)], outs[(6, 6)], atol=1e-3)  # the grid input does change the model


def test_the_static_export_is_the_same_model_with_the_grid_fixed(digits_dynamic: Path, tmp_path: Path):
    static = export_onnx(resolve_variant_source("lookupvit_digits", grid="3"), tmp_path).path
    x = np.random.default_rng(1).standard_normal((2, 1, 32, 32), dtype=np.float32)
    (dyn,) = _session(digits_dynamic).run(None, {"images": x, "grid": np.zeros((3, 3), np.float32)})
    (fixed,) = _session(static).run(None, {"images": x})
    np.testing.assert_allclose(dyn, fixed, atol=1e-5, rtol=0)


@pytest.mark.parametrize("grid", [(5, 5), (2, 3), (9, 9), (40, 2), (2, 40)])
def test_a_grid_outside_the_allowed_set_is_an_onnx_runtime_error_naming_the_allowed_grids(digits_dynamic, grid):
    sess = _session(digits_dynamic)
    with pytest.raises(Exception) as err:
        sess.run(None, {"images": np.zeros((1, 1, 32, 32), np.float32), "grid": np.zeros(grid, np.float32)})
    assert check_node_name(tuple(DIGITS_GRIDS)) in str(err.value)
    assert "allowed_grids_1x1_2x2_3x3_4x4_6x6" in str(err.value)


def test_validate_passes_at_every_grid_and_reports_per_grid(digits_dynamic: Path):
    report = validate_model(digits_dynamic, data="random")
    assert report.passed and report.grids == ["1x1", "2x2", "3x3", "4x4", "6x6"]
    assert [o.output for o in report.outputs] == [f"logits @ {g}" for g in report.grids]


def test_video_and_feature_models_take_the_grid_the_same_way(tmp_path: Path):
    video = _dynamic("lookupvit_tiny32_video", ["1x2x2", "2x4x4"], tmp_path / "v").path
    report = validate_model(video, data="random")
    assert report.passed and report.grids == ["1x2x2", "2x4x4"]
    meta = read_model_metadata(video)
    assert meta.grid_input is not None and meta.grid_input.shape == ("grid_t", "grid_h", "grid_w")


def test_feature_head_validates_both_streams_per_grid(tmp_path: Path):
    feats = _dynamic("lookupvit_tiny32", ["2", "4"], tmp_path, head="features").path
    report = validate_model(feats, data="random")
    assert report.passed
    assert [o.output for o in report.outputs] == [
        "lookup_tokens @ 2x2", "compressed_tokens @ 2x2", "lookup_tokens @ 4x4", "compressed_tokens @ 4x4"]


def test_an_axis_every_grid_shares_stays_static_in_the_contract():
    from exporter.export.grid_input import grid_input_for

    assert grid_input_for(((2, 2, 2), (2, 4, 4))).shape == (2, "grid_h", "grid_w")


def test_dynamic_grid_refuses_a_vit_baseline():
    with pytest.raises(UserError, match="dynamic-grid"):
        dynamic_grid_source(resolve_variant_source("vit_tiny32"), [])


GOOD = {"grids": "1x1,2x2", "grid_input": json.dumps({"name": "grid", "dtype": "float32", "shape": ["grid_h", "grid_w"]})}


@pytest.mark.parametrize("key,value,why", [
    ("grids", "1x1,banana", "a grid is"),
    ("grids", ",".join(["1x1"] * 2), "distinct"),
    ("grids", "1x1,2x2x2", "same number of axes"),
    ("grids", ",".join(f"{i}x{i}" for i in range(1, 70)), "1 to 64 grids"),
    ("grids", "1x1,9999x2", "between 1 and"),
    ("grid_input", json.dumps({"name": "grid", "dtype": "float64", "shape": ["grid_h", "grid_w"]}), "float32"),
    ("grid_input", json.dumps({"name": "grid;rm", "dtype": "float32", "shape": ["grid_h", "grid_w"]}), "identifier"),
    ("grid_input", json.dumps({"name": "grid", "dtype": "float32", "shape": ["grid_h"]}), "one entry per grid axis"),
    ("grid_input", json.dumps({"name": "grid", "dtype": "float32", "shape": [1, "grid_w"]}), "axis 0"),
    ("grid_input", json.dumps({"name": "grid", "dtype": "float32", "shape": ["x", "y"], "extra": 1}), "JSON object"),
    ("grid_input", "x" * 600, "JSON object"),
])
def test_metadata_reader_types_and_bounds_the_grid_entries(key, value, why):
    with pytest.raises(UserError, match=why):
        parse_metadata({**GOOD, key: value}, Path("m.onnx"))


def test_metadata_reader_accepts_a_well_formed_contract_and_wants_both_keys():
    meta = parse_metadata(GOOD, Path("m.onnx"))
    assert meta.grids == ((1, 1), (2, 2)) and meta.grid_input is not None
    with pytest.raises(UserError, match="grid_input"):
        parse_metadata({"grids": "1x1"}, Path("m.onnx"))
    with pytest.raises(UserError, match=r"without lookupvit\.grids"):
        parse_metadata({"grid_input": GOOD["grid_input"]}, Path("m.onnx"))


def _ops(path: Path) -> dict[str, int]:
    from collections import Counter

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.fixture(scope="module")
def digits_optimised(digits_dynamic: Path) -> Path:
    from exporter.passes import optimize_model

    out = digits_dynamic.parent / "opt.onnx"
    optimize_model(digits_dynamic, out)
    return out


def test_passes_fuse_every_attention_with_symbolic_sequence_lengths(digits_optimised: Path, digits_dynamic: Path):
    ops = _ops(digits_optimised)
    # digits: 4 layers x (gather, compressed self-attention, scatter), as in a one-grid model
    assert ops["Attention"] == 12 and ops.get("Softmax", 0) == 0
    assert read_model_metadata(digits_optimised).grids == tuple(DIGITS_GRIDS)
    report = validate_model(digits_optimised, data="random")
    assert report.passed and len(report.outputs) == len(DIGITS_GRIDS)


def test_fp16_converts_validates_at_every_grid_and_keeps_the_grid_check(digits_optimised: Path):
    from exporter.precision import convert_precision

    out = digits_optimised.parent / "fp16.onnx"
    convert_precision(digits_optimised, out, "fp16")
    report = validate_model(out, data="random")
    assert report.passed and report.precision == "fp16" and report.grids == ["1x1", "2x2", "3x3", "4x4", "6x6"]
    with pytest.raises(Exception, match="allowed_grids_1x1_2x2_3x3_4x4_6x6"):
        _session(out).run(None, {"images": np.zeros((1, 1, 32, 32), np.float32), "grid": np.zeros((5, 5), np.float32)})


def test_int8_calibrates_at_every_grid_and_validates_on_digits(digits_optimised: Path):
    from exporter.precision import convert_precision
    from exporter.precision.quantize import _Reader

    out = digits_optimised.parent / "int8.onnx"
    convert_precision(digits_optimised, out, "int8", calib_size=64)
    assert _ops(out)["QuantizeLinear"] > 0
    report = validate_model(out, data="digits", iterations=2)
    assert report.passed and report.grids == ["1x1", "2x2", "3x3", "4x4", "6x6"]
    reader = _Reader("images", np.zeros((64, 1, 32, 32), np.float32), 32, None, ("grid", tuple(DIGITS_GRIDS)))
    assert [f["grid"].shape for f in reader.feeds] == DIGITS_GRIDS * 2  # each batch at each grid


def test_tensorrt_plan_has_one_profile_per_grid_and_batch_and_says_which_serves_which(digits_dynamic, tmp_path):
    from exporter.engine.plan import make_build_plan, read_onnx
    from exporter.profiles import load_profile

    info = read_onnx(digits_dynamic)
    assert info.grid_input == "grid" and info.grids == tuple(DIGITS_GRIDS) and info.num_inputs == 2
    plan = make_build_plan(load_profile("h100"), info, "fp32", tmp_path)  # batch 1..128, opt 1, 8, 64
    profiles = plan.config_args()["profiles"]
    assert len(profiles) == len(DIGITS_GRIDS) * 3
    assert profiles[0] == {"images": ((1, 1, 32, 32), (1, 1, 32, 32), (128, 1, 32, 32)), "grid": ((1, 1),) * 3}
    assert profiles[14] == {"images": ((1, 1, 32, 32), (64, 1, 32, 32), (128, 1, 32, 32)), "grid": ((6, 6),) * 3}
    index = plan.to_dict()["profile_index"]  # written into the engine's sidecar
    assert [(e["index"], e["grid"], e["batch"]["opt"]) for e in index[:4]] == [
        (0, "1x1", 1), (1, "1x1", 8), (2, "1x1", 64), (3, "2x2", 1)]
    assert plan.profile_index(8, (3, 3)) == 7 and plan.profile_index(5, (3, 3)) == 7
    assert plan.profile_index(100, (6, 6)) == 14 and plan.profile_index(1, (6, 6)) == 12
    with pytest.raises(UserError, match="grid 5x5"):
        plan.profile_index(1, (5, 5))
    with pytest.raises(UserError, match="batch 500"):
        plan.profile_index(500, (3, 3))


@pytest.fixture(scope="module")
def dynamic_compare(digits_dynamic: Path):
    from exporter.compare import compare_precisions

    return compare_precisions(str(digits_dynamic), precisions="fp32", grids="3,6", out_dir=digits_dynamic.parent / "cmp",
                              optimize=False)


def test_compare_sweeps_the_grids_of_one_dynamic_file(dynamic_compare):
    result = dynamic_compare
    assert result.grids == ["3", "6"] and result.passed
    for grid in result.grids:
        cell = result.cell(grid, "fp32")
        assert cell is not None and cell.status == "PASSED" and cell.agreement == 100.0
        assert abs(cell.top1 - result.reference[grid]) <= 100.0 / result.samples  # within one image


def test_compare_top1_per_grid_matches_the_static_model_of_that_grid(dynamic_compare, tmp_path: Path):
    from exporter.compare import compare_precisions

    static = export_onnx(resolve_variant_source("lookupvit_digits", grid="3"), tmp_path).path
    fixed = compare_precisions(str(static), precisions="fp32", out_dir=tmp_path / "cmp", optimize=False)
    dyn, one = dynamic_compare.cell("3", "fp32"), fixed.cell("3", "fp32")
    assert dyn is not None and one is not None and fixed.samples == dynamic_compare.samples
    assert abs(dyn.top1 - one.top1) <= 100.0 / fixed.samples  # within one image


def test_compare_refuses_a_grid_the_file_does_not_serve(digits_dynamic: Path, tmp_path: Path):
    from exporter.compare import compare_precisions

    with pytest.raises(UserError, match="serves the grids 1x1, 2x2, 3x3, 4x4, 6x6"):
        compare_precisions(str(digits_dynamic), precisions="fp32", grids="5", out_dir=tmp_path)


# --- TensorRT: the runner's optimisation profile per request (pure; the engine itself needs a GPU) ---


def _sidecar(digits_dynamic: Path, tmp_path: Path) -> dict:
    """An engine sidecar as `lookupvit build` writes it (the plan and the model's metadata), without building."""
    from exporter.engine.plan import make_build_plan, read_onnx
    from exporter.profiles import load_profile

    info = read_onnx(digits_dynamic)
    plan = make_build_plan(load_profile("h100"), info, "fp32", tmp_path)  # opt batches 1, 8, 64
    return {"plan": plan.to_dict(), "onnx": {"metadata": info.metadata}}


def test_the_runner_selects_the_profile_of_the_requested_grid_and_batch(digits_dynamic, tmp_path):
    from exporter.backends.tensorrt.profiles import ProfileSelector

    sel = ProfileSelector.from_sidecar(_sidecar(digits_dynamic, tmp_path), "m.fp32.plan")
    assert sel.grid_input == "grid" and len(sel.entries) == 15
    assert sel.index(1, (1, 1)) == 0 and sel.index(8, (3, 3)) == 7 and sel.index(64, (6, 6)) == 14
    assert sel.index(5, (2, 2)) == 4 and sel.index(100, (4, 4)) == 11  # smallest opt at or above, else the largest
    feed = {"images": np.zeros((8, 1, 32, 32), np.float32), "grid": np.zeros((4, 4), np.float32)}
    assert sel.for_feed(feed) == 10
    with pytest.raises(UserError, match=r"grid 5x5[\s\S]*1x1, 2x2, 3x3, 4x4, 6x6"):
        sel.index(1, (5, 5))
    with pytest.raises(UserError, match=r"batch 500[\s\S]*1\.\.128"):
        sel.index(500, (3, 3))


def test_a_one_grid_engine_selects_by_batch_and_an_old_sidecar_keeps_profile_zero(tmp_path):
    from exporter.backends.tensorrt.profiles import ProfileSelector
    from exporter.engine.plan import make_build_plan, read_onnx
    from exporter.profiles import load_profile

    static = export_onnx(resolve_variant_source("lookupvit_digits", grid="3"), tmp_path).path
    info = read_onnx(static)
    side = {"plan": make_build_plan(load_profile("h100"), info, "fp32", tmp_path).to_dict(), "onnx": {"metadata": info.metadata}}
    sel = ProfileSelector.from_sidecar(side, "m.plan")
    assert sel.grid_input is None and [sel.index(b, (3, 3)) for b in (1, 8, 9, 128)] == [0, 1, 2, 2]
    assert ProfileSelector.from_sidecar({"onnx": {}}, "old.plan").index(8) is None


@pytest.mark.parametrize("bad", [
    "x", [{"index": 1, "grid": None, "batch": {"min": 1, "opt": 1, "max": 1}}],
    [{"index": 0, "grid": "2x;", "batch": {"min": 1, "opt": 1, "max": 1}}],
    [{"index": 0, "grid": None, "batch": {"min": 0, "opt": 1, "max": True}}],
])
def test_a_sidecar_profile_list_is_read_as_data_and_a_bad_one_names_the_fix(bad):
    from exporter.backends.tensorrt.profiles import ProfileSelector

    with pytest.raises(UserError, match="Rebuild the engine"):
        ProfileSelector.from_sidecar({"plan": {"profile_index": bad}}, "m.plan")


def test_tensorrt_engine_of_a_dynamic_grid_model_validates_per_grid_with_its_profiles(digits_dynamic, tmp_path):
    from exporter.backends.tensorrt.env import tensorrt_usable

    if not tensorrt_usable():
        pytest.skip("needs TensorRT and a CUDA GPU (the runner's profile selection is tested above without them)")
    from exporter.engine.build import build_engine, prepare_build
    from exporter.profiles import load_profile
    from exporter.validate import validate_model

    built = build_engine(prepare_build(digits_dynamic, load_profile("h100"), "fp32", tmp_path))
    report = validate_model(built.engine, data="random")
    assert report.passed and report.grids == ["1x1", "2x2", "3x3", "4x4", "6x6"]


# --- profile and run: a dynamic-grid model's grids swept without exporting again ---------------


def _sweep_settings():
    from exporter.latency.sweep import SweepSettings

    return SweepSettings(warmup=1, iterations=2, seconds=0.0, repeats=1, threads=2, warmup_seconds=0.0)


def test_profile_sweeps_the_grids_of_a_dynamic_file_one_session_per_grid(digits_dynamic, tmp_path):
    from exporter.latency.api import ProfileRequest, profile_latency, resolve_target

    target = resolve_target(str(digits_dynamic), "2,6")
    assert target.dynamic_grid and target.grids == ((2, 2), (6, 6))
    req = ProfileRequest([target], backends=("ort", "torch"), settings=_sweep_settings(), peak_sizes=(128,))
    result, _, _ = profile_latency(req, tmp_path)
    cells = {(c.grid, c.backend): c for c in result.cells}
    assert set(cells) == {("2", "ort"), ("6", "ort"), ("2", "torch"), ("6", "torch")}
    assert all(c.status == "ok" for c in cells.values())
    assert cells[("6", "ort")].detail.endswith("grid input 6x6") and cells[("6", "ort")].gmacs > cells[("2", "ort")].gmacs
    assert not list(tmp_path.rglob("*.onnx"))  # the file is timed as given: nothing exported


def test_profile_refuses_a_grid_the_file_does_not_serve_with_the_list(digits_dynamic):
    from click.testing import CliRunner

    from exporter.cli import main

    result = CliRunner().invoke(main, ["profile", str(digits_dynamic), "--grids", "5"])
    assert result.exit_code == 2 and "serves the grids 1x1, 2x2, 3x3, 4x4, 6x6" in result.output


def test_profile_variant_dynamic_grid_exports_once_and_times_each_grid_next_to_the_vit(tmp_path):
    from exporter.latency.api import ProfileRequest, profile_latency, resolve_target

    target = resolve_target("lookupvit_tiny32", "2,4", dynamic_grid=True)
    req = ProfileRequest([target], backends=("ort",), settings=_sweep_settings(), peak_sizes=(128,))
    result, _, _ = profile_latency(req, tmp_path)
    graphs = sorted(p.name for p in (tmp_path / "lookupvit_tiny32").rglob("*.onnx"))
    assert graphs == ["lookupvit_tiny32_gdynamic.onnx", "lookupvit_tiny32_gdynamic.opt.onnx"]
    lookup = [c for c in result.cells if c.role == "lookupvit"]
    assert [c.grid for c in lookup] == ["2", "4"] and all(c.status == "ok" and c.speedup for c in lookup)
    assert [c.model for c in result.cells if c.role == "baseline"] == ["vit_tiny32"]
    with pytest.raises(UserError, match="ViT baseline"):
        resolve_target("vit_tiny32", None, dynamic_grid=True)


def test_profile_sweeps_a_video_model_and_a_feature_head_the_same_way(tmp_path):
    from exporter.latency.api import ProfileRequest, profile_latency, resolve_target

    video = resolve_target("lookupvit_tiny32_video", "1x2x2,2x4x4", dynamic_grid=True)
    feats = resolve_target(str(_dynamic("lookupvit_tiny32", ["2", "4"], tmp_path / "f", head="features").path))
    assert feats.dynamic_grid and feats.grids == ((2, 2), (4, 4))
    req = ProfileRequest([video, feats], backends=("ort",), baseline=None, settings=_sweep_settings(), peak_sizes=(128,))
    result, _, _ = profile_latency(req, tmp_path / "out")
    assert [(c.model, c.grid, c.status) for c in result.cells] == [
        ("lookupvit_tiny32_video", "1x2x2", "ok"), ("lookupvit_tiny32_video", "2x4x4", "ok"),
        ("lookupvit_tiny32_features_gdynamic", "2", "ok"), ("lookupvit_tiny32_features_gdynamic", "4", "ok")]
    assert result.cells[1].detail.endswith("grid input 2x4x4")


@pytest.fixture(scope="module")
def dynamic_run(tmp_path_factory):
    from click.testing import CliRunner

    from exporter.cli import main

    out = tmp_path_factory.mktemp("run") / "dyn"
    profile = Path(__file__).resolve().parent / "profiles" / "tiny-dynamic.toml"
    result = CliRunner().invoke(main, ["run", "--profile", str(profile), "-o", str(out)], catch_exceptions=False)
    return out, result, json.loads((out / "summary.json").read_text())


def test_run_with_dynamic_grid_passes_with_one_graph_per_precision_per_lookupvit(dynamic_run):
    out, result, summary = dynamic_run
    assert result.exit_code == 0, result.output
    for variant in ("lookupvit_digits", "lookupvit_tiny32"):
        graphs = sorted(str(p.relative_to(out)) for p in (out / variant).rglob("*.onnx"))
        assert graphs == [f"{variant}/gdynamic/onnx/{variant}_gdynamic.opt.int8.onnx",
                          f"{variant}/gdynamic/onnx/{variant}_gdynamic.opt.onnx"]  # --keep final dropped the export
    ids = [s["id"] for s in summary["stages"]]
    assert ids.count("export:lookupvit_digits:gdynamic") == 1 and ids.count("precision:lookupvit_tiny32:gdynamic:int8") == 1
    assert not [i for i in ids if ":g2" in i or ":g4" in i]  # no per-grid graph
    assert {(v["model"], v["grid"], v["status"]) for v in summary["validation"] if v["model"] != "vit_tiny32"} == {
        ("lookupvit_digits", "dynamic", "PASSED"), ("lookupvit_tiny32", "dynamic", "PASSED")}


def test_run_with_dynamic_grid_gives_per_grid_accuracy_and_latency_cells(dynamic_run):
    _, _, summary = dynamic_run
    acc = {(a["grid"], a["precision"]): a for a in summary["accuracy"]}
    assert set(acc) == {("2", "fp32"), ("2", "int8"), ("4", "fp32"), ("4", "int8")}
    assert all(a["status"] == "PASSED" and a["top1"] > 90 for a in acc.values())
    cells = {(c["model"], c["grid"], c["precision"]): c for c in summary["latency"]["cells"]}
    for model in ("lookupvit_digits", "lookupvit_tiny32"):
        for grid in ("2", "4"):
            for p in ("fp32", "int8"):
                c = cells[(model, grid, p)]
                assert c["status"] == "ok" and c["detail"].endswith(f"grid input {grid}x{grid}")
    assert cells[("lookupvit_tiny32", "2", "fp32")]["speedup"] is not None


def test_run_with_dynamic_grid_says_which_artefacts_are_shared(dynamic_run):
    out, _, summary = dynamic_run
    shared = {e["model"]: e for e in summary["shared"]}
    digits = shared["lookupvit_digits"]
    assert digits["line"].startswith("lookupvit_digits: one dynamic-grid graph per precision serves grids 2,4 (2 file(s),")
    assert [f["file"] for f in digits["files"]] == ["lookupvit_digits/gdynamic/onnx/lookupvit_digits_gdynamic.opt.onnx",
                                                    "lookupvit_digits/gdynamic/onnx/lookupvit_digits_gdynamic.opt.int8.onnx"]
    assert digits["per_grid_estimate_bytes"] == 2 * digits["bytes"] > 0
    assert len(digits["cells"]) == 4
    assert "Shared artefacts (dynamic-grid graphs)" in (out / "report.html").read_text()


# --- the grid check: the grid's shape arithmetic folded into per-grid tables ----------------------


def _toy(reads_values: bool) -> onnx.ModelProto:
    """images (N,) and a grid input; out = images * (gh * gw) (from the grid's shape), or
    images + sum(grid) when the grid's values are read."""
    from onnx import TensorProto, helper

    if reads_values:
        nodes = [helper.make_node("ReduceSum", ["grid"], ["total"], keepdims=0),
                 helper.make_node("Add", ["images", "total"], ["out"])]
    else:
        nodes = [helper.make_node("Shape", ["grid"], ["s"]), helper.make_node("ReduceProd", ["s"], ["n"], keepdims=1),
                 helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["images", "nf"], ["out"])]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [3]),
                                              helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("reads_values", [False, True])
def test_the_grid_check_folds_shape_arithmetic_into_tables_or_gates_a_grid_whose_values_are_read(reads_values, tmp_path):
    from exporter.export.grid_input import add_grid_check

    model = _toy(reads_values)
    grids = ((1, 1), (2, 3))
    add_grid_check(model, grids, (4, 4))
    ops = [n.op_type for n in model.graph.node]
    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    sess = _session(path)
    images = np.arange(3, dtype=np.float32)
    for g in grids:
        (out,) = sess.run(None, {"images": images, "grid": np.ones(g, np.float32)})
        np.testing.assert_allclose(out, images + g[0] * g[1] if reads_values else images * g[0] * g[1])
    for g in ((2, 2), (3, 2), (9, 1)):
        with pytest.raises(Exception, match=check_node_name(grids)):
            sess.run(None, {"images": images, "grid": np.ones(g, np.float32)})
    if reads_values:
        assert "grid_check_apply" in [n.name for n in model.graph.node]
    else:  # Shape, ReduceProd and Cast became one table lookup; one Shape of the grid is left (the check's)
        assert ops.count("Shape") == 1 and "ReduceProd" not in ops and "Cast" not in ops


def test_the_exported_dynamic_graph_reads_the_grid_once_and_looks_its_shapes_up(digits_dynamic: Path):
    model = onnx.load(str(digits_dynamic), load_external_data=False)
    readers = [n for n in model.graph.node if "grid" in n.input]
    assert [n.op_type for n in readers] == ["Shape"]
    lookups = [n for n in model.graph.node if n.name.startswith(check_node_name(tuple(DIGITS_GRIDS)))]
    assert lookups and all(n.op_type == "Gather" for n in lookups)


def _both_roles_profile(path: Path, accuracy_grids: str) -> Path:
    """lookupvit_digits as the accuracy model and as the latency model, one dynamic-grid graph."""
    path.write_text(f"""
backend = "onnxruntime"
precisions = ["fp32"]
[models]
accuracy = ["lookupvit_digits"]
latency = ["lookupvit_digits"]
baseline = "vit_tiny32"
dynamic_grid = true
[grids]
accuracy = [{accuracy_grids}]
latency = [2, 4]
[batch]
opt = [1]
[benchmark]
warmup = 1
iterations = 4
seconds = 0.0
threads = 2
""")
    return path


@pytest.mark.slow
def test_a_variant_in_both_roles_is_validated_once_and_compared_at_the_grids_asked(tmp_path):
    """The budget planner finds the latency entry of a variant that is also an accuracy model; its
    shared graph is validated once (on the accuracy data); and widening the accuracy grids reruns the
    comparison (the grids are part of its key), so every asked grid has a top-1."""
    from click.testing import CliRunner

    from exporter.cli import main

    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["run", "--profile", str(_both_roles_profile(tmp_path / "a.toml", "2")),
                                      "-o", str(out), "--budget", "60"], catch_exceptions=False)  # a budget: planned
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    ids = [s["id"] for s in summary["stages"]]
    assert ids.count("validate:lookupvit_digits:gdynamic:fp32") == 1
    assert [v["model"] for v in summary["validation"]].count("lookupvit_digits") == 1
    assert {a["grid"] for a in summary["accuracy"]} == {"2"}

    second = CliRunner().invoke(main, ["run", "--profile", str(_both_roles_profile(tmp_path / "b.toml", "2, 4")),
                                       "-o", str(out)], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    summary = json.loads((out / "summary.json").read_text())
    stages = {s["id"]: s["status"] for s in summary["stages"]}
    assert stages["compare:lookupvit_digits:gdynamic"] == "ran"
    assert stages["export:lookupvit_digits:gdynamic"] == "skipped"
    acc = {a["grid"]: a for a in summary["accuracy"]}
    assert set(acc) == {"2", "4"} and all(a["top1"] is not None for a in acc.values())
