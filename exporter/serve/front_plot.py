"""The Pareto front in the run's report: one PNG per model and batch, and its HTML section.

Each figure shows every (grid, precision) of a model with a measured accuracy at one batch: the
point at the p50 latency of one batch call, a thin bar to its p99, top-1 on the y axis; the p50
front as a staircase (the budgets between two front points pick the slower one's predecessor); the
dominated settings in grey; the point ``pick`` returns for any budget at or above its latency (the
front's most accurate setting) as a star. The latency axis follows the report's rule
(:func:`exporter.latency.plots.latency_scale`: logarithmic beyond a 30x span).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .measurements import candidates_from
from .pareto import Front, run_fronts

CAPTION = (
    "Pareto front of (grid, precision) over latency and accuracy at batch {batch} ({model}): each point is the p50 "
    "of one batch call (p99 in the table below and in summary.json); the staircase joins the settings no other "
    "setting beats on both, labelled; grey points are dominated. The star is the front's most accurate setting: what `lookupvit pick` returns "
    "for any budget at or above its latency; a smaller budget gets the last front point within it."
)


def plot_front(front: Front, path: Path) -> Path | None:
    """One front (p50) as a PNG at ``path``; None when it has no point."""
    if not front.points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..latency.plots import latency_scale, place_labels

    pts = [p.candidate for p in front.points]
    allc = pts + [c for c in front.others if c.top1 is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    others = [c for c in allc if c not in pts]
    if others:
        ax.scatter([c.p50_ms for c in others], [c.top1 or 0.0 for c in others], color="#999999", s=22, zorder=2,
                   label="dominated")
    xs = [c.p50_ms for c in pts]
    ys = [c.top1 or 0.0 for c in pts]
    ax.step(xs, ys, where="post", color="#1f5fa8", lw=1.6, zorder=3)
    ax.scatter(xs, ys, color="#1f5fa8", s=30, zorder=4, label="front (p50)")
    best = front.best
    assert best is not None
    ax.scatter([best.p50_ms], [best.top1 or 0.0], marker="*", s=220, color="#d4a017", edgecolor="black", zorder=5,
               label=f"most accurate: g{best.grid} {best.precision}")
    if latency_scale([c.p50_ms for c in allc]) == "log":
        ax.set_xscale("log")
    samples = max((c.samples or 0) for c in allc)
    one = f" (one test image = {100 / samples:.2f} points)" if samples else ""
    ax.set_xlabel("latency of one batch call, p50 ms")
    ax.set_ylabel(f"top-1 %{one}")
    ax.set_title(f"{front.model}, batch {front.batch}: Pareto front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    place_labels(ax, [(c.p50_ms, c.top1 or 0.0, c.label) for c in pts])  # last: scale and layout are final
    import io

    from ..io import atomic_path

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    if path.is_file() and path.read_bytes() == data:  # a rerun of the same run: the plot stays as it was
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def fronts_html(summary: dict[str, Any], run_dir: str | Path) -> str:
    """The report's "Pareto front" section: the p50 fronts drawn into ``run_dir/plots/`` and embedded,
    with a table of each front; empty when the run has no accuracy joined to a latency."""
    run_dir = Path(run_dir)
    cands, _ = candidates_from(summary, run_dir)
    fronts = [f for f in run_fronts(cands) if f.percentile == "p50" and f.points]
    if not fronts:
        return ""
    parts = ["<h2>Pareto front: grid and precision for a latency budget</h2>", "<div class='plots'>"]
    for f in fronts:
        path = plot_front(f, run_dir / "plots" / f"pareto_{f.model}_b{f.batch}.png")
        if path is None:
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(CAPTION.format(batch=f.batch, model=f.model))}</figcaption></figure>")
    parts.append("</div>")
    for f in fronts:
        rows = "".join(
            f"<tr><td class='l'>g{html.escape(p.candidate.grid)} {html.escape(p.candidate.precision)}</td>"
            f"<td>{p.candidate.p50_ms:.3f}</td><td>{p.candidate.p99_ms:.3f}</td><td>{(p.candidate.top1 or 0):.2f}</td>"
            f"<td>{p.budget_from_ms:.3f}" + (f" to {p.budget_to_ms:.3f}" if p.budget_to_ms else " and above") + "</td></tr>"
            for p in f.points)
        parts.append(f"<p>{html.escape(f.model)}, batch {f.batch}: front at p50 "
                     f"({len(f.points)} of {len(f.points) + len(f.others)} settings).</p>"
                     "<table><thead><tr><th class='l'>setting</th><th>p50 ms</th><th>p99 ms</th><th>top-1 %</th>"
                     f"<th>budgets (ms) that pick it</th></tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(parts)
