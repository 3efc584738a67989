"""The ``cpu`` target of `lookupvit optimize`: projections that read the same tensor merged into one
MatMul + Split, residual Add + LayerNorm written as SkipLayerNormalization, on our tiny LookupViTs
and the foreign ones, every pass checked by the optimiser and the outputs held to the PyTorch
reference."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from exporter.export import ModelSource, export_onnx, read_metadata
from exporter.passes import optimize_model
from exporter.passes.check import seeded_feeds
from exporter.validate import validate_model

pytestmark = pytest.mark.slow  # the exports take a few seconds each on 2 cores

GRID = (2, 2)
PASSES = "einsum,fold-constants,layout,layernorm,gelu,skip-layernorm,merge-projections"  # both CPU passes
DEPTH = 2  # layers of lookupvit_tiny32 and of the foreign LookupViTs
# foreign LookupViT: the fewest MatMuls merge-projections must merge (sdpa_lookupvit already projects
# K and V with one fused Linear and Q/K/V with another; the others project K and V separately per layer)
FOREIGN = {"einsum_lookupvit": 2 * DEPTH, "sdpa_lookupvit": 2, "divscale_lookupvit": 2 * DEPTH,
           "argname_lookupvit": 2 * DEPTH}


def ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def by_name(report) -> dict:
    return {p.name: p for p in report.passes}


def ort_full(path, feeds):
    """The graph on ONNX Runtime's CPU provider with every graph optimisation on (how it is deployed)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("cpu")
    paths = {
        "tiny32": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID), out / "tiny32").path,
        "digits": export_onnx(ModelSource(variant="lookupvit_digits", grid=GRID), out / "digits").path,
    }
    for name in FOREIGN:
        paths[name] = export_onnx(ModelSource(factory=f"tests.foreign.{name}:build", grid=GRID), out / name).path
    return out, paths


def test_cpu_target_default_order_merges_and_keeps_layernorm(exports):
    """skip-layernorm is on request only (measured slower): the default order leaves LayerNorm to ONNX Runtime."""
    out, paths = exports
    report = optimize_model(paths["tiny32"], out / "default.cpu.onnx", target="cpu")
    assert report.passed and "skip-layernorm" not in [p.name for p in report.passes]
    assert by_name(report)["merge-projections"].status == "kept"
    after = ops(report.output)
    assert after["SkipLayerNormalization"] == 0 and after["LayerNormalization"] == ops(paths["tiny32"])["LayerNormalization"]


@pytest.mark.parametrize("name", ["tiny32", "digits"])
def test_cpu_target_merges_kv_and_writes_skip_layernorm(name, exports):
    out, paths = exports
    report = optimize_model(paths[name], out / f"{name}.cpu.onnx", target="cpu", passes=PASSES)
    assert report.passed and report.check.max_rel <= 1e-4
    passes = by_name(report)
    assert all(p.status != "rolled back" for p in report.passes), [(p.name, p.note) for p in report.passes]
    before, after = ops(paths[name]), ops(report.output)
    # K and V of the lookup tokens read the same normalised tensor in every layer: one MatMul each
    merge = passes["merge-projections"]
    assert merge.status == "kept" and merge.matches >= 2 * DEPTH
    assert after["MatMul"] == before["MatMul"] - merge.matches // 2 and after["Split"] >= DEPTH
    # every LayerNorm after a residual Add becomes SkipLayerNormalization, its sum kept for the next residual
    skip = passes["skip-layernorm"]
    assert skip.status == "kept" and skip.matches >= 4 * DEPTH
    assert after["SkipLayerNormalization"] == skip.matches
    assert after["LayerNormalization"] == before["LayerNormalization"] - skip.matches
    meta = read_metadata(report.output)
    assert meta["target"] == "cpu" and "merge-projections" in meta["passes"].split(",")
    model = onnx.load(str(report.output))
    assert any(o.domain == "com.microsoft" for o in model.opset_import)
    # the same numbers as the plain export on the runtime the target is for, all optimisations on
    feeds = seeded_feeds(model, seed=3, batch=1)
    got, want = ort_full(report.output, feeds)[0], ort_full(paths[name], feeds)[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert validate_model(report.output).passed


@pytest.mark.parametrize("name", list(FOREIGN))
def test_cpu_target_on_foreign_lookupvits(name, exports):
    out, paths = exports
    report = optimize_model(paths[name], out / f"{name}.cpu.onnx", target="cpu", passes=PASSES)
    assert report.passed
    assert all(p.status != "rolled back" for p in report.passes), [(p.name, p.note) for p in report.passes]
    passes = by_name(report)
    assert passes["skip-layernorm"].matches >= 2 * DEPTH
    assert passes["merge-projections"].matches >= FOREIGN[name]
    after = ops(report.output)
    assert after["SkipLayerNormalization"] == passes["skip-layernorm"].matches
    if name == "sdpa_lookupvit":  # a factory model validates against its PyTorch module, named explicitly
        assert validate_model(report.output, factory=f"tests.foreign.{name}:build").passed


def test_cpu_passes_need_the_cpu_target(exports):
    from exporter.errors import UserError

    out, paths = exports
    with pytest.raises(UserError, match="does not apply to target"):
        optimize_model(paths["tiny32"], out / "x.onnx", target="attention", passes="merge-projections")


def test_cpu_target_from_the_cli(cli, exports):
    out, paths = exports
    result = cli("optimize", str(paths["tiny32"]), "-o", str(out / "cli.cpu.onnx"), "--form", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert '"target": "cpu"' in result.output
    listing = cli("optimize", "--list")
    assert listing.exit_code == 0 and "merge-projections" in listing.output and "skip-layernorm" in listing.output
