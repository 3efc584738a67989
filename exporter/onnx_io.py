"""Reading ONNX files given by the user: one place for the checks and the error they get."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import onnx

META_PREFIX = "lookupvit."


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
