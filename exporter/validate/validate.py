"""``validate``: an exported model or a TensorRT engine against its PyTorch reference, through Polygraphy.

One entry point (:func:`validate_model`) for every backend of the registry (exporter/backends/registry.py):
the backend supplies the candidate runner, this module the reference, the inputs and the verdict.

The reference is rebuilt from the model's ONNX metadata (variant or factory, grid, image size,
head, weights) unless given explicitly. Inputs are seeded random images, the digits held-out split,
or a labelled dataset.

Inputs by default (``data="auto"``, the same in ``validate`` and ``run``): the labelled data a model
declares (its variant's ``dataset``, when the model carries trained weights, e.g. ``lookupvit_digits``
on the digits held-out split: the inputs its int8/fp8 graphs were calibrated for), else seeded random
images; the report says which. The result is written only where the caller says (``out``):
``validate -o FILE``, or the run's own record; never next to the model, which may be a run's file.

A dynamic-grid model (``lookupvit.grids`` in its metadata) is validated at every allowed grid: the
reference is set to the grid and the candidate is fed the grid input of that shape; each output is
reported per grid (``logits @ 3x3``) and the model passes when every grid passes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..backends.torch.runner import TorchRunner
from ..data import InputSpec, load_data
from ..errors import UserError
from ..export import GridInput, LoadedModel, ModelSource, factory_refusal, load_source, read_model_metadata
from ..io import write_json
from ..models.config import Grid, grid_dims
from ..onnx_io import check_image_model, load_onnx, onnx_static_batch
from ..versions import tool_versions
from .comparison import OutputComparison, compare_runners
from .tolerances import tolerance_for

RANDOM_BATCH = 4
AUTO_DATA = "auto"


def resolve_data(data: str, model_path: str | Path) -> str:
    """``data`` as given, or for ``"auto"`` the dataset the model's variant declares (when the model
    carries trained weights, not a seeded initialisation), else ``"random"``."""
    if data != AUTO_DATA:
        return data
    from ..models import get_variant

    meta = read_model_metadata(model_path)
    variant = meta.source.variant if meta.source is not None else None
    if variant is None or (meta.weights_id or "").startswith("seed:"):
        return "random"
    try:
        declared = get_variant(variant).dataset
    except UserError:  # a variant this installation does not know
        return "random"
    return declared or "random"


@dataclass
class ValidationReport:
    model: str
    reference: dict[str, object]
    candidate: str  # backend description
    precision: str
    data: str  # where the inputs came from (the dataset, or "random normal (seed 0), 4 x 4")
    samples: int
    outputs: list[OutputComparison] = field(default_factory=list)
    seconds: float = 0.0
    grids: list[str] = field(default_factory=list)  # a dynamic-grid model: the grids validated
    versions: dict[str, str | None] = field(default_factory=tool_versions)

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed, "status": "PASSED" if self.passed else "FAILED"}


def reference_source(
    model_path: str | Path, variant: str | None = None, factory: str | None = None, weights: str | None = None
) -> ModelSource:
    """The PyTorch reference for an ONNX model: from its validated metadata, optionally overridden.

    Metadata is data: a factory recorded in it is never imported (:func:`factory_refusal` asks the user
    to name it with ``--model``), and a checkpoint path recorded in it is never opened (docs/security.md,
    "Metadata never names a file to read"): the reference's weights are the ``--weights`` the user passed,
    or the variant's shipped weights (the tool's package data), which must hash to the weights id
    recorded at export.
    """
    meta = read_model_metadata(model_path)
    if meta.source is not None:
        src = dataclasses.replace(meta.source)
    elif variant is None and factory is None:
        raise UserError(
            f"{model_path} carries no lookupvit metadata, so its PyTorch reference is unknown.",
            "Name it with --reference VARIANT or --model PKG.MODULE:FACTORY (and --weights).",
        )
    else:
        src = ModelSource(grid=meta.grid)
    if variant is not None:
        src.variant, src.factory, src.overrides = variant, None, {}
    if factory is not None:
        src.factory, src.variant, src.overrides = factory, None, {}
    if src.factory is not None and factory is None:
        raise factory_refusal(Path(model_path), src.factory)
    recorded, src.weights = src.weights, weights  # only a path the user passed is ever opened
    if weights is None and recorded and variant is None:
        raise UserError(
            f"{Path(model_path).name} was exported from a checkpoint of its own (its metadata records "
            f"{recorded[:200]!r}); this tool never opens a file named in a model's metadata.",
            "Pass that checkpoint with --weights FILE, or compare against the variant's shipped weights with "
            "--reference VARIANT.",
        )
    if weights is None and variant is None and meta.weights_id is not None:
        now = src.weights_id()
        if now != meta.weights_id:
            raise UserError(
                f"The reference weights of {Path(model_path).name} have changed since it was exported: recorded "
                f"{_short_id(meta.weights_id)}, now {_short_id(now)} ({src.weights or src.variant}). A comparison "
                "would test the model against other weights than the ones it was made from.",
                "Re-export the model from the current checkpoint, or pass --weights FILE to compare against a "
                "checkpoint on purpose.",
            )
    return src


def check_reference_fits(model_path: str | Path, loaded: LoadedModel, named: str | None) -> None:
    """Refuse a reference whose input does not fit the model's image input (``--reference`` of another
    variant): the two would be fed different images, or the comparison would fail on shapes."""
    model = load_onnx(model_path, weights=False)
    inits = {t.name for t in model.graph.initializer}
    image = next((i for i in model.graph.input if i.name not in inits), None)
    if image is None:
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in image.type.tensor_type.shape.dim][1:]
    want = list(loaded.input_shape)
    if len(dims) != len(want) or any(d is not None and d != w for d, w in zip(dims, want)):
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise UserError(
            f"{Path(model_path).name} takes images of shape {shown} (after the batch), but its reference"
            + (f" {named}" if named else "") + f" takes {'x'.join(map(str, want))}: they cannot be compared.",
            "Name the variant the model was exported from with --reference (`lookupvit variants` lists them), or "
            "drop --reference to use the one its metadata records.",
        )


def _short_id(weights_id: str) -> str:
    kind, _, value = weights_id.partition(":")
    return f"{kind}:{value[:12]}" if kind == "sha256" else weights_id


def make_feeds(
    spec: InputSpec, data: str, iterations: int | None, batch: int | None, seed: int = 0
) -> tuple[list[dict[str, np.ndarray]], str]:
    """Input feed dicts ``{"images": (B, ...)}`` and a description of where they came from."""
    if data == "random":
        n_iter = iterations or 4
        b = batch or RANDOM_BATCH
        rng = np.random.default_rng(seed)
        feeds = [{"images": rng.standard_normal((b, *spec.input_shape), dtype=np.float32)} for _ in range(n_iter)]
        return feeds, f"random normal (seed {seed}), {n_iter} x {b}"
    dataset = load_data(data, spec)
    b = batch or 32
    feeds = [{"images": x} for x, _ in dataset.batches(b)]
    if batch:  # a static-batch model: drop the ragged last batch
        feeds = [f for f in feeds if len(f["images"]) == batch]
    if iterations:
        feeds = feeds[:iterations]
    if not feeds:
        raise UserError(f"{dataset.source} yields no full batch of {b} images.", "Use a smaller batch or more data.")
    return feeds, dataset.source


def run_validation(
    candidate, candidate_desc: str, model_path: str | Path, loaded: LoadedModel, src: ModelSource,
    data: str, iterations: int | None, precision: str, batch: int | None,
    grid_input: GridInput | None = None, grids: tuple[Grid, ...] = (),
) -> ValidationReport:
    """Compare ``candidate`` (a Polygraphy runner) with the PyTorch reference ``loaded``; with
    ``grid_input``, once per grid of ``grids`` (outputs named ``<output> @ <grid>``)."""
    t0 = time.perf_counter()
    spec = loaded.input_spec()
    feeds, data_desc = make_feeds(spec, data, iterations, batch)
    reference = TorchRunner(loaded.module, loaded.input_shape, loaded.output_names, name="pytorch")
    if grid_input is None:
        outputs = compare_runners(reference, candidate, feeds, tolerance_for(precision))
    else:
        outputs = []
        for g in grids:
            loaded.module.set_grid(g)  # the reference at this grid; the candidate gets it as an input
            at_grid = [{**f, grid_input.name: grid_input.feed(g)} for f in feeds]
            outputs += [dataclasses.replace(o, output=f"{o.output} @ {grid_dims(g)}")
                        for o in compare_runners(reference, candidate, at_grid, tolerance_for(precision))]
    if not outputs:
        raise UserError(
            f"{model_path} shares no output name with its reference ({', '.join(loaded.output_names)}).",
            "Validate a model written by `lookupvit export`, or one whose outputs carry those names.",
        )
    return ValidationReport(
        model=str(model_path),
        reference=json.loads(json.dumps(asdict(src), default=list)),
        candidate=candidate_desc,
        precision=precision,
        data=data_desc,
        samples=sum(len(f["images"]) for f in feeds),
        outputs=outputs,
        seconds=time.perf_counter() - t0,
        grids=[grid_dims(g) for g in grids] if grid_input is not None else [],
    )


def validate_model(
    model_path: str | Path,
    variant: str | None = None,
    factory: str | None = None,
    weights: str | None = None,
    data: str = AUTO_DATA,
    iterations: int | None = None,
    precision: str | None = None,
    out: str | Path | None = None,
    backend: str | None = None,
) -> ValidationReport:
    """``model_path`` on ``backend`` (any name of a registered backend; default ONNX Runtime for an
    ``.onnx``, TensorRT for an engine) against the PyTorch reference on ``data`` (see the module
    docstring); writes the report to ``out`` when given. An engine's reference is found through its
    sidecar: the ONNX model it was built from, checked by sha256, and that model's metadata."""
    from ..backends.registry import for_file

    model_path = Path(model_path)
    be = for_file(model_path, backend)
    if be.runs == "graph":  # one image input (and a grid input), known operator domains, external data in its folder
        meta = read_model_metadata(model_path)
        check_image_model(model_path, meta.grid_input.name if meta.grid_input else None)
    candidate = be.candidate(model_path)  # fails here, naming the fix, where the backend cannot run it
    if candidate.onnx != model_path:  # an engine: the model it was built from
        meta = read_model_metadata(candidate.onnx)
    src = reference_source(candidate.onnx, variant, factory, weights)
    loaded = load_source(src)
    check_reference_fits(candidate.onnx, loaded, variant or factory)
    data = resolve_data(data, candidate.onnx)
    batches = candidate.batches
    if batches is None:
        static = onnx_static_batch(candidate.onnx)
        batches = (static, static) if static else None
    report = run_validation(
        candidate.runner, candidate.description, model_path, loaded, src, data, iterations,
        precision or candidate.precision or meta.precision, _batch(batches, data), meta.grid_input, meta.grids,
    )
    if out is not None:
        write_json(out, report.to_dict())
    return report


def _batch(batches: tuple[int, int] | None, data: str) -> int | None:
    """The validation batch: a static batch as it is (feeds of exactly that size); inside a batch range,
    the default (None) where it fits, else the nearest end of the range."""
    if batches is None:
        return None
    lo, hi = batches
    if lo == hi:
        return lo
    default = RANDOM_BATCH if data == "random" else 32
    return None if lo <= default <= hi else min(max(default, lo), hi)
