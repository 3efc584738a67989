"""GPU acceptance: the whole deployment path on one machine with an NVIDIA GPU, in about ten minutes.

    python bench/gpu_acceptance.py -o runs/acceptance            # run everything this machine can
    python bench/gpu_acceptance.py -o runs/acceptance --dry-run  # print the plan, run nothing

With whatever of TensorRT, TensorRT-RTX and onnxruntime-gpu is installed, per GPU backend:

- lookupvit_digits: ``lookupvit compare`` over every precision the GPU runs (fp32, fp16; bf16 from
  sm_80; int8; fp8 from sm_89), top-1 accuracy per grid on the bundled digits, engines built and
  evaluated on the GPU;
- lookupvit_b16 at grids 3, 7 and 10, fp16 (``precision --target tensorrt`` for the engines,
  ``--target onnxruntime`` for ONNX Runtime), two graph forms: the ONNX Attention op (``optimize
  --form attention``) and the unfused MatMul-Softmax-MatMul form (``--form trt-mha``); each one
  checked (``lookupvit check``), built (``lookupvit build``), validated against PyTorch running on
  the GPU (``lookupvit validate``) and timed at batch 1 and 64 next to vit_b16 (``lookupvit profile``).

Every step is a ``lookupvit`` command line, run as a user would run it (nothing of the pipeline is
re-implemented here); each step's ``--json`` document is kept. Output: ``OUT/acceptance.json`` (the
machine, the versions, each step with its command, status, seconds and JSON) and
``OUT/acceptance.md`` (one table).

Loud, never silent: without an NVIDIA GPU, without a CUDA build of torch (the PyTorch reference runs
on the GPU) or without any of the three GPU runtimes the script exits 2 and says what is missing.
A runtime that is absent while another is present is listed with the reason in the output and in
both files, and its steps are shown as "not run". Exit 1 when any step that ran failed, 0 when all
passed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIGITS = "lookupvit_digits"
B16, B16_GRIDS, B16_BATCHES = "lookupvit_b16", (3, 7, 10), (1, 64)
BASELINE = "vit_b16"
FORMS = ("attention", "trt-mha")  # the ONNX Attention op, and the unfused MatMul-Softmax-MatMul
RUNTIMES = ("tensorrt", "onnxruntime")  # `lookupvit precision --target`
BACKENDS = ("tensorrt", "tensorrt-rtx", "ort-gpu")
BUDGET_S = 600.0


@dataclass(frozen=True)
class Environment:
    gpu: str | None
    compute_capability: tuple[int, int] | None
    torch_cuda: bool
    backends: dict[str, str]  # backend -> "" when usable, else why not

    def missing(self) -> list[str]:
        """The pieces without which nothing can run (exit 2)."""
        out = []
        if self.gpu is None:
            out.append("no NVIDIA GPU is visible (nvidia-smi / torch.cuda see none)")
        if not self.torch_cuda:
            out.append("torch has no CUDA (the PyTorch reference must run on the GPU): install a CUDA build of "
                       "torch 2.13 from the PyTorch index")
        if not any(v == "" for v in self.backends.values()):
            out.append("none of TensorRT, TensorRT-RTX or onnxruntime-gpu is usable: "
                       + "; ".join(f"{k}: {v}" for k, v in self.backends.items()))
        return out


@dataclass
class Step:
    name: str
    backend: str  # tensorrt | tensorrt-rtx | ort-gpu | any
    argv: list[str]
    status: str = "planned"  # planned | passed | failed | not run
    reason: str = ""
    seconds: float | None = None
    result: object = None  # the command's --json document

    @property
    def command(self) -> str:
        return shlex.join(["lookupvit", *self.argv])


@dataclass
class Acceptance:
    out: str
    dry_run: bool
    environment: dict[str, object]
    profiles: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "steps": [{**asdict(s), "command": s.command} for s in self.steps]}


def detect() -> Environment:
    """What this machine has, through the project's own probes (exporter.backends.tensorrt.env, exporter.backends)."""
    from exporter.backends.tensorrt import env

    gpu = env.detect_gpu()
    try:
        import torch

        torch_cuda = bool(torch.cuda.is_available())
    except Exception:
        torch_cuda = False
    backends: dict[str, str] = {}
    for flavour in ("tensorrt", "tensorrt-rtx"):
        choice, why = env.choose_tensorrt(flavour, exact=True)
        backends[flavour] = "" if choice is not None else (why or "not installed")
    try:
        import onnxruntime as ort

        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        backends["ort-gpu"] = "" if cuda else "onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
    except Exception as e:
        backends["ort-gpu"] = f"onnxruntime does not import ({type(e).__name__})"
    return Environment(gpu.name if gpu else None, gpu.compute_capability if gpu else None, torch_cuda, backends)


