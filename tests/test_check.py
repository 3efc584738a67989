"""`lookupvit check`: every graph the pipeline writes passes TensorRT's parser rules, a hand-made graph
breaking each rule fails with that rule's message, and `build` refuses a failing graph before TensorRT
is imported."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.check import CheckFailed, check_graph
from exporter.check.rules import NODE_RULES
from exporter.errors import UserError
from exporter.export import export_onnx, resolve_variant_source
from exporter.passes import optimize_model
from exporter.passes.registry import TARGETS as PASS_TARGETS
from exporter.precision import convert_precision

pytestmark = pytest.mark.slow  # the shared exports and conversions take ~40 s on 2 cores

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")
F, H = TensorProto.FLOAT, TensorProto.FLOAT16


# --- every graph the pipeline produces --------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """(variant, target, precision) -> ONNX path, as export, optimize and precision write them."""
    out = tmp_path_factory.mktemp("pipeline")
    sources = {
        "lookupvit_tiny32": resolve_variant_source("lookupvit_tiny32", grid="2"),
        "lookupvit_digits": resolve_variant_source("lookupvit_digits", grid="3"),
        "lookupvit_tiny32_video": resolve_variant_source("lookupvit_tiny32_video", grid="1x2x2"),
        "lookupvit_tiny32_features": resolve_variant_source("lookupvit_tiny32", grid="2", head="features"),
    }
    graphs = {}
    for name, src in sources.items():
        exported = export_onnx(src, out / name, batch=1 if name == "lookupvit_digits" else "dynamic").path
        graphs[(name, "export", "raw")] = exported
        graphs[(name, "export", "fp32")] = convert_precision(exported, out / name / "m.export.fp32.onnx", "fp32",
                                                             target="tensorrt").output  # run --no-optimize
        targets = ("attention", "trt-mha") if name in ("lookupvit_tiny32", "lookupvit_digits") else ("attention",)
        if name == "lookupvit_tiny32" and "plugin" in PASS_TARGETS:
            targets = (*targets, "plugin")
        for target in targets:
            opt = out / name / f"m.{target}.onnx"
            optimize_model(exported, opt, target=target)
            graphs[(name, target, "raw")] = opt  # the optimised fp32 graph, before the TensorRT form
            for prec in PRECISIONS if name in ("lookupvit_tiny32", "lookupvit_digits") else ("fp32", "fp16"):
                if target == "plugin" and prec != "fp32":
                    continue
                graphs[(name, target, prec)] = convert_precision(opt, out / name / f"m.{target}.{prec}.onnx", prec,
                                                                 calib_size=16, target="tensorrt").output
    return graphs


CASES = [(v, t, p) for v in ("lookupvit_tiny32", "lookupvit_digits") for t in ("export", "attention", "trt-mha")
         for p in (PRECISIONS if t != "export" else ("fp32",))]
CASES += [(v, t, p) for v in ("lookupvit_tiny32_video", "lookupvit_tiny32_features") for t, p in
          (("export", "fp32"), ("attention", "fp32"), ("attention", "fp16"))]
# every graph the pipeline writes for TensorRT passes; the graphs before the TensorRT form do not
if "plugin" in PASS_TARGETS:  # the TensorRT plugin form: its nodes are warnings (a plugin this check cannot see)
    CASES.append(("lookupvit_tiny32", "plugin", "fp32"))


@pytest.mark.parametrize("variant,target,precision", CASES)
def test_pipeline_graph_passes(pipeline, variant, target, precision):
    report = check_graph(pipeline[(variant, target, precision)], "h100")
    assert report.passed, "\n".join(f.line() for f in report.errors)
    assert report.nodes > 0 and report.opset == 23
    assert {f.rule for f in report.warnings} == ({"plugin"} if target == "plugin" else set())


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_graphs_converted_for_onnxruntime_are_refused_for_softmax_precision(pipeline, tmp_path, precision):
    """`precision --target onnxruntime` (the default) keeps Attention's softmax in fp32 with softmax_precision,
    which TensorRT's parser refuses: the only finding, once per Attention node, naming the fix."""
    ort_graph = convert_precision(pipeline[("lookupvit_tiny32", "attention", "raw")], tmp_path / f"m.{precision}.onnx",
                                  precision).output
    report = check_graph(ort_graph, "h100")
    # and the second reader of each shared tensor, which the TensorRT form separates
    assert {f.rule for f in report.errors} == {"attention.softmax-precision", "attention.shared-input"}
    refused = [f for f in report.errors if f.rule == "attention.softmax-precision"]
    assert len(refused) == sum(n.op_type == "Attention" for n in onnx.load(ort_graph).graph.node)
    assert all("--target tensorrt" in f.fix for f in report.errors)


