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
- Writes are atomic, model and sidecar together (:func:`exporter.io.staged`). The output folder is
  checked for writing, and the memory the export needs is estimated from the configuration's shapes,
  before any model is built. This function always exports; whether an earlier export stands is the
  folder's manifest's decision (:func:`exporter.pipeline.steps.export_step`, keyed by :func:`export_key`).
- ``ModelSource.grids`` set (``export --dynamic-grid``): one graph for every listed grid, chosen per
  call by a second input ``grid`` whose shape is the grid (:mod:`.grid_input`); the allowed grids
  and the input contract go into the metadata (``lookupvit.grids``, ``lookupvit.grid_input``).
- The batch dimension is made dynamic positionally (``dynamic_shapes`` as a tuple over
  ``forward``'s arguments), so a module's argument may have any name.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import UserError
from ..io import check_memory, check_writable_dir, json_text, sha256_file, staged
from ..models import get_variant
from ..models.config import grid_dims
from ..models.memory import BYTES, export_bytes
from ..onnx_io import META_PREFIX, load_onnx, lookupvit_metadata
from ..versions import tool_versions
from .grid_input import add_grid_check, export_example_and_dims, grid_input_for
from .source import ModelSource, load_source, source_to_json

MIN_OPSET, MAX_OPSET = 18, 23
DEFAULT_OPSET = MAX_OPSET  # the ONNX Attention op; the one default of `export --opset`, the chain and the library
INPUT_NAME = "images"


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    reused: bool  # an earlier export stood (its folder's manifest said so); the function itself always exports
    seconds: float
    grid: str | None
    size_bytes: int
    data_files: list[Path] = field(default_factory=list)  # external weights (models over 2 GB), next to path

    @property
    def files(self) -> list[Path]:
        """Every file the export wrote: the model, its external data and its sidecar."""
        return [self.path, *self.data_files, self.sidecar]

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "sidecar": str(self.sidecar), "reused": self.reused, "seconds": self.seconds,
                "grid": self.grid, "size_bytes": self.size_bytes, "data_files": [p.name for p in self.data_files]}


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


def export_key(src: ModelSource, batch: int | None, opset: int) -> dict[str, object]:
    """What an export is made from besides its weights file: the stage's settings in the manifest."""
    return {
        "source": json.loads(source_to_json(src)),
        "weights": src.weights_id(),
        "batch": batch or "dynamic",
        "opset": opset,
        "tool_version": __version__,
        "torch": torch.__version__,
    }


