"""int8 / fp8: QuantizeLinear/DequantizeLinear pairs calibrated on real images.

Rules relied upon:
- TensorRT explicit quantization (strongly typed networks): a Q/DQ pair on an input of a
  MatMul, Gemm or Conv (and on Q, K, V of an attention) is fused into a quantized kernel; weights
  stored quantized need a DequantizeLinear between them and the op. TensorRT quantization is
  symmetric: zero point 0, scale only. Weights may be per channel (one scale per output channel,
  the ``axis`` of DequantizeLinear), activations per tensor. Outputs of those ops are not
  quantized here, so the op writes float and only its inputs are quantized.
- The attention matmuls of LookupViT's gather and scatter (MatMul with two activation inputs: the
  logits ``Q K^T`` and ``P V``) get Q/DQ on both inputs like any MatMul; the ONNX ``Attention`` op
  gets them on Q, K and V, its softmax stays inside in float.

Everything is done by ONNX Runtime's ``quantize_static`` (QDQ format, per-channel, symmetric
activations and weights, bias left in float, outputs of the quantized ops excluded). It computes
scales from calibration statistics: for int8 ``minmax`` (default: amax = max |x| seen, scale =
amax / 127), ``percentile`` (99.999th percentile of |x|) or ``entropy`` (KL divergence). For fp8
(E4M3FN) the default ``minmax`` gives TensorRT's ``amax / 448`` scales through ONNX Runtime's
tensor overrides (see :func:`_fp8_amax_overrides` for why); ``distribution`` is ONNX Runtime's own
fp8 rule (scale from the standard deviation of the data against that of the fp8 grid).

Calibration images come from a labelled dataset (``exporter.data.load_data``): by default
(``auto``) the bundled data that matches the model's input, the digits *training* split for
1-channel models (the held-out split is what ``compare`` measures on) or crops of the bundled
colour photos otherwise, converted to the model's channels, size and normalisation; a seeded
random subset of ``calib_size`` images. Data that does not match the model's input (grey images on
a colour model, a resize beyond 4x) is refused (:mod:`exporter.data_fit`). A dynamic-grid model
(docs/dynamic-grid.md) is calibrated on every calibration batch at every allowed grid, so
each grid sees the whole set and the ranges cover all of them (K grids: K times the calibration runs).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data import BUILTIN_DATA, InputSpec, load_data
from ..data_fit import require_calibration_fit
from ..errors import UserError
from ..export.grid_input import dynamic_grid_input
from ..io import is_environment_error
from .summary import QUANTIZABLE_OPS

CALIB_METHODS = {"int8": ("minmax", "percentile", "entropy"), "fp8": ("minmax", "distribution")}
DEFAULT_CALIB_SIZE = 256
AUTO_CALIB = "auto"  # the default calibration data: the bundled set that matches the model's input
CALIB_BATCH = 32
CALIB_SEED = 0
PERCENTILE = 99.999


def resolve_calibration(calib: str, spec: InputSpec) -> str:
    """``auto``: the bundled data that matches the model's input (grey digits for 1-channel
    models, crops of the bundled colour photos otherwise); any other value as given."""
    if calib != "auto":
        return calib
    return "digits" if spec.in_chans == 1 else "photos"


def calibration_images(calib: str, spec: InputSpec, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``size`` images (N, C, H, W) float32 prepared for ``spec``, and where they came from."""
    if size < 1:
        raise UserError(f"--calib-size {size} must be at least 1.", "Use e.g. --calib-size 256.")
    if spec.is_video:
        raise UserError(
            "int8/fp8 calibration reads labelled images; this is a video model.",
            "Convert video models to fp16 or bf16, or export an image variant.",
        )
    calib = resolve_calibration(calib, spec)
    split = "train" if calib in BUILTIN_DATA else None
    data = load_data(calib, spec, split="train")
    if len(data) == 0:
        raise UserError(f"{data.source} has no images to calibrate with.")
    require_calibration_fit(data, spec, calib)
    order = np.random.default_rng(CALIB_SEED).permutation(len(data))[: min(size, len(data))]
    images = data.images[np.sort(order)]
    return images, {"source": data.source, "split": split, "samples": len(images), "available": len(data)}


