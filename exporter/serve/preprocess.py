"""Normalisation folded into the graph: the served model takes raw uint8 images.

The exported graph takes float images normalised as ``(x / 255 - mean) / std`` per channel, the
mean and std recorded in its ``lookupvit.mean`` / ``lookupvit.std`` metadata (what
:func:`exporter.data.prepare_images` applies before ``validate`` and ``compare``). Folding prepends
``Cast(uint8 -> float32) -> Div(255) -> Sub(mean) -> Div(std)`` (and a ``Cast`` to the graph's
input type when that is not float32) under the original input's name, so the input keeps its name
and shape and changes only its type; any other input (a dynamic-grid model's grid) is left as it is. ONNX Runtime runs these four element-wise ops in the same
session; TensorRT imports ``Cast`` from UINT8 (onnx-tensorrt's operator table lists UINT8 for
``Cast`` inputs) and fuses the element-wise chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

NORMALISED_SUFFIX = "__normalised"
FOLDED_NOTE = "uint8 0..255; (x / 255 - mean) / std folded into the graph"


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int


def model_normalisation(path: str | Path) -> Normalisation:
    """Mean and std per channel from the model's ``lookupvit.*`` metadata (raises UserError without)."""
    from ..export import read_model_metadata

    meta = read_model_metadata(path)
    if not meta.mean or not meta.std:
        raise UserError(
            f"{path} does not record its input normalisation (lookupvit.mean / lookupvit.std metadata), so it cannot "
            "take raw uint8 images.",
            "Package a model exported by `lookupvit export` (or a run folder), or pass --input float to serve the "
            "graph's own float input and normalise on the client.",
        )
    return Normalisation(tuple(meta.mean), tuple(meta.std), len(meta.mean))


def fold_normalisation(model_path: str | Path, out_path: str | Path, norm: Normalisation) -> Path:
    """Write ``model_path`` with the normalisation folded in (see the module docstring) to ``out_path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ..onnx_io import PROTOBUF_LIMIT, load_onnx, save_onnx

    model = load_onnx(model_path)
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if not inputs:
        raise UserError(f"{model_path} has no graph input.", "Package a model exported by `lookupvit export`.")
    image = inputs[0]  # the image; other inputs (a grid chosen per request) are served as they are
    elem = image.type.tensor_type.elem_type
    if elem not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16):
        raise UserError(f"Input '{image.name}' of {model_path} is {TensorProto.DataType.Name(elem)}, not a float image.",
                        "Pass --input float to serve the graph's inputs as they are.")
    dims = image.type.tensor_type.shape.dim
    if len(dims) < 2 or not dims[1].HasField("dim_value") or dims[1].dim_value != norm.channels:
        raise UserError(f"Input '{image.name}' of {model_path} does not have {norm.channels} channels on axis 1.",
                        "Pass --input float to serve the graph's inputs as they are.")
    name = image.name
    inner = name + NORMALISED_SUFFIX
    for node in g.node:  # the graph now reads the normalised tensor
        for i, x in enumerate(node.input):
            if x == name:
                node.input[i] = inner
    shape = [1, norm.channels] + [1] * (len(dims) - 2)
    consts = {
        f"{name}__255": np.array(255.0, dtype=np.float32),
        f"{name}__mean": np.asarray(norm.mean, dtype=np.float32).reshape(shape),
        f"{name}__std": np.asarray(norm.std, dtype=np.float32).reshape(shape),
    }
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    scaled = inner if elem == TensorProto.FLOAT else f"{inner}__fp32"
    nodes = [
        helper.make_node("Cast", [name], [f"{name}__float"], to=TensorProto.FLOAT, name=f"{name}/cast"),
        helper.make_node("Div", [f"{name}__float", f"{name}__255"], [f"{name}__01"], name=f"{name}/div255"),
        helper.make_node("Sub", [f"{name}__01", f"{name}__mean"], [f"{name}__centred"], name=f"{name}/sub_mean"),
        helper.make_node("Div", [f"{name}__centred", f"{name}__std"], [scaled], name=f"{name}/div_std"),
    ]
    if elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [scaled], [inner], to=elem, name=f"{name}/cast_back"))
    for n in reversed(nodes):
        g.node.insert(0, n)
    image.type.tensor_type.elem_type = TensorProto.UINT8
    model.metadata_props.append(onnx.StringStringEntryProto(key="serving.input", value=FOLDED_NOTE))
    if model.ByteSize() < PROTOBUF_LIMIT:  # the checker needs the model in one protobuf
        onnx.checker.check_model(model)
    return save_onnx(model, out_path)