def test_fusion_estimates_follow_the_precision(pipeline):
    raw = check_graph(pipeline[("lookupvit_tiny32", "attention", "raw")], "h100")
    fp32 = check_graph(pipeline[("lookupvit_tiny32", "attention", "fp32")], "h100").fusion
    fp16 = check_graph(pipeline[("lookupvit_tiny32", "attention", "fp16")], "h100").fusion
    mha = check_graph(pipeline[("lookupvit_tiny32", "trt-mha", "fp32")], "h100").fusion
    int8 = check_graph(pipeline[("lookupvit_tiny32", "attention", "int8")], "h100").fusion
    assert len(raw.fusion) == len(fp32) == len(fp16) == len(mha) == 6  # gather, self-attention, scatter in two layers
    # an fp32 Attention node: no IAttention kernel, refused by the builder (not "runs as MatMul + Softmax")
    assert all(e.form == "Attention" and e.fused is False and "no fp32 kernel" in e.reasons[0] and "refuses" in e.reasons[0]
               for e in raw.fusion)
    assert {f.rule for f in raw.errors} == {"attention.fp32", "attention.shared-input"}
    # the TensorRT forms: fp32 and int8 as MatMul-Softmax-MatMul (int8's attention core kept in float by
    # default), fp16 as fused Attention
    assert all(e.form == "trt-mha" and e.fused is False for e in fp32)
    assert all(e.precision == "fp16" and e.fused is True and e.head_size == 16 for e in fp16)
    assert all(e.form == "trt-mha" and e.fused is False for e in mha)
    assert all(e.form == "trt-mha" and e.precision == "fp32" and e.fused is False for e in int8)
    # LookupViT's three attentions: compressed queries over lookup keys, and back
    assert {(e.seq_q, e.seq_kv) for e in fp16} == {(4, 64), (4, 4), (64, 4)}


# --- hand-made graphs, one broken rule each ---------------------------------------------------------


def model(nodes, inputs, outputs, inits=(), opset=23):
    """A graph from (name, elem_type, shape) inputs/outputs; not checked by onnx (a violation may be
    exactly what onnx refuses too)."""
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, "g", [vi(*i) for i in inputs], [vi(*o) for o in outputs], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def attention(*, inputs=("q", "k", "v"), outputs=("y",), q=(1, 4, 8, 16), k=(1, 4, 8, 16), v=(1, 4, 8, 16),
              mask=None, **attrs):
    ins = [("q", H, list(q)), ("k", H, list(k)), ("v", H, list(v))]
    if mask is not None:
        ins.append(("mask", H, list(mask)))
    extra = [i for i in inputs[3:] if i and i != "mask"]
    ins += [(i, H, [1, 4, 8, 16]) for i in extra]
    node = helper.make_node("Attention", list(inputs), list(outputs), name="att", **attrs)
    return model([node], ins, [(o, H, None) for o in outputs if o])


def rules_of(m, profile=None, severity="error"):
    return {f.rule: f for f in check_graph(m, profile).findings if f.severity == severity}


def test_a_clean_attention_passes():
    r = check_graph(attention(scale=0.25))
    assert r.passed and not r.findings
    assert r.fusion[0].fused is True and r.fusion[0].head_size == 16


