"""``convert_precision``: an fp32 ONNX graph -> the same graph declaring fp16, bf16, int8 or fp8.

docs/architecture.md, The stages and Precisions. The precision lives in the graph (TensorRT 11 builds strongly typed), so
this stage writes a new ONNX file; ONNX Runtime and TensorRT both run that same file. The output
carries the input's ``lookupvit.*`` metadata plus ``lookupvit.precision``, is written atomically,
and gets a JSON sidecar ``<output>.json`` (settings, calibration, op and type counts, hashes,
versions, time). The function always converts; whether an earlier conversion stands is the folder's
manifest's decision (:func:`exporter.pipeline.steps.precision_step`, keyed by :func:`conversion_settings`
and the input's sha256).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..data import InputSpec
from ..errors import UserError
from ..io import check_writable_file, private_folder, sha256_file
from ..onnx_io import META_PREFIX, PROTOBUF_LIMIT, load_onnx, lookupvit_metadata, save_onnx
from ..precisions import get_precision
from ..versions import package_version, tool_versions
from .cast import cast_model, resolve_keep_fp32
from .quantize import (
    AUTO_CALIB,
    CALIB_METHODS,
    DEFAULT_CALIB_SIZE,
    calibration_images,
    quantize_model,
    resolve_calibration,
)
from .summary import summarize
from .tensorrt_form import TensorRTForm, tensorrt_form

PRECISION_KEY = META_PREFIX + "precision"
# the output's size against the fp32 input's; int8/fp8 also hold ONNX Runtime's scratch copies meanwhile
OUTPUT_SIZE_FACTOR = {"fp32": 1.0, "fp16": 0.5, "bf16": 0.5, "int8": 2.5, "fp8": 2.5}


@dataclass
class PrecisionReport:
    input: str
    output: str
    sidecar: str
    precision: str
    reused: bool  # an earlier conversion stood (its folder's manifest said so)
    seconds: float
    settings: dict[str, Any]
    calibration: dict[str, Any] | None
    islands: dict[str, Any] | None  # fp16/bf16: what stays fp32
    before: dict[str, Any]  # graph summary of the input
    after: dict[str, Any]  # graph summary of the output
    hashes: dict[str, str]
    versions: dict[str, str | None] = field(default_factory=tool_versions)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conversion_settings(
    to: str, calib: str = AUTO_CALIB, calib_size: int = DEFAULT_CALIB_SIZE, keep_fp32: str | list[str] | None = None,
    calib_method: str | None = None, target: str = "onnxruntime",
) -> dict[str, Any]:
    """What a conversion is made from besides its input graph: the stage's settings in the manifest.
    The arguments as given (their defaults resolve against the input graph, whose sha256 the manifest
    keys with them), the calibration data's identity, and the converters' versions."""
    to = check_precision(to)
    quantizing = to in ("int8", "fp8")
    keep = keep_fp32 if keep_fp32 is None or isinstance(keep_fp32, str) else ",".join(keep_fp32)
    return {
        "to": to, "target": target, "keep_fp32": keep,
        "calibration": {"data": _dataset_id(calib), "size": calib_size, "method": calib_method} if quantizing else None,
        "tool_version": __version__,
        "onnxruntime": package_version("onnxruntime"),
        "onnxconverter-common": package_version("onnxconverter-common"),
    }


def default_calib_method(to: str) -> str | None:
    return CALIB_METHODS[to][0] if to in CALIB_METHODS else None


def check_precision(to: str) -> str:
    return get_precision(to).name


def input_spec_of(model: Any, meta: dict[str, str]) -> tuple[InputSpec, str | None]:
    """What the model takes, from its ``lookupvit.*`` metadata, else from its input's declared shape."""
    from ..models.config import IMAGENET_MEAN, IMAGENET_STD

    if "input_shape" in meta:
        shape = tuple(json.loads(meta["input_shape"]))
        mean = tuple(json.loads(meta.get("mean", "null")) or (0.5,) * shape[0])
        std = tuple(json.loads(meta.get("std", "null")) or (0.5,) * shape[0])
        return InputSpec(shape, mean, std), None
    inits = {t.name for t in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in inits), None)
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in first.type.tensor_type.shape.dim] if first else []
    if len(dims) < 4 or 0 in dims[1:]:
        raise UserError(
            "The model has no lookupvit metadata and its input has no static (C, H, W) shape, so calibration "
            "images cannot be prepared for it.",
            "Convert a model written by `lookupvit export`, or export with a static image size.",
        )
    c = dims[1]
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ((0.5,) * c, (0.5,) * c)
    note = f"no lookupvit metadata: calibration images normalised with mean {list(mean)} / std {list(std)}"
    return InputSpec(tuple(dims[1:]), tuple(mean), tuple(std)), note


