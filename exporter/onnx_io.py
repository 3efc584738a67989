"""Reading and writing ONNX files: one place for the checks a user's file gets, and the atomic saver.

External data (ONNX's ``external_data`` ``location`` field) is a path relative to the model's
folder; a location that is absolute, climbs out with ``..`` or leaves through a symbolic link would
let a model file make a runtime read any file, so it is refused before any runtime sees the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .io import json_text, sha256_file, staged

if TYPE_CHECKING:
    import onnx

META_PREFIX = "lookupvit."
PROTOBUF_LIMIT = 2**31 - 2**24  # a serialised model above this keeps its weights in external data


def load_onnx(path: str | Path, weights: bool = True) -> onnx.ModelProto:
    """Load ``path`` (with its external weights unless ``weights=False``) or raise a UserError."""
    import onnx

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an ONNX model file.",
                        "Pass the path of an .onnx file inside it, e.g. one written by `lookupvit export`.")
    if not path.is_file():
        raise UserError(f"{path} does not exist.", "Pass the path of an .onnx model, e.g. one written by `lookupvit export`.")
    try:
        model = onnx.load(str(path), load_external_data=False)
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
    if _check_external_data(model, path) and weights:
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except OSError:
            raise
        except Exception as e:
            raise UserError(f"The external data of {path} cannot be read ({type(e).__name__}: {e}).",
                            "Keep the .data file(s) written with the model next to it.") from None
    return model


def _check_external_data(model: onnx.ModelProto, path: Path) -> bool:
    """Refuse external data outside the model's folder (see the module docstring); whether there is any."""
    import onnx

    from .safe_paths import PathEscape, confined

    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR
    ]
    found = False
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        try:
            confined(path.parent, location, path, f"{t.name}.external_data.location")
        except PathEscape:
            raise UserError(
                f"{path} keeps the weights of {t.name!r} in {location!r}, outside the model's folder "
                f"{path.parent}: refused (a model file must not make the tool read other files).",
                "Keep external data files next to the model (location = a file name in its folder), e.g. "
                "re-save it with onnx.save(model, path, save_as_external_data=True).",
            ) from None
    return found


# Operator domains ONNX Runtime implements (the ONNX standard, ONNX-ML and its contrib ops).
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc",
                 "ai.onnx.preview.training", "ai.onnx.training")


def check_image_model(path: str | Path, grid_input: str | None = None) -> Any:
    """The checks before running a user's model on images: one graph input (the image batch; a
    dynamic-grid model also its declared ``grid_input``) and only operators of known domains (or the
    model's own functions). Returns the model without its weights."""
    path = Path(path)
    model = load_onnx(path, weights=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits and i.name != grid_input]
    if len(inputs) != 1:
        raise UserError(
            f"{path} has {len(inputs)} graph inputs ({', '.join(inputs) or 'none'}); a LookupViT takes one, "
            "the image batch.",
            "Validate a model with a single image input, e.g. one written by `lookupvit export`.",
        )
    functions = {(f.domain, f.name) for f in model.functions}
    unknown = sorted({f"{n.domain}:{n.op_type}" for n in model.graph.node
                      if n.domain not in KNOWN_DOMAINS and (n.domain, n.op_type) not in functions})
    if unknown:
        raise UserError(
            f"{path} uses operators of domains ONNX Runtime does not know: {', '.join(unknown[:5])}.",
            "Export the model with standard ONNX operators (`lookupvit export`), or register the custom "
            "operators' library with the runtime and validate it there.",
        )
    return model


def lookupvit_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The ``lookupvit.*`` metadata_props of ``model``, without the prefix."""
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def save_onnx(model: onnx.ModelProto, path: str | Path, sidecar: Callable[[str], Any] | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; above the protobuf limit its weights go to
    ``<path>.data`` next to it. ``sidecar``, given the written model's sha256, returns the JSON
    document for ``<path>.json``: model, data and sidecar are committed together (:func:`io.staged`),
    so a failure (a full disk) leaves none of them."""
    import onnx

    path = Path(path)
    with staged(path) as folder:
        if model.ByteSize() < PROTOBUF_LIMIT:
            onnx.save(model, str(folder / path.name))
        else:
            onnx.save(model, str(folder / path.name), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=f"{path.name}.data")
        if sidecar is not None:
            (folder / f"{path.name}.json").write_text(json_text(sidecar(sha256_file(folder / path.name))))
    return path


def onnx_static_batch(path: str | Path) -> int | None:
    """The batch an ONNX model's first input is fixed to (None: a dynamic batch)."""
    model = load_onnx(path, weights=False)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else None
