"""Reading ONNX files given by the user: one place for the checks and the error they get."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError
from .io import atomic_path

if TYPE_CHECKING:
    import onnx

META_PREFIX = "lookupvit."
PROTOBUF_LIMIT = 2**31 - 2**24  # a serialised model above this keeps its weights in external data


def load_onnx(path: str | Path, weights: bool = True) -> onnx.ModelProto:
    """Load ``path`` (with its external weights unless ``weights=False``) or raise a UserError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist.", "Pass the path of an .onnx model, e.g. one written by `lookupvit export`.")
    try:
        model = onnx.load(str(path), load_external_data=weights)
    except Exception as e:
        raise UserError(
            f"{path} is not a readable ONNX model ({type(e).__name__}).",
            "Pass an .onnx file written by `lookupvit export` or another ONNX exporter.",
        ) from None
    if not model.graph.output or not model.opset_import:
        raise UserError(
            f"{path} is not a readable ONNX model (no graph outputs or opset).",
            "Pass an .onnx file written by `lookupvit export` or another ONNX exporter.",
        )
    return model


def lookupvit_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The ``lookupvit.*`` metadata_props of ``model``, without the prefix."""
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` atomically; above the protobuf limit its weights go to
    ``<path>.data`` next to it (written first, then the model that points at it)."""
    import onnx

    path = Path(path)
    if model.ByteSize() < PROTOBUF_LIMIT:
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        data_name = f"{path.name}.data"
        onnx.save(model, str(tmp_dir / path.name), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data_name)
        os.replace(tmp_dir / data_name, path.parent / data_name)
        os.replace(tmp_dir / path.name, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path
