"""`lookupvit validate ENGINE.plan`: a TensorRT engine against its PyTorch reference.

The same comparison, tolerance table and report as for an ONNX model (:mod:`exporter.validate`),
with the candidate a Polygraphy ``TrtRunner`` over the engine (:func:`.trt.trt_runner`). The
reference is found through the engine's sidecar: sidecar -> the ONNX model it was built from ->
that model's ``lookupvit.*`` metadata (variant or factory, grid, weights). TensorRT and the GPU are
checked before the reference model is loaded, so a machine without them fails fast.

A dynamic-grid engine (docs/dynamic-grid.md) is validated at every grid of its model, as
its ONNX graph is: the reference set to the grid, the engine fed the grid input of that shape, and
the runner selecting the optimisation profile of that grid and batch from the sidecar
(:class:`.plan.ProfileSelector`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.tensorrt.sidecar import ENGINE_SUFFIX, read_sidecar, sidecar_path
from ..errors import UntrustedFile, UserError
from ..io import sha256_file, write_json
from ..safe_paths import confined

ENGINE_SUFFIXES = (ENGINE_SUFFIX, ".engine", ".trt")


def is_engine_path(path: str | Path) -> bool:
    return str(path).endswith(ENGINE_SUFFIXES)


def engine_source(engine_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The ONNX model an engine was built from, and the engine's sidecar."""
    engine = Path(engine_path)
    if not engine.is_file():
        raise UserError(
            f"Engine {engine} does not exist.",
            "Build it with: lookupvit build MODEL.onnx --profile NAME (engines land in DIR/engines/<profile>/).",
        )
    side = sidecar_path(engine)
    meta = read_sidecar(side)
    if meta is None or not isinstance(meta.get("onnx"), dict) or "path" not in meta["onnx"]:
        raise UserError(
            f"{engine} has no readable sidecar {side.name}, so the model it was built from is unknown.",
            "Validate engines built by `lookupvit build` (it writes the sidecar), or validate the ONNX model itself.",
        )
    recorded, digest = meta["onnx"].get("path"), meta["onnx"].get("sha256")
    if not isinstance(recorded, str) or not recorded.endswith(".onnx"):
        raise UntrustedFile(f"{side}: key onnx.path does not name an .onnx model.",
                            "Rebuild the engine with `lookupvit build` (it writes the sidecar).")
    onnx_path = Path(recorded)
    if not onnx_path.is_absolute():
        onnx_path = confined(side.parent, recorded, side, "onnx.path")
    if not onnx_path.is_file():
        raise UserError(
            f"The ONNX model {onnx_path} that {engine.name} was built from is not there any more.",
            "Rebuild the engine from its ONNX model, or restore the model at that path.",
        )
    if not isinstance(digest, str) or sha256_file(onnx_path) != digest:  # only the model it was built from
        raise UntrustedFile(
            f"{side}: key onnx.path names {onnx_path}, whose content is not the model {engine.name} was built from "
            "(its sha256 differs from the key onnx.sha256).",
            "Rebuild the engine from the model you mean (`lookupvit build MODEL.onnx --profile NAME`).",
        )
    return onnx_path, meta


def _batch(meta: dict[str, Any], data: str) -> int | None:
    """A validation batch inside the engine's batch range (None: validate's own default fits)."""
    from ..validate.validate import RANDOM_BATCH

    batch = meta.get("profile", {}).get("settings", {}).get("batch", {})
    lo, hi = int(batch.get("min", 1)), int(batch.get("max", 1 << 30))
    default = RANDOM_BATCH if data == "random" else 32
    return None if lo <= default <= hi else min(max(default, lo), hi)


def validate_engine(
    engine_path: str | Path,
    variant: str | None = None,
    factory: str | None = None,
    weights: str | None = None,
    data: str = "auto",
    iterations: int | None = None,
    precision: str | None = None,
    out: str | Path | None = None,
) -> Any:
    """TensorRT on ``engine_path`` against the PyTorch reference on ``data`` (``"auto"``: the data the
    model declares, else random; exporter.validate.validate); writes the report to ``out`` when given.
    Returns :class:`exporter.validate.ValidationReport`."""
    from ..backends.tensorrt.runner import trt_runner

    engine = Path(engine_path)
    onnx_path, meta = engine_source(engine)
    candidate = trt_runner(engine, name="tensorrt")  # fails here, naming the fix, without TensorRT or a GPU

    from ..export import load_source, read_model_metadata
    from ..validate import reference_source, run_validation
    from ..validate.validate import resolve_data

    onnx_meta = read_model_metadata(onnx_path)
    src = reference_source(onnx_path, variant, factory, weights)
    loaded = load_source(src)
    precision = precision or str(meta.get("precision", "fp32"))
    trt_info = meta.get("tensorrt", {})
    desc = f"tensorrt ({trt_info.get('backend', 'tensorrt')} {trt_info.get('version', '?')}, profile {meta.get('profile', {}).get('name', '?')})"
    data = resolve_data(data, onnx_path)
    report = run_validation(candidate, desc, engine, loaded, src, data, iterations, precision, _batch(meta, data),
                            onnx_meta.grid_input, onnx_meta.grids)
    if out is not None:
        write_json(out, report.to_dict())
    return report