VIOLATIONS = {
    "opset": (lambda: model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])], opset=8),
              "takes opsets 9 to 24"),
    "op-unsupported": (lambda: model([helper.make_node("Det", ["x"], ["y"])], [("x", F, [2, 2])], [("y", F, [])]),
                       "no importer for Det"),
    "attention.outputs": (lambda: attention(outputs=("y", "present_k", "present_v")), "exactly one"),
    "attention.past-kv": (lambda: attention(inputs=("q", "k", "v", "", "past_key")), "past_key"),
    "attention.nonpad-kv": (lambda: attention(inputs=("q", "k", "v", "", "", "", "lens")), "nonpad_kv_seqlen"),
    "attention.rank": (lambda: attention(k=(1, 8, 64)), "ranks 4, 3, 4"),
    "attention.num-heads": (lambda: attention(q=(1, 8, 64), k=(1, 8, 64), v=(1, 8, 64)), "num_heads attribute"),
    "attention.v-head-size": (lambda: attention(v=(1, 4, 8, 32)), "V's head size 32 differs from Q's 16"),
    "attention.heads": (lambda: attention(q=(1, 6, 8, 16)), "6 query heads are not a multiple of 4"),
    "attention.mask": (lambda: attention(inputs=("q", "k", "v", "mask"), mask=(1, 1, 8, 5)), "does not broadcast"),
    "attention.softcap": (lambda: attention(softcap=30.0), "softcap"),
    "attention.softmax-precision": (lambda: attention(softmax_precision=1), "softmax_precision"),
    "resize.coordinates": (lambda: resize(coordinate_transformation_mode="tf_crop_and_resize"), "tf_crop_and_resize"),
    "resize.mode": (lambda: resize(mode="area"), "'area'"),
    "resize.antialias": (lambda: resize(antialias=1), "Antialiasing"),
    "resize.aspect": (lambda: resize(keep_aspect_ratio_policy="not_larger"), "stretch"),
    "resize.nearest-mode": (lambda: resize(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
                                           nearest_mode="floor"), "round_prefer_floor"),
    "qdq.scale": (lambda: qdq(scale=np.array([-0.1], np.float32), axis=0), "positive"),
    "qdq.zero-point": (lambda: qdq(zero=np.array([3, 0, 0, 0], np.int8)), "Non-zero zero point"),
    "qdq.type": (lambda: qdq(zero=np.zeros(4, np.uint8)), "UINT8 zero point"),
    "qdq.axis": (lambda: qdq(scale=np.full(3, 0.1, np.float32), zero=np.zeros(3, np.int8)), "3 scales for 4 channels"),
    "qdq.block": (lambda: qdq(scale=np.full((1, 2), 0.1, np.float32), zero=None), "only one blocked axis"),
    "cast.quantized": (lambda: cast(TensorProto.FLOAT8E4M3FN), "only through QuantizeLinear"),
    "cast.type": (lambda: cast(TensorProto.UINT16), "UINT16, a type TensorRT does not have"),
    "outputs": (lambda: model([helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean", "inv"])],
                              [("x", F, [2, 4]), ("s", F, [4])], [("y", F, [2, 4])]), "only the first output"),
    "gelu.approximate": (lambda: model([helper.make_node("Gelu", ["x"], ["y"], approximate="fast")],
                                       [("x", F, [2])], [("y", F, [2])]), "'fast'"),
    "einsum.equation": (lambda: model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="iJ,Jk->ik")],
                                      [("a", F, [2, 3]), ("b", F, [3, 4])], [("y", F, [2, 4])]), "J"),
    "reduce.axes": (lambda: model([helper.make_node("Shape", ["x"], ["s"]),
                                   helper.make_node("ReduceMean", ["x", "s"], ["y"])],
                                  [("x", F, [2, 4])], [("y", F, None)]), "computed at run time"),
    "op-type": (lambda: model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", TensorProto.INT8, [2]),
                              ("b", TensorProto.INT8, [2])], [("y", TensorProto.INT8, [2])]), "reads INT8"),
    "type-unsupported": (lambda: model([helper.make_node("Identity", ["x"], ["y"])],
                                       [("x", TensorProto.FLOAT8E5M2, [2])], [("y", TensorProto.FLOAT8E5M2, [2])]),
                         "FLOAT8E5M2"),
}