def gpu_precisions(cc: tuple[int, int]) -> list[str]:
    from exporter.profiles import gpu_has_precision

    return [p for p in ("fp32", "fp16", "bf16", "int8", "fp8") if gpu_has_precision(cc, p)]


def profile_for(backend: str, cc: tuple[int, int], gpu: str | None, out: Path, write: bool) -> str:
    """A shipped profile for this GPU (its name first, then its compute capability) and backend, whose
    batch range holds batch 64; else one written to OUT."""
    from exporter.profiles import list_profiles

    fits = [r.profile for r in list_profiles() if r.profile is not None and r.profile.compute_capability == cc
            and r.profile.backend == backend and r.profile.batch.max >= max(B16_BATCHES)]
    fits.sort(key=lambda p: not (gpu and p.gpu and p.gpu.lower() in gpu.lower()))
    if fits:
        return fits[0].name
    path = out / f"acceptance-{backend}-sm{cc[0]}{cc[1]}.toml"
    if write:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'description = "written by bench/gpu_acceptance.py for this GPU"\nbackend = "{backend}"\n'
            f'compute_capability = "{cc[0]}.{cc[1]}"\nprecisions = {json.dumps(gpu_precisions(cc))}\n'
            f"[batch]\nmin = 1\nopt = {list(B16_BATCHES)}\nmax = {max(B16_BATCHES)}\n"
        )
    return str(path)


