"""The shipped lookupvit_digits checkpoint (the embedded default model)."""

import json

from exporter.data import load_data
from exporter.evaluate import evaluate
from exporter.models import create_model, get_variant


def test_checkpoint_is_shipped_and_small():
    path = get_variant("lookupvit_digits").weights
    assert path is not None and path.is_file()
    assert path.stat().st_size < 2_000_000


def test_heldout_accuracy_per_grid():
    variant = get_variant("lookupvit_digits")
    model = create_model("lookupvit_digits")
    result = evaluate(model, load_data("digits", variant.config), list(variant.config.default_grids))
    top1 = {r.grid: r.top1 for r in result.rows}
    assert top1["6"] >= 95.0  # the largest default grid
    assert min(top1.values()) >= 85.0  # one checkpoint serves every grid
    assert top1["6"] >= top1["1"]


def test_evaluate_cli_json(cli):
    result = cli("evaluate", "lookupvit_digits", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["data"] == "digits (test split)"
    assert doc["rows"][-1]["grid"] == "6" and doc["rows"][-1]["top1"] >= 95.0
