"""Plots of a latency sweep (PNG, matplotlib's Agg backend, no display needed).

- latency vs compressed grid, per precision and backend (one panel per batch size), with the
  ViT baseline as a dashed level;
- measured speedup over the ViT baseline next to the analytic MAC ratio, per grid;
- task accuracy vs latency, one point per grid: the compute/accuracy trade-off that LookupViT's
  inference-time grid gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .sweep import CellResult, SweepResult


@dataclass(frozen=True)
class AccuracyPoint:
    """Top-1 of one model at one grid and precision (from ``compare`` or ``evaluate``)."""

    model: str
    grid: str
    precision: str
    top1: float  # percent
    source: str  # e.g. "compare (ONNX Runtime)" or "evaluate (PyTorch fp32)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series_label(c: CellResult) -> str:
    return f"{c.backend} {c.precision}"


def _by(cells: Iterable[CellResult], *keys: str) -> dict[tuple, list[CellResult]]:
    out: dict[tuple, list[CellResult]] = {}
    for c in cells:
        out.setdefault(tuple(getattr(c, k) for k in keys), []).append(c)
    return out


def plot_latency(result: SweepResult, model: str, path: str | Path) -> Path | None:
    """p50 latency (p90 as the upper whisker) vs compressed tokens for ``model``."""
    cells = [c for c in result.ok() if c.model == model and c.role == "lookupvit" and c.tokens]
    if not cells:
        return None
    plt = _pyplot()
    batches = sorted({c.batch for c in cells})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.0), squeeze=False, constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = sorted({_series_label(c) for c in cells})
    color_of = {s: colors[i % len(colors)] for i, s in enumerate(series)}
    for ax, batch in zip(axes[0], batches):
        for (backend, precision), rows in sorted(_by([c for c in cells if c.batch == batch], "backend", "precision").items()):
            rows.sort(key=lambda c: c.tokens or 0)
            label = f"{backend} {precision}"
            xs = [c.tokens for c in rows]
            p50 = [c.latency.p50_ms for c in rows if c.latency]
            p90 = [c.latency.p90_ms for c in rows if c.latency]
            ax.errorbar(xs, p50, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p90)]], marker="o",
                        capsize=3, color=color_of[label], label=label)
            for c in rows:
                ax.annotate(c.grid, (c.tokens, c.latency.p50_ms), textcoords="offset points", xytext=(4, 4), fontsize=8)  # type: ignore[union-attr]
            base = [b for b in result.ok() if b.role == "baseline" and b.paired_with == model and b.batch == batch
                    and b.backend == backend and b.precision == precision]
            if base and base[0].latency:
                ax.axhline(base[0].latency.p50_ms, linestyle="--", color=color_of[label], alpha=0.7,
                           label=f"{base[0].model} ({label})")
        ax.set_xlabel("compressed tokens M (grid)")
        ax.set_ylabel("latency p50 [ms] (bar to p90)")
        ax.set_title(f"{model}, batch {batch}")
        shown = [c.latency for c in cells if c.batch == batch and c.latency]
        if shown and max(x.p90_ms for x in shown) > 30 * min(x.p50_ms for x in shown):
            ax.set_yscale("log")  # backends or precisions orders of magnitude apart
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_speedup(result: SweepResult, path: str | Path) -> Path | None:
    """Measured speedup over the paired ViT (interleaved) and the analytic MAC ratio, per grid."""
    cells = [c for c in result.ok() if c.speedup is not None and c.tokens]
    if not cells:
        return None
    plt = _pyplot()
    models = sorted({c.model for c in cells})
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 4.0), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes[0], models):
        mine = [c for c in cells if c.model == model]
        analytic = sorted({(c.tokens, c.analytic_speedup, c.grid) for c in mine if c.analytic_speedup})
        if analytic:
            ax.plot([a[0] for a in analytic], [a[1] for a in analytic], "k--", marker="s", label="analytic (MAC ratio)")
        for (backend, precision, batch), rows in sorted(_by(mine, "backend", "precision", "batch").items()):
            rows.sort(key=lambda c: c.tokens or 0)
            ax.plot([c.tokens for c in rows], [c.speedup for c in rows], marker="o",
                    label=f"measured {backend} {precision} b{batch}")
        for tokens, value, grid in analytic:
            ax.annotate(f"g{grid}", (tokens, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        base = next((c.baseline for c in mine if c.baseline), "ViT")
        ax.set_title(f"{model} over {base}")
        ax.set_xlabel("compressed tokens M (grid)")
        ax.set_ylabel("speedup (ViT time / LookupViT time)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_accuracy_latency(result: SweepResult, accuracy: list[AccuracyPoint], path: str | Path) -> Path | None:
    """Top-1 vs p50 latency per image at the largest measured batch (where per-call overheads weigh
    least), one point per grid, per precision."""
    pts: list[tuple[AccuracyPoint, CellResult]] = []
    for a in accuracy:
        rows = [c for c in result.ok() if c.model == a.model and c.grid == a.grid and c.precision == a.precision
                and c.latency is not None]
        if not rows:
            continue
        batch = max(c.batch for c in rows)
        for c in rows:
            if c.batch == batch:
                pts.append((a, c))
    if not pts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    groups: dict[tuple[str, str, str, int], list[tuple[AccuracyPoint, CellResult]]] = {}
    for a, c in pts:
        groups.setdefault((a.model, c.backend, a.precision, c.batch), []).append((a, c))
    for (model, backend, precision, batch), pairs in sorted(groups.items()):
        pairs.sort(key=lambda r: r[1].tokens or 0)  # in grid order: the curve a grid setting walks along
        xs = [c.latency.p50_ms / c.batch for _, c in pairs]  # type: ignore[union-attr]
        ys = [a.top1 for a, _ in pairs]
        ax.plot(xs, ys, marker="o", label=f"{model} {backend} {precision} (b{batch})")
        for (a, _), x, y in zip(pairs, xs, ys):
            ax.annotate(f"g{a.grid}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("latency p50 per image [ms] (p50 of a batch / batch size)")
    ax.set_ylabel("top-1 [%]")
    ax.set_title("accuracy vs latency per compressed grid")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    from ..io import atomic_path

    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_all(result: SweepResult, out_dir: str | Path, accuracy: list[AccuracyPoint] | None = None) -> list[Path]:
    """Every plot the sweep supports, into ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    written: list[Path | None] = []
    models = sorted({c.model for c in result.ok() if c.role == "lookupvit" and c.tokens})
    for m in models:
        written.append(plot_latency(result, m, out_dir / f"latency_{m}.png"))
    written.append(plot_speedup(result, out_dir / "speedup.png"))
    if accuracy:
        written.append(plot_accuracy_latency(result, accuracy, out_dir / "accuracy_latency.png"))
    return [p for p in written if p is not None]
