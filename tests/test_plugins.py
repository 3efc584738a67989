"""The LookupViT attention plugin (plugins/): the numpy reference, the ONNX local functions on ONNX
Runtime, the Triton kernels (under TRITON_INTERPRET=1 on the CPU, and compiled to PTX for sm_80/sm_90
without a GPU) and PyTorch agree; the lookup-plugin pass fuses ours, the foreign LookupViTs and the
probability-reusing one, and is rolled back when it would change the numbers; a build refuses a
plugin graph when the plugin cannot be loaded."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from exporter.errors import UserError
from exporter.export import ModelSource, export_onnx
from exporter.passes import optimize_model
from exporter.validate import validate_model
from plugins import DOMAIN, GATHER, PLUGIN_NAMESPACE, PLUGIN_VERSION, SCATTER
from plugins.onnx_form import pair_model, plugin_nodes
from plugins.reference import lookup_gather, lookup_scatter, register_polygraphy

ROOT = Path(__file__).resolve().parents[1]
RNG_SEED = 0
# (M, N, d): M from 1 to 100, N up to 784 (lookupvit_b16 at grid 7 is (49, 196, 64))
SHAPES = [(1, 16, 32), (4, 64, 32), (7, 50, 64), (49, 196, 64), (100, 784, 64), (9, 784, 32)]
# the interpreter runs a few seconds per case: a few shapes and dtypes
KERNEL_CASES = [
    ((1, 16, 32), "fp32", False, 1),
    ((49, 196, 64), "fp32", True, 2),
    ((7, 50, 32), "fp16", True, 1),
    ((20, 100, 64), "fp16", False, 4),
    ((100, 784, 64), "fp32", False, 5),
]
NP = {"fp32": np.float32, "fp16": np.float16}
ONNX_TYPE = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16}


def inputs(m: int, n: int, d: int, dtype=np.float32, b: int = 2, h: int = 2, seed: int = RNG_SEED):
    rng = np.random.default_rng(seed)
    shapes = {"q_z": (b, h, m, d), "k_x": (b, h, n, d), "v_x": (b, h, n, d), "v_z": (b, h, m, d)}
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def torch_pair(f: dict[str, np.ndarray], scale: float, share_probs: bool):
    """The gather and scatter as LookupBlock.forward writes them (exporter/models/lookupvit.py), in fp64."""
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in f.items()}
    logits = torch.matmul(t["q_z"], t["k_x"].transpose(-2, -1)) * scale  # (B, H, M, N)
    gather = torch.softmax(logits, dim=-1)
    out_z = torch.matmul(gather, t["v_x"])
    scatter = gather.transpose(-2, -1) if share_probs else torch.softmax(logits.transpose(-2, -1), dim=-1)
    out_x = torch.matmul(scatter, t["v_z"])
    shared = gather if share_probs else logits
    return out_z.numpy(), shared.numpy(), out_x.numpy()


def close(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    assert err <= rel, f"max error {err:.3g} of the output scale (tolerance {rel})"


# --- reference, local functions, PyTorch ---------------------------------------------------------


@pytest.mark.parametrize("share_probs", [False, True], ids=["logits", "probs"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"M{m}-N{n}-d{d}" for m, n, d in SHAPES])
def test_reference_matches_pytorch(shape, share_probs):
    m, n, d = shape
    f = inputs(m, n, d)
    scale = d ** -0.5
    out_z, shared = lookup_gather(f["q_z"], f["k_x"], f["v_x"], scale, share_probs)
    out_x = lookup_scatter(shared, f["v_z"], share_probs)
    want_z, want_shared, want_x = torch_pair(f, scale, share_probs)
    assert out_z.shape == (2, 2, m, d) and shared.shape == (2, 2, m, n) and out_x.shape == (2, 2, n, d)
    for got, want in ((out_z, want_z), (shared, want_shared), (out_x, want_x)):
        assert got.dtype == np.float32
        close(got, want, 1e-5)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_reference_keeps_the_softmax_in_fp32(dtype):
    """fp16/bf16 inputs: the outputs are in the input dtype and within its rounding of the fp64 math."""
    import ml_dtypes

    np_type = np.float16 if dtype == "fp16" else ml_dtypes.bfloat16
    f = {k: v.astype(np_type) for k, v in inputs(49, 196, 64).items()}
    scale = 0.125
    for share_probs in (False, True):
        out_z, shared = lookup_gather(f["q_z"], f["k_x"], f["v_x"], scale, share_probs)
        out_x = lookup_scatter(shared, f["v_z"], share_probs)
        assert out_z.dtype == shared.dtype == out_x.dtype == np_type
        want_z, _, want_x = torch_pair(f, scale, share_probs)
        tol = 2e-3 if dtype == "fp16" else 2e-2
        close(out_z, want_z, tol)
        close(out_x, want_x, tol * (4 if not share_probs else 1))  # the scatter reads S rounded to the dtype


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("share_probs", [False, True], ids=["logits", "probs"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"M{m}-N{n}-d{d}" for m, n, d in SHAPES])
def test_local_functions_on_onnxruntime(shape, share_probs, dtype):
    from exporter.backends import ort_session

    m, n, d = shape
    scale = d ** -0.5
    model = pair_model("batch", 2, m, n, d, scale, share_probs, elem_type=ONNX_TYPE[dtype])
    onnx.checker.check_model(model, full_check=True)
    f = inputs(m, n, d, NP[dtype])
    sess = ort_session(model.SerializeToString(), ["CPUExecutionProvider"])
    out_z, out_x, shared = sess.run(None, f)
    ref_z, ref_shared = lookup_gather(f["q_z"], f["k_x"], f["v_x"], scale, share_probs)
    ref_x = lookup_scatter(ref_shared, f["v_z"], share_probs)
    tol = 1e-5 if dtype == "fp32" else 2e-3
    for got, want in ((out_z, ref_z), (shared, ref_shared), (out_x, ref_x)):
        assert got.dtype == NP[dtype]
        close(got, want, tol)


def test_nodes_carry_what_tensorrts_parser_reads():
    model = pair_model(1, 2, 4, 16, 32, 0.25, True)
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == DOMAIN and node.op_type in (GATHER, SCATTER)
        assert attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode() and attrs["plugin_version"] == PLUGIN_VERSION.encode()
        assert attrs["share_probs"] == 1 and abs(attrs["scale"] - 0.25) < 1e-7
    assert {(f.domain, f.name) for f in model.functions} == {(DOMAIN, GATHER), (DOMAIN, SCATTER)}
    assert plugin_nodes(model) == {GATHER: 1, SCATTER: 1}
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    assert shapes == {"out_z": [1, 2, 4, 32], "out_x": [1, 2, 16, 32], "shared": [1, 2, 4, 16]}


def test_polygraphy_plugin_reference_runner():
    import onnx_graphsurgeon as gs
    from polygraphy.backend.pluginref import PluginRefRunner

    register_polygraphy()
    graph = gs.import_onnx(pair_model(1, 2, 7, 50, 32, 32 ** -0.5, False))
    f = inputs(7, 50, 32, b=1)
    with PluginRefRunner(graph) as runner:
        out = runner.infer(f)
    ref_z, ref_shared = lookup_gather(f["q_z"], f["k_x"], f["v_x"], 32 ** -0.5, False)
    close(out["out_z"], ref_z, 1e-6)
    close(out["out_x"], lookup_scatter(ref_shared, f["v_z"], False), 1e-6)


# --- Triton kernels --------------------------------------------------------------------------------


INTERPRETER_SCRIPT = """
import json, sys
import numpy as np, torch
from plugins.kernels import gather, scatter
cases, out = json.loads(sys.argv[1]), sys.argv[2]
arrays = {}
for i, (m, n, d, dtype, probs, tactic) in enumerate(cases):
    rng = np.random.default_rng(0)
    shapes = {"q_z": (1, 2, m, d), "k_x": (1, 2, n, d), "v_x": (1, 2, n, d), "v_z": (1, 2, m, d)}
    t = {k: torch.from_numpy(rng.standard_normal(s).astype(dtype)) for k, s in shapes.items()}
    out_z, shared = gather(t["q_z"], t["k_x"], t["v_x"], d ** -0.5, probs, tactic)
    out_x = scatter(shared, t["v_z"], probs, tactic)
    for name, v in (("out_z", out_z), ("shared", shared), ("out_x", out_x)):
        arrays[f"{i}/{name}"] = v.numpy()
