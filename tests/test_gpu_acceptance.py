"""bench/gpu_acceptance.py: the dry run plans every step (both graph forms, grids 3/7/10, batch 1 and 64,
every GPU runtime) and executes none; without a GPU the real run refuses loudly (exit 2, reasons)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from exporter.backends.tensorrt import env

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_acceptance.py"


@pytest.fixture(scope="module")
def acceptance():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_acceptance"] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("gpu_acceptance", None)


def test_dry_run_plans_every_step_and_runs_none(acceptance, tmp_path, capsys):
    out = tmp_path / "acc"
    assert acceptance.main(["-o", str(out), "--dry-run", "--assume-cc", "8.9"]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ": lookupvit " in ln]
    assert not out.exists()  # nothing executed, nothing written
    commands = [ln.split(": lookupvit ", 1)[1].split("   #")[0] for ln in lines]
    verbs = [c.split()[0] for c in commands]
    # b16: 3 grids exported; 2 forms x 3 grids optimised, and cast to fp16 once per runtime
    assert verbs.count("export") == 3 and verbs.count("optimize") == 6 and verbs.count("precision") == 12
    for g in (3, 7, 10):
        for form in ("attention", "trt-mha"):
            assert f"lookupvit_b16_g{g}.{form}.trt.fp16.onnx" in text and f"lookupvit_b16_g{g}.{form}.ort.fp16.onnx" in text
    casts = [c for c in commands if c.startswith("precision")]
    assert sum("--target tensorrt" in c and ".trt.fp16.onnx" in c for c in casts) == 6
    # per TensorRT flavour: check, build, validate, profile for each of the 6 graphs; digits compare
    for backend in ("tensorrt", "tensorrt-rtx"):
        mine = [c for ln, c in zip(lines, commands) if ln.startswith(f"[{backend}]")]
        assert [c.split()[0] for c in mine].count("build") == 6 and sum("--batch 1,64" in c for c in mine) == 6
        assert all("--baseline vit_b16" in c for c in mine if c.startswith("profile"))
        digits = next(c for c in mine if c.startswith("compare lookupvit_digits"))
        assert "--precisions fp32,fp16,bf16,int8,fp8" in digits  # sm_89 runs all five
    ort = [c for ln, c in zip(lines, commands) if ln.startswith("[ort-gpu]")]
    assert len(ort) == 13 and sum(c.startswith("validate") for c in ort) == 6
    assert f"{len(lines)} steps planned for sm_89; dry run: nothing executed." in text
    # validate runs the engine the build step writes (the plan follows build's naming rule)
    build = next(c for c in commands if c.startswith("build") and "g7.attention" in c)
    validate = next(c for c in commands if c.startswith("validate") and "g7.attention" in c and ".plan" in c)
    assert build.split()[1].endswith("lookupvit_b16_g7.attention.trt.fp16.onnx")
    assert validate.split()[1].endswith("lookupvit_b16_g7.attention.trt.fp16.plan")
    assert all(".ort.fp16.onnx" in c for ln, c in zip(lines, commands) if ln.startswith("[ort-gpu] validate"))


def test_dry_run_precisions_follow_the_gpu(acceptance, tmp_path, capsys):
    acceptance.main(["-o", str(tmp_path / "acc"), "--dry-run", "--assume-cc", "7.5"])
    text = capsys.readouterr().out
    assert "--precisions fp32,fp16,int8 " in text and "bf16" not in text.split("compare lookupvit_digits")[1].split("\n")[0]


def test_without_a_gpu_the_run_fails_loudly(acceptance, tmp_path, capsys):
    if env.detect_gpu() is not None:
        pytest.skip("this machine has a GPU: the refusal path does not apply")
    assert acceptance.main(["-o", str(tmp_path / "acc")]) == 2
    err = capsys.readouterr().err
    assert "GPU acceptance cannot run here" in err and "no NVIDIA GPU is visible" in err
    assert not (tmp_path / "acc").exists()


def test_report_files(acceptance, tmp_path):
    """The JSON and markdown a run writes, from steps as a run leaves them."""
    steps = [acceptance.Step("build g3 attention", "tensorrt", ["build", "m.onnx"], "passed", "", 12.5,
                             {"engine": "e.plan", "build_seconds": 11.0, "layers": 42}),
             acceptance.Step("validate g3 attention", "ort-gpu", ["validate", "m.onnx"], "not run",
                             "ort-gpu missing: no CUDAExecutionProvider")]
    acc = acceptance.Acceptance(str(tmp_path), False, {"gpu": "NVIDIA H200", "backends": {"tensorrt": "", "ort-gpu": "x"}},
                                {"tensorrt": "h200"}, steps, "2026-01-01T00:00:00+00:00", 20.0)
    md = acceptance.markdown(acc)
    assert "| build g3 attention | tensorrt | passed | 12.5 | 42 layers, built in 11.0 s |" in md
    assert "| validate g3 attention | ort-gpu | not run |  | ort-gpu missing" in md
    doc = json.loads(json.dumps(acc.to_dict(), default=str))
    assert doc["steps"][0]["command"] == "lookupvit build m.onnx" and doc["steps"][1]["status"] == "not run"