def _dataset_id(calib: str) -> str:
    """A cheap identity of the calibration data, for the stage's settings (:func:`conversion_settings`)."""
    if calib in ("auto", "digits", "photos"):  # bundled data (auto resolves from the model's input)
        return calib
    p = Path(calib)
    if p.is_file():
        return f"{p.resolve()}:sha256:{sha256_file(p)}"
    if p.is_dir():
        entries = sorted((str(f.relative_to(p)), f.stat().st_size, int(f.stat().st_mtime)) for f in p.rglob("*") if f.is_file())
        digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
        return f"{p.resolve()}:files:{len(entries)}:{digest}"
    return calib


def _sidecar_path(out: Path) -> Path:
    return Path(f"{out}.json")


def _set_metadata(model: Any, source_meta: list[tuple[str, str]], precision: str, extra: dict[str, str]) -> None:
    """The input's metadata_props (tool-added keys such as onnx.infer dropped), plus the precision."""
    del model.metadata_props[:]
    for k, v in source_meta:
        if k != PRECISION_KEY:
            model.metadata_props.add(key=k, value=v)
    for k, v in {PRECISION_KEY: precision, **extra}.items():
        model.metadata_props.add(key=k, value=v)


TARGETS = ("onnxruntime", "tensorrt")  # the runtime a converted graph is written for


