"""Our int8/fp8 Q/DQ placement (`lookupvit precision --to int8|fp8 --target tensorrt`) against NVIDIA Model
Optimizer's ONNX post-training quantization (`modelopt.onnx.quantization.quantize`), on the same fp32 graphs
and the same calibration images: task accuracy on ONNX Runtime's CPU provider, where the Q/DQ pairs sit, and
whether TensorRT-RTX builds each graph (engine size, build time).

    python bench/bench_modelopt.py                               # digits g2 and LookupViT-B/16 g7 (~12 min on 2 cores)
    python bench/bench_modelopt.py --models digits               # a quick check (about a minute)
    python bench/bench_modelopt.py --scratch /tmp/mo-bench --calib-size 256 --modelopt-python /work/modelopt-env/bin/python

Model Optimizer lives in its own virtual environment, outside the project (its declared dependencies pull a
CUDA build of torch); the ONNX quantization path needs only these CPU packages, each found by importing
`modelopt.onnx.quantization` and reading the error:

    python3 -m venv /work/modelopt-env
    /work/modelopt-env/bin/pip install --no-deps nvidia-modelopt==0.47.0
    /work/modelopt-env/bin/pip install "onnx~=1.21.0"             # brings numpy, ml_dtypes, protobuf
    /work/modelopt-env/bin/pip install "onnx-graphsurgeon>=0.6.1"
    /work/modelopt-env/bin/pip install "onnxruntime~=1.24.2"      # the CPU build (modelopt pins onnxruntime-gpu)
    /work/modelopt-env/bin/pip install tqdm
    /work/modelopt-env/bin/pip install torch==2.13.0              # the local CPU wheel; qdq_utils imports torch
    /work/modelopt-env/bin/pip install "nvidia-ml-py>=12"         # pynvml (no GPU needed: it logs an error, goes on)
    /work/modelopt-env/bin/pip install "onnxslim>=0.1.76"
    /work/modelopt-env/bin/pip install onnxscript
    /work/modelopt-env/bin/pip install lief

Method, per model (--models):
- digits: `lookupvit export lookupvit_digits --grids 2,4`, `lookupvit optimize` of grid 2 (default target), the
  fp32 graph both tools quantize. Accuracy: top-1 on the held-out digits split (exporter.data.load_data, the
  split `lookupvit compare` and `validate --data digits` use), 360 images.
- b16: `lookupvit export lookupvit_b16 --grids 7` and `lookupvit optimize`. The bundled colour crops carry no
  ImageNet labels, so accuracy is the top-1 agreement with the fp32 graph on the held-out crops (photos test
  split, 64 images: one image is 1.56 points). lookupvit_b16 ships no checkpoint: it is the seeded random
  initialisation, whose logits lie close together, so the logits' cosine says more than the agreement there.
- ours: `lookupvit precision OPT.onnx --to int8|fp8 --target tensorrt --force` (calibration defaults: --calib
  auto, --calib-size, the tool's own rule: minmax, amax/127 for int8 and amax/448 for fp8), run through the CLI
  as it is at run time.
- Model Optimizer: the same OPT.onnx (hard-linked into its own folder: it writes intermediate files beside its
  input) and the same calibration images, dumped to an .npy by the library function our CLI calls
  (exporter.precision.quantize.calibration_images: same source, count, seed and normalisation), run in the
  --modelopt-python interpreter as a child process:
  quantize(onnx_path, quantize_mode="int8"|"fp8", calibration_data=<the .npy array>,
  calibration_method=--modelopt-calib-method, calibration_shapes="images:32xCxHxW", calibration_eps=["cpu"],
  high_precision_dtype=--modelopt-high-precision, output_path=...). The graphs' batch axis is dynamic:
  modelopt would fill it with 1 (256 calibration steps of one image), so calibration_shapes fixes the
  calibration batch at 32, our calibration batch. The defaults "max" and "fp32" give Model Optimizer the scale
  rule ours uses (amax / 127, amax / 448) and keep what it does not quantize in fp32 as ours does, so the
  comparison is of the Q/DQ placement; Model Optimizer's own defaults are "entropy" and "fp16".
- Q/DQ census of each graph: QuantizeLinear and DequantizeLinear nodes, the op types their outputs feed
  (edges: DequantizeLinear -> consumer; per op type the nodes with a quantized input), weights vs activations,
  and the MatMul/Gemm/Conv/Attention nodes left in float.
- Build: `lookupvit build GRAPH --profile l4 --precision P -o DIR --json --force` (TensorRT-RTX ahead of time
  where no GPU is visible; one fresh folder per graph, so no timing cache is shared). Where that command cannot
  build on this machine (it exits 2 before building), or its `lookupvit check` preflight refuses the graph before
  the builder runs (a prediction, e.g. of a builder crash), a raw TensorRT-RTX build in a child process instead:
  strongly typed network, SM 8.9, one optimisation profile min=opt=1, max=8; a signal kills only that child
  and is reported as "crashed (SIGSEGV)". The table says which was used.

Verdict (the issue's target): ours builds wherever theirs does, with top-1 (b16: agreement with fp32) no more
than 0.3 points below theirs, for every model and precision: PASSED / MISSED (NOT MEASURED when a graph could
not be made or run). A table goes to stdout, everything to --out (bench/results/modelopt.json) with machine
facts (CPU, cores, load average at start and end) and versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRECISIONS = ("int8", "fp8")
TOLERANCE_POINTS = 0.3  # the target: ours no more than 0.3 top-1 points below Model Optimizer
CALIB_BATCH = 32  # exporter.precision.quantize.CALIB_BATCH: Model Optimizer calibrates with the same batch
EVAL_BATCH = 32
BUILD_PROFILE = "l4"  # sm_89: fp8 and int8 tensor cores
FALLBACK_MAX_BATCH = 8
COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "Attention")
DEFAULT_MODELOPT_PYTHON = "/work/modelopt-env/bin/python"
TIMED_OUT = -999  # run()'s exit status for a command killed at its time limit


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked graph: what to export, which grid's graph to quantize, how to score it."""

    key: str
    variant: str
    export_grids: str
    grid: str
    eval_data: str  # exporter.data source of the held-out images
    labelled: bool  # True: task top-1 on labels; False: top-1 agreement with the fp32 graph


