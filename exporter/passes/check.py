"""The numerical guard of every pass: ONNX Runtime on the graph before and after, on seeded random
inputs, compared per output with the validation metrics (``exporter.validate.comparison``) and the
fp32 tolerance (``exporter.validate.tolerances``): max |after - before| <= 1e-4 x max |before| and
cosine >= 0.99999. A pass that fails it is rolled back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

WEIGHT_MIN_ELEMENTS = 4096  # initializers this large are fed as inputs when checking (see split_weights)
DEFAULT_BATCH = 2

_NP_TYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16,
    11: np.float64, 12: np.uint32, 13: np.uint64,
}


@dataclass
class CheckResult:
    passed: bool
    max_abs: float
    max_rel: float
    min_cosine: float
    worst_output: str | None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def seeded_feeds(model, seed: int = 0, batch: int = DEFAULT_BATCH) -> dict[str, np.ndarray]:
    """One seeded random feed per graph input: standard normal floats, zeros for other types; every
    symbolic dimension (e.g. ``batch``) is ``batch``. A dynamic-grid model's grid input gets the
    largest of its allowed grids (a shape outside them fails the graph's own check; docs/dynamic-grid.md)."""
    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    from ..export.grid_input import dynamic_grid_input

    grid = dynamic_grid_input(model)
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if grid is not None and vi.name == grid[0]:
            feeds[vi.name] = np.zeros(grid[1][-1], dtype=np.float32)
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = _NP_TYPES.get(tt.elem_type, np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[vi.name] = np.zeros(shape, dtype=dtype)
    return feeds


def split_weights(model, min_elements: int = WEIGHT_MIN_ELEMENTS, values: bool = True):
    """``model`` without its large initializers, which become graph inputs, and their values.

    The skeleton serialises, checks and infers shapes in milliseconds whatever the model's size
    (a LookupViT-B's 0.6 GB of weights are not copied through protobuf for every check), and is run
    with the weights fed as inputs.
    """
    import onnx
    from onnx import numpy_helper

    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    g, src = skeleton.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    weights: dict[str, np.ndarray] = {}
    declared = {i.name for i in src.input}
    for init in src.initializer:
        if int(np.prod(init.dims)) >= min_elements and init.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
            if values:
                weights[init.name] = numpy_helper.to_array(init)
        else:
            g.initializer.append(init)
    g.sparse_initializer.extend(src.sparse_initializer)
    return skeleton, weights


def run_model(model, feeds: dict[str, np.ndarray], split: tuple | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` (a ModelProto; or its ``split_weights``) on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    from ..backends import ort_session

    skeleton, weights = split or split_weights(model)
    basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort_session(skeleton.SerializeToString(), ["CPUExecutionProvider"], level=basic)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {**feeds, **weights})))


def compare_outputs(before: dict[str, np.ndarray], after: dict[str, np.ndarray], precision: str = "fp32") -> CheckResult:
    """Every output of ``before`` against ``after`` with the validation metrics and tolerance."""
    from ..validate.comparison import output_metrics
    from ..validate.tolerances import tolerance_for

    tol = tolerance_for(precision)
    missing = [n for n in before if n not in after]
    if missing:
        return CheckResult(False, float("inf"), float("inf"), 0.0, missing[0], f"output {missing[0]} disappeared")
    worst, max_abs, max_rel, min_cos = None, 0.0, 0.0, 1.0
    for name, ref in before.items():
        got = after[name]
        if got.shape != ref.shape:
            return CheckResult(False, float("inf"), float("inf"), 0.0, name,
                               f"output {name} changed shape {ref.shape} -> {got.shape}")
        m = output_metrics(got, ref)
        abs_, rel, cos = float(m["max_abs"] or 0.0), float(m["max_rel"] or 0.0), float(m["cosine"] or 0.0)
        if not np.isfinite(abs_):
            return CheckResult(False, float("inf"), float("inf"), 0.0, name, f"output {name} is not finite")
        if rel >= max_rel:
            worst = name
        max_abs, max_rel, min_cos = max(max_abs, abs_), max(max_rel, rel), min(min_cos, cos)
    passed = max_rel <= tol.max_error and min_cos >= tol.min_cosine
    reason = "" if passed else (
        f"max error {max_rel:.3g} x output scale (tolerance {tol.max_error:g}), cosine {min_cos:.6f} "
        f"(tolerance {tol.min_cosine})"
    )
    return CheckResult(passed, max_abs, max_rel, min_cos, worst, reason)
