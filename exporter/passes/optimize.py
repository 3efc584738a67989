"""``optimize``: run the graph-surgeon passes over an ONNX model, each one guarded numerically.

For each pass in order: import the current model into onnx-graphsurgeon (after ONNX shape
inference), run the pass, export, check the result with ``onnx.checker`` and ONNX Runtime against
the model before the pass (``check.compare_outputs``); keep it if it agrees within the fp32
tolerance, else roll it back and say why. A pass that matches nothing leaves the model as it was.

The output keeps the input's ``metadata_props`` (``validate`` rebuilds the PyTorch reference from
the ``lookupvit.*`` keys) and adds ``lookupvit.passes`` (the kept passes) and ``lookupvit.target``.
It is written atomically, with the report as a JSON sidecar ``<output>.json``. This function always
runs the passes; whether an earlier output stands is the folder's manifest's decision
(:func:`exporter.pipeline.steps.optimize_step`), which reads the report back from the sidecar through
the schema layer (exporter/schema/sidecars.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError
from ..io import sha256_file
from ..onnx_io import META_PREFIX, load_onnx, save_onnx
from .check import DEFAULT_BATCH, CheckResult, compare_outputs, run_model, seeded_feeds, split_weights
from .registry import PassContext, resolve_passes


@dataclass
class PassRecord:
    name: str
    family: str
    status: str  # kept | rolled back | no match
    matches: int
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    max_abs_change: float | None  # against the model before this pass (None: nothing ran)
    max_rel_change: float | None  # the same, relative to the output scale
    seconds: float
    note: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def op_delta(self) -> dict[str, int]:
        ops = sorted(set(self.ops_before) | set(self.ops_after))
        delta = {op: self.ops_after.get(op, 0) - self.ops_before.get(op, 0) for op in ops}
        return {op: d for op, d in delta.items() if d}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "op_delta": self.op_delta}


@dataclass
class OptimizeReport:
    input: str
    output: str
    sidecar: str
    target: str
    passes: list[PassRecord]
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    opset_before: int
    opset_after: int
    check: CheckResult  # the output model against the input model
    inputs: str  # what the checks ran on
    settings: dict[str, Any]  # target, passes asked for, check seed/batch/tolerance (a cache key with input_sha256)
    seconds: float
    input_sha256: str = ""
    output_sha256: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    reused: bool = False  # an earlier output stood (its folder's manifest said so)

    @property
    def kept(self) -> list[str]:
        return [p.name for p in self.passes if p.status == "kept"]

    @property
    def passed(self) -> bool:
        return self.check.passed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passes"] = [p.to_dict() for p in self.passes]
        return {"kind": "onnx-optimize", **d, "kept": self.kept, "passed": self.passed,
                "status": "PASSED" if self.passed else "FAILED"}


def _load(path: Path):
    return load_onnx(path)


def _infer(model, skeleton=None) -> None:
    """Put ONNX shape inference's value_info (with shape-data propagation) into ``model``, where
    inference succeeds; it runs on the weightless skeleton, so its cost does not grow with the weights."""
    import onnx

    skeleton = skeleton if skeleton is not None else split_weights(model, values=False)[0]
    for clear in (False, True):
        try:
            if clear:
                del skeleton.graph.value_info[:]
            inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
        except Exception:
            continue
        known = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
        del model.graph.value_info[:]
        model.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in known)
        return


def _export(graph, like):
    """The graph as a ModelProto with ``like``'s model-level fields (metadata, producer, doc)."""
    import onnx_graphsurgeon as gs

    model = gs.export_onnx(graph, do_type_check=False)
    model.ir_version = graph.ir_version or like.ir_version
    for f in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(model, f, getattr(like, f))
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    return model


def _counts(model) -> dict[str, int]:
    from collections import Counter

    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _valid(skeleton) -> str:
    import onnx

    try:
        onnx.checker.check_model(skeleton)
    except onnx.checker.ValidationError as e:
        return f"onnx.checker: {str(e).splitlines()[0][:200]}"
    return ""