MODELS = {
    "digits": ModelSpec("digits", "lookupvit_digits", "2,4", "2", "digits", True),
    "b16": ModelSpec("b16", "lookupvit_b16", "7", "7", "photos", False),
}


@dataclass
class QdqCensus:
    quantize_linear: int
    dequantize_linear: int
    dq_weights: int  # DequantizeLinear of a stored tensor (quantized weight, or Q of a float weight)
    dq_activations: int  # DequantizeLinear of a QuantizeLinear of a computed tensor
    feeds: dict[str, int]  # DequantizeLinear output -> consumer edges, per consumer op type
    quantized_nodes: dict[str, int]  # nodes with at least one dequantized input, per op type
    float_compute: dict[str, int]  # MatMul/Gemm/Conv/Attention nodes with no dequantized input
    nodes: int
    onnx_bytes: int


@dataclass
class Accuracy:
    metric: str  # "top-1" (labelled digits) or "agreement" (top-1 agreement with the fp32 graph)
    value: float  # percent: the figure the verdict compares
    samples: int
    top1: float | None  # task top-1 (labelled data only)
    agreement: float  # top-1 agreement with the fp32 graph
    cosine: float  # of the logits against the fp32 graph's (exporter.validate.comparison.output_metrics)
    max_rel: float  # largest logit error over the fp32 logits' scale
    ort_level: str  # ONNX Runtime graph optimisation level the graph ran at
    note: str | None = None


@dataclass
class BuildResult:
    status: str  # "built", "failed", "crashed (SIGSEGV)", "timed out", ...
    via: str  # "lookupvit build" or "tensorrt_rtx fallback"
    engine_bytes: int | None = None
    build_seconds: float | None = None
    wall_seconds: float | None = None
    message: str | None = None
    cli_refusal: str | None = None  # why `lookupvit build` did not build here, when the fallback ran
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def built(self) -> bool:
        return self.status == "built"


@dataclass
class Cell:
    model: str
    precision: str  # fp32, int8, fp8
    tool: str  # "fp32" (the shared input), "ours", "modelopt"
    graph: str | None = None
    make_seconds: float | None = None
    error: str | None = None  # the graph could not be made or run
    census: QdqCensus | None = None
    accuracy: Accuracy | None = None
    build: BuildResult | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    model: str
    precision: str
    status: str  # "met", "MISSED", "not measured"
    text: str


@dataclass
class Verdict:
    status: str  # PASSED, MISSED, NOT MEASURED
    goal: str
    checks: list[Check]

    @property
    def line(self) -> str:
        return f"verdict: {self.status}: {self.goal}"


# --- running things ---------------------------------------------------------------------------------