def plan(env: Environment, out: Path, cc: tuple[int, int], write: bool,
         keep_fp32: str | None = None) -> tuple[list[Step], dict[str, str]]:
    """Every step, for every GPU backend (those missing here are planned too, and marked not run);
    ``keep_fp32`` is passed to the fp16 conversions (`lookupvit precision --keep-fp32`)."""
    steps: list[Step] = []
    models = out / "models"
    profiles: dict[str, str] = {}
    precisions = ",".join(gpu_precisions(cc))
    for g in B16_GRIDS:
        steps.append(Step(f"export {B16} g{g}", "any", ["export", B16, "--grid", str(g), "-o", str(models), "--json"]))
        exported = models / f"{B16}_g{g}.onnx"
        for form in FORMS:
            opt = models / f"{B16}_g{g}.{form}.onnx"
            steps.append(Step(f"optimize g{g} {form}", "any", ["optimize", str(exported), "--form", form,
                                                                "-o", str(opt), "--json"]))
            keep = ["--keep-fp32", keep_fp32] if keep_fp32 else []
            for runtime in RUNTIMES:  # the fp16 graph is written for the runtime that runs it
                steps.append(Step(f"precision g{g} {form} fp16 for {runtime}", "any", [
                    "precision", str(opt), "--to", "fp16", "--target", runtime, *keep,
                    "-o", str(_fp16(opt, runtime)), "--json"]))
    for backend in BACKENDS:
        root = out / backend
        if backend == "ort-gpu":
            steps.append(Step(f"[{backend}] compare {DIGITS}", backend, [
                "compare", DIGITS, "--precisions", "fp32,fp16", "--backend", "ort", "-o", str(root / "digits"), "--json"]))
            for g in B16_GRIDS:
                for form in FORMS:
                    model = _fp16(models / f"{B16}_g{g}.{form}.onnx", "onnxruntime")
                    steps.append(Step(f"[{backend}] validate g{g} {form}", backend, ["validate", str(model), "--json"]))
                    steps.append(Step(f"[{backend}] profile g{g} {form}", backend, [
                        "profile", str(model), "--backends", "ort", "--batch", ",".join(map(str, B16_BATCHES)),
                        "--baseline", BASELINE, "-o", str(root / "latency" / f"g{g}.{form}"), "--json"]))
            continue
        prof = profile_for(backend, cc, env.gpu, out, write and env.backends.get(backend) == "")
        profiles[backend] = prof
        steps.append(Step(f"[{backend}] compare {DIGITS}", backend, [
            "compare", DIGITS, "--precisions", precisions, "--backend", "trt", "--profile", prof,
            "-o", str(root / "digits"), "--json"]))
        for g in B16_GRIDS:
            for form in FORMS:
                model = _fp16(models / f"{B16}_g{g}.{form}.onnx", "tensorrt")
                engine = root / "engines" / Path(prof).stem / (model.name.removesuffix(".onnx") + ".plan")  # plan.py's rule
                steps += [
                    Step(f"[{backend}] check g{g} {form}", backend, ["check", str(model), "--profile", prof, "--json"]),
                    Step(f"[{backend}] build g{g} {form}", backend, ["build", str(model), "--profile", prof,
                                                                      "-o", str(root), "--json"]),
                    Step(f"[{backend}] validate g{g} {form}", backend, ["validate", str(engine), "--json"]),
                    Step(f"[{backend}] profile g{g} {form}", backend, [
                        "profile", str(engine), "--backends", "trt", "--batch", ",".join(map(str, B16_BATCHES)),
                        "--baseline", BASELINE, "--profile", prof, "-o", str(root / "latency" / f"g{g}.{form}"),
                        "--json"]),
                ]
    for s in steps:
        why = env.backends.get(s.backend, "")
        if why:
            s.status, s.reason = "not run", f"{s.backend} missing: {why}"
    return steps, profiles


def _fp16(opt: Path, runtime: str) -> Path:
    """``<stem>.trt.fp16.onnx`` (for TensorRT) or ``<stem>.ort.fp16.onnx`` (for ONNX Runtime)."""
    tag = "trt" if runtime == "tensorrt" else "ort"
    return opt.with_name(opt.name.removesuffix(".onnx") + f".{tag}.fp16.onnx")


def run_step(s: Step, started: float) -> None:
    if time.monotonic() - started > BUDGET_S * 1.5:
        s.status, s.reason = "not run", f"over the time budget ({BUDGET_S * 1.5:.0f} s) before this step"
        return
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "exporter.cli", *s.argv], cwd=ROOT, capture_output=True, text=True)
    s.seconds = round(time.monotonic() - t0, 2)
    try:
        s.result = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        s.result = proc.stdout[-4000:]
    s.status = "passed" if proc.returncode == 0 else "failed"
    if proc.returncode:
        s.reason = f"exit {proc.returncode}: " + " ".join(proc.stderr.strip().splitlines()[-3:])[-600:]


def _detail(s: Step) -> str:
    """A short figure per step from its JSON, when the step produced one."""
    r = s.result
    if not isinstance(r, dict):
        return ""
    if "engine" in r and "build_seconds" in r:
        return f"{r.get('layers')} layers, built in {r.get('build_seconds')} s"
    if "status" in r and "outputs" in r:
        return str(r["status"])
    if r.get("kind") == "latency-sweep":
        cells = [c for c in r.get("cells", []) if isinstance(c, dict) and c.get("latency")]
        return "; ".join(f"{c['model']} b{c['batch']} p50 {c['latency']['p50_ms']:.2f} ms"
                         + (f" x{c['speedup']:.2f} vs {c['baseline']}" if c.get("speedup") else "") for c in cells)
    if "passed" in r and "findings" in r:
        fused = sum(1 for e in r.get("fusion", []) if e.get("fused"))
        return f"{r.get('errors')} errors, {fused}/{len(r.get('fusion', []))} attentions expected fused"
    return ""


