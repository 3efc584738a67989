"""`lookupvit run --profile a,b` without a cluster: each profile into DIR/<profile>/, the fleet report."""

from __future__ import annotations

import json
import socket
from pathlib import Path

LIGHT = (Path(__file__).resolve().parent / "profiles" / "digits-only.toml").read_text()


def test_two_profiles_here_side_by_side(cli, tmp_path):
    a, b = tmp_path / "light.toml", tmp_path / "light-b.toml"
    a.write_text(LIGHT)
    b.write_text(LIGHT.replace("(tests)", "(tests, second)"))
    out = tmp_path / "fleet"
    r = cli("run", "--profile", f"{a},{b}", "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(p["profile"], p["status"], p["folder"]) for p in doc["profiles"]] == [
        ("light", "PASSED", "light"), ("light-b", "PASSED", "light-b")]
    for name in ("light", "light-b"):
        stages = json.loads((out / name / "stages.json").read_text())["stages"]
        assert stages and all(e["node"] == socket.gethostname() for e in stages.values())
        assert (out / name / "report.html").is_file()
    fleet = json.loads((out / "fleet.json").read_text())
    acc = [r for r in fleet["accuracy"] if r["precision"] == "fp32"]
    assert acc and set(acc[0]["profiles"]) == {"light", "light-b"}
    assert acc[0]["profiles"]["light"]["top1"] == acc[0]["profiles"]["light-b"]["top1"]
    page = (out / "report.html").read_text()
    assert "light-b/report.html" in page and "Accuracy per precision" in page


def test_two_profiles_with_one_name_are_refused(cli, tmp_path):
    (tmp_path / "x").mkdir()
    a, b = tmp_path / "light.toml", tmp_path / "x" / "light.toml"
    a.write_text(LIGHT)
    b.write_text(LIGHT)
    r = cli("run", "--profile", f"{a},{b}", "-o", str(tmp_path / "o"))
    assert r.exit_code == 2 and "both named light" in r.output
    assert not (tmp_path / "o").exists()


def test_prepare_only_and_cluster_do_not_go_together(cli, tmp_path):
    tiny = Path(__file__).resolve().parent / "profiles" / "tiny.toml"
    r = cli("run", "--profile", str(tiny), "--cluster", "auto", "--prepare-only", "-o", str(tmp_path / "o"))
    assert r.exit_code == 2 and "--prepare-only and --cluster" in r.output


def test_a_dynamic_grid_profile_is_prepared_as_one_graph_per_lookupvit(tmp_path):
    """What a cluster's prepare tasks make for a profile with dynamic_grid = true: one dynamic-grid
    graph set per LookupViT (not one per grid), made by the run's own chain."""
    from exporter.cluster.scheduler import plan_graphs
    from exporter.pipeline.unit import GridSet
    from exporter.profiles import load_profile
    from exporter.run.options import RunOptions
    from exporter.run.prepare import prepare_graph

    profile = Path(__file__).resolve().parent / "profiles" / "tiny-dynamic.toml"
    sets = plan_graphs([load_profile(profile)])
    grids = {(g.variant, g.grid) for g in sets.values()}
    assert grids == {("lookupvit_digits", GridSet(((2, 2), (4, 4)))), ("lookupvit_tiny32", GridSet(((2, 2), (4, 4)))),
                     ("vit_tiny32", None)}
    digits = next(g for g in sets.values() if g.variant == "lookupvit_digits")
    out = tmp_path / "prep"
    outcomes = prepare_graph(RunOptions(profile=profile, out_dir=out), digits.variant, digits.grid, ("fp32",))
    assert {o.id for o in outcomes} == {"export:lookupvit_digits:gdynamic", "optimize:lookupvit_digits:gdynamic"}
    assert (out / "lookupvit_digits" / "gdynamic" / "onnx" / "lookupvit_digits_gdynamic.opt.onnx").is_file()
