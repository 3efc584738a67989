"""``lookupvit pick``: the grid and precision that meet a latency budget, from a finished run.

Thin click layer over :func:`exporter.serve.pick.pick`. Exit 0 with a choice; 2 when the run lacks
what is asked (no accuracy, no latency, an unmeasured batch), nothing meets the budget, or a file of
the run folder is refused (docs/security.md).
"""

from __future__ import annotations

from typing import get_args

import click
from rich.markup import escape

from ..schema.profile import PickSettings
from .main import main
from .options import json_option, print_json, print_table

PERCENTILES = list(get_args(PickSettings.model_fields["percentile"].annotation))  # the profile's [pick] percentile


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--latency-ms", "latency_ms", type=float, required=True,
              help="Latency budget of one batch call, in milliseconds.")
@click.option("--batch", type=int, default=None, help="The batch the budget is for [default: the smallest the run measured].")
@click.option("--min-top1", "min_top1", type=float, default=None,
              help="Accuracy floor (top-1, percent): pick the fastest setting that reaches it within the budget.")
@click.option("--percentile", type=click.Choice(PERCENTILES), default=PickSettings().percentile, show_default=True,
              help="Which measured latency must meet the budget.")
@click.option("--model", default=None,
              help="The model to pick for [default: the first one whose accuracy and latency the run both measured].")
@click.option("--allow-failed", "allow_failed", is_flag=True,
              help="Also choose among settings whose accuracy verdict is FAILED or NOT MEANINGFUL (the chosen row "
                   "then says so) [default: never].")
@json_option
def pick(run_dir: str, latency_ms: float, batch: int | None, min_top1: float | None, percentile: str,
         model: str | None, allow_failed: bool, as_json: bool) -> None:
    """Pick the (grid, precision) of RUN_DIR (a `lookupvit run` folder) that meets --latency-ms with
    the best accuracy, or, with --min-top1, the fastest that reaches the floor.

    Shows the Pareto front of the run's settings over latency and top-1 and says why every other
    setting lost (slower than the budget, dominated, below the floor). Accuracy and latency are joined
    on the same model; the output names it.
    """
    from ..serve.measurements import load_run
    from ..serve.pick import DECISION_COLUMNS, PickRequest, decision_rows
    from ..serve.pick import pick as run_pick

    d = run_pick(load_run(run_dir), PickRequest(latency_ms, batch, min_top1, percentile, model, allow_failed))
    if as_json:
        print_json(d.to_dict())
        return
    floor = f", top-1 >= {min_top1:g}%" if min_top1 is not None else ""
    print_table(
        f"lookupvit pick {d.run_dir}: {d.model}, batch {d.batch}, {d.percentile} <= {latency_ms:g} ms{floor} "
        f"(profile {d.profile}, {d.backend})",
        DECISION_COLUMNS, [[escape(x) for x in r] for r in decision_rows(d)],
    )
    c = d.chosen
    click.echo(f"{d.note}.")
    click.echo(f"chosen: {c.model} grid {c.grid} {c.precision} at batch {c.batch}: p50 {c.p50_ms:.3f} ms, "
               f"p99 {c.p99_ms:.3f} ms, top-1 {c.top1:.2f}%" + (" (NOISY latency: rerun on a quieter machine to confirm)"
                                                                   if c.noisy else ""))
    if d.warning:
        click.echo(f"WARNING: {d.warning}.")
