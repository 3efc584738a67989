"""Plots of a latency sweep (PNG, matplotlib's Agg backend, no display needed).

- latency vs compressed grid, per precision and backend (one panel per batch size), with the
  ViT baseline as a dashed level;
- measured speedup over the ViT baseline next to the analytic MAC ratio, per grid;
- task accuracy vs latency, one panel per batch, one point per grid, joined in latency order: the
  compute/accuracy trade-off that LookupViT's inference-time grid gives.

Conventions, the same in every plot: a latency axis is logarithmic when the latencies it shows
span more than a factor of 30 (backends or precisions orders of magnitude apart), in every panel
of that figure alike, else linear from zero; the point is the median (p50) and the bar is the
interquartile range (p25 to p75), symmetric in rank around the median and not stretched by the
few stalled calls of a loaded machine; the compressed grid is written once on
the x axis (ticks at the token count M, labelled ``g<grid>``), not beside each point; labels that
must sit beside points are placed so that they do not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .sweep import CellResult, SweepResult

LOG_SPAN = 30.0  # a latency axis turns logarithmic beyond this max/min ratio
BAR_TEXT = "bars: p25 to p75"


@dataclass(frozen=True)
class AccuracyPoint:
    """Top-1 of one model at one grid and precision (from ``compare`` or ``evaluate``)."""

    model: str
    grid: str
    precision: str
    top1: float  # percent
    source: str  # e.g. "compare (ONNX Runtime)" or "evaluate (PyTorch fp32)"
    samples: int | None = None  # test images behind the figure: one image is 100 / samples points


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by(cells: Iterable[CellResult], *keys: str) -> dict[tuple, list[CellResult]]:
    out: dict[tuple, list[CellResult]] = {}
    for c in cells:
        out.setdefault(tuple(getattr(c, k) for k in keys), []).append(c)
    return out


def latency_scale(values: Sequence[float]) -> str:
    """"log" when ``values`` span more than :data:`LOG_SPAN`, else "linear" (one rule for every plot)."""
    pos = [v for v in values if v and v > 0]
    return "log" if pos and max(pos) > LOG_SPAN * min(pos) else "linear"


def _apply_scale(ax, scale: str) -> None:
    if scale == "log":
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    else:
        ax.set_ylim(bottom=0)


def _plain_log_ticks(axis) -> None:
    """Ticks of a log axis at 1, 2 and 5 of each decade, written as plain numbers (20, not 2 x 10^1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(plain)
    axis.set_minor_locator(LogLocator(base=10.0, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    axis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))


def _bars(rows: list[CellResult], per_image: bool = False) -> tuple[list[float], list[list[float]]]:
    """p50 and the (below, above) distances to p25 and p75, per row (per image when asked)."""
    mid, lo, hi = [], [], []
    for c in rows:
        assert c.latency is not None
        k = c.batch if per_image else 1
        p50 = c.latency.p50_ms / k
        p25 = (c.latency.p25_ms if c.latency.p25_ms is not None else c.latency.p50_ms) / k
        p75 = (c.latency.p75_ms if c.latency.p75_ms is not None else c.latency.p50_ms) / k
        mid.append(p50)
        lo.append(max(0.0, p50 - p25))
        hi.append(max(0.0, p75 - p50))
    return mid, [lo, hi]


def _grid_ticks(ax, cells: Iterable[CellResult]) -> None:
    """The x axis in compressed tokens M, one tick per grid, labelled with the grid once."""
    ticks = sorted({(c.tokens, c.grid) for c in cells if c.tokens})
    ax.set_xticks([t for t, _ in ticks])
    ax.set_xticklabels([f"g{g}\n{t}" for t, g in ticks], fontsize=8)
    ax.set_xlabel("compressed grid (tokens M)")


def plot_latency(result: SweepResult, model: str, path: str | Path) -> Path | None:
    """p50 latency with p25..p75 bars vs compressed tokens for ``model``, one panel per batch."""
    cells = [c for c in result.ok() if c.model == model and c.role == "lookupvit" and c.tokens and c.latency]
    if not cells:
        return None
    plt = _pyplot()
    batches = sorted({c.batch for c in cells})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.2), squeeze=False, constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = sorted({(c.backend, c.precision) for c in cells})
    color_of = {s: colors[i % len(colors)] for i, s in enumerate(series)}
    bases = [b for b in result.ok() if b.role == "baseline" and b.paired_with == model and b.latency]
    scale = latency_scale([c.latency.p50_ms for c in cells] + [b.latency.p50_ms for b in bases])  # type: ignore[union-attr]
    for ax, batch in zip(axes[0], batches):
        for (backend, precision), rows in sorted(_by([c for c in cells if c.batch == batch], "backend", "precision").items()):
            rows.sort(key=lambda c: c.tokens or 0)
            mid, err = _bars(rows)
            label = f"{backend} {precision}" + (" (noisy)" if any(c.noisy for c in rows) else "")
            ax.errorbar([c.tokens for c in rows], mid, yerr=err, marker="o", capsize=3,
                        color=color_of[(backend, precision)], label=label)
            base = [b for b in bases if b.batch == batch and b.backend == backend and b.precision == precision]
            if base and base[0].latency:
                ax.axhline(base[0].latency.p50_ms, linestyle="--", color=color_of[(backend, precision)], alpha=0.7,
                           label=f"{base[0].model} {backend} {precision}")
        _grid_ticks(ax, cells)
        ax.set_ylabel(f"latency per batch [ms], p50 ({BAR_TEXT})")
        ax.set_title(f"{model}, batch {batch}")
        _apply_scale(ax, scale)
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
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 4.2), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes[0], models):
        mine = [c for c in cells if c.model == model]
        analytic = sorted({(c.tokens, c.analytic_speedup) for c in mine if c.analytic_speedup})
        if analytic:
            ax.plot([a[0] for a in analytic], [a[1] for a in analytic], "k--", marker="s", label="analytic (MAC ratio)")
        for (backend, precision, batch), rows in sorted(_by(mine, "backend", "precision", "batch").items()):
            rows.sort(key=lambda c: c.tokens or 0)
            ax.plot([c.tokens for c in rows], [c.speedup for c in rows], marker="o",
                    label=f"measured {backend} {precision} b{batch}")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        base = next((c.baseline for c in mine if c.baseline), "ViT")
        ax.set_title(f"{model} over {base}")
        _grid_ticks(ax, mine)
        ax.set_ylabel("speedup (ViT p50 / LookupViT p50)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def place_labels(ax, points: list[tuple[float, float, str]] | list[tuple[float, float, str, str | None]],
                 fontsize: float = 8) -> None:
    """Write each label beside its point (in the colour of its line, when a fourth item gives one),
    trying places right and left of it at growing heights until its drawn extent overlaps no label
    placed before it (greedy, in display coordinates). Call it last, once the axes' scales, limits and
    the figure's layout are final: the offsets are worked out for the axes as they are drawn then."""
    fig = ax.figure
    fig.canvas.draw()  # settle limits, transforms and layout
    renderer = fig.canvas.get_renderer()
    placed = []
    heights = (3, -11, 13, -21, 23, -31, 33, -41, 43, -51, 53)
    tries = [(dx, dy, ha) for dy in heights for dx, ha in ((4, "left"), (-4, "right"))]
    for point in points:
        x, y, text = point[0], point[1], point[2]
        color = point[3] if len(point) > 3 else None
        for dx, dy, ha in tries:
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize, ha=ha,
                              annotation_clip=False, color=color)
            box = _padded(ann.get_window_extent(renderer))
            if not any(box.overlaps(b) for b in placed):
                break
            ann.remove()
        else:  # nowhere free nearby: the first place, drawn anyway (a label is never dropped)
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=fontsize, color=color)
            box = _padded(ann.get_window_extent(renderer))
        placed.append(box)


