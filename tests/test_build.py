"""`lookupvit build`: the build plan handed to Polygraphy, cache keys, the output layout, what the
ONNX graph declares, and the error paths without TensorRT or a GPU. A real build runs only where
TensorRT and a GPU are present (markers ``tensorrt`` and ``gpu``)."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.backends.tensorrt import env
from exporter.backends.tensorrt.env import check_gpu_matches
from exporter.backends.tensorrt.sidecar import sidecar_path
from exporter.engine.build import BuildRequest, BuildResult, prepare_build
from exporter.engine.plan import (
    cache_key,
    engine_paths,
    make_build_plan,
    read_onnx,
    resolve_precision,
)
from exporter.errors import UserError
from exporter.io import sha256_file
from exporter.profiles import load_profile, load_profile_file

ROOT = Path(__file__).resolve().parent.parent
PRECISION_FLAGS = {"fp16", "bf16", "int8", "fp8", "tf32", "precision_constraints"}


# --- tiny ONNX graphs -----------------------------------------------------------------------------


def tiny_onnx(path: Path, precision: str = "fp32", batch: str | int = "batch", side: int | str = 32,
              metadata: dict[str, str] | None = None) -> Path:
    """images [batch, 3, side, side] -> flatten -> MatMul -> logits [batch, 10], cast or quantised
    the way the precision stage writes each precision."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, side, side])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])
    w = np.full((3 * 32 * 32, 10), 0.01, np.float32)
    inits = [numpy_helper.from_array(np.array([0, -1], np.int64), "shape")]
    nodes = [helper.make_node("Reshape", ["images", "shape"], ["flat"])]
    if precision in ("fp16", "bf16"):
        t = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
        w_init = numpy_helper.from_array(w, "w32")
        inits.append(w_init)
        nodes += [
            helper.make_node("Cast", ["flat"], ["flat_lp"], to=t),
            helper.make_node("Cast", ["w32"], ["w_lp"], to=t),
            helper.make_node("MatMul", ["flat_lp", "w_lp"], ["y_lp"]),
            helper.make_node("Cast", ["y_lp"], ["logits"], to=TensorProto.FLOAT),
        ]
    elif precision in ("int8", "fp8"):
        zp_type = TensorProto.INT8 if precision == "int8" else TensorProto.FLOAT8E4M3FN
        inits += [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
            helper.make_tensor("zp", zp_type, [], [0]),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["flat", "scale", "zp"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["dq"]),
            helper.make_node("MatMul", ["dq", "w"], ["logits"]),
        ]
    else:
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("MatMul", ["flat", "w"], ["logits"]))
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 21)])
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def model(tmp_path):
    return tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """lookupvit_tiny32 at grid 2, exported by the export stage (dynamic batch, metadata)."""
    from exporter.export import export_onnx, resolve_variant_source

    out = tmp_path_factory.mktemp("export")
    return export_onnx(resolve_variant_source("lookupvit_tiny32", grid="2"), out).path


def no_tensorrt(monkeypatch):
    monkeypatch.setattr(env, "module_status", lambda m: env.ModuleStatus(m, None, "not installed"))


def no_gpu(monkeypatch):
    monkeypatch.setattr(env, "detect_gpu", lambda: None)


def fake_gpu(monkeypatch, name="NVIDIA H100 80GB HBM3", cc=(9, 0)):
    monkeypatch.setattr(env, "detect_gpu", lambda: env.GpuInfo(name, cc, 81559, "580.1", "nvidia-smi"))


def fake_tensorrt(monkeypatch, version="10.14.1.48", flavours=("tensorrt",)):
    def status(module):
        if module in (env.TENSORRT_MODULES[f] for f in flavours):
            return env.ModuleStatus(module, version)
        return env.ModuleStatus(module, None, "not installed")

    monkeypatch.setattr(env, "module_status", status)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


# --- what the graph declares --------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8", "fp8"])
def test_read_onnx_input_and_declared_precision(tmp_path, precision):
    info = read_onnx(tiny_onnx(tmp_path / f"m.{precision}.onnx", precision))
    assert info.input_name == "images"
    assert info.input_shape == ("batch", 3, 32, 32)
    assert info.dynamic_axes == [0]
    assert (info.precision, info.precision_source) == (precision, "graph")