@contextlib.contextmanager
def _quiet_exporter():
    """torch.export and onnxscript log a lot at INFO/WARNING, and print graphs on stderr when
    tracing fails; keep the terminal for our output (a failure's cause is in the exception)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(
    src: ModelSource,
    out_dir: str | Path,
    batch: str | int = "dynamic",
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export ``src`` to ``out_dir/<name>[_g<grid>].onnx`` (see the module docstring)."""
    import onnx

    opset = check_opset(opset)
    static_batch = check_batch(batch)
    out_dir = Path(out_dir)
    path = out_dir / f"{src.file_stem()}.onnx"
    grid_text = grid_dims(src.grid) if src.grid else ("dynamic" if src.grids else None)

    check_writable_dir(out_dir)
    example_batch = static_batch or 2
    too_big = "Use a smaller --batch (or --batch dynamic) or --image-size."
    if src.variant:  # from the configuration: before the module (and its position embedding) is built
        cfg = get_variant(src.variant).config.replace(**{k: v for k, v in src.overrides.items() if k != "head"})
        check_memory(export_bytes(cfg, example_batch, src.grid or (src.grids[-1] if src.grids else None)), f"Exporting {src.name} at {cfg.image_size} px, "
                     f"batch {example_batch}", too_big)
    loaded = load_source(src)
    n_params = sum(p.numel() for p in loaded.module.parameters())
    check_memory(BYTES * (2 * n_params + example_batch * math.prod(loaded.input_shape)),
                 f"Exporting {src.name} with batch {example_batch}", too_big)
    check_writable_dir(out_dir, need_bytes=BYTES * n_params)
    example = torch.randn(example_batch, *loaded.input_shape)
    # positional (a tuple over forward's arguments): the module's argument may have any name
    dynamic = None if static_batch else ({0: torch.export.Dim("batch", min=1, max=4096)},)
    args: tuple[torch.Tensor, ...] = (example,)
    input_names = [INPUT_NAME]
    grid_input = grid_input_for(src.grids) if src.grids else None
    if grid_input is not None:  # the grid is the second argument of forward; only its shape is read
        grid_example, grid_dims_ = export_example_and_dims(src.grids)
        args = (example, grid_example)
        input_names = [INPUT_NAME, grid_input.name]
        dynamic = ((dynamic or (None,))[0], grid_dims_ or None)
    t0 = time.perf_counter()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                loaded.module,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=input_names,
                output_names=loaded.output_names,
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as e:
        raise UserError(
            f"torch's ONNX exporter failed for {src.name} at opset {opset}. {root_cause(e)}",
            "Try the default --opset 23; a --model module must be traceable by torch.export "
            "(no data-dependent Python control flow in forward).",
        ) from None
    export_seconds = time.perf_counter() - t0

    meta = {
        "variant": src.variant or "",
        "factory": src.factory or "",
        "grid": grid_dims(src.grid) if src.grid else "",  # a dynamic-grid model: "", its grids in "grids"
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
    if grid_input is not None:
        meta["grids"] = ",".join(grid_dims(g) for g in src.grids)
        meta["grid_input"] = grid_input.to_json()
    for k, v in meta.items():
        program.model.metadata_props[META_PREFIX + k] = v

    with staged(path) as folder:  # model, external data and sidecar are committed together
        tmp = folder / path.name
        with _quiet_exporter():
            program.save(str(tmp), external_data=None)  # external data is used above 2 GB
        if grid_input is not None:  # weights stay where they are: only the graph is rewritten
            graph = onnx.load(str(tmp), load_external_data=False)
            add_grid_check(graph, src.grids, loaded.module.cfg.lookup_grid)
            onnx.save(graph, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as e:
            raise UserError(f"The exported model fails onnx.checker: {e}") from None
        onnx.shape_inference.infer_shapes_path(str(tmp), str(tmp))
        data_files = sorted(p.name for p in folder.iterdir() if p.name != path.name)
        size = sum((folder / name).stat().st_size for name in [path.name, *data_files])
        total = time.perf_counter() - t0
        sidecar = {
            "kind": "onnx-export",
            "inputs": {
                "variant": src.variant, "factory": src.factory,
                "weights": {"path": src.weights, "id": src.weights_id()},
            },
            "settings": {
                "grid": grid_text, "image_size": loaded.input_shape[-1], "batch": static_batch or "dynamic",
                "opset": opset, "head": src.head, "input_name": INPUT_NAME, "outputs": loaded.output_names,
                **({"grids": [grid_dims(g) for g in src.grids], "grid_input": json.loads(grid_input.to_json())}
                   if grid_input is not None else {}),
                "external_data": data_files,
            },
            "output": {"path": path.name, "sha256": sha256_file(tmp), "bytes": size},
            "versions": tool_versions(),
            "timings": {"export_s": round(export_seconds, 3), "total_s": round(total, 3)},
        }
        (folder / f"{path.name}.json").write_text(json_text(sidecar))
    return ExportResult(path, Path(f"{path}.json"), False, total, grid_text, size, [out_dir / n for n in data_files])


def root_cause(e: BaseException, tail: int = 6, limit: int = 1500) -> str:
    """The innermost exception of ``e``'s chain: its type, the first line of its message and the
    last ``tail`` lines (an exporter's explanation ends with the cause: the call that failed)."""
    root, seen = e, {id(e)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    lines = [ln.rstrip() for ln in str(root).strip().splitlines() if ln.strip()]
    if len(lines) > tail + 1:
        lines = [lines[0], "...", *lines[-tail:]]
    text = "\n".join(lines)
    if len(text) > limit:
        text = "..." + text[-limit:]
    cause = f"Cause: {type(root).__name__}" + (f": {text}" if text else "")
    return cause if root is e else f"{type(e).__name__}. {cause}"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``lookupvit.*`` metadata of an ONNX model (without loading its weights)."""
    return lookupvit_metadata(load_onnx(path, weights=False))
