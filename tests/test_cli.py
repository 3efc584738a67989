import json

import numpy as np
import pytest


def test_version_and_help(cli):
    from exporter import __version__
    from exporter.cli import main

    assert __version__ in cli("--version").output
    for verb in main.commands:
        result = cli(verb, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_variants_json(cli):
    result = cli("variants", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}  # stdout is pure JSON
    assert len(rows) >= 12
    assert 17.4 <= rows["vit_b16"]["gmacs"]["-"] <= 17.6
    for g in ["3", "5", "7"]:
        assert rows["lookupvit_b16"]["gmacs"][g] < rows["vit_b16"]["gmacs"]["-"]
    assert rows["lookupvit_b16"]["default_grids"] == ["3", "5", "7", "10"]
    assert rows["lookupvit_b16"]["lookup_tokens"] == 196


def test_variants_table(cli):
    out = cli("variants").output
    assert "lookupvit_b16_video" in out and "vit_b16" in out


def test_evaluate_npz_json(cli, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.random((12, 32, 32)).astype(np.float32), labels=np.arange(12) % 10)
    refused = cli("evaluate", "lookupvit_tiny32", "--data", str(tmp_path / "d.npz"), "--grids", "1,4", "--json")
    assert refused.exit_code == 2 and "random weights" in refused.output and "grey images" in refused.output
    result = cli("evaluate", "lookupvit_tiny32", "--data", str(tmp_path / "d.npz"), "--grids", "1,4", "--json",
                 "--allow-meaningless")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [r["grid"] for r in doc["rows"]] == ["1", "4"]
    assert all(r["total"] == 12 for r in doc["rows"])
    assert doc["weights"] == "random init (seed 0)"
    assert any("random weights" in m for m in doc["meaningless"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["evaluate", "lookupvit_b61"], "Did you mean"),
        (["evaluate", "lookupvit_digits", "--grids", "9"], "does not fit"),
        (["evaluate", "lookupvit_digits", "--data", "/nonexistent"], "neither"),
        (["evaluate", "lookupvit_tiny32", "--weights", "/nonexistent.pt"], "does not exist"),
    ],
)
def test_bad_input_exits_2_without_traceback(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
