"""`lookupvit precision`: casts with fp32 islands, calibrated Q/DQ pairs, metadata, sidecars, CLI."""

import json

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from exporter.data import load_data
from exporter.errors import UserError
from exporter.export import export_onnx, read_metadata, resolve_variant_source
from exporter.precision import convert_precision, summarize
from exporter.precision.convert import input_spec_of

QUANTIZABLE = {"MatMul", "Gemm", "Conv", "Attention"}


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32")
    return export_onnx(resolve_variant_source("lookupvit_tiny32", grid="2"), out).path


@pytest.fixture(scope="module")
def converted(fp32, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    reports = {to: convert_precision(fp32, out / f"m.{to}.onnx", to, calib_size=64) for to in ("fp16", "bf16", "int8", "fp8")}
    return out, reports


def _load(report):
    return onnx.load(report.output)


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def _run(path, x, level=None):
    opts = ort.SessionOptions()
    if level is not None:
        opts.graph_optimization_level = level
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]


def test_fp16_types_and_fp32_islands(fp32, converted):
    _, reports = converted
    model = _load(reports["fp16"])
    s = summarize(model)
    for op in ("MatMul", "Conv", "Gemm", "Attention", "Gelu"):
        assert s.compute[op] == {"fp16": s.ops[op]}, op
    for op in ("LayerNormalization", "Softmax", "ReduceMean"):
        assert s.compute[op] == {"fp32": s.ops[op]}, op
    assert s.compute["Resize"] == {"fp32": 1}  # converter's runtime block list
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    attention = [n for n in model.graph.node if n.op_type == "Attention"]
    assert attention and all(
        any(a.name == "softmax_precision" and a.i == TensorProto.FLOAT for a in n.attribute) for n in attention
    )
    assert reports["fp16"].islands["islands"] == s.ops["LayerNormalization"] + s.ops["Softmax"] + s.ops["ReduceMean"] + 1
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)
    ref, out = _run(fp32, x), _run(reports["fp16"].output, x)
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 1e-2 * np.abs(ref).max()


def test_bf16_rounds_from_fp32_and_keeps_islands(fp32, converted):
    _, reports = converted
    model = _load(reports["bf16"])
    s = summarize(model)
    assert s.compute["MatMul"] == {"bf16": s.ops["MatMul"]} and s.compute["LayerNormalization"] == {"fp32": s.ops["LayerNormalization"]}
    assert "fp16" not in s.initializers and s.initializers["bf16"] > 0
    assert not any(n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT16 for n in model.graph.node)
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    bf16 = [t for t in model.graph.initializer if t.data_type == TensorProto.BFLOAT16]
    for t in bf16[:5]:  # the stored bits are the fp32 values rounded to bf16, not via fp16
        stored = np.frombuffer(t.raw_data, dtype=ml_dtypes.bfloat16).reshape(tuple(t.dims))
        np.testing.assert_array_equal(stored, original[t.name].astype(ml_dtypes.bfloat16))
    onnx.checker.check_model(model, full_check=True)


def test_keep_fp32_is_configurable(fp32, tmp_path):
    r = convert_precision(fp32, tmp_path / "gelu.onnx", "fp16", keep_fp32="default,Gelu")
    assert summarize(_load(r)).compute["Gelu"] == {"fp32": 4}
    r = convert_precision(fp32, tmp_path / "none.onnx", "fp16", keep_fp32="none")
    model = _load(r)
    s = summarize(model)
    assert s.compute["LayerNormalization"] == {"fp16": s.ops["LayerNormalization"]}
    assert not any(a.name == "softmax_precision" for n in model.graph.node for a in n.attribute)
    first_matmul = next(n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "MatMul")
    r = convert_precision(fp32, tmp_path / "node.onnx", "fp16", keep_fp32=f"default,{first_matmul}")
    assert summarize(_load(r)).compute["MatMul"]["fp32"] == 1
    with pytest.raises(UserError, match="neither an ONNX op type nor a node name"):
        convert_precision(fp32, tmp_path / "bad.onnx", "fp16", keep_fp32="LayerNorm")