def markdown(acc: Acceptance) -> str:
    env = acc.environment
    backends = env.get("backends")
    runtimes = backends.items() if isinstance(backends, dict) else []
    lines = [
        f"# GPU acceptance ({acc.started}, {env.get('gpu') or 'no GPU'})",
        "",
        f"Runtimes: {', '.join(f'{k}: ' + ('yes' if not v else f'no ({v})') for k, v in runtimes)}",
        "",
        "| step | backend | status | seconds | result |",
        "|---|---|---|---|---|",
    ]
    for s in acc.steps:
        detail = _detail(s) or s.reason
        lines.append(f"| {s.name} | {s.backend} | {s.status} | {s.seconds if s.seconds is not None else ''} | "
                     f"{detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/acceptance"))
    ap.add_argument("--dry-run", action="store_true", help="Plan every step and print it; run nothing.")
    ap.add_argument("--assume-cc", default="9.0",
                    help="Compute capability to plan for in a dry run on a machine without a GPU (default 9.0).")
    ap.add_argument("--keep-fp32", default=None, metavar="OPS",
                    help="Passed to the fp16 conversions of lookupvit_b16 (default: the precision stage's own list).")
    args = ap.parse_args(argv)

    env = detect()
    if env.compute_capability is not None:
        cc = env.compute_capability
    else:
        from exporter.profiles import parse_compute_capability

        cc = parse_compute_capability(args.assume_cc, "--assume-cc")
    missing = env.missing()
    if missing and not args.dry_run:  # before anything is written
        print("GPU acceptance cannot run here:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 2
    steps, profiles = plan(env, args.out, cc, write=not args.dry_run, keep_fp32=args.keep_fp32)
    acc = Acceptance(str(args.out), args.dry_run, {
        "gpu": env.gpu, "compute_capability": f"{cc[0]}.{cc[1]}", "torch_cuda": env.torch_cuda,
        "backends": env.backends}, profiles, steps, _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    if args.dry_run:
        for s in steps:
            mark = "" if s.status == "planned" else f"   # not run here: {s.reason}"
            print(f"{s.name}: {s.command}{mark}")
        print(f"{len(steps)} steps planned for sm_{cc[0]}{cc[1]}; dry run: nothing executed.")
        for m in env.missing():
            print(f"this machine could not run it: {m}", file=sys.stderr)
        return 0

    for b, why in env.backends.items():
        if why:
            print(f"NOT RUN: every {b} step ({why})", file=sys.stderr)
    t0 = time.monotonic()
    for s in steps:
        if s.status == "planned":
            print(f"{s.name} ...", file=sys.stderr, flush=True)
            run_step(s, t0)
            print(f"  {s.status} {s.seconds} s {s.reason}", file=sys.stderr, flush=True)
    acc.seconds = round(time.monotonic() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "acceptance.json").write_text(json.dumps(acc.to_dict(), indent=2, default=str))
    (args.out / "acceptance.md").write_text(markdown(acc))
    failed = [s for s in steps if s.status == "failed"]
    not_run = [s for s in steps if s.status == "not run"]
    print(f"{len(steps) - len(failed) - len(not_run)} passed, {len(failed)} failed, {len(not_run)} not run "
          f"in {acc.seconds} s -> {args.out / 'acceptance.md'}", file=sys.stderr)
    if acc.seconds > BUDGET_S:
        print(f"over the {BUDGET_S:.0f} s target", file=sys.stderr)
    return 1 if failed or any(s.reason.startswith("over the time budget") for s in not_run) else 0


if __name__ == "__main__":
    sys.exit(main())