def resize(**attrs):
    sizes = numpy_helper.from_array(np.array([1, 3, 8, 8], np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", **attrs)
    return model([node], [("x", F, [1, 3, 4, 4])], [("y", F, [1, 3, 8, 8])], [sizes])


def qdq(scale=None, zero=None, axis=1):
    """Per-channel int8 QuantizeLinear of x [2, 4] on ``axis``."""
    scale = np.full(4, 0.1, np.float32) if scale is None else scale
    inits = [numpy_helper.from_array(scale, "scale")]
    ins = ["x", "scale"]
    if zero is not None:
        inits.append(numpy_helper.from_array(zero, "zp"))
        ins.append("zp")
    else:
        zero = np.zeros(1, np.int8)
    node = helper.make_node("QuantizeLinear", ins, ["y"], name="q", axis=axis)
    out_t = TensorProto.UINT8 if zero.dtype == np.uint8 else TensorProto.INT8
    return model([node], [("x", F, [2, 4])], [("y", out_t, [2, 4])], inits)


def cast(to):
    return model([helper.make_node("Cast", ["x"], ["y"], name="cast", to=to)], [("x", F, [2])], [("y", to, [2])])


@pytest.mark.parametrize("rule", sorted(VIOLATIONS))
def test_each_violation_fails_with_its_rule(rule):
    make, words = VIOLATIONS[rule]
    report = check_graph(make())
    assert not report.passed
    found = {f.rule: f for f in report.errors}
    assert rule in found, [f.line() for f in report.findings]
    f = found[rule]
    assert words in f.message, f.message
    assert f.fix and f.source and f.node  # each finding names the node, the rule's source and the fix


def test_every_node_rule_is_exercised():
    rule_ids = {fn.__name__ for fns in NODE_RULES.values() for fn in fns}
    assert len(rule_ids) >= 14 and "attention_shapes" in rule_ids


def test_warnings_do_not_fail():
    plugin = helper.make_node("MyPlugin", ["x"], ["y"], domain="trt.plugins")
    m = model([plugin], [("x", F, [2])], [("y", F, [2])])
    m.opset_import.append(helper.make_opsetid("trt.plugins", 1))
    cubic = resize(mode="cubic")
    q8 = model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], [("x", TensorProto.INT8, [2, 3])],
               [("y", TensorProto.INT8, [3, 2])])
    for graph, rule in ((m, "plugin"), (cubic, "resize.mode"), (q8, "op-type")):
        r = check_graph(graph)
        assert r.passed and [f.rule for f in r.warnings] == [rule]


def test_external_data_stays_on_disk(tmp_path):
    """Weights in external data are not loaded; shapes (and so the Attention rules) still are."""
    m = attention(v=(1, 4, 8, 32))
    w = numpy_helper.from_array(np.ones((1, 4, 8, 16), np.float16), "bias")
    m.graph.initializer.append(w)
    m.graph.node.append(helper.make_node("Add", ["y", "bias"], ["y2"]))
    m.graph.output.append(helper.make_tensor_value_info("y2", H, None))
    onnx.save(m, str(tmp_path / "m.onnx"), save_as_external_data=True, size_threshold=0, location="m.onnx.data")
    r = check_graph(tmp_path / "m.onnx")
    assert [f.rule for f in r.errors] == ["attention.v-head-size"] and r.fusion[0].head_size == 16


def test_local_function_bodies_are_checked():
    """A node calling a model-local function: a warning (a plugin of that name would be preferred), and
    the body the parser would otherwise import is checked like the graph."""
    body = [helper.make_node("Det", ["a"], ["b"], name="det")]
    fn = helper.make_function("custom", "MyOp", ["a"], ["b"], body, [helper.make_opsetid("", 23)])
    m = model([helper.make_node("MyOp", ["x"], ["y"], domain="custom")], [("x", F, [2, 2])], [("y", F, [])])
    m.opset_import.append(helper.make_opsetid("custom", 1))
    m.functions.append(fn)
    r = check_graph(m)
    assert [f.rule for f in r.warnings] == ["plugin"] and "model-local function" in r.warnings[0].message
    assert [(f.node, f.rule) for f in r.errors] == [("MyOp/det", "op-unsupported")]