def test_int8_qdq_placement_zero_points_and_per_channel_scales(fp32, converted):
    _, reports = converted
    model = _load(reports["int8"])
    s = summarize(model)
    before = summarize(onnx.load(str(fp32)))
    assert s.weights_total == before.weights_total > 0 and s.all_weights_quantized
    assert all(w.per_channel and w.dtype == "int8" for w in s.weights_quantized)
    assert s.zero_points == [0.0]
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert all(inits[n.input[2]].data_type == TensorProto.INT8 for n in qdq)
    # every input of every MatMul/Gemm/Conv (weights and activations, incl. the attention matmuls)
    # and Q, K, V of Attention come through a DequantizeLinear ...
    producers = _producers(model)
    for n in model.graph.node:
        if n.op_type in QUANTIZABLE:
            data = n.input[:3] if n.op_type == "Attention" else n.input[:2]
            assert all(producers[i].op_type == "DequantizeLinear" for i in data), n.name
    assert s.quantized_inputs["MatMul.activation"] + s.quantized_inputs["MatMul.weight"] == 2 * s.ops["MatMul"]
    assert s.quantized_inputs["MatMul.activation"] > s.ops["MatMul"]  # the attention matmuls: both inputs
    # ... and nothing else reads a dequantized tensor: float ops keep float inputs, outputs are not quantized
    for n in model.graph.node:
        if n.op_type not in QUANTIZABLE | {"QuantizeLinear", "DequantizeLinear"}:
            assert not any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input), n.name
    assert not any(producers.get(n.input[0]) is not None and producers[n.input[0]].op_type in QUANTIZABLE
                   for n in model.graph.node if n.op_type == "QuantizeLinear")
    # symmetric per-channel weight scales: max |w| per output channel / 127
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    w = s.weights_quantized[1]
    assert w.op == "MatMul"
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == w.weight)
    scale = numpy_helper.to_array(inits[dq.input[1]])
    float_name = w.weight.removesuffix("_quantized")
    np.testing.assert_allclose(scale, np.abs(original[float_name]).max(axis=0) / 127, rtol=1e-6)
    assert w.channels == original[float_name].shape[1]


def test_int8_calibration_reads_the_dataset(fp32, tmp_path):
    rng = np.random.default_rng(1)
    images = (rng.random((20, 32, 32, 3)) * 255).astype(np.uint8)  # colour images for the colour tiny32 model
    images[3] = 255  # the brightest image sets the input's amax
    np.savez(tmp_path / "calib.npz", images=images, labels=np.arange(20) % 10)
    np.savez(tmp_path / "grey.npz", images=images[..., 0], labels=np.arange(20) % 10)
    with pytest.raises(UserError, match="grey images; the model takes 3 channels"):
        convert_precision(fp32, tmp_path / "g.int8.onnx", "int8", calib=str(tmp_path / "grey.npz"))
    r = convert_precision(fp32, tmp_path / "m.int8.onnx", "int8", calib=str(tmp_path / "calib.npz"), calib_size=500)
    assert r.calibration["source"] == str(tmp_path / "calib.npz") and r.calibration["samples"] == 20
    assert any("fewer than 500" in n for n in r.notes)
    model = _load(r)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "images")
    scale = float(numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == q.input[1])))
    meta = {p.key.removeprefix("lookupvit."): p.value for p in model.metadata_props}
    prepared = load_data(str(tmp_path / "calib.npz"), input_spec_of(model, meta)[0])
    assert scale == pytest.approx(np.abs(prepared.images).max() / 127, rel=1e-5)

    auto = convert_precision(fp32, tmp_path / "d.int8.onnx", "int8", calib_size=40)  # auto: photos for colour
    assert auto.calibration["source"] == "photos (train split)" and auto.calibration["samples"] == 40
    assert auto.calibration["method"] == "minmax"


