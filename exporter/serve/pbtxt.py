"""The model configuration a Triton model repository needs, as typed values, and its text form.

Field names and meanings follow Triton's ``model_config.proto`` (``inference.ModelConfig``) and
its documentation ("Model Configuration", "Batchers", "Optimization" and the TensorRT and ONNX
Runtime backends' READMEs): ``platform`` ``tensorrt_plan`` / ``onnxruntime_onnx``;
``max_batch_size`` > 0 makes the first axis of every input and output the batch, left out of
``dims``; ``instance_group`` with ``kind`` and, for TensorRT, ``profile`` (the indices of the
engine's optimisation profiles an instance may use); ``dynamic_batching`` with
``preferred_batch_size`` and ``max_queue_delay_microseconds``; ``model_warmup`` samples;
``cc_model_filenames`` (an engine per compute capability); ONNX Runtime's session settings as
``parameters`` (``intra_op_thread_count``). The text is Triton's own message written by protobuf's
``text_format`` (tritonclient's ``model_config_pb2``, the triton extra), after ``#`` comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ONNX TensorProto element type -> Triton data type (model_config.proto's DataType).
ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
                  7: "TYPE_INT64", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
                  13: "TYPE_UINT64", 16: "TYPE_BF16"}
TRITON_TO_NUMPY = {"TYPE_FP32": "float32", "TYPE_UINT8": "uint8", "TYPE_INT8": "int8", "TYPE_INT32": "int32",
                   "TYPE_INT64": "int64", "TYPE_FP16": "float16", "TYPE_BOOL": "bool", "TYPE_FP64": "float64"}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str  # TYPE_*
    dims: tuple[int, ...]  # without the batch axis; -1 for a variable axis
    label_filename: str | None = None  # outputs only: Triton's classification extension


@dataclass(frozen=True)
class InstanceGroup:
    kind: str  # KIND_CPU / KIND_GPU
    count: int
    name: str | None = None
    profiles: tuple[str, ...] = ()  # TensorRT optimisation-profile indices ("0", "1", ...)


@dataclass(frozen=True)
class Warmup:
    name: str
    batch_size: int
    inputs: tuple[TensorConfig, ...]


@dataclass(frozen=True)
class ModelConfigText:
    """Everything written into one ``config.pbtxt``."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    instance_groups: tuple[InstanceGroup, ...]
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    warmups: tuple[Warmup, ...] = ()
    default_model_filename: str | None = None
    cc_model_filenames: tuple[tuple[str, str], ...] = ()  # (compute capability "9.0", file name)
    parameters: tuple[tuple[str, str], ...] = ()
    header: tuple[str, ...] = ()  # comment lines at the top
    comments: dict[str, str] = field(default_factory=dict)  # section -> comment line above it

    def render(self) -> str:
        """The config as Triton's own message (``inference.ModelConfig`` from tritonclient's
        ``model_config_pb2``, :mod:`.schema`) in protobuf text format, after the header and the
        sections' comments as ``#`` lines (text format keeps no comments between fields)."""
        from google.protobuf import text_format

        from .schema import model_config_module

        pb = model_config_module()
        m = pb.ModelConfig(name=self.name, platform=self.platform, max_batch_size=self.max_batch_size)
        if self.default_model_filename:
            m.default_model_filename = self.default_model_filename
        for cc, fn in self.cc_model_filenames:
            m.cc_model_filenames[cc] = fn
        for field_name, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                msg = getattr(m, field_name).add(name=t.name, data_type=pb.DataType.Value(t.data_type), dims=list(t.dims))
                if t.label_filename:
                    msg.label_filename = t.label_filename
        for g in self.instance_groups:
            group = m.instance_group.add(kind=pb.ModelInstanceGroup.Kind.Value(g.kind), count=g.count,
                                         profile=list(g.profiles))
            if g.name:
                group.name = g.name
        m.dynamic_batching.preferred_batch_size.extend(self.preferred_batch_sizes)
        m.dynamic_batching.max_queue_delay_microseconds = self.max_queue_delay_us
        for k, v in self.parameters:
            m.parameters[k].string_value = v
        for w in self.warmups:
            warm = m.model_warmup.add(name=w.name, batch_size=w.batch_size)
            for t in w.inputs:
                data = warm.inputs[t.name]
                data.data_type = pb.DataType.Value(t.data_type)
                data.dims.extend(t.dims)
                data.random_data = True
        comments = [f"# {h}" if h else "#" for h in self.header]
        for section, text in self.comments.items():
            comments += [f"# {section}: {line}" for line in text.splitlines()]
        return "\n".join([*comments, text_format.MessageToString(m).rstrip()]) + "\n"
