"""Graph-surgeon passes (`lookupvit optimize`): the cross-attention of LookupViTs written in different
ways is fused to ONNX Attention (or TensorRT's MHA form), every pass is checked with ONNX Runtime
and rolled back if it changes the numbers, and graphs without a LookupViT attention pass through."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from exporter.errors import UserError
from exporter.export import ModelSource, export_onnx, read_metadata
from exporter.passes import PassResult, optimize_model, register_pass
from exporter.passes import registry as pass_registry
from exporter.passes.canonical import _einsum_plan
from exporter.validate import validate_model

pytestmark = pytest.mark.slow  # the shared exports take ~25 s on 2 cores; each test then takes < 2 s

GRID = (2, 2)
FOREIGN = {
    # module: (Attention nodes per layer after optimize, passes expected to rewrite something)
    "einsum_lookupvit": (2, {"einsum", "gather", "scatter"}),  # no self-attention in this one
    "sdpa_lookupvit": (3, {"self-attention", "scatter"}),  # its gather is SDPA: Attention already
    "divscale_lookupvit": (3, {"gather", "scatter"}),  # its self-attention is SDPA
}
DEPTH = 2


class HandNorm(nn.Module):
    """A LayerNorm written out by hand (exported decomposed)."""

    def __init__(self, d: int):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.randn(d)), nn.Parameter(torch.randn(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = x - x.mean(-1, keepdim=True)
        return xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + 1e-5) * self.w + self.b


class TinyMlp(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.norm, self.fc2 = nn.Linear(16, 32), HandNorm(32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))


def ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Exports shared by the tests: ours at opsets 23 and 18, the probs-scatter variant, three
    foreign LookupViTs, a ViT and a tiny MLP with a hand-written LayerNorm (opset 18)."""
    out = tmp_path_factory.mktemp("passes")
    paths = {
        "ours": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID), out / "o23").path,
        "ours18": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID), out / "o18", opset=18).path,
        "probs": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID, overrides={"scatter": "probs"}),
                             out / "probs").path,
        "vit": export_onnx(ModelSource(variant="vit_tiny32"), out / "vit").path,
    }
    for name in FOREIGN:
        paths[name] = export_onnx(ModelSource(factory=f"tests.foreign.{name}:build", grid=GRID), out / name).path
    mlp = out / "mlp.onnx"
    program = torch.onnx.export(TinyMlp().eval(), (torch.randn(2, 16),), dynamo=True, opset_version=18,
                                dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
    program.save(str(mlp))
    paths["mlp"] = mlp
    return out, paths


@pytest.fixture(scope="module")
def ours(models):
    out, paths = models
    return optimize_model(paths["ours"], out / "opt" / "ours.opt.onnx")


def by_name(report) -> dict:
    return {p.name: p for p in report.passes}


def test_our_lookupvit_gets_three_attention_per_layer_and_validates(ours, models):
    _, paths = models
    assert ours.passed and ours.check.max_rel <= 1e-4
    counts = ops(ours.output)
    assert counts["Attention"] == 3 * DEPTH and counts["Softmax"] == 0
    assert ops(paths["ours"])["Softmax"] == 2 * DEPTH  # gather and scatter softmaxes before
    passes = by_name(ours)
    assert passes["gather"].status == "kept" and passes["gather"].matches == DEPTH
    assert passes["scatter"].status == "kept" and passes["scatter"].matches == DEPTH
    assert passes["self-attention"].status == "no match" and "no decomposed" in passes["self-attention"].note
    assert passes["scatter"].op_delta["MatMul"] == -2 * DEPTH  # the shared logits MatMul is gone too
    # metadata carried over (validate rebuilds the reference from it), passes and target added
    meta = read_metadata(ours.output)
    assert meta["variant"] == "lookupvit_tiny32" and meta["grid"] == "2x2" and meta["source"]
    assert meta["passes"] == "gather,scatter" and meta["target"] == "attention"
    side = json.loads(Path(ours.sidecar).read_text())
    assert side["kind"] == "onnx-optimize" and side["status"] == "PASSED" and side["kept"] == ["gather", "scatter"]
    assert side["passes"][6]["name"] == "gather" and side["passes"][6]["op_delta"]["Attention"] == DEPTH
    assert side["output_sha256"] and side["versions"]["onnxruntime"]
    report = validate_model(ours.output)
    assert report.passed, [o.to_dict() for o in report.outputs]


@pytest.mark.parametrize("name", list(FOREIGN))
def test_foreign_lookupvits_are_fused(name, models):
    out, paths = models
    per_layer, rewriting = FOREIGN[name]
    report = optimize_model(paths[name], out / "opt" / f"{name}.opt.onnx")
    assert report.passed
    counts = ops(report.output)
    assert counts["Attention"] == per_layer * DEPTH and counts["Softmax"] == 0 and counts["Einsum"] == 0
    kept = {p.name for p in report.passes if p.status == "kept"}
    assert rewriting <= kept, [(p.name, p.status, p.note) for p in report.passes]
    assert all(p.status != "rolled back" for p in report.passes)
    if name == "sdpa_lookupvit":  # a factory model validates against its PyTorch module, named explicitly
        assert validate_model(report.output, factory="tests.foreign.sdpa_lookupvit:build").passed


def test_opset18_export_is_upgraded_and_fused(models):
    out, paths = models
    before = ops(paths["ours18"])
    assert before["Softmax"] == 3 * DEPTH and before["Erf"] == 2 * DEPTH and "Attention" not in before
    report = optimize_model(paths["ours18"], out / "opt" / "ours18.opt.onnx")
    passes = by_name(report)
    assert report.passed and report.opset_before == 18 and report.opset_after == 23
    for name in ("opset", "layout", "gelu", "gather", "self-attention", "scatter"):
        assert passes[name].status == "kept", (name, passes[name].note)
    assert "Reshape-Transpose-Reshape" in passes["layout"].note
    counts = ops(report.output)
    assert counts["Attention"] == 3 * DEPTH and counts["Softmax"] == 0 and counts["Erf"] == 0
    assert counts["Gelu"] == 2 * DEPTH
    assert read_metadata(report.output)["opset"] == "23"


def test_probs_scatter_is_not_an_attention_and_is_left_alone(models):
    out, paths = models
    report = optimize_model(paths["probs"], out / "opt" / "probs.opt.onnx")
    passes = by_name(report)
    for name in ("gather", "scatter"):
        assert passes[name].status == "no match" and passes[name].matches == 0
        assert "read by more than one node" in passes[name].note
    assert report.kept == []
    counts = ops(report.output)
    assert counts["Softmax"] == DEPTH and counts["Attention"] == DEPTH  # only the SDPA self-attention


def test_graphs_without_lookupvit_attention_pass_through_unchanged(models):
    out, paths = models
    for name in ("vit", "mlp"):
        report = optimize_model(paths[name], out / "opt" / f"{name}.opt.onnx", passes="gather,self-attention,scatter")
        assert report.kept == [] and all(p.status == "no match" for p in report.passes)
        a, b = onnx.load(str(paths[name])), onnx.load(str(report.output))
        assert [(n.op_type, list(n.input), list(n.output)) for n in a.graph.node] == \
               [(n.op_type, list(n.input), list(n.output)) for n in b.graph.node]
        assert report.check.max_abs == 0.0


def test_decomposed_layernorm_and_gelu_are_fused(models):
    out, paths = models
    report = optimize_model(paths["mlp"], out / "opt" / "mlp_all.opt.onnx")
    passes = by_name(report)
    assert passes["layernorm"].status == "kept" and passes["gelu"].status == "kept"
    assert report.passed and report.check.max_rel < 1e-5
    assert ops(report.output) == Counter({"Gemm": 2, "LayerNormalization": 1, "Gelu": 1})


def _is_trt_mha(graph: onnx.GraphProto, softmax: onnx.NodeProto) -> bool:
    """MatMul(Mul(Q, scalar), K^T) -> Softmax(-1) -> MatMul(P, V), all 4-D."""
    producers = {o: n for n in graph.node for o in n.output}
    consumers = [n for n in graph.node if softmax.output[0] in n.input]
    logits = producers[softmax.input[0]]
    scaled_q = producers.get(logits.input[0])
    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    return (logits.op_type == "MatMul" and scaled_q is not None and scaled_q.op_type == "Mul"
            and axis == -1 and len(consumers) == 1 and consumers[0].op_type == "MatMul"
            and consumers[0].input[0] == softmax.output[0])


@pytest.mark.parametrize("name", ["ours", "divscale_lookupvit"])
def test_trt_mha_target(name, models):
    out, paths = models
    report = optimize_model(paths[name], out / "opt" / f"{name}.mha.onnx", target="trt-mha")
    assert report.passed
    passes = by_name(report)
    assert passes["unfuse-attention"].status == "kept"  # the exporter's SDPA Attention nodes
    model = onnx.load(str(report.output))
    counts = Counter(n.op_type for n in model.graph.node)
    assert counts["Attention"] == 0 and counts["Softmax"] == 3 * DEPTH
    assert all(_is_trt_mha(model.graph, n) for n in model.graph.node if n.op_type == "Softmax")
    assert read_metadata(report.output)["target"] == "trt-mha"
    # a second run finds everything already in that form
    again = optimize_model(report.output, out / "opt" / f"{name}.mha2.onnx", target="trt-mha")
    assert again.kept == [] and "already in MatMul-Softmax-MatMul form" in by_name(again)["scatter"].note


@pytest.fixture
def broken_passes():
    """Two deliberately wrong passes, registered for one test."""

    @register_pass("test-wrong-gelu", "test", "replaces Gelu with Relu (changes the numbers)")
    def wrong(graph, ctx):
        n = 0
        for node in graph.nodes:
            if node.op == "Gelu":
                node.op, node.attrs, n = "Relu", {}, n + 1
        return PassResult(n, f"{n} Gelu made Relu")

    @register_pass("test-raises", "test", "raises")
    def raises(graph, ctx):
        graph.nodes[0].op = "NoSuchOp"
        raise RuntimeError("deliberate")

    yield
    for name in ("test-wrong-gelu", "test-raises"):
        pass_registry._PASSES.pop(name)


def test_a_pass_that_changes_the_numbers_is_rolled_back(models, broken_passes):
    out, paths = models
    report = optimize_model(paths["ours"], out / "opt" / "rollback.onnx", passes="test-wrong-gelu,test-raises,gather")
    passes = by_name(report)
    wrong = passes["test-wrong-gelu"]
    assert wrong.status == "rolled back" and wrong.matches == 2 * DEPTH
    assert "would change the outputs" in wrong.note and wrong.max_rel_change > 1e-4
    assert wrong.nodes_after == wrong.nodes_before and wrong.ops_after == wrong.ops_before
    assert passes["test-raises"].status == "rolled back" and "RuntimeError: deliberate" in passes["test-raises"].note
    assert passes["gather"].status == "kept" and report.passed
    counts = ops(report.output)
    assert counts["Gelu"] == 2 * DEPTH and counts["Relu"] == 0 and counts["NoSuchOp"] == 0
    assert read_metadata(report.output)["passes"] == "gather"


def test_einsum_plans():
    assert _einsum_plan("bmhd,bnhd->bhmn") == ([0, 2, 1, 3], [0, 2, 3, 1], [0, 1, 2, 3])
    assert _einsum_plan("bhmn,bnhd->bmhd") == ([0, 1, 2, 3], [0, 2, 1, 3], [0, 2, 1, 3])
    assert _einsum_plan("bnd,de->bne") == ([0, 1, 2], [0, 1], [0, 1, 2])
    for eq in ("bij,bjk", "...ij,...jk->...ik", "bii->bi", "bij,bkj,bk->bi", "bhd,bhd->bh"):
        assert _einsum_plan(eq) is None, eq


def test_cli_list_and_json(cli, models, capsys):
    out, paths = models
    listed = cli("optimize", "--list")
    assert listed.exit_code == 0
    for name in ("opset", "einsum", "fold-constants", "layout", "layernorm", "gelu", "gather", "self-attention",
                 "scatter", "unfuse-attention"):
        assert name in listed.output
    rows = json.loads(cli("optimize", "--list", "--json").output)
    assert [r["name"] for r in rows][:3] == ["opset", "einsum", "fold-constants"]
    assert all(r["summary"] for r in rows)
    target = out / "cli" / "m.onnx"
    result = cli("optimize", str(paths["einsum_lookupvit"]), "-o", str(target), "--passes", "einsum,gather,scatter",
                 "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)  # one JSON document, nothing else on stdout
    assert doc["kept"] == ["einsum", "gather", "scatter"] and doc["status"] == "PASSED"
    assert doc["ops_after"]["Attention"] == 2 * DEPTH and target.is_file()
    assert json.loads((out / "cli" / "m.onnx.json").read_text())["output"] == str(target)
    table = cli("optimize", str(paths["vit"]), "-o", str(out / "cli" / "v.onnx"), "--passes", "gather")
    assert table.exit_code == 0 and "no decomposed gather found" in table.output and "PASSED" in table.output


def test_cli_bad_input(cli, models, tmp_path):
    _, paths = models
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a model")
    cases = [
        (["optimize", str(junk), "-o", str(tmp_path / "o.onnx")], "not a readable ONNX model"),
        (["optimize", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o.onnx")], "does not exist"),
        (["optimize", str(paths["ours"]), "-o", str(tmp_path / "o.onnx"), "--passes", "gathr,layout"],
         "Did you mean gather"),
        (["optimize", str(paths["ours"]), "-o", str(tmp_path / "o.onnx"), "--form", "trt"], "Did you mean trt-mha"),
        (["optimize", str(paths["ours"]), "-o", str(tmp_path / "o.onnx"), "--passes", "unfuse-attention"],
         "does not apply to target"),
        (["optimize", str(paths["ours"])], "needs a model and an output"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not (tmp_path / "o.onnx").exists()
    with pytest.raises(UserError):
        optimize_model(junk, tmp_path / "o.onnx", passes=[])


def test_seeded_check_sees_small_changes():
    """The guard's comparison flags a change just above the fp32 tolerance, not one below."""
    from exporter.passes.check import compare_outputs

    ref = {"y": np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)}
    assert compare_outputs(ref, {"y": ref["y"] + 5e-5}).passed
    assert not compare_outputs(ref, {"y": ref["y"] + 5e-4}).passed
    assert not compare_outputs(ref, {"y": ref["y"].reshape(100)}).passed
