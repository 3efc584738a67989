"""ONNX Runtime's CUDA provider with device-resident IO (exporter.backends.onnxruntime.cuda): on this machine the
selection and error paths; with onnxruntime-gpu and a GPU, outputs equal to the CPU provider's."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporter.backends.onnxruntime.cuda import (
    CudaIoSession,
    cuda_graph_blocker,
    cuda_providers,
    feed_dtype,
    resolve_shape,
)
from exporter.errors import UserError

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


def matmul_model(path, dtype=TensorProto.FLOAT):
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    if dtype == TensorProto.FLOAT16:
        w = numpy_helper.from_array(np.arange(12, dtype=np.float16).reshape(4, 3) / 10, "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", dtype, ["batch", 4])],
                          [helper.make_tensor_value_info("y", dtype, ["batch", 3])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


@pytest.mark.skipif(HAS_CUDA_EP, reason="this ONNX Runtime has the CUDA provider: the refusal path does not apply")
def test_without_onnxruntime_gpu_the_error_names_it(tmp_path):
    with pytest.raises(UserError) as e:
        cuda_providers()
    assert "no CUDA execution provider" in e.value.message and "pip install onnxruntime-gpu" in e.value.hint
    with pytest.raises(UserError, match="no CUDA execution provider"):  # before the model is even read
        CudaIoSession(tmp_path / "missing.onnx", {})


def test_feed_types_and_shapes():
    assert feed_dtype("tensor(float16)") is np.float16 and feed_dtype("tensor(float)") is np.float32
    with pytest.raises(UserError):
        feed_dtype("tensor(string)")
    assert resolve_shape(["batch", 3], {"batch": 64}) == (64, 3)
    assert resolve_shape(["batch", "tokens"], {"batch": 64}) is None


def test_cuda_graph_blocker(tmp_path):
    assert cuda_graph_blocker(matmul_model(tmp_path / "mm.onnx")) is None
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])])
    loop = helper.make_node("Loop", ["n", "cond"], [], body=body)
    g = helper.make_graph([loop], "l", [helper.make_tensor_value_info("n", TensorProto.INT64, []),
                                        helper.make_tensor_value_info("cond", TensorProto.BOOL, [])], [])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), str(tmp_path / "loop.onnx"))
    assert "control flow (Loop)" in cuda_graph_blocker(tmp_path / "loop.onnx")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_EP, reason="needs onnxruntime-gpu (CUDAExecutionProvider) and an NVIDIA GPU")
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.FLOAT16])
def test_device_resident_run_matches_cpu(tmp_path, dtype):
    path = matmul_model(tmp_path / "mm.onnx", dtype)
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    s = CudaIoSession(path, {"x": x})
    s.run()
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.astype(np.float16 if dtype == TensorProto.FLOAT16 else np.float32)})[0]
    np.testing.assert_allclose(s.outputs()[0].astype(np.float32), ref.astype(np.float32), rtol=1e-2, atol=1e-2)
    assert s.cuda_graph or s.note