def optimize_model(
    in_path: str | Path,
    out_path: str | Path,
    target: str = "attention",
    passes: str | list[str] | None = None,
) -> OptimizeReport:
    """Run ``passes`` (default: the target's declared order) over ``in_path``, write ``out_path``
    and ``<out_path>.json``, and return the report. Every pass is checked with ONNX Runtime and
    rolled back if it changes the outputs beyond the tolerance (fp32, or the model's declared
    ``lookupvit.precision``)."""
    import onnx_graphsurgeon as gs

    from ..validate.tolerances import TOLERANCES
    from ..versions import tool_versions

    t_start = time.perf_counter()
    chosen = resolve_passes(target, passes)
    in_path, out_path = Path(in_path), Path(out_path)
    original = _load(in_path)
    input_sha256 = sha256_file(in_path)  # before OUT is written (OUT may be IN)
    feeds = seeded_feeds(original)
    try:
        reference = run_model(original, feeds)
    except Exception as e:
        raise UserError(f"ONNX Runtime cannot run {in_path}: {type(e).__name__}: {str(e)[:300]}",
                        "optimize checks every pass with ONNX Runtime on the CPU; pass a model it can run.") from None
    # the tolerance row of the model's precision (metadata of the precision stage), fp32 by default
    declared = next((e.value for e in original.metadata_props if e.key == META_PREFIX + "precision"), "fp32")
    precision = declared if declared in TOLERANCES else "fp32"
    ctx = PassContext(target=target)
    current, outputs = original, reference
    _infer(current)
    records: list[PassRecord] = []
    for p in chosen:
        t0 = time.perf_counter()
        graph = gs.import_onnx(current)
        nodes_before, ops_before = len(current.graph.node), _counts(current)
        status, note, max_abs, max_rel, details, matches = "no match", "", None, None, {}, 0
        candidate = None
        try:
            result = p.fn(graph, ctx)
            matches, note, details = result.matches, result.note, result.details
            if result.graph is not None:
                graph = result.graph
            if matches:
                graph.cleanup().toposort()
                candidate = _export(graph, current)
        except Exception as e:  # a pass that breaks is a pass that is rolled back
            status, note = "rolled back", f"the pass raised {type(e).__name__}: {str(e)[:200]}"
        if candidate is not None:
            split = split_weights(candidate)
            problem = _valid(split[0])
            new_outputs: dict = {}
            if not problem:
                try:
                    new_outputs = run_model(candidate, feeds, split)
                except Exception as e:
                    problem = f"ONNX Runtime cannot run the result: {type(e).__name__}: {str(e)[:200]}"
            if problem:
                status, note = "rolled back", f"{note}; {problem}"
            else:
                check = compare_outputs(outputs, new_outputs, precision)
                max_abs, max_rel = check.max_abs, check.max_rel
                if check.passed:
                    status, current, outputs = "kept", candidate, new_outputs
                    _infer(current, split[0])
                else:
                    status, note = "rolled back", f"{note}; would change the outputs: {check.reason}"
        records.append(PassRecord(
            p.name, p.family, status, matches, nodes_before, len(current.graph.node), ops_before,
            _counts(current), max_abs, max_rel, round(time.perf_counter() - t0, 3), note, details,
        ))

    final = _finish(current, original, target, [r.name for r in records if r.status == "kept"])
    end_to_end = compare_outputs(reference, outputs, precision)
    reports: list[OptimizeReport] = []

    def sidecar(output_sha256: str) -> dict:
        reports.append(OptimizeReport(
            input=str(in_path), output=str(out_path), sidecar=f"{out_path}.json", target=target, passes=records,
            nodes_before=len(original.graph.node), nodes_after=len(final.graph.node),
            ops_before=_counts(original), ops_after=_counts(final),
            opset_before=_opset(original), opset_after=_opset(final), check=end_to_end,
            inputs=", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items()) + " (seeded normal, seed 0)",
            settings={"target": target, "passes": [p.name for p in chosen], "seed": 0, "batch": DEFAULT_BATCH,
                      "precision": precision, "tolerance": TOLERANCES[precision].to_dict(), "tool_version": __version__},
            seconds=round(time.perf_counter() - t_start, 3),
            input_sha256=input_sha256, output_sha256=output_sha256, versions=tool_versions(),
        ))
        return reports[0].to_dict()

    save_onnx(final, out_path, sidecar=sidecar)  # the model and its report are committed together
    return reports[0]


def _finish(model, original, target: str, kept: list[str]):
    """``model`` with the input's metadata, plus the passes kept and the target."""
    meta = {p.key: p.value for p in original.metadata_props}
    meta[META_PREFIX + "passes"] = ",".join(kept)
    meta[META_PREFIX + "target"] = target
    if META_PREFIX + "opset" in meta:
        meta[META_PREFIX + "opset"] = str(_opset(model))
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model


__all__ = ["DEFAULT_BATCH", "OptimizeReport", "PassRecord", "optimize_model"]
