"""What a deployment profile asks a run for: its models with their roles and grids, the grid sets of
dynamic-grid graphs, the backend, and the latency sweep (the profile's scope: no other cell exists
in the sweep or the report)."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..models import grid_label
from ..models.config import Grid
from ..pipeline.unit import GridSet
from ..profiles import Profile


def backend_of(profile: Profile) -> str:
    """The key of a profile's latency, validation and comparison backend (exporter/backends/registry.py)."""
    from ..backends.registry import backend

    return backend(profile.backend, option=f"profile {profile.name}: backend").key


def plan_models(profile: Profile) -> list[tuple[str, str, tuple[Grid | None, ...]]]:
    """(role, variant, grids) for every model of the profile: accuracy, latency, baseline."""
    m = profile.models
    out: list[tuple[str, str, tuple[Grid | None, ...]]] = []
    seen: set[str] = set()
    for role, runs in (("accuracy", m.accuracy), ("latency", m.latency)):
        for r in runs:
            out.append((role, r.variant, tuple(r.grids) or (None,)))
            seen.add(r.variant)
    if m.baseline is not None and m.baseline.variant not in seen:
        out.append(("baseline", m.baseline.variant, (None,)))
    if not out:
        raise UserError(
            f"Profile {profile.name} lists no models.",
            f"Add a [models] table to {profile.path}, e.g. accuracy = [\"lookupvit_digits\"].",
        )
    return out


def dynamic_grid_sets(profile: Profile, models: list[tuple[str, str, tuple[Grid | None, ...]]]) -> dict[str, GridSet]:
    """With ``[models] dynamic_grid = true``: each LookupViT's grids (over the roles it has) as the set
    its one dynamic-grid graph serves (docs/dynamic-grid.md); {} otherwise."""
    if not profile.models.dynamic_grid:
        return {}
    grids: dict[str, list[Grid]] = {}
    for _, variant, gs in models:
        grids.setdefault(variant, []).extend(g for g in gs if g is not None)
    return {v: GridSet.of(g) for v, g in grids.items() if g}


def accuracy_grids(prof: Profile, variant: str) -> str | None:
    """The accuracy grids of ``variant`` (``2,4``): what a comparison on its dynamic-grid graph covers
    when the graph also serves latency-only grids."""
    grids = [g for role, v, gs in plan_models(prof) if role == "accuracy" and v == variant for g in gs if g]
    return ",".join(grid_label(g) for g in grids) or None


def sweep_spec(prof: Profile, backend: str, models: list[tuple[str, str, tuple[Grid | None, ...]]],
               repeats: int | None = None) -> Any:
    """The profile's latency sweep: every model at its grids x the profile's precisions x batches."""
    from ..latency.sweep import SweepModel, SweepSettings, SweepSpec

    base = prof.models.baseline.variant if prof.models.baseline else None
    entries = []
    scope = prof.models
    for role, variant, grids in models:
        if role == "baseline":
            entries.append(SweepModel(variant, variant, (None,), is_baseline=True))
        elif role == "latency":  # the profile's scope for its latency models: only those cells exist
            precisions = tuple(p for p in prof.precisions if p in (scope.latency_precisions or prof.precisions))
            batches = tuple(b for b in prof.batch_sizes if b in (scope.latency_batches or prof.batch_sizes))
            entries.append(SweepModel(variant, variant, grids, base, precisions=precisions, batches=batches))
        else:
            entries.append(SweepModel(variant, variant, grids, None))
    b = prof.benchmark
    settings = SweepSettings(warmup=b.warmup, iterations=b.iterations, seconds=b.seconds, repeats=repeats or b.repeats,
                             threads=b.threads, warmup_seconds=b.warmup_seconds, noise_threshold=b.noise_threshold,
                             retries=b.retries, pace_wait=b.pace_wait)
    return SweepSpec(tuple(entries), tuple(prof.precisions), tuple(prof.batch_sizes), (backend,), settings)
