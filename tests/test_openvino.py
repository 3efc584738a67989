"""OpenVINO as a CPU backend (the openvino extra): its Polygraphy runner agrees with ONNX Runtime on
the same exported graph, its timer runs a batch, a graph written for ONNX Runtime only is refused
with the fix, compare/profile accept --backend openvino, and `run` on an OpenVINO profile validates,
compares and times the pipeline's fp32 and int8 graphs on it."""

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install -e '.[openvino]')")

from exporter.backends.openvino import OpenVinoRunner, ov_timer
from exporter.backends.registry import backend
from exporter.errors import UserError
from exporter.export import ModelSource, export_onnx
from exporter.passes import optimize_model

GRID = (2, 2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("ov")
    return out, export_onnx(ModelSource(variant="lookupvit_tiny32", grid=GRID), out / "plain").path


def test_runner_matches_onnxruntime(exported):
    _, path = exported
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with OpenVinoRunner(path, threads=2) as runner:
        meta = runner.get_input_metadata(use_numpy_dtypes=False)
        assert list(meta) == ["images"] and tuple(meta["images"].shape)[1:] == (3, 32, 32)
        got = runner.infer({"images": x})
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert list(got) == ["logits"] and got["logits"].shape == want.shape
    assert np.abs(got["logits"] - want).max() <= 1e-4 * np.abs(want).max()  # fp32, not the CPU's bf16 default


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_timer_runs_a_fixed_batch(exported, hint):
    _, path = exported
    timer = ov_timer(path, 4, (3, 32, 32), threads=2, hint=hint)
    assert timer.backend == "openvino" and timer.device == "cpu" and f"{hint} hint" in timer.detail
    assert timer() > 0
    assert backend("ov").key == "openvino" and backend("openvino").timing_options == ("hint",)
    if hint == "throughput":  # several requests in flight, the time per batch amortised over them
        assert "requests in flight" in timer.detail and "amortised" in timer.detail


def test_a_cpu_target_graph_is_refused_with_the_fix(exported):
    out, path = exported
    report = optimize_model(path, out / "cpu.onnx", target="cpu", passes="skip-layernorm")
    from exporter.backends.openvino import compile_onnx

    with pytest.raises(UserError, match="SkipLayerNormalization") as e:
        compile_onnx(report.output)
    assert "plain export" in e.value.hint
    with pytest.raises(UserError, match="Unknown OpenVINO hint"):
        compile_onnx(path, hint="fastest")


def test_compare_on_openvino(cli, tmp_path):
    result = cli("compare", "lookupvit_digits", "--precisions", "fp32", "--grids", "2", "--backend", "openvino",
                 "--no-optimize", "-o", str(tmp_path / "cmp"))
    assert result.exit_code == 0, result.output
    assert "openvino" in result.output and "PASSED" in result.output


def test_profile_on_openvino(cli, exported, tmp_path):
    import json

    _, path = exported
    result = cli("profile", str(path), "--backend", "openvino", "--iters", "2", "--warmup", "1", "--warmup-seconds",
                 "0", "--repeats", "1", "--peak-sizes", "64", "--baseline", "none", "-o", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    cells = json.loads((tmp_path / "p" / "latency.json").read_text())["cells"]
    assert [(c["backend"], c["status"]) for c in cells] == [("openvino", "ok")]
    assert "f32" in cells[0]["detail"]


def test_validate_on_openvino(cli, exported):
    from exporter.validate import validate_model

    _, path = exported
    report = validate_model(path, backend="openvino", data="random")
    assert report.passed and "openvino" in report.candidate
    result = cli("validate", str(path), "--backend", "openvino", "--iters", "1")
    assert result.exit_code == 0, result.output
    bad = cli("validate", str(path), "--backend", "tvm")
    assert bad.exit_code == 2


def test_run_on_an_openvino_profile(cli, tmp_path):
    """`run` on tests/profiles/tiny-openvino.toml: the graphs written for ONNX Runtime (fp32 and Q/DQ
    int8), validated, compared and timed on OpenVINO, with the profile's hint and threads."""
    import json
    from pathlib import Path

    import onnx

    profile = Path(__file__).resolve().parent / "profiles" / "tiny-openvino.toml"
    out = tmp_path / "run"
    result = cli("run", "--profile", str(profile), "-o", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"]["backend"] == "openvino" and summary["verdict"]["status"] == "PASSED"
    rows = summary["validation"]
    assert {(r["model"], r["precision"]) for r in rows} >= {("lookupvit_tiny32", "int8"), ("lookupvit_digits", "int8")}
    assert all(r["backend"].startswith("openvino") and r["status"] == "PASSED" for r in rows)
    assert summary["accuracy"] and all(c["backend"].startswith("openvino") for c in summary["accuracy"])
    cells = json.loads((out / "latency.json").read_text())["cells"]
    assert {c["precision"] for c in cells} == {"fp32", "int8"}
    assert all(c["backend"] == "openvino" and c["status"] == "ok" for c in cells), cells
    assert all("throughput hint" in c["detail"] for c in cells)  # [benchmark] hint of the profile
    int8 = onnx.load(str(out / "lookupvit_tiny32" / "g2" / "onnx" / "lookupvit_tiny32_g2.opt.int8.onnx"), load_external_data=False)
    ops = {(n.domain, n.op_type) for n in int8.graph.node}
    assert ("", "QuantizeLinear") in ops and {d for d, _ in ops} <= {"", "ai.onnx"}  # ONNX Runtime's graph, as written
    from exporter.backends.openvino import compile_onnx

    runtime = compile_onnx(out / "lookupvit_tiny32" / "g2" / "onnx" / "lookupvit_tiny32_g2.opt.int8.onnx").get_runtime_model()
    kernels = {(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
               for op in runtime.get_ordered_ops()}
    assert ("FullyConnected", "i8") in kernels  # the Q/DQ pairs run as int8 kernels, not dequantised to f32
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert stages["profile"]["settings"]["hint"] == "throughput"
    # the hint is part of the profile stage's key: changing it times again, and nothing else runs again
    changed = tmp_path / "tiny-openvino.toml"
    changed.write_text(profile.read_text().replace('hint = "throughput"', 'hint = "latency"'))
    again = cli("run", "--profile", str(changed), "-o", str(out), "--json")
    assert again.exit_code == 0, again.output
    ran = [s["id"] for s in json.loads((out / "summary.json").read_text())["stages"] if s["status"] == "ran"]
    assert ran == ["profile"], ran
    cells = json.loads((out / "latency.json").read_text())["cells"]
    assert all("latency hint" in c["detail"] for c in cells)
