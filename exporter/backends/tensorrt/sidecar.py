"""An engine's sidecar (``<model>.<precision>.plan.json``, written by exporter/engine/build.py): where it
is, and reading it as untrusted data (bounded, then typed: exporter/schema/sidecars.py).
A runner reads which TensorRT built the engine and which optimisation profile serves which batch and
grid from it; ``validate`` finds an engine's PyTorch reference through it (:func:`engine_source`:
sidecar -> the ONNX model it was built from, checked by sha256 -> that model's metadata)."""

from __future__ import annotations

from pathlib import Path

from ...errors import UntrustedFile, UserError
from ...io import sha256_file
from ...safe_paths import confined
from ...schema.sidecars import EngineSidecar, read_engine_sidecar

ENGINE_SUFFIX = ".plan"
SIDECAR_SUFFIX = ".plan.json"
ENGINE_SUFFIXES = (ENGINE_SUFFIX, ".engine", ".trt")


def is_engine_path(path: str | Path) -> bool:
    return str(path).endswith(ENGINE_SUFFIXES)


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    name = engine.name.removesuffix(ENGINE_SUFFIX)
    return engine.with_name(name + SIDECAR_SUFFIX)


def engine_source(engine_path: str | Path) -> tuple[Path, EngineSidecar]:
    """The ONNX model an engine was built from, and the engine's sidecar."""
    engine = Path(engine_path)
    if not engine.is_file():
        raise UserError(
            f"Engine {engine} does not exist.",
            "Build it with: lookupvit build MODEL.onnx --profile NAME (engines land in DIR/engines/<profile>/).",
        )
    side = sidecar_path(engine)
    meta = read_engine_sidecar(side)
    if meta is None or meta.onnx.path is None:
        raise UserError(
            f"{engine} has no readable sidecar {side.name}, so the model it was built from is unknown.",
            "Validate engines built by `lookupvit build` (it writes the sidecar), or validate the ONNX model itself.",
        )
    recorded, digest = meta.onnx.path, meta.onnx.sha256
    if not recorded.endswith(".onnx"):
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
    if digest is None or sha256_file(onnx_path) != digest:  # only the model it was built from
        raise UntrustedFile(
            f"{side}: key onnx.path names {onnx_path}, whose content is not the model {engine.name} was built from "
            "(its sha256 differs from the key onnx.sha256).",
            "Rebuild the engine from the model you mean (`lookupvit build MODEL.onnx --profile NAME`).",
        )
    return onnx_path, meta
