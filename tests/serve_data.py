"""Run folders for the pick / package / Triton tests: a summary.json laid out as `lookupvit run` writes
it, with chosen figures (so every rule of the choice is exercised), and, where asked, the real
exported graphs of `lookupvit_digits` at the run layout's paths."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (grid, precision) -> (p50 ms at batch 1, p99 ms at batch 1, top-1 %); batch 8 is 5x slower
FIGURES = {
    ("1", "fp32"): (0.40, 0.60, 96.4),
    ("2", "fp32"): (0.46, 0.70, 98.9),
    ("3", "fp32"): (0.56, 2.50, 99.2),
    ("6", "fp32"): (0.94, 1.20, 98.9),
    ("2", "int8"): (0.86, 13.6, 98.9),
    ("3", "int8"): (1.01, 1.40, 99.4),
    ("6", "int8"): (1.30, 1.50, 97.0),
}


def cell(model: str, grid: str, precision: str, batch: int, p50: float, p99: float, role: str = "lookupvit",
         status: str = "ok") -> dict:
    return {"model": model, "variant": model, "grid": grid, "tokens": None, "precision": precision, "batch": batch,
            "backend": "ort", "status": status, "reason": "", "role": role, "paired_with": None, "noisy": False,
            "load": 1.0, "device": "cpu", "detail": "", "throughput": None, "gmacs": None, "gflops": None,
            "efficiency": None, "efficiency_error": None, "peak": None, "baseline": None, "speedup": None,
            "analytic_speedup": None, "latency": None if status != "ok" else {
                "n": 100, "p50_ms": p50, "p90_ms": p99 * 0.9, "p99_ms": p99, "mean_ms": p50, "min_ms": p50 * 0.9,
                "max_ms": p99 * 1.1, "std_ms": 0.01}}


def summary(run_dir: Path, figures: dict | None = None, accuracy: bool = True, latency: bool = True,
            profile: str = "cpu") -> dict:
    figures = FIGURES if figures is None else figures
    cells = []
    if latency:
        for (g, p), (p50, p99, _) in figures.items():
            cells.append(cell("lookupvit_digits", g, p, 1, p50, p99))
            cells.append(cell("lookupvit_digits", g, p, 8, 5 * p50, 5 * p99))
        for g in ("3", "7"):  # the latency model: timed, no accuracy
            cells.append(cell("lookupvit_b16", g, "fp32", 1, 100.0 + int(g), 120.0 + int(g)))
        cells.append(cell("vit_b16", "-", "fp32", 1, 190.0, 200.0, role="baseline"))
    acc = [{"model": "lookupvit_digits", "grid": g, "precision": p, "status": "PASSED", "top1": t, "samples": 360,
            "backend": "onnxruntime", "reference_top1": None} for (g, p), (_, _, t) in figures.items()] if accuracy else []
    return {
        "kind": "lookupvit-run", "run_dir": str(run_dir),
        "profile": {"name": profile, "path": str(ROOT / "profiles" / f"{profile}.toml"), "backend": "onnxruntime",
                    "models": {"accuracy": [{"variant": "lookupvit_digits", "grids": sorted({g for g, _ in figures})}],
                               "latency": [{"variant": "lookupvit_b16", "grids": ["3", "7"]}], "baseline": "vit_b16"}},
        "accuracy": acc,
        "latency": {"file": "latency.json", "cells": cells} if latency else None,
    }


def write_run(run_dir: Path, **kw) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary(run_dir, **kw), indent=1))
    return run_dir


def export_digits(run_dir: Path, grids: tuple[str, ...]) -> None:
    """The real `lookupvit_digits` graphs at ``grids`` where a run folder keeps them (fp32, exported)."""
    from exporter.export import export_onnx, resolve_variant_source

    for g in grids:
        export_onnx(resolve_variant_source("lookupvit_digits", grid=g), run_dir / "lookupvit_digits" / f"g{g}" / "onnx")
    record_artefacts(run_dir)


def record_artefacts(run_dir: Path) -> None:
    """Record the sha256 of every graph of the folder in its summary.json, as `lookupvit run` records the
    files its claims were measured on (``artefacts``)."""
    from exporter.io import sha256_file

    doc = json.loads((run_dir / "summary.json").read_text())
    doc["artefacts"] = {str(p.relative_to(run_dir)): sha256_file(p) for p in sorted(run_dir.rglob("*.onnx"))}
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=1))


def digits_uint8(n: int, offset: int = 0):
    """``n`` held-out digits as raw uint8 images 0..255 at the model's 32 x 32 input, with their labels."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from exporter.data import _digits

    x, y, _ = _digits("test")
    x = torch.from_numpy(x[offset:offset + n])
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8), y[offset:offset + n]