np.savez(out, **arrays)
"""


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """The kernels' outputs for KERNEL_CASES, run by Triton's CPU interpreter in a fresh process
    (TRITON_INTERPRET must be set before triton is first imported)."""
    pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[plugins]')")
    out = tmp_path_factory.mktemp("kernels") / "out.npz"
    cases = [[m, n, d, np.dtype(NP[dtype]).name, probs, tactic] for (m, n, d), dtype, probs, tactic in KERNEL_CASES]
    env = {**os.environ, "TRITON_INTERPRET": "1", "TRITON_DEFAULT_FP_FUSION": "1"}
    result = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT, json.dumps(cases), str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.parametrize(("case", "shape", "dtype", "share_probs", "tactic"),
                         [(i, *c) for i, c in enumerate(KERNEL_CASES)],
                         ids=[f"M{s[0]}-N{s[1]}-d{s[2]}-{t}-{'probs' if p else 'logits'}-tactic{k}"
                              for s, t, p, k in KERNEL_CASES])
def test_kernels_under_the_interpreter(interpreted, case, shape, dtype, share_probs, tactic):
    m, n, d = shape
    scale = d ** -0.5
    f = inputs(m, n, d, NP[dtype], b=1)
    out_z, shared, out_x = (interpreted[f"{case}/{k}"] for k in ("out_z", "shared", "out_x"))
    ref_z, ref_shared = lookup_gather(f["q_z"], f["k_x"], f["v_x"], scale, share_probs)
    ref_x = lookup_scatter(ref_shared, f["v_z"], share_probs)
    tol = 1e-5 if dtype == "fp32" else 2e-3
    assert out_z.dtype == shared.dtype == out_x.dtype == NP[dtype]
    assert out_z.shape == (1, 2, m, d) and shared.shape == (1, 2, m, n) and out_x.shape == (1, 2, n, d)
    close(out_z, ref_z, tol)
    close(shared, ref_shared, tol)
    close(out_x, ref_x, tol)
    want_z, _, want_x = torch_pair(f, scale, share_probs)  # and PyTorch
    close(out_z, want_z, tol)
    close(out_x, want_x, tol * (4 if dtype != "fp32" and not share_probs else 1))


PTX_SCRIPT = """
import json, os, re, subprocess, sys, tempfile
import triton.backends.nvidia as nv
from plugins.kernels import MAX_SHARED_MEM, compile_ptx, usable_tactics
bin_dir = os.path.join(os.path.dirname(nv.__file__), "bin")
done = []
for arch in (80, 90):
    for kind in ("gather", "scatter"):
        for dtype, probs in (("fp16", False), ("bf16", True)):
            c = compile_ptx(kind, dtype, 64, probs, 0.125, tactic=2, arch=arch)
            target = re.search(r"\\.target\\s+(\\S+)", c.ptx).group(1)
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, "k.ptx"), "w").write(c.ptx)
                ok = [subprocess.run([os.path.join(bin_dir, exe), "--gpu-name", target, os.path.join(d, "k.ptx"),
                                      "-o", os.path.join(d, "k.cubin")], capture_output=True).returncode == 0
                      for exe in ("ptxas", "ptxas-blackwell") if os.path.exists(os.path.join(bin_dir, exe))]
            done.append({"arch": arch, "kind": kind, "dtype": dtype, "target": target, "name": c.name,
                         "params": c.params, "warps": c.num_warps, "assembles": any(ok),
                         "fits": c.shared_mem <= MAX_SHARED_MEM})