def convert_precision(
    in_path: str | Path,
    out_path: str | Path,
    to: str,
    calib: str = AUTO_CALIB,
    calib_size: int = DEFAULT_CALIB_SIZE,
    keep_fp32: str | list[str] | None = None,
    *,
    calib_method: str | None = None,
    target: str = "onnxruntime",
) -> PrecisionReport:
    """Convert the fp32 graph ``in_path`` to ``to`` and write it to ``out_path`` (see module docstring).

    - ``fp16``/``bf16``: cast, with fp32 inputs/outputs and fp32 islands for ``keep_fp32`` (op types
      and node names; default: LayerNormalization, Softmax (+ Attention's softmax), reductions).
    - ``int8``/``fp8``: Q/DQ pairs calibrated on ``calib`` (``digits``: its training split; or a
      dataset path), ``calib_size`` images, ``calib_method`` (int8: minmax | percentile | entropy;
      fp8: distribution). ``keep_fp32`` names op types or nodes to leave unquantized.
    - ``fp32``: the graph unchanged, labelled fp32 (so every precision goes through one stage).
    """
    import onnx

    t0 = time.perf_counter()
    to = check_precision(to)
    in_path, out_path = Path(in_path), Path(out_path)
    if out_path.resolve() == in_path.resolve():
        raise UserError("The output would overwrite the input.", "Give -o a different file, e.g. model.fp16.onnx.")
    if out_path.suffix != ".onnx":
        raise UserError(f"Output {out_path} does not end in .onnx.", "Name the output e.g. model.int8.onnx.")
    model = load_onnx(in_path)
    meta = lookupvit_metadata(model)
    source_props = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("onnx.")]
    declared = meta.get("precision", "fp32")
    before = summarize(model)
    if declared != "fp32" or before.quantize_linear or before.dequantize_linear or "fp16" in before.initializers or "bf16" in before.initializers:
        raise UserError(
            f"{in_path.name} is already a {declared if declared != 'fp32' else 'reduced-precision'} graph.",
            "Convert from the fp32 graph written by `lookupvit export`; precisions are not stacked.",
        )

    quantizing = to in ("int8", "fp8")
    method = calib_method or default_calib_method(to)
    if quantizing and method not in CALIB_METHODS[to]:
        raise UserError(f"Calibration method {method!r} is not available for {to}.", f"{to} supports: {', '.join(CALIB_METHODS[to])}.")
    if not quantizing and calib_method is not None:
        raise UserError(f"--calib-method applies to int8 and fp8, not {to}.")
    if quantizing and calib_size < 1:
        raise UserError(f"--calib-size {calib_size} must be at least 1.", "Use e.g. --calib-size 256.")
    if target not in TARGETS:
        raise UserError(f"Unknown conversion target {target!r}.", f"Use one of {', '.join(TARGETS)}.")
    if to == "fp32" and keep_fp32:
        raise UserError("--keep-fp32 has no meaning for --to fp32: everything is fp32.")
    default_keep = "Attention" if target == "tensorrt" else "none"  # int8/fp8: TensorRT's attention core in float
    keep_ops, keep_nodes = (
        resolve_keep_fp32(keep_fp32, model) if not quantizing else resolve_keep_fp32(keep_fp32 or default_keep, model)
    )
    if quantizing:  # "auto" names the bundled data for this model's input
        calib = resolve_calibration(calib, input_spec_of(model, meta)[0])
    input_sha = sha256_file(in_path)
    # before the work: the output folder takes about this much (int8/fp8 also ONNX Runtime's scratch copies)
    check_writable_file(out_path, need_bytes=int(in_path.stat().st_size * OUTPUT_SIZE_FACTOR[to]))
    notes: list[str] = []
    calibration: dict[str, Any] | None = None
    islands: dict[str, Any] | None = None
    settings: dict[str, Any] = {"to": to, "target": target}
    if target == "tensorrt":  # the attention form TensorRT builds in this precision (tensorrt_form.py)
        model, form = written_for_tensorrt(model, to, in_path)
        settings["tensorrt_form"] = form.to_dict()
        notes += form.notes
    if to == "fp32":
        out_model = model
    elif to in ("fp16", "bf16"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out_model, info = cast_model(model, to, keep_ops, keep_nodes, softmax_precision=target != "tensorrt")
        notes += _summarise_cast_warnings(caught, to)
        islands = asdict(info)
        settings.update(
            library="onnxconverter-common convert_float_to_float16" + (" + bf16 retyping" if to == "bf16" else ""),
            io_types="fp32",
            keep_fp32={"ops": keep_ops, "nodes": keep_nodes},
        )
    else:
        spec, note = input_spec_of(model, meta)
        if note:
            notes.append(note)
        images, where = calibration_images(calib, spec, calib_size)
        with private_folder(out_path, ".scratch") as scratch:  # removed on every way out, Ctrl-C included
            source = in_path
            if target == "tensorrt":  # quantize the rewritten graph: ONNX Runtime's quantizer reads a file
                source = save_onnx(model, scratch / in_path.name)
                if "Attention" in keep_ops:  # the attention core, now two batched MatMuls each
                    keep_nodes = [*keep_nodes, *form.core_matmuls]
            del model
            out_model, qsettings = quantize_model(source, to, images, method, keep_ops, keep_nodes, scratch)  # type: ignore[arg-type]
        settings.update(qsettings, keep_fp32={"ops": keep_ops, "nodes": keep_nodes})
        if target == "tensorrt" and "Attention" in keep_ops and form.core_matmuls:
            notes.append(f"the attention core ({len(form.core_matmuls)} batched MatMuls) kept in float, as NVIDIA's "
                         "Model Optimizer does; --keep-fp32 none quantizes it (fused int8/fp8 MHA)")
        calibration = {**where, "seed": 0, "batch": 32, "method": method, "calib_size": calib_size}
        if where["samples"] < calib_size:
            notes.append(f"calibration used all {where['samples']} images of {where['source']} (fewer than {calib_size})")

    _set_metadata(out_model, source_props, to, {META_PREFIX + "precision_source": in_path.name})
    try:
        onnx.checker.check_model(out_model, full_check=out_model.ByteSize() < PROTOBUF_LIMIT)
    except Exception as e:  # ValidationError, or InferenceError from the full (typed) check
        raise UserError(
            f"The {to} graph fails onnx.checker: {type(e).__name__}: {str(e)[:400]}",
            "Keep the offending op in fp32 with --keep-fp32, or report the graph that triggers this.",
        ) from None
    after = summarize(out_model)
    reports: list[PrecisionReport] = []

    def sidecar(output_sha256: str) -> dict[str, Any]:
        report = PrecisionReport(
            input=str(in_path), output=str(out_path), sidecar=str(_sidecar_path(out_path)), precision=to, reused=False,
            seconds=round(time.perf_counter() - t0, 3), settings=settings, calibration=calibration, islands=islands,
            before=before.to_dict(), after=after.to_dict(weights=True),
            hashes={"input_sha256": input_sha, "output_sha256": output_sha256},
            notes=notes,
        )
        reports.append(report)
        return {
            "kind": "precision",
            **report.to_dict(),
            "versions": {**report.versions, "onnxconverter-common": package_version("onnxconverter-common")},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }

    save_onnx(out_model, out_path, sidecar=sidecar)  # the graph and its sidecar are committed together
    return reports[0]


def written_for_tensorrt(model: Any, to: str, in_path: Path) -> tuple[Any, TensorRTForm]:
    """``model`` in the attention form TensorRT builds in ``to``, checked with ONNX Runtime against the
    graph it came from (the rewrite is exact up to float rounding; fp32 tolerance)."""
    rewritten, form = tensorrt_form(model, to)
    if rewritten is model:
        return model, form
    from ..passes.check import compare_outputs, run_model, seeded_feeds

    feeds = seeded_feeds(model)
    check = compare_outputs(run_model(model, feeds), run_model(rewritten, feeds), "fp32")
    if not check.passed:
        raise UserError(
            f"Writing {in_path.name} in TensorRT's {to} form changes its outputs on ONNX Runtime: {check.reason}.",
            "Convert with --target onnxruntime, or report the graph that triggers this.",
        )
    return rewritten, form


def _summarise_cast_warnings(caught: list[warnings.WarningMessage], to: str) -> list[str]:
    """onnxconverter-common warns once per constant it clamps into the fp16 range (16 lines for a
    224-px model); one note instead. Other warnings are passed on."""
    clamped = [str(w.message) for w in caught if "will be truncated" in str(w.message)]
    for w in caught:
        if "will be truncated" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not clamped:
        return []
    return [f"{to}: {len(clamped)} constant value(s) outside the fp16 range were clamped to it "
            f"(e.g. {clamped[0].removeprefix('the float32 number ')})"]
