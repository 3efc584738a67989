"""`lookupvit doctor` and the GPU / TensorRT detection it shares with `build`."""

import importlib.metadata
import json
import os
import stat

import onnxruntime
import pytest
import torch

from exporter.backends.tensorrt import env

COMPONENTS = ["Python", "torch", "onnxruntime", "onnx", "onnxscript", "onnx-graphsurgeon", "polygraphy",
              "TensorRT", "TensorRT-RTX", "GPU", "engine builds", "not built here", "engine runs"]


def test_doctor_json_reports_this_machine(cli):
    result = cli("doctor", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)  # stdout is one JSON document
    assert list(doc) == COMPONENTS
    assert doc["torch"]["version"] == torch.__version__
    assert ("CUDA available" in doc["torch"]["detail"]) == torch.cuda.is_available()
    assert doc["onnxruntime"]["version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in doc["onnxruntime"]["detail"]
    for dist in ("onnx", "onnxscript", "onnx-graphsurgeon", "polygraphy"):
        assert doc[dist]["version"] == importlib.metadata.version(dist)
    for label, backend in (("TensorRT", "tensorrt"), ("TensorRT-RTX", "tensorrt-rtx")):
        st = env.module_status(env.TENSORRT_MODULES[backend])
        assert doc[label]["version"] == st.version
        assert doc[label]["status"] == ("ok" if st.installed else "missing")
    gpu = env.detect_gpu()
    assert doc["GPU"]["version"] == (gpu.name if gpu else None)
    full = env.module_status("tensorrt").installed and gpu is not None
    can_build = full or bool(env.rtx_compute_capabilities())  # TensorRT-RTX builds without a GPU
    assert doc["engine builds"]["status"] == ("ok" if can_build else "missing")
    if env.rtx_compute_capabilities() and gpu is None:
        assert "l4" in doc["engine builds"]["detail"] and "ahead of time, no GPU here" in doc["engine builds"]["detail"]
        assert "h100 (sm_90)" in doc["not built here"]["detail"] and "not sm_90 (Hopper)" in doc["not built here"]["detail"]
    assert doc["engine runs"]["status"] == ("ok" if gpu else "missing")


def test_doctor_table(cli, monkeypatch):
    monkeypatch.setattr(env, "module_status", lambda m: env.ModuleStatus(m, None, "not installed"))
    monkeypatch.setattr(env, "detect_gpu", lambda: None)
    out = cli("doctor").output
    for c in COMPONENTS:
        assert c in out
    assert "pip install -e '.[tensorrt]'" in out and "pip install -e '.[tensorrt-rtx]'" in out  # markup kept
    assert "none visible" in out and "no shipped TensorRT profile builds here" in out
    assert "validating or timing an engine needs a CUDA GPU" in out


def test_doctor_when_engines_can_be_built(cli, monkeypatch):
    monkeypatch.setattr(env, "module_status", lambda m: env.ModuleStatus(m, "10.14.1.48"))
    monkeypatch.setattr(env, "detect_gpu", lambda: env.GpuInfo("NVIDIA H100 80GB HBM3", (9, 0), 81559, "580.1", "nvidia-smi"))
    doc = json.loads(cli("doctor", "--json").output)
    assert doc["TensorRT"]["version"] == "10.14.1.48"
    assert doc["GPU"] == {"version": "NVIDIA H100 80GB HBM3", "status": "ok",
                          "detail": "sm_90, 80 GiB, driver 580.1, via nvidia-smi"}
    assert doc["engine builds"]["status"] == "ok"


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """An nvidia-smi on PATH printing the CSV the real one prints for the query detect_gpu makes."""
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA GPU here, so nvidia-smi is not consulted")
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--query-gpu=index,name,compute_cap,memory.total,driver_version*) ;; *) exit 9;; esac\n'
        "echo '0, NVIDIA L4, 8.9, 23034, 580.65.06'\n"
        "echo '1, NVIDIA H100 80GB HBM3, 9.0, 81559, 580.65.06'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpu_from_nvidia_smi(fake_nvidia_smi, monkeypatch):
    gpu = env.detect_gpu()
    assert gpu == env.GpuInfo("NVIDIA L4", (8, 9), 23034, "580.65.06", "nvidia-smi")
    assert gpu.sm == "sm_89"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert env.detect_gpu().name == "NVIDIA H100 80GB HBM3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert env.detect_gpu() is None  # every GPU hidden
