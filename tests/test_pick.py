"""`lookupvit pick`: the Pareto front, the choice for a budget, why each other setting lost, the
refusals, and the front in summary.json and the report."""

import json

import pytest

from exporter.errors import UserError
from exporter.serve.measurements import load_run
from exporter.serve.pareto import fronts_summary, pareto_front
from exporter.serve.pick import PickRequest, pick
from tests.serve_data import FIGURES, summary, write_run


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run")


def _by_label(decision):
    return {f"g{v.candidate.grid} {v.candidate.precision}": v for v in decision.verdicts}


def test_front_is_the_non_dominated_settings_fastest_first(run_dir):
    run = load_run(run_dir)
    b1 = [c for c in run.candidates if c.model == "lookupvit_digits" and c.batch == 1]
    assert [c.label for c in pareto_front(b1, "p50")] == ["g1 fp32", "g2 fp32", "g3 fp32", "g3 int8"]
    # at p99 g3 fp32 (2.5 ms) is beaten by g3 int8 (1.4 ms, more accurate)
    assert [c.label for c in pareto_front(b1, "p99")] == ["g1 fp32", "g2 fp32", "g3 int8"]


def test_budget_picks_the_most_accurate_within_it_and_says_why_others_lost(run_dir):
    d = pick(load_run(run_dir), PickRequest(budget_ms=0.9))
    assert d.model == "lookupvit_digits" and d.batch == 1
    assert (d.chosen.grid, d.chosen.precision) == ("3", "fp32")
    assert d.chosen.p50_ms <= 0.9
    within = [c for c in load_run(run_dir).candidates if c.batch == 1 and c.model == d.model and c.p50_ms <= 0.9]
    assert d.chosen.top1 == max(c.top1 for c in within)
    why = {k: v.reason for k, v in _by_label(d).items()}
    assert why["g3 fp32"].startswith("chosen")
    assert why["g3 int8"].startswith("slower than the budget: p50 1.01 ms > 0.9 ms")
    assert why["g6 fp32"].startswith("slower than the budget")
    assert why["g1 fp32"] == "less accurate than the choice (top-1 96.40% < 99.20%)"
    assert why["g2 fp32"].startswith("less accurate than the choice")
    assert "lookupvit_b16" in d.note and "no measured accuracy" in d.note


def test_dominated_settings_name_their_dominator(run_dir):
    d = pick(load_run(run_dir), PickRequest(budget_ms=2.0))
    assert (d.chosen.grid, d.chosen.precision) == ("3", "int8")
    why = {k: v.reason for k, v in _by_label(d).items()}
    assert why["g6 fp32"].startswith("dominated by g2 fp32 (p50 0.46 ms, top-1 98.90%)")
    assert why["g2 int8"].startswith("dominated by g2 fp32")
    assert why["g6 int8"].startswith("dominated by")


def test_min_top1_picks_the_fastest_that_reaches_the_floor(run_dir):
    d = pick(load_run(run_dir), PickRequest(budget_ms=2.0, min_top1=99.0))
    assert (d.chosen.grid, d.chosen.precision) == ("3", "fp32")
    why = {k: v.reason for k, v in _by_label(d).items()}
    assert why["g2 fp32"].startswith("below the accuracy floor: top-1 98.90% < 99%")
    assert why["g3 int8"].startswith("slower than the choice")


def test_p99_and_batch_change_the_choice(run_dir):
    run = load_run(run_dir)
    d = pick(run, PickRequest(budget_ms=2.0, percentile="p99"))
    assert d.chosen.precision == "int8" and d.chosen.p99_ms <= 2.0
    d8 = pick(run, PickRequest(budget_ms=3.0, batch=8))
    assert d8.batch == 8 and (d8.chosen.grid, d8.chosen.precision) == ("3", "fp32") and d8.chosen.p50_ms <= 3.0


def test_nothing_within_the_budget_names_the_closest(run_dir):
    with pytest.raises(UserError) as e:
        pick(load_run(run_dir), PickRequest(budget_ms=0.1))
    assert "the closest is g1 fp32 at 0.4 ms" in e.value.message and "--latency-ms" in e.value.hint
    with pytest.raises(UserError) as e:
        pick(load_run(run_dir), PickRequest(budget_ms=0.5, min_top1=99.0))
    assert "reaches top-1 99%" in e.value.message and "g3 fp32" in e.value.message