def _padded(box, px: float = 3.0):
    """``box`` grown by ``px`` display pixels on each side, so neighbouring labels keep a gap."""
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(box.x0 - px, box.y0 - px / 2, box.x1 + px, box.y1 + px / 2)


def plot_accuracy_latency(result: SweepResult, accuracy: list[AccuracyPoint], path: str | Path) -> Path | None:
    """Top-1 vs p50 latency per image, one panel per batch, one point per grid joined in latency
    order, per backend and precision; the accuracy axis says what one test image is worth."""
    pts: list[tuple[AccuracyPoint, CellResult]] = []
    for a in accuracy:
        for c in result.ok():
            if c.model == a.model and c.grid == a.grid and c.precision == a.precision and c.latency is not None:
                pts.append((a, c))
    if not pts:
        return None
    plt = _pyplot()
    batches = sorted({c.batch for _, c in pts})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.6 * len(batches), 4.6), squeeze=False, constrained_layout=True)
    scale = latency_scale([c.latency.p50_ms / c.batch for _, c in pts])  # type: ignore[union-attr]
    samples = sorted({a.samples for a, _ in pts if a.samples})
    one = 100.0 / samples[0] if samples else None
    tops = [a.top1 for a, _ in pts]
    for ax, batch in zip(axes[0], batches):
        groups: dict[tuple[str, str, str], list[tuple[AccuracyPoint, CellResult]]] = {}
        for a, c in pts:
            if c.batch == batch:
                groups.setdefault((a.model, c.backend, a.precision), []).append((a, c))
        labels: list[tuple[float, float, str, str | None]] = []
        for (model, backend, precision), pairs in sorted(groups.items()):
            pairs.sort(key=lambda r: r[1].latency.p50_ms)  # type: ignore[union-attr]  # latency order
            cells = [c for _, c in pairs]
            mid, err = _bars(cells, per_image=True)
            ys = [a.top1 for a, _ in pairs]
            bars = ax.errorbar(mid, ys, xerr=err, marker="o", capsize=2, elinewidth=0.8, linewidth=1.0, alpha=0.85,
                               label=f"{model} {backend} {precision}")
            color = bars.lines[0].get_color()  # each grid's label in its line's colour
            labels += [(x, y, f"g{a.grid}", color) for (a, _), x, y in zip(pairs, mid, ys)]
        per = "p50" if batch == 1 else f"p50 of a batch of {batch} / {batch}"
        ax.set_xlabel(f"latency per image [ms]: {per} ({BAR_TEXT})")
        ax.set_ylabel("top-1 [%]" + (f"  (one test image = {one:.2g} points)" if one else ""))
        ax.set_title(f"accuracy vs latency, batch {batch}")
        xs = [x for x, *_ in labels]
        if scale == "log":  # the axis spans the medians; a bar reaching further runs off its edge
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
            ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
        else:
            ax.set_xlim(0, max(xs) * 1.4)
        if one:  # show at least six images' worth of accuracy, so one image's step is visible for what it is
            lo, hi = min(tops), max(tops)
            pad = max(0.0, (6 * one - (hi - lo)) / 2) + one
            ax.set_ylim(lo - pad, min(100.0 + one / 2, hi + pad))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        labels.sort(key=lambda t: (t[0], t[1]))
        place_labels(ax, labels, fontsize=7)
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