def test_precision_metadata_and_the_precision_option(tmp_path):
    info = read_onnx(tiny_onnx(tmp_path / "m.onnx", "fp32", metadata={"lookupvit.precision": "fp16"}))
    assert (info.precision, info.precision_source) == ("fp16", "metadata")
    h100, a100 = load_profile("h100"), load_profile("a100")
    assert resolve_precision(info, "fp16", h100) == "fp16"
    with pytest.raises(UserError) as e:
        resolve_precision(info, "fp32", h100)
    assert "--precision fp32 does not match" in e.value.message and "strongly typed" in e.value.message
    fp8 = read_onnx(tiny_onnx(tmp_path / "m8.onnx", "fp8"))
    with pytest.raises(UserError) as e:
        resolve_precision(fp8, None, a100)
    assert "Profile a100 does not build fp8" in e.value.message and "sm_80 has no fp8" in e.value.hint


def test_read_onnx_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        read_onnx(tmp_path / "junk.onnx")


# --- the build plan -------------------------------------------------------------------------------


def test_build_plan_is_what_polygraphy_gets(model, tmp_path):
    h100 = load_profile("h100")
    plan = make_build_plan(h100, read_onnx(model), "fp32", tmp_path / "out")
    assert plan.network_args() == {"path": str(model), "strongly_typed": True}
    cfg = plan.config_args()
    assert cfg["profiles"] == [
        {"images": ((1, 3, 32, 32), (opt, 3, 32, 32), (128, 3, 32, 32))} for opt in (1, 8, 64)
    ]
    assert cfg["builder_optimization_level"] == 3
    assert cfg["memory_pool_limits"] == {"WORKSPACE": 16 << 30}
    assert cfg["load_timing_cache"] == str(tmp_path / "out" / "timing-cache" / "h100.cache")
    assert cfg["hardware_compatibility_level"] is None  # TensorRT's default: this GPU only
    assert cfg["version_compatible"] is False and cfg["exclude_lean_runtime"] is False
    assert not PRECISION_FLAGS & set(cfg)  # TensorRT 11: no precision builder flags, ever
    assert "compute_capabilities" not in cfg  # full TensorRT builds for the GPU it runs on
    assert plan.engine_args() == {"save_timing_cache": cfg["load_timing_cache"]}
    assert plan.engine == tmp_path / "out" / "engines" / "h100" / "tiny.fp32.plan"
    assert plan.sidecar == tmp_path / "out" / "engines" / "h100" / "tiny.fp32.plan.json"
    d = plan.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["config"]["workspace"] == "16GiB"
    assert d["config"]["profiles"][1] == {"images": {"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [128, 3, 32, 32]}}


def test_build_plan_follows_the_profile(model, tmp_path):
    text = (ROOT / "profiles" / "l4.toml").read_text()
    text = text.replace('hardware = "none"', 'hardware = "ampere_plus"')
    text = text.replace("version_compatible = false", "version_compatible = true\nexclude_lean_runtime = true")
    text = text.replace("optimization_level = 3", "optimization_level = 5").replace('"8GiB"', '"512MiB"')
    text = text.replace('timing_cache = "timing-cache/l4.cache"', f'timing_cache = "{tmp_path}/shared.cache"')
    (tmp_path / "l4-compat.toml").write_text(text)
    prof = load_profile_file(tmp_path / "l4-compat.toml")
    cfg = make_build_plan(prof, read_onnx(model), "fp32", tmp_path / "out").config_args()
    assert cfg["hardware_compatibility_level"] == "AMPERE_PLUS"
    assert cfg["version_compatible"] is True and cfg["exclude_lean_runtime"] is True
    assert cfg["builder_optimization_level"] == 5
    assert cfg["memory_pool_limits"] == {"WORKSPACE": 512 << 20}
    assert cfg["load_timing_cache"] == str(tmp_path / "shared.cache")  # absolute paths stay
    assert [p["images"][1][0] for p in cfg["profiles"]] == [1, 8, 32]


def test_build_plan_for_tensorrt_rtx(model, tmp_path):
    plan = make_build_plan(load_profile("rtx4090"), read_onnx(model), "fp32", tmp_path, backend="tensorrt-rtx")
    cfg = plan.config_args()
    assert cfg["compute_capabilities"] == [[8, 9]]  # compiled ahead of time for the profile's GPU
    assert cfg["load_timing_cache"] is None and plan.engine_args() == {"save_timing_cache": None}
    assert plan.network_args()["strongly_typed"] is True


def test_build_plan_for_an_exported_lookupvit(exported, tmp_path):
    info = read_onnx(exported)
    assert info.metadata["lookupvit.variant"] == "lookupvit_tiny32"
    plan = make_build_plan(load_profile("jetson-orin"), info, info.precision, tmp_path)
    c, h, w = json.loads(info.metadata["lookupvit.input_shape"])
    assert plan.config_args()["profiles"] == [
        {"images": ((1, c, h, w), (1, c, h, w), (8, c, h, w))},
        {"images": ((1, c, h, w), (4, c, h, w), (8, c, h, w))},
    ]
    assert plan.engine.name == f"{exported.stem}.fp32.plan"


def test_input_shapes_that_cannot_be_profiled(tmp_path):
    h100 = load_profile("h100")
    static = read_onnx(tiny_onnx(tmp_path / "static.onnx", batch=4))
    with pytest.raises(UserError) as e:
        make_build_plan(h100, static, "fp32", tmp_path)
    assert "fixed batch of 4" in e.value.message and "dynamic batch" in e.value.hint
    (tmp_path / "b4.toml").write_text(
        'backend = "tensorrt"\ncompute_capability = "9.0"\nprecisions = ["fp32"]\n[batch]\nmin = 4\nopt = 4\nmax = 4\n'
    )
    plan = make_build_plan(load_profile_file(tmp_path / "b4.toml"), static, "fp32", tmp_path)
    assert plan.config_args()["profiles"] == [{"images": ((4, 3, 32, 32),) * 3}]
    spatial = read_onnx(tiny_onnx(tmp_path / "hw.onnx", side="height"))
    with pytest.raises(UserError, match="dynamic axis 2"):
        make_build_plan(h100, spatial, "fp32", tmp_path)
    with pytest.raises(UserError, match="no engine to build"):
        make_build_plan(load_profile("cpu"), static, "fp32", tmp_path)


def test_output_layout():
    assert engine_paths("out", "h100", "m/lookupvit_b16_g7.onnx", "fp16") == (
        Path("out/engines/h100/lookupvit_b16_g7.fp16.plan"), Path("out/engines/h100/lookupvit_b16_g7.fp16.plan.json"))
    # a precision suffix already in the name is not repeated
    assert engine_paths("o", "l4", "x.int8.onnx", "int8")[0] == Path("o/engines/l4/x.int8.plan")
    assert sidecar_path("o/engines/l4/x.int8.plan") == Path("o/engines/l4/x.int8.plan.json")


def test_cache_key_changes_with_each_input():
    parts = ("a" * 64, "b" * 64, "TensorRT 10.14.1.48", "NVIDIA H100 80GB HBM3")
    key = cache_key(*parts)
    assert key == cache_key(*parts) and re.fullmatch(r"[0-9a-f]{64}", key)
    changed = [
        ("c" * 64, parts[1], parts[2], parts[3]),
        (parts[0], "d" * 64, parts[2], parts[3]),
        (parts[0], parts[1], "TensorRT 10.15.0.1", parts[3]),
        (parts[0], parts[1], "TensorRT-RTX 10.14.1.48", parts[3]),
        (parts[0], parts[1], parts[2], "NVIDIA H200"),
    ]
    keys = {cache_key(*c) for c in changed}
    assert len(keys) == len(changed) and key not in keys


def test_a_recorded_build_is_read_back_from_its_sidecar(tmp_path):
    """On a skip the build step reads the result from the engine's sidecar (exporter.pipeline.steps);
    a sidecar without one is an error the step answers by building again."""
    meta = {"cache": {"key": "k", "tensorrt_version": "TensorRT-RTX 1.7", "target": "sm_89"}, "profile": {"name": "l4"},
            "precision": "fp16", "build": {"ahead_of_time": True}, "build_seconds": 2.5, "layers": 7,
            "engine_bytes": 12, "warnings": ["w"]}
    from exporter.schema import SchemaError
    from exporter.schema.sidecars import engine_sidecar

    r = BuildResult.from_sidecar(tmp_path / "m.fp16.plan", engine_sidecar(meta, "m.fp16.plan.json"))
    assert r.cached and r.cache_key == "k" and r.target == "sm_89" and r.ahead_of_time and r.layers == 7
    assert r.sidecar == tmp_path / "m.fp16.plan.json" and r.warnings == ["w"]
    with pytest.raises(ValueError, match="records no build"):
        BuildResult.from_sidecar(tmp_path / "m.fp16.plan", engine_sidecar({"precision": "fp16"}, "s.json"))
    with pytest.raises(SchemaError, match=r"key layers[\s\S]*Rebuild the engine"):
        engine_sidecar({**meta, "layers": -1}, "s.json")


# --- environment and error paths ------------------------------------------------------------------


def test_tensorrt_choice(monkeypatch):
    monkeypatch.delenv(env.RTX_SWITCH, raising=False)
    fake_tensorrt(monkeypatch, flavours=("tensorrt", "tensorrt-rtx"))
    assert env.choose_tensorrt("tensorrt")[0].backend == "tensorrt"
    assert env.choose_tensorrt("tensorrt-rtx")[0].backend == "tensorrt-rtx"
    monkeypatch.setenv(env.RTX_SWITCH, "1")
    assert env.choose_tensorrt("tensorrt")[0].backend == "tensorrt-rtx"
    assert env.choose_tensorrt("tensorrt", exact=True)[0].backend == "tensorrt"
    monkeypatch.delenv(env.RTX_SWITCH)
    fake_tensorrt(monkeypatch, version="1.2.0.54", flavours=("tensorrt-rtx",))
    choice, _ = env.choose_tensorrt("tensorrt")
    assert choice.backend == "tensorrt-rtx" and choice.label == "TensorRT-RTX 1.2.0.54"  # the fallback
    assert env.choose_tensorrt("tensorrt", exact=True)[0] is None


def test_stub_only_tensorrt_is_not_installed(tmp_path, monkeypatch):
    (tmp_path / "trt_stub_probe").mkdir()
    (tmp_path / "trt_stub_probe" / "__init__.pyi").write_text("x: int\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    st = env.module_status("trt_stub_probe")
    assert not st.installed and "only type stubs" in st.note
    assert env.module_status("no_such_module_here").note == "not installed"


@pytest.mark.parametrize("missing", ["both", "tensorrt", "gpu"])
def test_build_without_tensorrt_or_gpu_exits_2_and_writes_nothing(cli, model, tmp_path, monkeypatch, missing):
    if missing in ("both", "tensorrt"):
        no_tensorrt(monkeypatch)
    else:
        fake_tensorrt(monkeypatch)
    if missing in ("both", "gpu"):
        no_gpu(monkeypatch)
    else:
        fake_gpu(monkeypatch)
    out = tmp_path / "out"
    before = files_under(tmp_path)
    result = cli("build", str(model), "--profile", "h100", "-o", str(out))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    text = result.output
    first = text.splitlines()[0]
    assert first.startswith("Error: Cannot build a TensorRT engine here: ")
    assert ("full TensorRT is not installed" in first) == (missing != "gpu")
    assert "TensorRT-RTX is not installed" in first  # the way to build without a GPU, named either way
    assert ("no CUDA GPU is visible" in text) == (missing != "tensorrt")
    if missing != "gpu":
        assert "pip install 'lookupvit-deploy[tensorrt]'" in text and "pip install -e '.[tensorrt]'" in text
        assert "tensorrt-rtx" in text
    assert files_under(tmp_path) == before and not out.exists()


def test_build_on_this_machine(cli, model, tmp_path):
    """Unpatched: an sm_90 profile where no full TensorRT and GPU are: exactly what is missing is named."""
    has_full = env.module_status("tensorrt").installed
    has_gpu = env.detect_gpu() is not None
    if has_full and has_gpu:
        pytest.skip("full TensorRT and a GPU are present: the error path does not apply here")
    result = cli("build", str(model), "--profile", "h100", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error.startswith("Cannot build a TensorRT engine here")
    assert ("full TensorRT is not installed" in error) == (not has_full)
    if env.rtx_compute_capabilities():  # TensorRT-RTX is here but has no Hopper target
        assert "not sm_90 (Hopper)" in error
    else:
        assert "TensorRT-RTX is not installed" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--profile", "h10"], "Unknown profile 'h10'"),
        (["--profile", "cpu"], "no engine to build"),
        (["--profile", "a100", "--precision", "fp16"], "--precision fp16 does not match"),
    ],
)
def test_build_bad_input_exits_2(cli, model, tmp_path, args, message):
    result = cli("build", str(model), *args, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_profile_gpu_mismatch(model, tmp_path):
    req = prepare_build(model, "h100", None, tmp_path)
    assert isinstance(req, BuildRequest) and req.precision == "fp32"
    full = env.TensorRTChoice("tensorrt", "tensorrt", "10.14.1.48")
    l4 = env.GpuInfo("NVIDIA L4", (8, 9))
    with pytest.raises(UserError) as e:
        check_gpu_matches(req.profile, l4, full)
    assert "targets sm_90" in e.value.message and "NVIDIA L4 (sm_89)" in e.value.message
    assert "--profile l4" in e.value.hint and "--profile rtx4090" in e.value.hint
    check_gpu_matches(req.profile, env.GpuInfo("NVIDIA H200", (9, 0)), full)  # same architecture
    check_gpu_matches(req.profile, l4, env.TensorRTChoice("tensorrt-rtx", "tensorrt_rtx", "1.2"))  # AOT for sm_90


def test_trt_runner_error_paths(tmp_path, monkeypatch):
    from exporter.backends.tensorrt.runner import trt_runner

    with pytest.raises(UserError, match="does not exist"):
        trt_runner(tmp_path / "missing.plan")
    engine = tmp_path / "m.fp16.plan"
    engine.write_bytes(b"\x00" * 16)
    no_tensorrt(monkeypatch)
    no_gpu(monkeypatch)
    with pytest.raises(UserError) as e:
        trt_runner(engine)
    assert "Cannot run a TensorRT engine here" in e.value.message and "no CUDA GPU" in e.value.message
    fake_gpu(monkeypatch)
    fake_tensorrt(monkeypatch, flavours=("tensorrt",))
    sidecar_path(engine).write_text(json.dumps({"tensorrt": {"backend": "tensorrt-rtx", "version": "1.2"}}))
    with pytest.raises(UserError) as e:  # an engine runs only on the flavour that built it
        trt_runner(engine)
    assert "TensorRT-RTX is not installed" in e.value.message


def test_load_tensorrt_refuses_to_switch_flavour_mid_process(monkeypatch):
    import polygraphy.backend.trt  # binds the flavour Polygraphy uses in this process
    import polygraphy.config

    from exporter.backends.tensorrt.loader import load_tensorrt

    current = "tensorrt-rtx" if polygraphy.config.USE_TENSORRT_RTX else "tensorrt"
    other = "tensorrt" if current == "tensorrt-rtx" else "tensorrt-rtx"
    with pytest.raises(UserError, match="already loaded"):
        load_tensorrt(other)


def test_polygraphy_log_is_captured_off_stdout(capsys):
    from polygraphy.logger import G_LOGGER

    from exporter.engine.trt import captured_polygraphy_log

    before = (G_LOGGER.use_python_logging_system, G_LOGGER.module_severity)
    with captured_polygraphy_log() as log:
        G_LOGGER.warning("Weights of layer X are subnormal")
        G_LOGGER.error("Could not find tactic")
        G_LOGGER.info("building")
    assert log.warnings == ["Weights of layer X are subnormal"]
    assert log.errors == ["Could not find tactic"]
    assert capsys.readouterr().out == ""
    assert (G_LOGGER.use_python_logging_system, G_LOGGER.module_severity) == before


def test_validate_engine_error_paths(cli, exported, tmp_path, monkeypatch):
    engine = tmp_path / "engines" / "h100" / f"{exported.stem}.fp32.plan"
    engine.parent.mkdir(parents=True)
    engine.write_bytes(b"\x00" * 16)
    result = cli("validate", str(engine))
    assert result.exit_code == 2 and "no readable sidecar" in result.output
    sidecar_path(engine).write_text(json.dumps({"onnx": {"path": str(tmp_path / "gone.onnx")}}))
    result = cli("validate", str(engine))
    assert result.exit_code == 2 and "is not there any more" in result.output
    sidecar_path(engine).write_text(json.dumps({
        "onnx": {"path": str(exported), "sha256": sha256_file(exported)}, "precision": "fp32", "tensorrt": {"backend": "tensorrt", "version": "10.14"},
        "profile": {"name": "h100", "settings": {"batch": {"min": 1, "max": 128}}},
    }))
    no_tensorrt(monkeypatch)
    no_gpu(monkeypatch)
    result = cli("validate", str(engine), "--json")
    assert result.exit_code == 2
    assert "Cannot run a TensorRT engine here: TensorRT is not installed" in result.output
    assert not list(tmp_path.rglob("*.validate.json"))


# --- type checking the TensorRT-facing code against tensorrt-stubs --------------------------------


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def _repair_signature(line: str) -> str:
    """tensorrt-stubs 10.13 has generated signatures Python cannot parse: parameters named after
    keywords (``in``) and required parameters after defaulted ones. Rename / default them."""
    import keyword

    start = line.index("(")
    depth = 0
    for end in range(start, len(line)):
        depth += line[end] in "([{"
        depth -= line[end] in ")]}"
        if depth == 0:
            break
    params, seen_default = [], False
    for p in _split_top_level(line[start + 1:end]):
        name = p.split(":")[0].split("=")[0].strip()
        if keyword.iskeyword(name):
            p = p.replace(name, name + "_", 1)
        if "=" in p:
            seen_default = True
        elif name.startswith("*"):
            seen_default = False
        elif seen_default and name and name != "/":
            p += " = ..."
        params.append(p)
    return line[: start + 1] + ",".join(params) + line[end:]


def _stub_path(tmp_path: Path) -> Path:
    try:
        dist = importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (make install adds it with --no-deps)")
    out = tmp_path / "stubs"
    for f in dist.files or []:
        if f.suffix == ".pyi" and f.parts[0] in ("tensorrt", "tensorrt_bindings"):
            src = Path(str(dist.locate_file(f)))
            lines = src.read_text().splitlines(keepends=True)
            dest = out / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("".join(_repair_signature(x) if x.lstrip().startswith("def ") else x for x in lines))
    return out


MYPY_CONFIG = """\
[mypy]
python_version = 3.11
ignore_missing_imports = True
follow_imports = silent
[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True
[mypy-torch.*,numpy.*]
follow_imports = skip
"""  # the stubs are checked against, not checked; torch is not TensorRT-facing and slow to analyse


def test_tensorrt_module_type_checks_against_the_stubs(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    stubs = _stub_path(tmp_path)
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    # a probe proves the check has teeth: a misspelt TensorRT attribute fails against the stubs
    probe = tmp_path / "probe.py"
    probe.write_text("import tensorrt as trt\n\n\ndef f(e: trt.ICudaEngine) -> int:\n    return e.num_layerz\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir",
         str(tmp_path / "cache"), "exporter/engine", "plugins", str(probe)],
        cwd=ROOT, env={**os.environ, "MYPYPATH": str(stubs)}, capture_output=True, text=True, timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith(str(probe)) and 'maybe "num_layers"' in errors[0], result.stdout
    checked = len(list((ROOT / "exporter" / "engine").glob("*.py"))) + len(list((ROOT / "plugins").glob("*.py"))) + 1
    assert f"(checked {checked} source files)" in result.stdout, result.stdout


# --- a real build (TensorRT and a GPU) ------------------------------------------------------------

_trt, _why = env.choose_tensorrt()
_gpu = env.detect_gpu()
_missing = [m for m, absent in ((f"TensorRT or TensorRT-RTX ({_why})", _trt is None),
                                ("a CUDA GPU (none visible)", _gpu is None)) if absent]


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(bool(_missing), reason="needs " + " and ".join(_missing))
def test_real_build_cache_and_validate(cli, exported, tmp_path):
    cc = _gpu.compute_capability
    profile = tmp_path / "here.toml"
    profile.write_text(
        f'backend = "tensorrt"\ncompute_capability = "{cc[0]}.{cc[1]}"\nprecisions = ["fp32"]\n'
        "[batch]\nmin = 1\nopt = [1, 4]\nmax = 8\n[builder]\noptimization_level = 0\n"
    )
    out = tmp_path / "out"
    result = cli("build", str(exported), "--profile", str(profile), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    engine = Path(doc["engine"])
    assert engine.is_file() and not doc["cached"] and doc["layers"] > 0
    side = json.loads(sidecar_path(engine).read_text())
    assert set(side["cache"]) == {"key", "onnx_sha256", "profile_hash", "tensorrt_version", "gpu"}
    assert (out / "timing-cache" / "here.cache").is_file() or _trt.backend == "tensorrt-rtx"
    again = json.loads(cli("build", str(exported), "--profile", str(profile), "-o", str(out), "--json").output)
    assert again["cached"] and again["cache_key"] == doc["cache_key"]
    forced = json.loads(cli("build", str(exported), "--profile", str(profile), "-o", str(out), "--json", "--force").output)
    assert not forced["cached"]
    result = cli("validate", str(engine), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "PASSED"


def test_a_build_child_does_not_import_torch():
    """Each engine build runs in its own process (exporter.engine.child); importing torch there would add
    about a second to every build and nothing to it."""
    code = "import sys, exporter.engine.child, exporter.engine.trt; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