@contextlib.contextmanager
def _quiet_onnxruntime_quantization() -> Iterator[None]:
    """ONNX Runtime's quantizer prints calibration progress on stdout and logs advice through the
    root logger; keep stdout for our own output (``--json``) and the terminal quiet."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over a batch list (``get_next`` -> feed or None)."""

    def __init__(
        self, input_name: str, images: np.ndarray, batch: int, static_batch: int | None,
        grid: tuple[str, tuple[tuple[int, ...], ...]] | None = None,
    ):
        if static_batch:  # a model exported with a fixed batch takes only that batch size
            batch = static_batch
            images = images[: len(images) - len(images) % static_batch] if len(images) >= static_batch else images
        self.feeds = [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        if grid is not None:  # a dynamic-grid model: every calibration batch at every allowed grid
            name, grids = grid
            self.feeds = [{**f, name: np.zeros(g, dtype=np.float32)} for f in self.feeds for g in grids]
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]

    def rewind(self) -> None:
        self.index = 0


def _static_batch(model: Any) -> tuple[str, int | None]:
    inits = {t.name for t in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in inits)
    dims = graph_input.type.tensor_type.shape.dim
    dim0 = dims[0] if dims else None
    return graph_input.name, (dim0.dim_value if dim0 is not None and dim0.HasField("dim_value") else None)


def _weight_axis(node: Any) -> int:
    """The output-channel axis of a MatMul (K, N) / Gemm / Conv (O, I, kh, kw) weight."""
    if node.op_type == "MatMul":
        return 1
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 0


def _fp8_amax_overrides(
    in_path: Path, reader: _Reader, ops: list[str], exclude_nodes: list[str], work: Path
) -> dict[str, list[dict[str, Any]]]:
    """fp8 scales by TensorRT's rule, ``scale = amax / 448`` (448 = the largest finite E4M3FN value),
    as ONNX Runtime ``TensorQuantOverrides``.

    ONNX Runtime's only fp8 calibration ("distribution") sets a scale from the standard deviation of
    each tensor, which clips the outliers of transformer activations: on lookupvit_digits at grid 4 the
    largest logit error was 0.59 of the logit scale with it and 0.19 with amax scales. So the amax of
    every activation is measured with ONNX Runtime's MinMax calibrator (symmetric), the per-channel
    amax of every weight is read off the weight, and both are handed to ``quantize_static``.
    """
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    fp8_max = 448.0
    zero = np.array(0, dtype=np.float32)
    calibrator = create_calibrator(
        str(in_path), op_types_to_calibrate=ops, augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=CalibrationMethod.MinMax, extra_options={"symmetric": True},
    )
    calibrator.collect_data(reader)
    overrides: dict[str, list[dict[str, Any]]] = {}
    for name, data in calibrator.compute_data().data.items():
        low, high = data.range_value
        amax = max(float(np.abs(np.asarray(low)).max()), float(np.abs(np.asarray(high)).max()), 1e-12)
        overrides[name] = [{"scale": np.array(amax / fp8_max, dtype=np.float32), "zero_point": zero}]
    model = onnx.load(str(in_path))
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ops or node.op_type == "Attention" or node.name in exclude_nodes or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in inits or name in overrides:
            continue
        w = numpy_helper.to_array(inits[name])
        axis = _weight_axis(node)
        amax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis))
        overrides[name] = [
            {"axis": axis, "scale": np.array(max(float(a), 1e-12) / fp8_max, dtype=np.float32), "zero_point": zero}
            for a in amax
        ]
    return overrides


def _scratch_copy(in_path: Path, scratch: Path) -> Path:
    """``in_path`` and its external data files linked (else copied) into ``scratch``: ONNX Runtime's
    quantizer writes ``<input>-inferred.onnx`` next to the model it is given, which must not be the
    user's folder (it may be read-only, or shared by two conversions)."""
    import onnx

    model = onnx.load(str(in_path), load_external_data=False)
    names = {e.value for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    for name in [in_path.name, *sorted(names)]:
        src, dst = in_path.parent / name, scratch / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, dst)
    return scratch / in_path.name


