"""The model configuration a Triton model repository needs, as typed values, and its text form.

Field names and meanings follow Triton's ``model_config.proto`` (``inference.ModelConfig``) and
its documentation ("Model Configuration", "Batchers", "Optimization" and the TensorRT and ONNX
Runtime backends' READMEs): ``platform`` ``tensorrt_plan`` / ``onnxruntime_onnx``;
``max_batch_size`` > 0 makes the first axis of every input and output the batch, left out of
``dims``; ``instance_group`` with ``kind`` and, for TensorRT, ``profile`` (the indices of the
engine's optimisation profiles an instance may use); ``dynamic_batching`` with
``preferred_batch_size`` and ``max_queue_delay_microseconds``; ``model_warmup`` samples;
``cc_model_filenames`` (an engine per compute capability); ONNX Runtime's session settings as
``parameters`` (``intra_op_thread_count``). The text written here is protobuf text format, with
``#`` comments; :mod:`.schema` parses it with Triton's own message to check it.
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
        out = [f"# {h}" if h else "#" for h in self.header]

        def note(section: str) -> None:
            if section in self.comments:
                out.extend(f"# {line}" for line in self.comments[section].splitlines())

        out.append(f'name: "{self.name}"')
        out.append(f'platform: "{self.platform}"')
        note("max_batch_size")
        out.append(f"max_batch_size: {self.max_batch_size}")
        if self.default_model_filename:
            out.append(f'default_model_filename: "{self.default_model_filename}"')
        if self.cc_model_filenames:
            note("cc_model_filenames")
            out.extend(f'cc_model_filenames {{ key: "{cc}" value: "{fn}" }}' for cc, fn in self.cc_model_filenames)
        note("input")
        out.append(_tensors("input", self.inputs))
        out.append(_tensors("output", self.outputs))
        note("instance_group")
        groups = []
        for g in self.instance_groups:
            parts = ([f'name: "{g.name}"'] if g.name else []) + [f"kind: {g.kind}", f"count: {g.count}"]
            if g.profiles:
                parts.append("profile: [ " + ", ".join(f'"{p}"' for p in g.profiles) + " ]")
            groups.append("  { " + " ".join(parts) + " }")
        out.append("instance_group [\n" + ",\n".join(groups) + "\n]")
        note("dynamic_batching")
        body = []
        if self.preferred_batch_sizes:
            body.append("  preferred_batch_size: [ " + ", ".join(map(str, self.preferred_batch_sizes)) + " ]")
        body.append(f"  max_queue_delay_microseconds: {self.max_queue_delay_us}")
        out.append("dynamic_batching {\n" + "\n".join(body) + "\n}")
        if self.parameters:
            note("parameters")
            out.extend(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in self.parameters)
        if self.warmups:
            note("model_warmup")
            items = []
            for w in self.warmups:
                ins = " ".join(
                    f'inputs {{ key: "{t.name}" value: {{ data_type: {t.data_type} dims: [ {", ".join(map(str, t.dims))} ] '
                    f"random_data: true }} }}" for t in w.inputs)
                items.append(f'  {{ name: "{w.name}" batch_size: {w.batch_size} {ins} }}')
            out.append("model_warmup [\n" + ",\n".join(items) + "\n]")
        return "\n".join(out) + "\n"


def _tensors(kind: str, tensors: tuple[TensorConfig, ...]) -> str:
    items = []
    for t in tensors:
        label = f' label_filename: "{t.label_filename}"' if t.label_filename else ""
        items.append(f'  {{ name: "{t.name}" data_type: {t.data_type} dims: [ {", ".join(map(str, t.dims))} ]{label} }}')
    return f"{kind} [\n" + ",\n".join(items) + "\n]"