@pytest.mark.parametrize("kw, words", [
    ({"accuracy": False}, "no accuracy for any timed model"),
    ({"latency": False}, "no latency measurements"),
])
def test_a_run_without_accuracy_or_latency_is_refused(tmp_path, kw, words):
    with pytest.raises(UserError) as e:
        pick(load_run(write_run(tmp_path / "r", **kw)), PickRequest(budget_ms=5))
    assert words in e.value.message and "lookupvit run" in e.value.hint


def test_unmeasured_batch_and_the_latency_model_are_refused(run_dir):
    with pytest.raises(UserError) as e:
        pick(load_run(run_dir), PickRequest(budget_ms=5, batch=4))
    assert "measured batches: 1, 8" in e.value.message and "--batch 1 or --batch 8" in e.value.hint
    with pytest.raises(UserError) as e:
        pick(load_run(run_dir), PickRequest(budget_ms=500, model="lookupvit_b16"))
    assert "no accuracy for lookupvit_b16" in e.value.message and "--model lookupvit_digits" in e.value.hint


def test_not_a_run_folder(tmp_path, cli):
    r = cli("pick", str(tmp_path), "--latency-ms", "1")
    assert r.exit_code == 2 and "summary.json" in r.output and "lookupvit run" in r.output


def test_cli_table_json_and_exit_codes(run_dir, cli):
    r = cli("pick", str(run_dir), "--latency-ms", "0.9")
    assert r.exit_code == 0, r.output
    assert "chosen: lookupvit_digits grid 3 fp32 at batch 1" in r.output
    assert "slower than the budget" in r.output and "picked for lookupvit_digits" in r.output
    r = cli("pick", str(run_dir), "--latency-ms", "0.9", "--json")
    d = json.loads(r.output)
    assert d["chosen"]["grid"] == "3" and d["model"] == "lookupvit_digits" and len(d["candidates"]) == len(FIGURES)
    assert d["front"] == ["g1 fp32", "g2 fp32", "g3 fp32", "g3 int8"]
    r = cli("pick", str(run_dir), "--latency-ms", "0.1", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["exit"] == 2


def test_summary_carries_the_fronts_and_the_report_draws_them(tmp_path):
    from exporter.serve.front_plot import fronts_html

    run_dir = write_run(tmp_path / "run")
    s = summary(run_dir)
    fronts = fronts_summary(s)["fronts"]
    f1 = next(f for f in fronts if f["batch"] == 1 and f["percentile"] == "p50")
    assert [(p["grid"], p["precision"]) for p in f1["front"]] == [("1", "fp32"), ("2", "fp32"), ("3", "fp32"), ("3", "int8")]
    assert f1["best"] == {"grid": "3", "precision": "int8"} and f1["front"][0]["budget_to_ms"] == 0.46
    assert {f["batch"] for f in fronts} == {1, 8} and {f["percentile"] for f in fronts} == {"p50", "p99"}
    assert all(f["model"] == "lookupvit_digits" for f in fronts)  # the latency model has no accuracy
    html = fronts_html(s, run_dir)
    assert html.count("data:image/png;base64,") == 2  # one plot per batch
    assert (run_dir / "plots" / "pareto_lookupvit_digits_b1.png").stat().st_size > 1000
    assert (run_dir / "plots" / "pareto_lookupvit_digits_b8.png").is_file()


def test_report_html_has_the_front_section(tmp_path):
    """`run`'s report (exporter.run.report.write_report) embeds the front per batch."""
    from exporter.run.report import write_report
    from exporter.run.state import RunState

    run_dir = write_run(tmp_path / "run")
    s = summary(run_dir)
    s.update({"started": "2026-01-01T00:00:00+00:00", "seconds": 1.0, "tool_version": "0", "stage_counts": {},
              "budget_s": None, "summary": [], "validation": [], "stages": [], "disk": None, "machine": {},
              "versions": {}, "pareto": fronts_summary(s)})
    path = write_report(s, RunState(float("inf")), run_dir / "report.html")
    html = path.read_text()
    assert "Pareto front: grid and precision for a latency budget" in html
    assert "pareto_lookupvit_digits_b1.png" in html and "budgets (ms) that pick it" in html
