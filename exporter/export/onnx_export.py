"""PyTorch -> ONNX with torch's dynamo exporter, one model per compressed grid.

- Opset 23 by default: ``scaled_dot_product_attention`` becomes the ONNX ``Attention`` op,
  LayerNorm ``LayerNormalization`` and GELU ``Gelu``. Lower opsets (down to 18, the lowest the
  dynamo exporter writes) are accepted where the exporter manages them.
- Dynamic batch by default (input ``images`` with a symbolic first dimension ``batch``).
- The model's provenance goes into ``metadata_props`` (prefix ``lookupvit.``) so a reference
  PyTorch model can be rebuilt from the ONNX file alone, and into a JSON sidecar
  ``<model>.onnx.json`` with hashes, settings, tool versions and timings.
- ``onnx.checker`` (full check) and shape inference run on every export. Models over 2 GB keep
  their weights in an external data file ``<model>.onnx.data`` next to them.
- Writes are atomic; an export whose sidecar says it was made from the same inputs is reused.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import UserError
from ..io import sha256_file, write_json
from ..models.config import grid_dims
from ..onnx_io import META_PREFIX, load_onnx, lookupvit_metadata
from ..versions import tool_versions
from .source import ModelSource, load_source, source_to_json

MIN_OPSET, MAX_OPSET = 18, 23
INPUT_NAME = "images"


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    reused: bool
    seconds: float
    grid: str | None
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UserError(
            f"The exporter cannot produce opset {opset}.",
            f"torch's dynamo exporter writes opsets {MIN_OPSET} to {MAX_OPSET}; use --opset 23 (default) "
            "for the ONNX Attention op, or 18 to 22 for older runtimes.",
        )
    return opset


def check_batch(batch: str | int) -> int | None:
    """``"dynamic"`` -> None; a positive integer -> that static batch size."""
    if str(batch) == "dynamic":
        return None
    try:
        n = int(batch)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"--batch {batch!r} is neither 'dynamic' nor a positive integer.", "Use --batch dynamic or e.g. --batch 8.")
    return n


def _cache_key(src: ModelSource, batch: int | None, opset: int) -> dict[str, object]:
    return {
        "source": json.loads(source_to_json(src)),
        "weights": src.weights_id(),
        "batch": batch or "dynamic",
        "opset": opset,
        "tool_version": __version__,
        "torch": torch.__version__,
    }


def read_sidecar(model_path: Path) -> dict | None:
    sidecar = Path(f"{model_path}.json")
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def _reusable(path: Path, key: dict[str, object]) -> bool:
    meta = read_sidecar(path)
    return (
        meta is not None
        and meta.get("key") == key
        and path.is_file()
        and all((path.parent / name).is_file() for name in meta.get("settings", {}).get("external_data", []))
        and meta.get("output", {}).get("sha256") == sha256_file(path)
    )


@contextlib.contextmanager
def _quiet_exporter():
    """torch.export and onnxscript log a lot at INFO/WARNING; keep the terminal for our output."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(
    src: ModelSource,
    out_dir: str | Path,
    batch: str | int = "dynamic",
    opset: int = 23,
    force: bool = False,
) -> ExportResult:
    """Export ``src`` to ``out_dir/<name>[_g<grid>].onnx``; reuse an identical earlier export."""
    import onnx

    opset = check_opset(opset)
    static_batch = check_batch(batch)
    out_dir = Path(out_dir)
    path = out_dir / f"{src.file_stem()}.onnx"
    key = _cache_key(src, static_batch, opset)
    grid_text = grid_dims(src.grid) if src.grid else None
    if not force and _reusable(path, key):
        return ExportResult(path, Path(f"{path}.json"), True, 0.0, grid_text, path.stat().st_size)

    loaded = load_source(src)
    example = torch.randn(static_batch or 2, *loaded.input_shape)
    dynamic = None if static_batch else {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=4096)}}
    t0 = time.perf_counter()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                loaded.module,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=loaded.output_names,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as e:
        raise UserError(
            f"torch's ONNX exporter failed for {src.name} at opset {opset}: {type(e).__name__}: {str(e)[:400]}",
            "Try the default --opset 23; a --model module must be traceable by torch.export "
            "(no data-dependent Python control flow in forward).",
        ) from None
    export_seconds = time.perf_counter() - t0

    meta = {
        "variant": src.variant or "",
        "factory": src.factory or "",
        "grid": grid_text or "",
        "image_size": str(loaded.input_shape[-1]),
        "input_shape": json.dumps(list(loaded.input_shape)),
        "mean": json.dumps(list(loaded.mean)),
        "std": json.dumps(list(loaded.std)),
        "opset": str(opset),
        "head": src.head,
        "tool_version": __version__,
        "weights": src.weights_id(),
        "source": source_to_json(src),
    }
    for k, v in meta.items():
        program.model.metadata_props[META_PREFIX + k] = v

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=out_dir))
    try:
        tmp = tmp_dir / path.name
        with _quiet_exporter():
            program.save(str(tmp), external_data=None)  # external data is used above 2 GB
        onnx.checker.check_model(str(tmp), full_check=True)
        onnx.shape_inference.infer_shapes_path(str(tmp), str(tmp))
        data_files = [p for p in tmp_dir.iterdir() if p.name != path.name]
        for extra in data_files:  # external data first, then the model that points at it
            os.replace(extra, out_dir / extra.name)
        os.replace(tmp, path)
    except onnx.checker.ValidationError as e:
        raise UserError(f"The exported model fails onnx.checker: {e}") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    total = time.perf_counter() - t0
    size = path.stat().st_size + sum((out_dir / p.name).stat().st_size for p in data_files)
    sidecar = write_json(
        f"{path}.json",
        {
            "kind": "onnx-export",
            "key": key,
            "inputs": {
                "variant": src.variant, "factory": src.factory,
                "weights": {"path": src.weights, "id": src.weights_id()},
            },
            "settings": {
                "grid": grid_text, "image_size": loaded.input_shape[-1], "batch": static_batch or "dynamic",
                "opset": opset, "head": src.head, "input_name": INPUT_NAME, "outputs": loaded.output_names,
                "external_data": [p.name for p in data_files],
            },
            "output": {"path": path.name, "sha256": sha256_file(path), "bytes": size},
            "versions": tool_versions(),
            "timings": {"export_s": round(export_seconds, 3), "total_s": round(total, 3)},
        },
    )
    return ExportResult(path, sidecar, False, total, grid_text, size)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``lookupvit.*`` metadata of an ONNX model (without loading its weights)."""
    return lookupvit_metadata(load_onnx(path, weights=False))
