"""Every graph we hand to TensorRT, built by a real TensorRT builder: TensorRT-RTX, ahead of time,
without a GPU (exporter/backends/tensorrt/env.py). Skipped, with the reason, where TensorRT-RTX is not installed
(the README's test command installs it).

- The matrix: graph form (attention, trt-mha, plugin with its local functions) x precision (the five)
  x model (lookupvit_digits at one grid, and as one dynamic-grid graph) x compute capability (SM80,
  SM89), each graph written as the pipeline writes it for TensorRT (``precision --target tensorrt``).
  Each cell is built, or refused by us before the builder with the reason (fp8 on SM80; the plugin
  form by ``build``, as TensorRT-RTX has no plugins: the builder itself builds its local functions,
  which the matrix also shows); and ``lookupvit check`` agrees with the builder on every cell.
- One lookupvit_b16 build (224 px, grid 3, fp16).
- Minimal reproducers of what the builder does with the forms we no longer write: an fp32 Attention
  node is refused unless decomposable; two Attention nodes reading one tensor crash it (SIGSEGV),
  which the child process turns into a FAILED build; the check predicts both.
- The child process's bounds: a timeout and the memory limit become FAILED builds, never a dead run.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporter.backends.tensorrt import env
from exporter.check import check_graph
from exporter.errors import UserError
from exporter.precisions import PRECISIONS
from exporter.profiles import load_profile

RTX = env.rtx_compute_capabilities()
pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(not RTX, reason="TensorRT-RTX is not installed (pip install -e '.[tensorrt-rtx]')"),
]

FORMS = ("attention", "trt-mha", "plugin")
MODELS = ("digits", "digits-dynamic")
CCS = ("8.0", "8.9")
CALIB = 32  # calibration images for int8/fp8 (the pipeline's default is 256; the builds do not depend on it)


def _profile(folder: Path, cc: str, name: str | None = None) -> Path:
    """A TensorRT profile for ``cc``: every precision the GPU has, batch 1..4 (one optimisation profile)."""
    precisions = [p for p in PRECISIONS if not (p == "fp8" and cc < "8.9")]
    path = folder / f"{name or 'sm' + cc.replace('.', '')}.toml"
    path.write_text(
        f'backend = "tensorrt"\ncompute_capability = "{cc}"\nprecisions = {json.dumps(precisions)}\n'
        "[batch]\nmin = 1\nopt = [1]\nmax = 4\n[builder]\noptimization_level = 0\n")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trt-builds")


@pytest.fixture(scope="module")
def graph(folder):
    """``graph(model, form, precision)``: the graph the pipeline hands TensorRT, made once per module."""
    from exporter.export import dynamic_grid_source, export_onnx, resolve_variant_source
    from exporter.passes import optimize_model
    from exporter.precision import convert_precision

    @functools.cache
    def exported(model: str) -> Path:
        out = folder / model
        if model == "digits-dynamic":
            sources = [resolve_variant_source("lookupvit_digits", grid=g) for g in ("2", "4")]
            return export_onnx(dynamic_grid_source(sources[-1], [s.grid for s in sources]), out).path
        return export_onnx(resolve_variant_source("lookupvit_digits", grid="2"), out).path

    @functools.cache
    def optimized(model: str, form: str) -> Path:
        out = folder / model / f"{form}.onnx"
        optimize_model(exported(model), out, target=form)
        return out

    @functools.cache
    def make(model: str, form: str, precision: str) -> Path:
        out = folder / model / f"{form}.trt.{precision}.onnx"
        convert_precision(optimized(model, form), out, precision, calib_size=CALIB, target="tensorrt")
        return out

    return make


@pytest.mark.parametrize("cc", CCS)
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("model", MODELS)
def test_every_graph_form_and_precision_builds_and_check_agrees(graph, folder, model, form, precision, cc):
    from exporter.engine.build import prepare_build, trial_build

    path = graph(model, form, precision)
    profile = load_profile(_profile(folder, cc))
    if precision == "fp8" and cc == "8.0":  # refused by us, before the builder, with the reason
        with pytest.raises(UserError) as e:
            prepare_build(path, profile)
        assert "sm_80 has no fp8" in e.value.hint
        assert not check_graph(path, profile).passed
        return
    report = check_graph(path, profile)
    if form == "plugin":  # refused by us: TensorRT-RTX has no plugins and would build the local functions silently
        from exporter.engine.build import build_engine

        with pytest.raises(UserError) as e:
            build_engine(prepare_build(path, profile, None, folder / "refused"))
        assert "TensorRT-RTX has no plugin support" in e.value.message and "--form attention" in e.value.hint
        assert not (folder / "refused").exists()
    trial = trial_build(path, profile)  # the builder itself: for the plugin form, the local functions' bodies
    assert trial.built, trial.message
    assert trial.ahead_of_time == (env.detect_gpu() is None) and trial.target == f"sm_{cc.replace('.', '')}"
    assert report.passed, [f.line() for f in report.errors]  # the rules and the builder agree


def test_a_224px_lookupvit_builds(folder):
    """lookupvit_ti16 (224 px, 196 patch tokens, 12 layers: lookupvit_b16's graph at a quarter of its
    width) at grid 3 in fp16: export, optimize, the TensorRT form, an engine for sm_89. lookupvit_b16
    itself is built by bench/bench_trt_builds.py (docs/tensorrt.md has its figures)."""
    from exporter.engine.build import trial_build
    from exporter.export import export_onnx, resolve_variant_source
    from exporter.models import build_model, get_variant
    from exporter.passes import optimize_model
    from exporter.precision import convert_precision

    exported = export_onnx(resolve_variant_source("lookupvit_ti16", grid="3"), folder / "ti16").path
    opt = folder / "ti16" / "ti16.opt.onnx"
    optimize_model(exported, opt)
    fp16 = convert_precision(opt, folder / "ti16" / "ti16.trt.fp16.onnx", "fp16", target="tensorrt")
    profile = load_profile(_profile(folder, "8.9"))
    assert check_graph(fp16.output, profile).passed
    trial = trial_build(fp16.output, profile)
    assert trial.built, trial.message
    params = sum(p.numel() for p in build_model(get_variant("lookupvit_ti16").config).parameters())
    assert trial.engine_bytes and trial.engine_bytes > 2 * params  # the weights, in fp16, are in the engine


# --- what the builder does with the forms we no longer write: minimal reproducers ----------------


def _attention_graph(path: Path, shared: bool, dtype: str = "fp16", decomposable: bool = False, n: int = 2) -> Path:
    """``n`` Attention nodes over graph inputs (B, 4 heads, S, 16); with ``shared`` they read one key
    tensor. fp16 inputs are cast from fp32 (as the precision stage writes them)."""
    seq = {"q": 4, "k": 64, "v": 64}
    inputs, nodes, outputs = [], [], []
    elem = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT

    def tensor(name: str, s: int) -> str:
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4, s, 16]))
        if dtype == "fp32":
            return name
        nodes.append(helper.make_node("Cast", [name], [f"{name}_h"], to=elem))
        return f"{name}_h"

    shared_key = tensor("k", seq["k"]) if shared else None
    for i in range(n):
        q, v = tensor(f"q{i}", seq["q"]), tensor(f"v{i}", seq["v"])
        k = shared_key or tensor(f"k{i}", seq["k"])
        attrs = {"scale": 0.25, **({"TRT_decomposable": 1} if decomposable else {})}
        nodes.append(helper.make_node("Attention", [q, k, v], [f"a{i}"], name=f"attention_{i}", **attrs))
        out = f"a{i}"
        if dtype != "fp32":
            nodes.append(helper.make_node("Cast", [out], [f"y{i}"], to=TensorProto.FLOAT))
            out = f"y{i}"
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 4, seq["q"], 16]))
    model = helper.make_model(helper.make_graph(nodes, "attention", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    onnx.save(model, path)
    return path


def test_two_attention_nodes_reading_one_tensor_crash_the_builder_and_the_rewrite_avoids_it(folder):
    """TensorRT-RTX 1.7.1 segfaults building two Attention nodes that read one tensor; the child
    process reports it as a crash; the check predicts it; the TensorRT form separates the readers."""
    from exporter.engine.build import trial_build
    from exporter.precision.tensorrt_form import tensorrt_form

    profile = load_profile(_profile(folder, "8.9"))
    crashing = _attention_graph(folder / "shared.onnx", shared=True)
    report = check_graph(crashing, profile)
    assert not report.passed and {f.rule for f in report.errors} == {"attention.shared-input"}
    trial = trial_build(crashing, profile)
    assert trial.status == "crashed" and "SIGSEGV" in trial.message, trial.message
    assert trial_build(_attention_graph(folder / "apart.onnx", shared=False), profile).built

    rewritten, form = tensorrt_form(onnx.load(crashing), "fp16")
    assert form.separated == 2  # the second reader's query and key
    fixed = folder / "shared.separated.onnx"
    onnx.save(rewritten, fixed)
    assert check_graph(fixed, profile).passed
    assert trial_build(fixed, profile).built


def test_an_fp32_attention_node_is_refused_unless_decomposable(folder):
    from exporter.engine.build import trial_build

    profile = load_profile(_profile(folder, "8.9"))
    plain = _attention_graph(folder / "fp32.onnx", shared=False, dtype="fp32", n=1)
    report = check_graph(plain, profile)
    assert [f.rule for f in report.errors] == ["attention.fp32"]
    trial = trial_build(plain, profile)
    assert trial.status == "refused" and "not supported by a dedicated kernel" in trial.message
    decomposable = _attention_graph(folder / "fp32.dec.onnx", shared=False, dtype="fp32", decomposable=True, n=1)
    assert check_graph(decomposable, profile).passed
    assert trial_build(decomposable, profile).built


def test_the_separation_is_exact_on_onnx_runtime(folder):
    """(2Q)(2K)^T * s/4 = QK^T * s and softmax(..)(2V)/2: the rewrite changes no number."""
    import onnxruntime as ort

    from exporter.precision.tensorrt_form import tensorrt_form

    path = _attention_graph(folder / "exact.onnx", shared=True, dtype="fp32")
    model = onnx.load(path)
    for n in model.graph.node:  # the value input shared too
        if n.name == "attention_1":
            n.input[2] = "v0"
    rewritten, form = tensorrt_form(model, "fp16")
    assert form.separated == 3
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal((2, 4, 4 if i.name.startswith("q") else 64, 16), dtype=np.float32)
             for i in model.graph.input}
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    after = ort.InferenceSession(rewritten.SerializeToString()).run(None, feeds)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# --- the child process: crashes, timeouts and memory are FAILED builds -----------------------------


def _bounded_build(graph, folder: Path, name: str, limits):
    """Build the digits fp16 graph in the child process under ``limits``; the BuildFailed it raises."""
    from exporter.engine.child import BuildFailed, build_in_child
    from exporter.engine.plan import make_build_plan, read_onnx

    path = graph("digits", "attention", "fp16")
    plan = make_build_plan(load_profile(_profile(folder, "8.9")), read_onnx(path), "fp16", folder / name,
                           backend="tensorrt-rtx")
    plan.engine.parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(BuildFailed) as e:
        build_in_child(plan, plan.engine, limits=limits)
    return e.value, plan


def test_a_build_past_its_time_bound_is_stopped(graph, folder):
    from exporter.engine.child import BuildLimits

    failed, plan = _bounded_build(graph, folder, "bounded", BuildLimits(timeout_s=0.05))
    assert failed.kind == "timeout" and "did not finish within 0 s" in failed.message
    assert failed.exit_code == 1
    assert not plan.engine.exists() and list(plan.engine.parent.iterdir()) == []  # its scratch folder is gone


def test_a_build_past_its_memory_bound_is_refused(graph, folder):
    from exporter.engine.child import BuildLimits

    failed, _ = _bounded_build(graph, folder, "small", BuildLimits(host_memory_bytes=400 << 20))
    assert failed.kind == "memory" and "memory bound (0.4 GiB)" in failed.message, failed.message


def test_a_build_process_that_fails_before_the_builder_answers_is_crashed_not_refused(graph, folder, tmp_path,
                                                                                     monkeypatch):
    # the child's interpreter finds a broken `exporter` package first (`python -m` puts its working
    # folder first on sys.path), as when the installation changes while a build runs
    shadow = tmp_path / "shadow"
    (shadow / "exporter").mkdir(parents=True)
    (shadow / "exporter" / "__init__.py").write_text("raise ImportError('exporter is half installed')\n")
    path = graph("digits", "attention", "fp16")
    monkeypatch.chdir(shadow)
    from exporter.engine.child import BuildFailed, build_in_child
    from exporter.engine.plan import make_build_plan, read_onnx

    plan = make_build_plan(load_profile(_profile(folder, "8.9")), read_onnx(path), "fp16", tmp_path / "eng",
                           backend="tensorrt-rtx")
    plan.engine.parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(BuildFailed) as e:
        build_in_child(plan, plan.engine)
    assert e.value.kind == "crashed", e.value.message
    assert "before the builder answered" in e.value.message and "half installed" in e.value.message
    assert "doctor" in (e.value.hint or "")
    assert list(plan.engine.parent.iterdir()) == []


# --- the verb -------------------------------------------------------------------------------------


def test_build_for_l4_writes_an_engine_built_ahead_of_time(cli, graph, tmp_path):
    path = graph("digits", "trt-mha", "int8")
    result = cli("build", str(path), "--profile", "l4", "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["tensorrt"].startswith("TensorRT-RTX") and doc["target"] == "sm_89"
    side = json.loads(Path(doc["sidecar"]).read_text())
    assert side["build"]["executed"] is False and side["cache"]["target"] == "sm_89"
    if env.detect_gpu() is None:
        assert doc["ahead_of_time"] is True and side["build"]["ahead_of_time"] is True
        assert "not deserialized or executed" in side["build"]["note"]
    again = cli("build", str(path), "--profile", "l4", "-o", str(tmp_path), "--json")
    assert json.loads(again.stdout)["cached"] is True


def test_build_for_h100_is_refused_before_any_work(cli, graph, tmp_path):
    path = graph("digits", "attention", "fp16")
    if env.module_status("tensorrt").installed and env.detect_gpu() is not None:
        pytest.skip("full TensorRT and a GPU are here: the refusal does not apply")
    result = cli("build", str(path), "--profile", "h100", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "not sm_90 (Hopper)" in result.output and "full TensorRT" in result.output
    assert not (tmp_path / "out").exists()


def test_a_crashing_build_is_a_failed_build_and_leaves_nothing(cli, folder, tmp_path):
    crashing = _attention_graph(folder / "crash.onnx", shared=True)
    out = tmp_path / "out"
    result = cli("build", str(crashing), "--profile", str(_profile(folder, "8.9", "crash")), "-o", str(out))
    assert result.exit_code == 1
    assert "check" in result.output.lower() or "crashed" in result.output  # refused by the check first
    check_off = cli("check", str(crashing), "--profile", "l4", "--build", "--json")
    doc = json.loads(check_off.stdout)
    assert check_off.exit_code == 1 and doc["builder"]["status"] == "crashed" and doc["builder"]["agrees"] is True
    assert not any(out.rglob("*.plan"))


def test_build_prints_its_table(cli, graph, tmp_path):
    """The human-readable output (not only --json): the engine, its target and that it ran nowhere."""
    result = cli("build", str(graph("digits", "attention", "fp16")), "--profile", "l4", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "sm_89" in result.stdout and ".fp16.plan" in result.stdout


def test_int8_for_tensorrt_keeps_the_attention_core_in_float_unless_asked(graph, folder):
    """By default the two batched MatMuls of each unfused attention read float (as NVIDIA's Model
    Optimizer leaves an attention); --keep-fp32 none puts Q/DQ on them too. Both build (the matrix)."""
    from exporter.precision import convert_precision

    def core_reads_dq(path: Path) -> int:
        m = onnx.load(path)
        producer = {o: n for n in m.graph.node for o in n.output}
        inits = {t.name for t in m.graph.initializer}
        cores = [n for n in m.graph.node if n.op_type == "MatMul" and not any(i in inits for i in n.input)
                 and not any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                             and producer[i].input[0] in inits for i in n.input)]
        return sum(any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in n.input)
                   for n in cores)

    default = graph("digits", "attention", "int8")
    assert core_reads_dq(default) == 0
    side = json.loads(Path(f"{default}.json").read_text())
    assert any("attention core (24 batched MatMuls) kept in float" in n for n in side["notes"])
    quantized = convert_precision(folder / "digits" / "attention.onnx", folder / "digits" / "all.int8.onnx", "int8",
                                  calib_size=CALIB, target="tensorrt", keep_fp32="none").output
    assert core_reads_dq(quantized) == 24
