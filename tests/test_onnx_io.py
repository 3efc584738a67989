"""Saving ONNX models: small ones in one file, large ones with their weights in `<model>.data`."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from exporter import onnx_io


def _model(n: int = 1024) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(n, dtype=np.float32).reshape(1, n), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    return helper.make_model(graph)


def test_small_model_is_one_file(tmp_path):
    onnx_io.save_onnx(_model(), tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_large_model_keeps_weights_next_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_io, "PROTOBUF_LIMIT", 1)  # treat any model as over the limit
    onnx_io.save_onnx(_model(), tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]  # no temporary left
    loaded = onnx_io.load_onnx(tmp_path / "m.onnx")
    assert np.array_equal(numpy_helper.to_array(loaded.graph.initializer[0]).ravel(), np.arange(1024))