def test_gpu_types_per_profile(tmp_path):
    turing = tmp_path / "t4.toml"
    turing.write_text('backend = "tensorrt"\ngpu = "Tesla T4"\ncompute_capability = "7.5"\nprecisions = ["fp32", "fp16"]\n'
                      "[batch]\nmin = 1\nopt = [1]\nmax = 8\n")
    bf16 = model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.BFLOAT16, [2])],
                 [("y", TensorProto.BFLOAT16, [2])])
    assert "gpu-bf16" in rules_of(bf16, turing) and check_graph(bf16, "a100").passed
    assert "sm_80" in rules_of(bf16, turing)["gpu-bf16"].message
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp = helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [], [0])
    fp8 = model([helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])],
                [("x", F, [2])], [("y", F, [2])], [scale, zp])
    assert "gpu-fp8" in rules_of(fp8, "a100") and check_graph(fp8, "l4").passed and check_graph(fp8).passed


def test_fusion_rules_on_hand_made_attention(tmp_path):
    assert check_graph(attention(q=(1, 4, 8, 20), k=(1, 4, 8, 20), v=(1, 4, 8, 20))).fusion[0].fused is None
    fp32 = attention()
    for vi in [*fp32.graph.input, *fp32.graph.output]:
        vi.type.tensor_type.elem_type = F
    assert check_graph(fp32).fusion[0].fused is False


# --- the CLI and build --------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(cli, tmp_path):
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(attention(scale=0.25), str(good))
    onnx.save(attention(softmax_precision=1), str(bad))
    r = cli("check", str(good), "--target", "tensorrt", "--profile", "h100")
    assert r.exit_code == 0 and "PASSED: 0 error(s)" in r.output and "onnx-tensorrt" in r.output
    r = cli("check", str(bad))
    assert r.exit_code == 1 and "FAILED: 1 error(s)" in r.output and "attention.softmax-precision" in r.output
    doc = json.loads(cli("check", str(bad), "--json").output)
    assert not doc["passed"] and doc["findings"][0]["node"] == "att" and doc["fusion"][0]["form"] == "Attention"
    assert set(doc["findings"][0]) == {"node", "op", "rule", "severity", "message", "source", "fix"}


@pytest.mark.parametrize("args,message", [
    (["missing.onnx"], "does not exist"),
    (["GOOD", "--profile", "h10"], "Unknown profile"),
])
def test_cli_bad_input_exits_2(cli, tmp_path, args, message):
    good = tmp_path / "good.onnx"
    onnx.save(attention(), str(good))
    r = cli("check", *[str(good) if a == "GOOD" else str(tmp_path / a) if a.endswith(".onnx") else a for a in args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_check_graph_bad_target():
    with pytest.raises(UserError, match="Unknown check target"):
        check_graph(attention(), target="openvino")


def test_build_refuses_before_tensorrt_is_imported(tmp_path):
    """In a fresh interpreter: `build` of a failing graph exits 1 with the same findings as `check` (not 2
    for TensorRT missing here: the check runs first), and neither tensorrt nor tensorrt_rtx was imported."""
    bad = tmp_path / "bad.onnx"
    dynamic = ("B", 4, 8, 16)  # the profile builds batches 1..128
    onnx.save(attention(q=dynamic, k=dynamic, v=dynamic, softmax_precision=1, softcap=2.0), str(bad))
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom exporter.cli import main\n"
        f"r = CliRunner().invoke(main, ['build', {str(bad)!r}, '--profile', 'h100', '-o', {str(tmp_path / 'out')!r}])\n"
        "print(r.exit_code)\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'tensorrt_rtx')))\n"
        "print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    exit_code, imported, text = out.split("\n", 2)
    assert exit_code == "1" and imported == "[]", out
    for f in check_graph(bad, "h100").errors:
        assert f.line() in text
    assert not (tmp_path / "out").exists()
    with pytest.raises(CheckFailed) as e:
        from exporter.engine.build import build_engine, prepare_build

        build_engine(prepare_build(bad, "h100", None, tmp_path / "out"))
    assert e.value.exit_code == 1 and len(e.value.report.errors) == 2