def run(cmd: list[str], cwd: Path, log: Path, timeout: float | None = None) -> tuple[int, str, float]:
    """Run ``cmd`` in ``cwd``; stderr to ``log``; return (exit status, stdout, seconds)."""
    t0 = time.perf_counter()
    with open(log, "w") as err:
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return TIMED_OUT, out, time.perf_counter() - t0
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def cli() -> list[str]:
    """Our CLI, `lookupvit`, from the interpreter's environment (else `python -m exporter.cli`)."""
    exe = Path(sys.executable).parent / "lookupvit"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "exporter.cli"]


def json_of(stdout: str) -> dict[str, Any]:
    """The JSON document a `--json` command printed (empty when it printed none)."""
    text = stdout.strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        start = text.find("{")
        try:
            data = json.loads(text[start:]) if start >= 0 else {}
        except json.JSONDecodeError:
            return {}
    return data if isinstance(data, dict) else {}


def tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(x.strip() for x in path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def signal_status(code: int) -> str:
    try:
        return f"crashed ({signal.Signals(-code).name})"
    except ValueError:
        return f"crashed (signal {-code})"


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# --- the graphs -------------------------------------------------------------------------------------


def prepare_fp32(spec: ModelSpec, folder: Path) -> tuple[Path, dict[str, float]]:
    """Export (reused by the CLI when identical) and optimize (default target); the optimized graph."""
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    rc, _, seconds["export"] = run([*cli(), "export", spec.variant, "--grids", spec.export_grids, "-o", str(folder),
                                    "--json"], folder, folder / "export.log")
    if rc != 0:
        raise RuntimeError(f"lookupvit export {spec.variant} failed ({rc}): {tail(folder / 'export.log')}")
    plain = folder / f"{spec.variant}_g{spec.grid}.onnx"
    opt = folder / f"{spec.variant}_g{spec.grid}.opt.onnx"
    rc, _, seconds["optimize"] = run([*cli(), "optimize", str(plain), "-o", str(opt), "--json"], folder,
                                     folder / "optimize.log")
    if rc != 0 or not opt.is_file():
        raise RuntimeError(f"lookupvit optimize {plain.name} failed ({rc}): {tail(folder / 'optimize.log')}")
    print(f"{spec.key}: export {seconds['export']:.0f} s, optimize {seconds['optimize']:.0f} s -> {opt}", file=sys.stderr)
    return opt, seconds


def input_spec(path: Path) -> Any:
    """What the graph takes (shape, mean, std), read as `lookupvit precision` reads it."""
    from exporter.onnx_io import load_onnx, lookupvit_metadata
    from exporter.precision.convert import input_spec_of

    model = load_onnx(path, weights=False)
    return input_spec_of(model, lookupvit_metadata(model))[0]


def dump_calibration(opt: Path, size: int, folder: Path) -> tuple[Path, dict[str, Any]]:
    """The calibration images `lookupvit precision --calib auto --calib-size SIZE` uses, as an .npy."""
    from exporter.precision.quantize import calibration_images, resolve_calibration

    spec = input_spec(opt)
    calib = resolve_calibration("auto", spec)
    images, where = calibration_images(calib, spec, size)
    path = folder / "calibration.npy"
    np.save(path, np.ascontiguousarray(images, dtype=np.float32))
    info = {**where, "calib": calib, "shape": list(images.shape), "npy": str(path),
            "sha256": hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()}
    return path, info


def ours(key: str, opt: Path, precision: str, calib_size: int, folder: Path) -> Cell:
    """`lookupvit precision OPT --to PRECISION --target tensorrt` (calibration defaults) through the CLI."""
    out = folder / f"ours.{precision}.onnx"
    cell = Cell(key, precision, "ours", str(out))
    cmd = [*cli(), "precision", str(opt), "--to", precision, "--target", "tensorrt", "--calib", "auto",
           "--calib-size", str(calib_size), "-o", str(out), "--json", "--force"]
    rc, stdout, cell.make_seconds = run(cmd, folder, folder / f"ours.{precision}.log")
    report = json_of(stdout)
    cell.settings = {"command": " ".join(["lookupvit", *cmd[len(cli()):]]), "settings": report.get("settings"),
                     "calibration": report.get("calibration"), "notes": report.get("notes")}
    if rc != 0 or not out.is_file():
        cell.error = f"lookupvit precision exited {rc}: {report.get('error') or tail(folder / f'ours.{precision}.log')}"
    return cell


MODELOPT_CHILD = r"""
import json, sys, time
import numpy as np
from modelopt.onnx.quantization import quantize
args = json.loads(sys.argv[1])
kwargs = dict(args["kwargs"])
kwargs["calibration_data"] = np.load(args["npy"])
t0 = time.perf_counter()
quantize(args["onnx"], **kwargs)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def modelopt_kwargs(precision: str, calib_shape: list[int], input_name: str, method: str, high: str,
                    out: Path) -> dict[str, Any]:
    batch = min(CALIB_BATCH, calib_shape[0])
    return {
        "quantize_mode": precision,
        "calibration_method": method,
        "calibration_shapes": f"{input_name}:" + "x".join(str(d) for d in [batch, *calib_shape[1:]]),
        "calibration_eps": ["cpu"],
        "high_precision_dtype": high,
        "output_path": str(out),
        "log_level": "INFO",
    }


def modelopt(key: str, opt: Path, precision: str, npy: Path, calib_shape: list[int], args: argparse.Namespace,
             folder: Path) -> Cell:
    """Model Optimizer's ONNX PTQ of the same graph and images, in its own interpreter."""
    import onnx

    work = folder / f"modelopt.{precision}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = work / opt.name
    link_or_copy(opt, src)  # Model Optimizer writes <input>_named.onnx and friends beside its input
    out = folder / f"modelopt.{precision}.onnx"
    if out.exists():
        out.unlink()
    graph = onnx.load(str(opt), load_external_data=False)
    inits = {t.name for t in graph.graph.initializer}
    input_name = next(i.name for i in graph.graph.input if i.name not in inits)
    del graph
    kwargs = modelopt_kwargs(precision, calib_shape, input_name, args.modelopt_calib_method,
                             args.modelopt_high_precision, out)
    cell = Cell(key, precision, "modelopt", str(out))
    cell.settings = {"call": "modelopt.onnx.quantization.quantize", "onnx_path": str(src),
                     "calibration_data": f"np.load({str(npy)!r})", **kwargs}
    log = folder / f"modelopt.{precision}.log"
    child = [args.modelopt_python, "-c", MODELOPT_CHILD, json.dumps({"onnx": str(src), "npy": str(npy), "kwargs": kwargs})]
    rc, _, cell.make_seconds = run(child, work, log, timeout=args.modelopt_timeout)
    shutil.rmtree(work, ignore_errors=True)
    if rc != 0 or not out.is_file():
        why = "timed out" if rc == TIMED_OUT else signal_status(rc) if rc < 0 else f"exited {rc}"
        cell.error = f"Model Optimizer {why}: {tail(log, 4)}"
    return cell


# --- Q/DQ census ------------------------------------------------------------------------------------


def census(path: Path) -> QdqCensus:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    stored = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    ops = Counter(n.op_type for n in g.node)
    feeds: Counter[str] = Counter()
    quantized: dict[str, set[int]] = {}
    weights = activations = 0
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        src = producer.get(n.input[0])
        if n.input[0] in stored or (src is not None and src.op_type == "QuantizeLinear" and src.input[0] in stored):
            weights += 1  # ours stores weights quantized (DQ only); Model Optimizer keeps Q -> DQ on float weights
        elif src is not None and src.op_type == "QuantizeLinear":
            activations += 1
        for c in consumers.get(n.output[0], []):
            feeds[c.op_type] += 1
            quantized.setdefault(c.op_type, set()).add(id(c))
    floats = Counter(n.op_type for n in g.node if n.op_type in COMPUTE_OPS
                     and not any((p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" for i in n.input))
    return QdqCensus(
        quantize_linear=ops.get("QuantizeLinear", 0), dequantize_linear=ops.get("DequantizeLinear", 0),
        dq_weights=weights, dq_activations=activations, feeds=dict(feeds.most_common()),
        quantized_nodes={k: len(v) for k, v in sorted(quantized.items(), key=lambda kv: -len(kv[1]))},
        float_compute=dict(floats.most_common()), nodes=len(g.node), onnx_bytes=path.stat().st_size,
    )


# --- accuracy on ONNX Runtime's CPU provider --------------------------------------------------------


def logits_of(path: Path, images: np.ndarray) -> tuple[np.ndarray, str, str | None]:
    """The first output of ``path`` over ``images`` on ONNX Runtime's CPU provider. As `lookupvit compare`
    does, a graph the default optimisation level refuses (ONNX Runtime's Q/DQ fusions reject fp8) runs at the
    basic level, its Q/DQ pairs executed as written."""
    import onnxruntime as ort

    from exporter.backends import ort_session

    providers = ["CPUExecutionProvider"]
    level, note = "default", None
    try:
        sess = ort_session(path, providers)
        sess.run(None, {sess.get_inputs()[0].name: images[:1]})
    except Exception as e:
        note = f"default level failed ({' '.join(str(e).split())[:200]}); run at the basic level"
        sess = ort_session(path, providers, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
        level = "basic"
    name = sess.get_inputs()[0].name
    out = [sess.run(None, {name: images[i : i + EVAL_BATCH]})[0] for i in range(0, len(images), EVAL_BATCH)]
    return np.concatenate(out), level, note


def score(path: Path, data: Any, labelled: bool, reference: np.ndarray | None) -> tuple[Accuracy, np.ndarray]:
    """Top-1 on the labels (as `lookupvit compare` computes it: argmax == label) and agreement with the fp32
    graph's logits ``reference`` (the fp32 graph itself: None)."""
    from exporter.validate.comparison import output_metrics

    logits, level, note = logits_of(path, data.images)
    ref = logits if reference is None else reference
    metrics = output_metrics(logits, ref)
    agreement = 100.0 * float((logits.argmax(-1) == ref.argmax(-1)).mean())
    top1 = 100.0 * float((logits.argmax(-1) == data.labels).mean()) if labelled else None
    acc = Accuracy(
        metric="top-1" if labelled else "agreement", value=top1 if top1 is not None else agreement,
        samples=len(logits), top1=top1, agreement=agreement, cosine=float(metrics["cosine"] or 0.0),
        max_rel=float(metrics["max_rel"] or 0.0), ort_level=level, note=note,
    )
    return acc, logits


# --- TensorRT-RTX builds ----------------------------------------------------------------------------


TRT_CHILD = r"""
import json, sys, time
import tensorrt_rtx as trt
path, engine_path, max_batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
parser = trt.OnnxParser(net, logger)
if not parser.parse_from_file(path):
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    print(json.dumps({"status": "failed", "message": "ONNX parser: " + " | ".join(errors)[:1500]}))
    sys.exit(0)
cfg = builder.create_builder_config()
cfg.num_compute_capabilities = 1
cfg.set_compute_capability(trt.ComputeCapability.SM89, 0)
profile = builder.create_optimization_profile()
for i in range(net.num_inputs):
    t = net.get_input(i)
    shape = list(t.shape)
    low = [1 if d < 0 else d for d in shape]
    high = [max_batch if d < 0 else d for d in shape]
    profile.set_shape(t.name, low, low, high)
cfg.add_optimization_profile(profile)
t0 = time.perf_counter()
engine = builder.build_serialized_network(net, cfg)
seconds = time.perf_counter() - t0
if engine is None:
    print(json.dumps({"status": "failed", "message": "build_serialized_network returned None", "build_seconds": seconds}))
    sys.exit(0)
with open(engine_path, "wb") as f:
    f.write(engine)
print(json.dumps({"status": "built", "engine_bytes": engine.nbytes, "build_seconds": seconds,
                  "layers": net.num_layers, "tensorrt": trt.__version__}))
"""


def build(path: Path, precision: str, folder: Path, timeout: float) -> BuildResult:
    """Build ``path`` with `lookupvit build`; where that command cannot build on this machine (it exits 2
    before building), or refuses the graph on its `check` preflight's prediction before the builder runs, with
    TensorRT-RTX directly in a child process (a crash ends only that child), so each status is the builder's."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cmd = [*cli(), "build", str(path), "--profile", BUILD_PROFILE, "--precision", precision, "-o", str(folder),
           "--json", "--force"]
    rc, stdout, wall = run(cmd, folder, folder / "build.log", timeout=timeout + 60)
    report = json_of(stdout)
    if rc == 0 and report.get("engine"):
        engine = Path(report["engine"])
        size = report.get("engine_bytes") or (engine.stat().st_size if engine.is_file() else None)
        keep = ("profile", "target", "tensorrt", "ahead_of_time", "layers", "cache_key", "warnings")
        return BuildResult("built", "lookupvit build", size, report.get("build_seconds"), round(wall, 2),
                           details={k: report[k] for k in keep if k in report})
    message = report.get("error") or tail(folder / "build.log")
    if rc == 1 and "would be refused" in message:  # our `check` preflight's prediction: ask the builder itself
        return fallback_build(path, folder, timeout, f"refused by its check (exit 1): {message}")
    if rc == 1:  # the command built, and the build failed: a result
        crashed = re.search(r"crashed \(([A-Z0-9 ]+)\)", message)
        status = (f"crashed ({crashed.group(1)})" if crashed else
                  "timed out" if "did not finish" in message else "failed")
        return BuildResult(status, "lookupvit build", wall_seconds=round(wall, 2), message=message)
    refusal = f"exit {rc}: {message}" if rc != TIMED_OUT else "lookupvit build timed out"
    return fallback_build(path, folder, timeout, refusal)


def fallback_build(path: Path, folder: Path, timeout: float, refusal: str) -> BuildResult:
    engine = folder / (path.stem + ".plan")
    log = folder / "fallback.log"
    rc, stdout, wall = run([sys.executable, "-c", TRT_CHILD, str(path), str(engine), str(FALLBACK_MAX_BATCH)],
                           folder, log, timeout=timeout)
    via = "tensorrt_rtx fallback"
    if rc == TIMED_OUT:
        return BuildResult("timed out", via, wall_seconds=round(wall, 2), message=f"no engine after {timeout:.0f} s",
                           cli_refusal=refusal)
    if rc < 0:
        return BuildResult(signal_status(rc), via, wall_seconds=round(wall, 2), message=tail(log), cli_refusal=refusal)
    report = json_of(stdout.strip().splitlines()[-1] if stdout.strip() else "")
    if rc != 0 or not report:
        return BuildResult("failed", via, wall_seconds=round(wall, 2), message=f"exit {rc}: {tail(log)}",
                           cli_refusal=refusal)
    if report.get("status") != "built":
        msg = report.get("message", "")
        return BuildResult("failed", via, build_seconds=report.get("build_seconds"), wall_seconds=round(wall, 2),
                           message=f"{msg} | {tail(log, 3)}", cli_refusal=refusal)
    return BuildResult("built", via, report.get("engine_bytes"), report.get("build_seconds"), round(wall, 2),
                       cli_refusal=refusal, details={"layers": report.get("layers"), "tensorrt": report.get("tensorrt"),
                                                     "target": "sm_89", "profile": f"batch 1..{FALLBACK_MAX_BATCH}"})


# --- the verdict ------------------------------------------------------------------------------------


def judge(cells: list[Cell]) -> Verdict:
    goal = (f"ours builds wherever theirs does, with top-1 no more than {TOLERANCE_POINTS} points below theirs "
            "(b16: top-1 agreement with the fp32 graph)")
    by = {(c.model, c.precision, c.tool): c for c in cells}
    checks: list[Check] = []
    for model in dict.fromkeys(c.model for c in cells):
        for p in PRECISIONS:
            a, b = by.get((model, p, "ours")), by.get((model, p, "modelopt"))
            if a is None or b is None:
                continue
            if a.accuracy is None or b.accuracy is None or a.build is None or b.build is None:
                why = (a.error or b.error or "not scored")
                checks.append(Check(model, p, "not measured", f"{model} {p}: {why}"))
                continue
            builds_ok = a.build.built or not b.build.built
            diff = a.accuracy.value - b.accuracy.value
            acc_ok = diff >= -TOLERANCE_POINTS - 1e-9
            both = ("both build" if a.build.built and b.build.built else
                    "neither builds" if not a.build.built and not b.build.built else
                    "only ours builds" if a.build.built else "only theirs builds")
            checks.append(Check(model, p, "met" if builds_ok and acc_ok else "MISSED",
                                f"{model} {p}: {both} (ours {a.build.status}, theirs {b.build.status}); "
                                f"{a.accuracy.metric} ours {a.accuracy.value:.2f} vs theirs {b.accuracy.value:.2f} "
                                f"({diff:+.2f} points, {a.accuracy.samples} images)"))
    status = ("MISSED" if any(c.status == "MISSED" for c in checks) else
              "NOT MEASURED" if not checks or any(c.status == "not measured" for c in checks) else "PASSED")
    return Verdict(status, goal, checks)


# --- reporting --------------------------------------------------------------------------------------


def short(counts: dict[str, int] | None) -> str:
    return " ".join(f"{k}:{v}" for k, v in (counts or {}).items()) or "-"


def print_table(cells: list[Cell]) -> None:
    head = (f"{'model':<7} {'prec':<5} {'tool':<9} {'Q':>4} {'DQ':>4} {'DQ w/a':>7} {'acc %':>7} {'agree %':>7} "
            f"{'cosine':>8} {'build':<18} {'via':<8} {'MiB':>6} {'build s':>7}  nodes with Q/DQ inputs | left in float")
    print(head)
    print("-" * len(head))
    for c in cells:
        q = c.census
        acc = c.accuracy
        b = c.build
        feeds = f"{short(q.quantized_nodes)} | {short(q.float_compute)}" if q else (c.error or "-")
        print(f"{c.model:<7} {c.precision:<5} {c.tool:<9} "
              f"{(q.quantize_linear if q else '-')!s:>4} {(q.dequantize_linear if q else '-')!s:>4} "
              f"{(f'{q.dq_weights}/{q.dq_activations}' if q else '-'):>7} "
              f"{(f'{acc.value:.2f}' if acc else '-'):>7} {(f'{acc.agreement:.2f}' if acc else '-'):>7} "
              f"{(f'{acc.cosine:.5f}' if acc else '-'):>8} {(b.status if b else '-'):<18} "
              f"{('cli' if b and b.via == 'lookupvit build' else 'fallback' if b else '-'):<8} "
              f"{(f'{b.engine_bytes / 2**20:.1f}' if b and b.engine_bytes else '-'):>6} "
              f"{(f'{b.build_seconds:.1f}' if b and b.build_seconds is not None else '-'):>7}  {feeds}")
        if c.error and q:
            print(f"        error: {c.error}")
    print("acc %: digits top-1 on the held-out split; b16 top-1 agreement with the fp32 graph (64 held-out crops). "
          "agree %: top-1 agreement with the fp32 graph; cosine: of the logits against it. DQ w/a: DequantizeLinear "
          "of weights / of activations. via cli: `lookupvit build --profile l4` (three optimisation profiles, batch "
          f"1/8/32, max 64); fallback: raw TensorRT-RTX build (one profile, batch 1..{FALLBACK_MAX_BATCH}): engine "
          "sizes and build times compare only between rows built the same way.")
    for c in cells:
        if c.census and c.census.feeds:
            print(f"  {c.model} {c.precision} {c.tool}: DequantizeLinear outputs feed {short(c.census.feeds)}")
    for c in cells:
        if c.build and c.build.message and not c.build.built:
            print(f"  {c.model} {c.precision} {c.tool}: {c.build.status} via {c.build.via}: "
                  f"{' '.join(c.build.message.split())[:400]}")
        if c.build and c.build.cli_refusal:
            print(f"  {c.model} {c.precision} {c.tool}: `lookupvit build` did not build it "
                  f"({' '.join(c.build.cli_refusal.split())[:300]})")


def machine(load: tuple[float, float, float]) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "loadavg_start": list(load)}


def versions(modelopt_python: str) -> dict[str, Any]:
    import exporter
    from exporter.versions import package_version, tool_versions

    probe = ("import json, importlib.metadata as m\n"
             "def v(n):\n    try:\n        return m.version(n)\n    except Exception:\n        return None\n"
             "print(json.dumps({n: v(n) for n in ('nvidia-modelopt', 'onnxruntime', 'onnx', 'onnx-graphsurgeon',"
             " 'torch', 'numpy')}))")
    try:
        out = subprocess.run([modelopt_python, "-c", probe], capture_output=True, text=True, timeout=120)
        mo = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as e:
        mo = {"error": str(e)}
    try:
        import tensorrt_rtx

        trt = tensorrt_rtx.__version__
    except ImportError:
        trt = None
    return {"exporter": exporter.__version__, "tensorrt_rtx": trt, "onnxruntime": package_version("onnxruntime"),
            "ours": tool_versions(), "modelopt_env": {"python": modelopt_python, **mo}}


# --- main -------------------------------------------------------------------------------------------


def bench_model(spec: ModelSpec, args: argparse.Namespace, cells: list[Cell]) -> dict[str, Any]:
    from exporter.data import load_data

    folder = Path(args.scratch).resolve() / spec.key
    t0 = time.perf_counter()
    opt, prep_seconds = prepare_fp32(spec, folder)
    npy, calib = dump_calibration(opt, args.calib_size, folder)
    data = load_data(spec.eval_data, input_spec(opt), split="test")
    info: dict[str, Any] = {"variant": spec.variant, "grid": spec.grid, "fp32_graph": str(opt),
                            "prepare_seconds": prep_seconds, "calibration": calib,
                            "evaluation": {"data": data.source, "images": len(data),
                                           "metric": "top-1" if spec.labelled else "top-1 agreement with fp32 graph"}}
    fp32 = Cell(spec.key, "fp32", "fp32", str(opt))
    fp32.census = census(opt)
    fp32.accuracy, reference = score(opt, data, spec.labelled, None)
    print(f"{spec.key} fp32: {fp32.accuracy.metric} {fp32.accuracy.value:.2f}", file=sys.stderr)
    mine: list[Cell] = [fp32]
    for p in PRECISIONS:
        for make in ("ours", "modelopt"):
            cell = (ours(spec.key, opt, p, args.calib_size, folder) if make == "ours"
                    else modelopt(spec.key, opt, p, npy, calib["shape"], args, folder))
            if cell.error is None:
                path = Path(cell.graph or "")
                cell.census = census(path)
                try:
                    cell.accuracy, _ = score(path, data, spec.labelled, reference)
                except Exception as e:  # the graph does not run on ONNX Runtime: a result, not a stop
                    cell.error = f"ONNX Runtime cannot run it: {' '.join(str(e).split())[:400]}"
            print(f"{spec.key} {p} {make}: made in {cell.make_seconds or 0:.0f} s"
                  + (f", {cell.accuracy.metric} {cell.accuracy.value:.2f}" if cell.accuracy else "")
                  + (f", ERROR {cell.error}" if cell.error else ""), file=sys.stderr)
            mine.append(cell)
    for cell in mine:  # builds last, one at a time (2 cores)
        if cell.graph and cell.error is None:
            cell.build = build(Path(cell.graph), cell.precision, folder / "engines" / f"{cell.tool}.{cell.precision}",
                               args.build_timeout)
            b = cell.build
            print(f"{spec.key} {cell.precision} {cell.tool}: {b.status} via {b.via}"
                  + (f", {b.engine_bytes / 2**20:.1f} MiB in {b.build_seconds:.1f} s" if b.built and b.engine_bytes
                     and b.build_seconds is not None else "")
                  + (f": {b.message[:300]}" if b.message else ""), file=sys.stderr)
    cells.extend(mine)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits,b16", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "mo-bench"),
                    help="folder for the graphs, calibration arrays and engines (outside the repository)")
    ap.add_argument("--calib-size", type=int, default=256, help="calibration images, both tools")
    ap.add_argument("--modelopt-python", default=DEFAULT_MODELOPT_PYTHON,
                    help="the interpreter of Model Optimizer's own environment")
    ap.add_argument("--modelopt-calib-method", default="max", choices=("max", "entropy"),
                    help="Model Optimizer's calibration_method (max: the amax rule ours uses; its default: entropy)")
    ap.add_argument("--modelopt-high-precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                    help="Model Optimizer's high_precision_dtype for what it leaves unquantized (ours: fp32; "
                         "its default: fp16)")
    ap.add_argument("--modelopt-timeout", type=float, default=1800.0, help="seconds for one Model Optimizer run")
    ap.add_argument("--build-timeout", type=float, default=1800.0, help="seconds for one engine build")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "modelopt.json"))
    args = ap.parse_args()
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    bad = [k for k in keys if k not in MODELS]
    if bad or not keys:
        ap.error(f"unknown model(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODELS)}")
    if args.calib_size < 1:
        ap.error("--calib-size must be at least 1")
    if not Path(args.modelopt_python).is_file():
        ap.error(f"--modelopt-python {args.modelopt_python} does not exist (see the module docstring to install it)")
    scratch = Path(args.scratch).resolve()
    if scratch.is_relative_to(ROOT):
        ap.error(f"--scratch {scratch} is inside the repository; use a folder outside it")

    from exporter.io import write_json

    t0 = time.perf_counter()
    facts = machine(os.getloadavg())
    vers = versions(args.modelopt_python)
    cells: list[Cell] = []
    models = {k: bench_model(MODELS[k], args, cells) for k in keys}
    verdict = judge(cells)
    facts["loadavg_end"] = list(os.getloadavg())
    wall = round(time.perf_counter() - t0, 1)
    print()
    print_table(cells)
    print()
    print(verdict.line)
    for c in verdict.checks:
        print(f"    {c.status:<12} {c.text}")
    result = {
        "kind": "bench-modelopt",
        "settings": {"models": keys, "scratch": str(scratch), "calib_size": args.calib_size,
                     "modelopt_python": args.modelopt_python, "modelopt_calib_method": args.modelopt_calib_method,
                     "modelopt_high_precision": args.modelopt_high_precision, "build_profile": BUILD_PROFILE,
                     "fallback_build": f"tensorrt_rtx, strongly typed, SM89, batch 1..{FALLBACK_MAX_BATCH}",
                     "tolerance_points": TOLERANCE_POINTS},
        "machine": facts, "versions": vers, "wall_seconds": wall, "models": models,
        "cells": [asdict(c) for c in cells],
        "verdict": {"status": verdict.status, "goal": verdict.goal, "line": verdict.line,
                    "checks": [asdict(c) for c in verdict.checks]},
    }
    write_json(args.out, result)
    print(f"wall time {wall:.0f} s; load average {facts['loadavg_start'][0]:.2f} at start, "
          f"{facts['loadavg_end'][0]:.2f} at end ({facts['cores']} cores); wrote {args.out}")


if __name__ == "__main__":
    main()
