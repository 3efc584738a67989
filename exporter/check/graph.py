"""A read-only view of an ONNX graph for the checks: inferred types and shapes, constants, producers.

Types and shapes come from ONNX shape inference (``onnx.shape_inference.infer_shapes``, not strict),
so a rule can ask for the rank of an Attention input or the element type a node reads. A dimension is
an int when static, the dim_param string when symbolic, None when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

Dim = int | str | None


@dataclass
class TensorInfo:
    elem_type: int | None
    shape: list[Dim] | None  # None: rank unknown


@dataclass
class GraphView:
    model: onnx.ModelProto
    opset: int
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    constants: dict[str, onnx.TensorProto] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    functions: dict[tuple[str, str], onnx.FunctionProto] = field(default_factory=dict)  # model-local functions

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphView:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        try:  # shape inference needs the weights only for shape-carrying constants, and works on a copy
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:
            inferred = model
        view = cls(model, opset)
        view.functions = {(f.domain, f.name): f for f in model.functions}
        g = inferred.graph
        for vi in [*g.input, *g.value_info, *g.output]:
            view.tensors[vi.name] = _info(vi.type)
        for init in model.graph.initializer:
            view.constants[init.name] = init
            view.tensors.setdefault(init.name, TensorInfo(init.data_type, list(init.dims)))
        for node in model.graph.node:
            for o in node.output:
                if o:
                    view.producers[o] = node
            for i in node.input:
                if i:
                    view.consumers.setdefault(i, []).append(node)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                        view.constants[node.output[0]] = a.t
        return view

    def info(self, name: str) -> TensorInfo:
        return self.tensors.get(name, TensorInfo(None, None))

    def elem_type(self, name: str) -> int | None:
        return self.info(name).elem_type

    def shape(self, name: str) -> list[Dim] | None:
        return self.info(name).shape

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def is_constant(self, name: str) -> bool:
        """An initializer or a Constant node's output: what the parser sees as weights."""
        return name in self.constants

    def value(self, name: str) -> np.ndarray | None:
        t = self.constants.get(name)
        if t is None or (t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data):
            return None
        try:
            return numpy_helper.to_array(t)
        except Exception:
            return None


def _info(tp: onnx.TypeProto) -> TensorInfo:
    if not tp.HasField("tensor_type"):
        return TensorInfo(None, None)
    tt = tp.tensor_type
    elem = tt.elem_type or None
    if not tt.HasField("shape"):
        return TensorInfo(elem, None)
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(elem, dims)


def node_label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def has_attr(node: onnx.NodeProto, name: str) -> bool:
    return any(a.name == name for a in node.attribute)