print(json.dumps({"kernels": done, "fp32_sm90_gather_tactics": usable_tactics("gather", "fp32", 64, False, 90)}))
"""


def test_kernels_compile_to_ptx_without_a_gpu():
    """triton.compile with GPUTarget("cuda", 80|90, 32) needs no GPU or driver; the PTX entry takes
    exactly (inputs, M, N, outputs), as TensorRT launches an AOT kernel, assembles with ptxas and fits
    in 48 KiB of shared memory; the autotuner is offered only the tactics that fit."""
    pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[plugins]')")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    result = subprocess.run([sys.executable, "-c", PTX_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    done = doc["kernels"]
    assert len(done) == 8
    for c in done:
        assert c["target"] == ("sm_80" if c["arch"] == 80 else "sm_90a"), c
        assert c["params"] == (7 if c["kind"] == "gather" else 5), c
        assert c["name"] == f"{c['kind']}_kernel" and c["assembles"] and c["fits"], c
    # the largest tile (64 x 128, 8 warps) needs more than 48 KiB of shared memory in fp32 at d = 64 on sm_90
    assert doc["fp32_sm90_gather_tactics"] == [1, 2, 3, 4]


# --- the pass --------------------------------------------------------------------------------------

GRID = (2, 2)
FOREIGN = ("einsum_lookupvit", "sdpa_lookupvit", "divscale_lookupvit")


def ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("plugin")
    paths = {
        "ours": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID), out / "ours").path,
        "probs": export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID, overrides={"scatter": "probs"}),
                             out / "probs").path,
    }
    for name in FOREIGN:
        paths[name] = export_onnx(ModelSource(factory=f"tests.foreign.{name}:build", grid=GRID), out / name).path
    return out, paths


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ours", "probs", *FOREIGN])
def test_plugin_target_fuses_every_layer(exports, name):
    out, paths = exports
    dest = out / "opt" / f"{name}.plugin.onnx"
    report = optimize_model(paths[name], dest, target="plugin")
    assert report.passed, report.check.reason
    last = report.passes[-1]
    assert last.name == "lookup-plugin" and last.status == "kept" and last.matches == 2, last.note
    counts = ops(dest)
    assert counts[GATHER] == counts[SCATTER] == 2 and counts["Softmax"] == 0  # one pair per layer, 2 layers
    model = onnx.load(str(dest))
    assert {(f.domain, f.name) for f in model.functions} == {(DOMAIN, GATHER), (DOMAIN, SCATTER)}
    probs = {onnx.helper.get_attribute_value(a) for n in model.graph.node if n.domain == DOMAIN
             for a in n.attribute if a.name == "share_probs"}
    assert probs == ({1} if name == "probs" else {0})
    assert last.details["probability_reuse" if name == "probs" else "logit_reuse"] == 2
    assert last.max_abs_change is not None and report.check.max_rel < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ours", "probs"])
def test_plugin_graph_validates_against_pytorch(exports, name):
    out, paths = exports
    dest = out / "opt" / f"{name}.validate.onnx"
    optimize_model(paths[name], dest, target="plugin")
    result = validate_model(dest, iterations=2, data="random")
    assert result.passed, result


@pytest.mark.slow
def test_a_wrong_plugin_rewrite_is_rolled_back(exports, monkeypatch):
    import exporter.passes.plugin as plugin_pass

    real = plugin_pass.node_attrs
    monkeypatch.setattr(plugin_pass, "node_attrs", lambda scale, share_probs: real(scale * 1.5, share_probs))
    out, paths = exports
    dest = out / "opt" / "wrong.onnx"
    report = optimize_model(paths["ours"], dest, target="plugin")
    last = report.passes[-1]
    assert last.name == "lookup-plugin" and last.status == "rolled back" and "would change the outputs" in last.note
    assert report.passed and ops(dest)[GATHER] == 0 and ops(dest)["Attention"] > 0


@pytest.mark.slow
def test_cli_plugin_target(cli, exports):
    out, paths = exports
    dest = out / "opt" / "cli.onnx"
    result = cli("optimize", str(paths["sdpa_lookupvit"]), "--form", "plugin", "-o", str(dest), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["target"] == "plugin" and doc["ops_after"][GATHER] == 2 and "lookup-plugin" in doc["kept"]
    listed = cli("optimize", "--list", "--json")
    entry = next(p for p in json.loads(listed.output) if p["name"] == "lookup-plugin")
    assert entry["targets"] == ["plugin"] and entry["default_position"] == {"plugin": 10}


# --- build -----------------------------------------------------------------------------------------


def test_build_refuses_a_plugin_graph_when_the_plugin_cannot_load(tmp_path):
    from exporter.backends.tensorrt.plugin import load_plugin, plugin_nodes, register_if_available

    path = tmp_path / "pair.onnx"
    onnx.save(pair_model(1, 2, 4, 16, 32, 0.25, False), str(path))
    assert plugin_nodes(path) == {GATHER: 1, SCATTER: 1}
    try:
        import tensorrt.plugin  # noqa: F401
    except ImportError:
        with pytest.raises(UserError) as err:
            load_plugin(path, "tensorrt")
        assert "plugin cannot be loaded" in err.value.message and "--form attention" in err.value.hint
        assert "Error" in (register_if_available() or "")  # validate ENGINE.plan goes on without it
    else:
        pytest.skip("tensorrt.plugin is importable here: the refusal path cannot be reached")
    with pytest.raises(UserError, match="TensorRT-RTX has no plugin support"):
        load_plugin(path, "tensorrt-rtx")
    plain = tmp_path / "plain.onnx"
    model = pair_model(1, 2, 4, 16, 32, 0.25, False)
    del model.graph.node[:]
    model.graph.node.append(onnx.helper.make_node("Identity", ["q_z"], ["out_z"]))
    onnx.save(model, str(plain))
    assert load_plugin(plain, "tensorrt") is None


def test_plugin_module_imports_without_tensorrt():
    """Importing plugins.trt_plugin imports neither TensorRT nor Triton (register() does)."""
    code = ("import sys, plugins.trt_plugin as p; assert p.plugin_id('LookupGather') == 'lookupvit::LookupGather'; "
            "print(sorted(m for m in ('tensorrt', 'tensorrt.plugin', 'triton') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-1000:]
