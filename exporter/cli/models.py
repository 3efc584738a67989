"""Verbs about the models themselves: ``variants``, ``evaluate``, ``train``."""

from __future__ import annotations

from pathlib import Path

import click

from ..evaluate import DEFAULT_EVAL_BATCH
from ..models import grid_label, list_variants, model_cost
from .main import main
from .options import data_option, grids_option, json_option, print_json, print_table, stderr, weights_option


@main.command()
@json_option
def variants(as_json: bool) -> None:
    """List the registered model variants with their cost per default grid."""
    rows = []
    for v in list_variants():
        c = v.config
        grids = list(c.default_grids) or [None]
        rows.append(
            {
                "name": v.name,
                "family": v.family,
                "description": v.description,
                "params": model_cost(c, grids[0]).params,
                "image_size": c.image_size,
                "lookup_tokens": c.num_lookup_tokens,
                "lookup_grid": grid_label(c.lookup_grid),
                "default_grids": [grid_label(g) for g in c.default_grids],
                "gmacs": {grid_label(g) if g else "-": round(model_cost(c, g).gmacs, 4) for g in grids},
                "weights": v.weights.name if v.weights else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        "LookupViT toolchain variants",
        ["name", "family", "params (M)", "lookup tokens", "GMACs per grid", "weights"],
        [
            [
                r["name"], r["family"], f"{r['params'] / 1e6:.2f}", r["lookup_tokens"],
                "  ".join(f"{g}:{m:.3g}" for g, m in r["gmacs"].items()), r["weights"] or "",
            ]
            for r in rows
        ],
    )


@main.command()
@click.argument("variant")
@weights_option
@data_option
@grids_option
@click.option("--batch", "--batch-size", "batch_size", type=click.IntRange(min=1), default=DEFAULT_EVAL_BATCH, show_default=True,
              help="Images per forward pass.")
@click.option("--allow-meaningless", is_flag=True,
              help="Evaluate even where top-1 means nothing (random weights; classes, channels or image size that do "
              "not match the data); the figures are marked not meaningful.")
@json_option
def evaluate(
    variant: str, weights: str | None, data: str, grids: str | None, batch_size: int, allow_meaningless: bool,
    as_json: bool,
) -> None:
    """Top-1 accuracy of VARIANT per compressed grid on a labelled dataset (PyTorch, CPU).

    Refuses (exit 2) where the figure would mean nothing: random weights, or a dataset whose classes,
    channels or image size do not match the model (see --allow-meaningless)."""
    from ..evaluate import evaluate_variant

    result = evaluate_variant(variant, weights, data, grids, batch_size, allow_meaningless, say=stderr.print)
    notes = result.meaningless
    if as_json:
        print_json(result.to_dict())
        return
    print_table(
        f"{variant} top-1 on {result.data}" + (" (NOT MEANINGFUL)" if notes else ""),
        ["grid", "top-1 %", "correct", "GMACs/img", "seconds"],
        [[r.grid, f"{r.top1:.2f}", f"{r.correct}/{r.total}", f"{r.gmacs:.4f}", f"{r.seconds:.2f}"] for r in result.rows],
    )


@main.command()
@click.argument("variant")
@data_option
@click.option("--epochs", default=120, show_default=True, help="Training epochs.")
@click.option("--seed", default=0, show_default=True, help="Seed for initialisation, order and grids.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Safetensors file to write.")
def train(variant: str, data: str, epochs: int, seed: int, output: str) -> None:
    """Train an image LookupViT with a compressed grid sampled per step (multi-resolution).

    The shipped lookupvit_digits weights come from
    `lookupvit train lookupvit_digits --data digits -o exporter/weights/lookupvit_digits.safetensors`.
    With --data PATH the whole dataset is the training set.
    """
    from ..train import TrainSettings
    from ..train import train as run_train

    data_source = data if data == "digits" else str(Path(data))
    path = run_train(variant, output, data_source, TrainSettings(epochs=epochs, seed=seed), log=stderr.print)
    stderr.print(f"wrote {path}")
