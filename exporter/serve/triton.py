"""``lookupvit package --triton``: a Triton Inference Server model repository from a run or a model.

Layout (Triton docs, "Model Repository")::

    REPO/README.md                      how to serve it: the server command, the inputs, the choice behind it
    REPO/<model>/config.pbtxt           the model configuration (see :mod:`.pbtxt`)
    REPO/<model>/labels.txt             one class name per line (the output's label_filename)
    REPO/<model>/1/model.onnx           ONNX Runtime profiles (platform onnxruntime_onnx)
    REPO/<model>/1/model.<sm>.plan      TensorRT profiles (platform tensorrt_plan), one engine per GPU,
                                        chosen by the server through cc_model_filenames
    REPO/<model>/source/model.onnx      TensorRT profiles: the graph the engines are built from

Settings taken from the deployment profile:

- TensorRT: ``max_batch_size`` = ``batch.max``; one engine optimisation profile per latency-critical
  batch (``batch.opt``, as ``lookupvit build`` makes them), and one instance group per optimisation
  profile (``profile: ["<index>"]``, TensorRT backend README), so each batch size has an instance tuned
  for it; engines of several GPUs (several ``--profile``) under ``cc_model_filenames``.
- ONNX Runtime: a ``KIND_CPU`` instance group and ``intra_op_thread_count`` = ``benchmark.threads``
  (0: ONNX Runtime's default, one thread per physical core; ONNX Runtime backend README).
- Dynamic batching (Triton docs, "Batchers"): the latency-critical batches above 1 as preferred sizes —
  a batch of a preferred size is sent at once, so a preferred size of 1 would send every request
  alone and never merge two — and a queue delay (``--queue-delay-us``; by default a tenth of the
  chosen setting's measured batch-1 p50, between 100 us and 5 ms, else 500 us).
- Warm-up: one sample per latency-critical batch (random data), so that the first requests do not
  pay for lazy initialisation (Triton docs, "Model Warmup").

Preprocessing: the normalisation is folded into the graph (:mod:`.preprocess`) and the model takes
raw uint8 images — one model instead of an ensemble, no second hop through the scheduler, a quarter
of the request bytes of float32, and the mean/std travel with the model. ``--input float`` serves the
graph's own float input instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .pbtxt import ONNX_TO_TRITON, InstanceGroup, ModelConfigText, TensorConfig, Warmup
from .pick import TRUSTED_VERDICTS

LABELS = "labels.txt"
PLUGIN_DOMAIN = "lookupvit"
DEFAULT_QUEUE_DELAY_US = 500


@dataclass(frozen=True)
class Selection:
    """One model to package: its graph and what the run measured for it."""

    variant: str
    grid: str | None
    precision: str
    onnx: Path
    p50_batch1_ms: float | None = None
    run_engines: tuple[tuple[str, Path], ...] = ()  # (profile name, engine the run built from this graph)


@dataclass(frozen=True)
class EngineSlot:
    profile: str
    compute_capability: str  # "9.0"
    filename: str  # in the version folder
    built: bool
    note: str  # how it was made, or why it is missing and how to make it


@dataclass(frozen=True)
class ModelPackage:
    name: str
    platform: str
    folder: Path
    variant: str
    grid: str | None
    precision: str
    input_mode: str  # "raw" (uint8, normalisation folded) or "float"
    config: ModelConfigText
    engines: tuple[EngineSlot, ...] = ()
    plugin_nodes: int = 0
    schema_checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": self.name, "platform": self.platform, "folder": str(self.folder), "variant": self.variant,
            "grid": self.grid, "precision": self.precision, "input": self.input_mode,
            "inputs": [{"name": t.name, "data_type": t.data_type, "dims": list(t.dims)} for t in c.inputs],
            "outputs": [{"name": t.name, "data_type": t.data_type, "dims": list(t.dims)} for t in c.outputs],
            "max_batch_size": c.max_batch_size, "preferred_batch_size": list(c.preferred_batch_sizes),
            "max_queue_delay_microseconds": c.max_queue_delay_us,
            "engines": [{"profile": e.profile, "compute_capability": e.compute_capability, "file": e.filename,
                         "built": e.built, "note": e.note} for e in self.engines],
            "plugin_nodes": self.plugin_nodes, "schema_checked": self.schema_checked,
        }


@dataclass(frozen=True)
class PackageResult:
    repo: Path
    models: tuple[ModelPackage, ...]
    readme: Path
    default_model: str
    choice: str  # how the grid and precision were chosen
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        """Whether every file the configs name is there (a TensorRT engine may be missing)."""
        return all(e.built for m in self.models for e in m.engines)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "lookupvit-package", "repo": str(self.repo), "default_model": self.default_model,
                "choice": self.choice, "complete": self.complete, "readme": str(self.readme),
                "models": [m.to_dict() for m in self.models], "notes": list(self.notes)}


@dataclass(frozen=True)
class PackageRequest:
    source: Path  # a run folder or an .onnx file
    profiles: tuple[str, ...]  # one for ONNX Runtime; one or more TensorRT profiles (one engine per GPU)
    out_dir: Path
    grids: tuple[str, ...] = ()  # run folder: the grids to package (default: the one pick chooses)
    precision: str | None = None  # run folder: default the one pick chooses
    latency_ms: float | None = None  # run folder: pick with this budget
    batch: int | None = None
    min_top1: float | None = None
    model: str | None = None  # run folder: the variant (default: pick's)
    input_mode: str = "raw"
    queue_delay_us: int | None = None
    labels: Path | None = None
    name: str | None = None  # Triton model name (one model only)
    force: bool = False
    allow_failed: bool = False  # may ship a setting whose accuracy verdict is FAILED / NOT MEANINGFUL


# --- what to package -----------------------------------------------------------------------------


def select_from_run(req: PackageRequest) -> tuple[list[Selection], str, str | None, str, tuple[str, ...]]:
    """The graphs to package from a run folder, a sentence saying how they were chosen, the run's
    profile, the grid chosen (the repository's default model) and warnings for the README (a setting
    shipped with ``--allow-failed``). Every graph and engine is checked against the sha256 the run
    recorded (:meth:`~exporter.serve.measurements.RunMeasurements.verified`)."""
    from .measurements import load_run
    from .pareto import make_front
    from .pick import PickRequest, pick, verdict_ok

    run = load_run(req.source)
    if req.latency_ms is not None:
        d = pick(run, PickRequest(req.latency_ms, req.batch, req.min_top1, "p50", req.model, req.allow_failed))
        variant, grid, precision = d.model, d.chosen.grid, d.chosen.precision
        how = (f"`lookupvit pick {req.source} --latency-ms {req.latency_ms:g}` chose {variant} g{grid} {precision} "
               f"(p50 {d.chosen.p50_ms:.3g} ms at batch {d.batch}, top-1 {d.chosen.top1:.2f}%)")
    else:
        models = [m for m in run.accuracy_models if run.has_accuracy(m) and run.timed(m)]
        variant = req.model or (models[0] if models else (run.accuracy_models or run.latency_models or ("",))[0])
        batches = run.batches(variant)
        eligible = [c for c in run.candidates if req.allow_failed or verdict_ok(c)]
        front = make_front(eligible, variant, batches[0], "p50") if batches else None
        best = front.best if front else None
        if best is not None:
            grid, precision = best.grid, best.precision
            how = (f"the most accurate setting on the run's Pareto front for {variant} at batch {best.batch}: g{grid} "
                   f"{precision} (p50 {best.p50_ms:.3g} ms, top-1 {best.top1:.2f}%); give --latency-ms to pick for a budget")
        elif req.grids and req.precision:
            grid, precision = req.grids[0], req.precision
            how = f"as asked: {variant} g{grid} {precision}"
        elif any(c.model == variant and c.top1 is not None for c in run.candidates):
            verdicts = sorted({str(c.accuracy_status) for c in run.candidates if c.model == variant and not verdict_ok(c)})
            raise UserError(f"Every measured setting of {variant} in run {req.source} has an accuracy verdict other than "
                            f"PASSED ({', '.join(verdicts)}): none is packaged.",
                            "Fix the cause (see the run's report), or pass --allow-failed to ship one anyway (the "
                            "repository's README then says so).")
        else:
            raise UserError(f"Run {req.source} has no measured setting of {variant or 'any model'} to choose from.",
                            "Name the setting with --grids G --precision P, or rerun `lookupvit run`.")
    if req.precision:
        precision = req.precision
    grids = list(req.grids) or [grid]
    if req.grids or req.precision:
        how += f"; packaged: grid{'s' if len(grids) > 1 else ''} {', '.join(grids)} in {precision}"
    cells = {(c.grid, c.batch): c for c in run.candidates if c.model == variant and c.precision == precision}
    statuses = {(a.grid, a.precision): a.status for a in run.accuracy if a.model == variant}
    out = []
    warnings: list[str] = []
    for g in grids:
        status = statuses.get((g, precision))
        if status is not None and status not in TRUSTED_VERDICTS:
            if not req.allow_failed:
                raise UserError(f"Run {req.source} measured {variant} g{g} {precision} with the accuracy verdict {status}: "
                                "such a setting is never packaged unless asked for.",
                                "Package another grid or precision, or pass --allow-failed to ship it anyway (the "
                                "repository's README then says so).")
            warnings.append(f"{variant} g{g} {precision} has the accuracy verdict {status}; it was packaged only because "
                            "--allow-failed was given")
        onnx_path = run.graph(variant, g, precision)
        if onnx_path is None:
            names = run.graph_names(variant, g, precision)
            raise UserError(f"Run {run.run_dir} has no {precision} graph of {variant} at grid {g} (looked for "
                            f"{', '.join(str(n) for n in names)}).",
                            f"Package a grid and precision the run made (--grids/--precision), or rerun `lookupvit run` "
                            f"into {run.run_dir}.")
        run.verified(onnx_path)  # the claims copied into the repository are about these bytes
        b1 = cells.get((g, min((b for (gg, b) in cells if gg == g), default=1)))
        engines = []
        for p in sorted((run.run_dir / variant / f"g{g}" / "engines").glob(f"*/*.{precision}.plan")):
            engines.append((p.parent.name, run.verified(p)))
        out.append(Selection(variant, g, precision, onnx_path, b1.p50_ms if b1 else None, tuple(engines)))
    return out, how, run.profile_spec, grid, tuple(warnings)


def select_model(path: Path) -> Selection:
    from ..engine.plan import read_onnx
    from ..export import read_model_metadata
    from ..models import grid_label

    info = read_onnx(path)
    meta = read_model_metadata(path)
    return Selection(meta.variant or path.name.split(".")[0], grid_label(meta.grid) if meta.grid else None,
                     info.precision, path)


# --- one model ------------------------------------------------------------------------------------


def _tensors(model: Any, kind: str) -> list[TensorConfig]:
    g = model.graph
    inits = {t.name for t in g.initializer}
    out = []
    for v in (g.input if kind == "input" else g.output):
        if v.name in inits:
            continue
        tt = v.type.tensor_type
        dt = ONNX_TO_TRITON.get(tt.elem_type)
        if dt is None:
            raise UserError(f"{kind} '{v.name}' has ONNX element type {tt.elem_type}, which Triton has no type for.",
                            "Export the model with float, integer or bool inputs and outputs.")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tt.shape.dim]
        if not dims or dims[0] != -1:
            raise UserError(f"{kind} '{v.name}' has no dynamic batch axis (shape {dims}).",
                            "Export with a dynamic batch (lookupvit export does by default): Triton's dynamic batcher "
                            "needs the first axis free.")
        out.append(TensorConfig(v.name, dt, tuple(dims[1:])))
    return out


def _plugin_nodes(model: Any) -> int:
    return sum(1 for n in model.graph.node if n.domain == PLUGIN_DOMAIN)


def model_name(sel: Selection, req: PackageRequest, n: int) -> str:
    """The Triton model name: ``--name`` (one model; a single path component), else ``<variant>_g<grid>``."""
    from ..safe_paths import single_component

    if req.name and n == 1:
        return single_component(req.name, "--name", "Give a plain Triton model name, e.g. --name digits.")
    base = sel.variant + (f"_g{sel.grid}" if sel.grid else "")
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in base)


def _queue_delay(sel: Selection, req: PackageRequest) -> int:
    if req.queue_delay_us is not None:
        return req.queue_delay_us
    if sel.p50_batch1_ms:
        return int(min(5000, max(100, round(100 * sel.p50_batch1_ms))))  # a tenth of p50, in microseconds
    return DEFAULT_QUEUE_DELAY_US


def _labels(classes: int, req: PackageRequest) -> list[str]:
    if req.labels is None:
        return [str(i) for i in range(classes)]
    try:
        names = [x.strip() for x in req.labels.read_text().splitlines() if x.strip()]
    except OSError as e:
        raise UserError(f"Cannot read --labels {req.labels} ({e.strerror}).", "Give a text file, one class name per line.") from None
    if len(names) != classes:
        raise UserError(f"--labels {req.labels} has {len(names)} names; the model has {classes} classes.",
                        "Give one class name per line, in the order of the model's output.")
    return names


def _engine_slots(profiles: list[Any], sel: Selection, source: Path, folder: Path, input_mode: str,
                  say: Any) -> list[EngineSlot]:
    """One engine per TensorRT profile: copied from the run (float input only: the run's engines take
    the float graph), else built here when TensorRT and the profile's GPU are present, else missing
    with the command that makes it."""
    from ..backends.tensorrt.env import build_target
    from ..engine.build import build_engine, prepare_build

    slots = []
    for prof in profiles:
        cc = ".".join(map(str, prof.compute_capability)) if prof.compute_capability else "0.0"
        fn = f"model.{prof.sm or prof.name}.plan"
        target = folder / "1" / fn
        req = prepare_build(source, prof.path, sel.precision, folder / ".build")  # checks precision and batch shapes anywhere
        run_engine = dict(sel.run_engines).get(prof.name)
        if input_mode == "float" and run_engine is not None and run_engine.is_file():
            shutil.copyfile(run_engine, target)
            slots.append(EngineSlot(prof.name, cc, fn, True, f"copied from the run: {run_engine}"))
            continue
        try:
            target_here = build_target(prof, f"build the engine for profile {prof.name}")
            if target_here.choice.backend == "tensorrt-rtx":
                raise UserError(f"only {target_here.choice.label} builds here, and Triton's TensorRT backend "
                                "deserializes engines of full TensorRT")
        except UserError as e:
            build = (f"lookupvit build {{REPO}}/{folder.name}/source/model.onnx --profile {prof.name} -o /tmp/build && "
                     f"cp /tmp/build/engines/{prof.name}/model.{sel.precision}.plan {{REPO}}/{folder.name}/1/{fn}")
            slots.append(EngineSlot(prof.name, cc, fn, False, f"not built here ({e.message}); on a machine with "
                                    f"{prof.gpu or 'the profile GPU'}: {build}"))
            continue
        say(f"build {folder.name} for {prof.name}")
        r = build_engine(req)
        shutil.copyfile(r.engine, target)
        gpu_name = target_here.gpu.name if target_here.gpu else target_here.label
        slots.append(EngineSlot(prof.name, cc, fn, True, f"built here on {gpu_name} ({r.engine.name})"))
    shutil.rmtree(folder / ".build", ignore_errors=True)
    return slots


def package_model(sel: Selection, name: str, profiles: list[Any], req: PackageRequest, staging: Path,
                  say: Any) -> ModelPackage:
    """Write one model folder into ``staging`` (renamed into the repository by the caller)."""
    from ..onnx_io import load_onnx, save_onnx
    from .preprocess import fold_normalisation, model_normalisation

    prof = profiles[0]
    trt = prof.is_tensorrt
    (staging / "1").mkdir(parents=True)
    graph = staging / ("source" if trt else "1") / "model.onnx"
    graph.parent.mkdir(exist_ok=True)
    if req.input_mode == "raw":
        fold_normalisation(sel.onnx, graph, model_normalisation(sel.onnx))
    else:
        save_onnx(load_onnx(sel.onnx), graph)
    model = load_onnx(graph, weights=False)
    inputs, outputs = _tensors(model, "input"), _tensors(model, "output")
    classes = outputs[0].dims[-1] if outputs and outputs[0].dims and outputs[0].dims[-1] > 0 else 0
    if classes and len(outputs) == 1:
        (staging / LABELS).write_text("\n".join(_labels(classes, req)) + "\n")
        o = outputs[0]
        outputs = [TensorConfig(o.name, o.data_type, o.dims, LABELS)]
    b = prof.batch
    preferred = tuple(x for x in b.opt if x > 1 and x <= b.max)
    delay = _queue_delay(sel, req)
    warm = tuple(Warmup(f"batch_{x}", x, tuple(inputs)) for x in b.opt)
    header = [f"{name}: {sel.variant}" + (f" at compressed grid {sel.grid}" if sel.grid else "") + f", {sel.precision}; "
              f"generated by `lookupvit package` from profile{'s' if len(profiles) > 1 else ''} "
              f"{', '.join(p.name for p in profiles)}.",
              "Input: " + ("raw uint8 images 0..255 (N, C, H, W); (x / 255 - mean) / std is folded into the graph."
                           if req.input_mode == "raw" else "float images, normalised by the client (mean/std in README.md).")]
    comments = {
        "max_batch_size": "the profile's largest batch (batch.max); the batch axis is left out of dims",
        "dynamic_batching": "preferred: the profile's latency-critical batches above 1 (a preferred size is sent at once, "
                            "so 1 would never merge requests);\nqueue delay: how long a request may wait for others to join its batch",
        "model_warmup": "one warm-up batch per latency-critical batch size",
    }
    engines: list[EngineSlot] = []
    if trt:
        engines = _engine_slots(profiles, sel, graph, staging, req.input_mode, say)
        groups = tuple(InstanceGroup("KIND_GPU", 1, f"{name}_opt{x}", (str(i),)) for i, x in enumerate(b.opt))
        comments["instance_group"] = ("one instance per engine optimisation profile: profile i was tuned for batch "
                                      + ", ".join(f"{i} -> {x}" for i, x in enumerate(b.opt))
                                      + f" (each covers {b.min}..{b.max})")
        missing = [e for e in engines if not e.built]
        comments["cc_model_filenames"] = "one engine per GPU, chosen by the server's compute capability" + (
            "\nNOT BUILT HERE (no TensorRT or no profile GPU on the packaging machine): "
            + "; ".join(f"1/{e.filename} for {e.profile}" for e in missing) + ". See README.md: `lookupvit build` "
            "source/model.onnx on the GPU and copy the engine to the name above." if missing else "")
        cfg = ModelConfigText(name, "tensorrt_plan", b.max, tuple(inputs), tuple(outputs), groups, preferred, delay, warm,
                              None, tuple((e.compute_capability, e.filename) for e in engines), (), tuple(header), comments)
    else:
        auto = prof.benchmark.threads == "auto"  # tried per cell when timing: the server gets ONNX Runtime's default
        threads = 0 if auto else prof.benchmark.threads
        comments["instance_group"] = "ONNX Runtime on the CPU: one instance, intra-op threads from the profile"
        comments["parameters"] = (f"benchmark.threads = {prof.benchmark.threads} in profile {prof.name} (0: ONNX Runtime's "
                                  "default" + ("; auto: tried per cell when timing, so the server gets that default"
                                               if auto else "") + ")")
        cfg = ModelConfigText(name, "onnxruntime_onnx", b.max, tuple(inputs), tuple(outputs),
                              (InstanceGroup("KIND_CPU", 1),), preferred, delay, warm, "model.onnx", (),
                              (("intra_op_thread_count", str(threads)),), tuple(header), comments)
    text = cfg.render()
    checked = False
    from .schema import parse_config, schema_available

    if schema_available():  # Triton's own schema, when tritonclient is installed
        parse_config(text, f"{name}/config.pbtxt")
        checked = True
    (staging / "config.pbtxt").write_text(text)
    return ModelPackage(name, cfg.platform, req.out_dir / name, sel.variant, sel.grid, sel.precision, req.input_mode,
                        cfg, tuple(engines), _plugin_nodes(model), checked)


def package(req: PackageRequest, say: Any = None) -> PackageResult:
    """Write the repository of ``req`` (see the module docstring)."""
    from ..io import check_writable_dir, private_folder
    from ..profiles import load_profile
    from .readme import write_readme

    say = say or (lambda _t: None)
    if req.input_mode not in ("raw", "float"):
        raise UserError(f"--input {req.input_mode} is not raw or float.")
    from .repository import open_repository

    src = Path(req.source)
    run_profile, chosen = None, None
    warnings: tuple[str, ...] = ()
    if req.name is not None:
        model_name(Selection("", None, "", src), req, 1)  # a single path component, checked first
    repo = open_repository(req.out_dir, req.force)  # refuses a folder that is not the tool's to write into
    if src.is_dir():
        sels, how, run_profile, chosen, warnings = select_from_run(req)
    elif src.suffix == ".onnx" and src.is_file():
        if req.grids or req.precision or req.latency_ms is not None:
            raise UserError("--grids, --precision and --latency-ms choose among a run's models; MODEL.onnx is packaged as it is.",
                            "Give a run folder to choose from, or the .onnx file you want served.")
        sels, how = [select_model(src)], f"the given model {src}"
    else:
        raise UserError(f"{src} is neither a run folder nor an .onnx file.",
                        "Give the folder of a `lookupvit run` (its -o DIR) or an .onnx model.")
    names = req.profiles or ((run_profile,) if run_profile else ())
    if not names:
        raise UserError("No deployment profile given.", "Pass --profile NAME (`lookupvit profiles` lists them).")
    profiles = [load_profile(n) for n in names]
    _check_profiles(profiles)
    check_writable_dir(req.out_dir)
    model_names = [model_name(sel, req, len(sels)) for sel in sels]
    for name in model_names:  # every refusal before anything is written
        repo.check_model(name)
    repo.check_readme()
    req.out_dir.mkdir(parents=True, exist_ok=True)
    models = []
    for sel, name in zip(sels, model_names):
        final = req.out_dir / name
        say(f"package {name}")
        with private_folder(final) as staging:
            m = package_model(sel, name, profiles, req, staging / name, say)
            repo.replace_model(name)
            os.replace(staging / name, final)
        repo.add_folder(name)
        repo.save()
        models.append(m)
    default = next((m.name for m in models if m.grid == chosen), models[0].name)  # the grid pick chose
    result = PackageResult(req.out_dir, tuple(models), req.out_dir / "README.md", default, how, tuple(warnings))
    write_readme(result, profiles)
    repo.add(["README.md"])
    repo.save()
    return result


def _check_profiles(profiles: list[Any]) -> None:
    first = profiles[0]
    if len(profiles) > 1:
        if not all(p.is_tensorrt for p in profiles):
            raise UserError("Several --profile values make one engine per GPU: every one must be a TensorRT profile.",
                            "Give one ONNX Runtime profile, or TensorRT profiles only.")
        ccs = [p.compute_capability for p in profiles]
        if len(set(ccs)) != len(ccs):
            raise UserError("Two of the --profile values target the same compute capability; Triton chooses an engine "
                            "by compute capability (cc_model_filenames), so only one engine per capability can be served.",
                            "Keep one profile per compute capability (e.g. h100 or h200, not both).")
        for p in profiles[1:]:
            if p.batch != first.batch:
                raise UserError(f"Profiles {first.name} and {p.name} have different [batch] settings; the instance groups "
                                "of one config map to the same optimisation-profile indices in every engine.",
                                "Package profiles with the same batch min/opt/max together, or package them into separate repositories.")