def test_fp8_is_e4m3_with_amax_scales(fp32, converted):
    _, reports = converted
    r = reports["fp8"]
    model = _load(r)
    s = summarize(model)
    assert s.all_weights_quantized and s.zero_points == [0.0]
    assert {w.dtype for w in s.weights_quantized} == {"fp8e4m3fn"}
    assert r.calibration["method"] == "minmax" and "448" in r.settings["scale_rule"]
    # runs as written at ONNX Runtime's basic level, close to fp32
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)
    out = _run(r.output, x, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    ref = _run(fp32, x)
    assert np.abs(out - ref).max() < 0.2 * np.abs(ref).max()


def test_metadata_sidecar_and_reuse(fp32, converted):
    out, reports = converted
    r = reports["int8"]
    meta = read_metadata(r.output)
    source_meta = read_metadata(fp32)
    assert meta["precision"] == "int8" and meta["precision_source"] == fp32.name
    assert all(meta[k] == v for k, v in source_meta.items())
    assert not any(p.key.startswith("onnx.") for p in _load(r).metadata_props)
    side = json.loads((out / "m.int8.onnx.json").read_text())
    assert side["kind"] == "precision" and side["calibration"]["method"] == "minmax"
    assert side["hashes"]["output_sha256"] and side["versions"]["onnxruntime"] and side["created"]
    assert side["after"]["ops"]["QuantizeLinear"] > 0 and side["settings"]["per_channel_weights"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert not r.reused  # the function always converts; reuse is the folder manifest's (tests/test_steps.py)


def test_refuses_bad_input(fp32, converted, tmp_path):
    _, reports = converted
    with pytest.raises(UserError, match="already"):
        convert_precision(reports["fp16"].output, tmp_path / "x.onnx", "int8")
    with pytest.raises(UserError, match="Unknown precision"):
        convert_precision(fp32, tmp_path / "x.onnx", "int4")
    with pytest.raises(UserError, match="overwrite"):
        convert_precision(fp32, fp32, "fp16")
    with pytest.raises(UserError, match="not available for fp8"):
        convert_precision(fp32, tmp_path / "x.onnx", "fp8", calib_method="entropy")
    with pytest.raises(UserError, match="neither 'digits'"):
        convert_precision(fp32, tmp_path / "x.onnx", "int8", calib=str(tmp_path / "missing"))
    assert not (tmp_path / "x.onnx").exists()


def test_cli_json_and_exit_codes(fp32, tmp_path, cli):
    out = tmp_path / "m.fp16.onnx"
    result = cli("precision", str(fp32), "--to", "fp16", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["precision"] == "fp16" and doc["output"] == str(out) and doc["after"]["compute"]["MatMul"]
    table = cli("precision", str(fp32), "--to", "int8", "--calib-size", "16", "-o", str(tmp_path / "m.int8.onnx"))
    assert table.exit_code == 0 and "weights quantized" in table.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["{fp32}", "--to", "fp16", "-o", "{o}/x.onnx", "--keep-fp32", "Softmx"], "did you mean Softmax"),
        (["{o}/missing.onnx", "--to", "fp16", "-o", "{o}/x.onnx"], "does not exist"),
        (["{fp32}", "--to", "int8", "-o", "{o}/x.onnx", "--calib", "{o}/nowhere"], "Cannot read dataset"),
        (["{fp32}", "--to", "int8", "-o", "{o}/x.onnx", "--calib-size", "0"], "at least 1"),
        (["{fp32}", "--to", "fp16", "-o", "{o}/x.txt"], "does not end in .onnx"),
        (["{fp32}", "--to", "fp16", "-o", "{o}/x.onnx", "--calib-method", "entropy"], "applies to int8 and fp8"),
        (["{fp32}", "--to", "int3", "-o", "{o}/x.onnx"], "Invalid value for '--to'"),
    ],
)
def test_cli_bad_input(fp32, tmp_path, cli, args, message):
    result = cli("precision", *[a.format(fp32=fp32, o=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_initializer_shared_by_an_island_and_a_cast_op(tmp_path):
    """torch's exporter de-duplicates equal constants (e.g. zero biases of a LayerNorm and a Linear);
    the fp16 graph must still be well typed."""
    from onnx import helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    s = numpy_helper.from_array(np.ones(8, np.float32), "s")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "b"], ["h2"], name="add"),
        helper.make_node("LayerNormalization", ["h2", "s", "b"], ["y"], name="ln", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 8])], [w, b, s],
    )
    path = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10), str(path))
    r = convert_precision(path, tmp_path / "shared.fp16.onnx", "fp16")
    assert any("duplicated" in n for n in r.islands["notes"])
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    out = ort.InferenceSession(r.output).run(None, {"x": x})[0]
    assert np.abs(out - ref).max() < 1e-2 * np.abs(ref).max()


def test_optimized_graph_with_fused_attention(fp32, tmp_path):
    """The pipeline converts the optimised graph (gather, self-attention and scatter as ONNX Attention)."""
    from exporter.passes import optimize_model

    opt = tmp_path / "m.opt.onnx"
    optimize_model(fp32, opt)
    n_attention = summarize(onnx.load(str(opt))).ops["Attention"]
    assert n_attention == 3 * 2  # three per layer, two layers
    fp16 = _load(convert_precision(opt, tmp_path / "m.opt.fp16.onnx", "fp16"))
    assert summarize(fp16).compute["Attention"] == {"fp16": n_attention}
    assert sum(a.name == "softmax_precision" for n in fp16.graph.node for a in n.attribute) == n_attention
    int8 = summarize(_load(convert_precision(opt, tmp_path / "m.opt.int8.onnx", "int8", calib_size=32)))
    assert int8.compute["Attention"] == {"int8": n_attention} and int8.quantized_inputs["Attention.activation"] == 3 * n_attention
    assert int8.all_weights_quantized