@contextlib.contextmanager
def _temporary_files_in(folder: Path) -> Iterator[None]:
    """Python's temporary files (ONNX Runtime's ``ort.quant.*`` folders) go to ``folder`` meanwhile."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def quantize_model(
    in_path: Path, to: str, images: np.ndarray, method: str, exclude_ops: list[str], exclude_nodes: list[str],
    scratch: Path,
) -> tuple[Any, dict[str, Any]]:
    """Quantize the float32 model at ``in_path``; returns the quantized ``onnx.ModelProto`` and the
    settings handed to ONNX Runtime. Every file ONNX Runtime writes goes into the private folder
    ``scratch`` (the caller removes it)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIB_METHODS[to]:
        raise UserError(
            f"Calibration method {method!r} is not available for {to}.",
            f"{to} supports: {', '.join(CALIB_METHODS[to])}.",
        )
    ops = [op for op in QUANTIZABLE_OPS if op not in exclude_ops]
    if not ops:
        raise UserError(f"--keep-fp32 excludes every quantizable op ({', '.join(QUANTIZABLE_OPS)}).")
    model = onnx.load(str(in_path), load_external_data=False)
    input_name, static_batch = _static_batch(model)
    grid = dynamic_grid_input(model, in_path)
    big = sum(t.ByteSize() for t in model.graph.initializer) > 1.8e9 or any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    del model

    class Reader(_Reader, CalibrationDataReader):
        pass

    qtype = QuantType.QFLOAT8E4M3FN if to == "fp8" else QuantType.QInt8
    extra: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT takes the bias in float and folds it into the kernel
        "OpTypesToExcludeOutputQuantization": ops,  # quantize op inputs only (see module docstring)
        "DedicatedQDQPair": False,
    }
    if method == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    reader = Reader(input_name, images, CALIB_BATCH, static_batch, grid)
    tmp = scratch / "work"
    tmp.mkdir()
    user_path, in_path = in_path, _scratch_copy(in_path, scratch / "input")
    out = Path(tmp) / "quantized.onnx"
    try:
        with _quiet_onnxruntime_quantization(), _temporary_files_in(tmp):
            if to == "fp8" and method == "minmax":
                extra["TensorQuantOverrides"] = _fp8_amax_overrides(in_path, reader, ops, exclude_nodes, Path(tmp))
                # ONNX Runtime insists on its fp8 calibration pass even though every scale is
                # given; one batch keeps that pass cheap (and one grid of a dynamic-grid model: the
                # pass stacks each tensor's values over batches, whose shapes differ between grids).
                calib_method = CalibrationMethod.Distribution
                one_grid = (grid[0], grid[1][:1]) if grid is not None else None
                reader = Reader(input_name, images[:CALIB_BATCH], CALIB_BATCH, static_batch, one_grid)
            else:
                calib_method = {
                    "minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                    "entropy": CalibrationMethod.Entropy, "distribution": CalibrationMethod.Distribution,
                }[method]
            quantize_static(
                str(in_path), str(out), reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=ops,
                nodes_to_exclude=exclude_nodes,
                per_channel=True,
                reduce_range=False,
                activation_type=qtype,
                weight_type=qtype,
                calibrate_method=calib_method,
                use_external_data_format=big,
                extra_options=extra,
            )
    except UserError:
        raise
    except Exception as e:
        if is_environment_error(e):
            raise
        raise UserError(
            f"ONNX Runtime could not quantize {user_path.name} to {to}: {type(e).__name__}: {str(e)[:400]}",
            "Check that the model runs on ONNX Runtime (`lookupvit validate`), or keep the failing op "
            "in float with --keep-fp32.",
        ) from None
    quantized = onnx.load(str(out))  # loads external data too, before the scratch folder goes
    rewired = _float_consumers_read_float(quantized, ops, exclude_nodes)
    scale_rule = {
        ("int8", "minmax"): "amax / 127 (amax = max |x| over the calibration images)",
        ("int8", "percentile"): f"{PERCENTILE}th percentile of |x| / 127",
        ("int8", "entropy"): "threshold minimising KL divergence / 127",
        ("fp8", "minmax"): "amax / 448 (amax = max |x| over the calibration images; weights per channel)",
        ("fp8", "distribution"): "ONNX Runtime's fp8 rule: std(x) / std(E4M3FN values)",
    }[(to, method)]
    settings = {
        "library": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "op_types": ops,
        "nodes_excluded": exclude_nodes,
        "activation_type": str(qtype.name),
        "weight_type": str(qtype.name),
        "per_channel_weights": True,
        "symmetric": True,
        "bias": "float",
        "calibration_method": method,
        "scale_rule": scale_rule,
        **({"percentile": PERCENTILE} if method == "percentile" else {}),
        "float_consumers_rewired": rewired,
    }
    return quantized, settings


def _float_consumers_read_float(model: Any, ops: list[str], exclude_nodes: list[str]) -> int:
    """Give the float consumers of a quantized activation the float tensor back.

    ONNX Runtime's QDQ quantizer routes *every* consumer of a quantized activation through the
    DequantizeLinear (e.g. the token-pooling ReduceMean that shares the final LayerNorm output with
    a quantized MatMul), so those consumers would read the int8-rounded values. TensorRT fuses a
    Q/DQ pair only into the quantized op; an op that computes in float should read the float tensor.
    ONNX Runtime has no option for this, hence this small rewiring. Returns the inputs rewired.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for node in g.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or (node.op_type in ops and node.name not in exclude_nodes):
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":  # an activation; weights have no Q
                node.input[i] = q.input[0]
                rewired += 1
    return rewired
