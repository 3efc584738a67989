"""Model files are data: validate and compare never import code named in an ONNX file's metadata,
metadata values are validated before use, and weights are checked (hash recorded at export, NaN/Inf)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from exporter.errors import UserError
from exporter.export import read_model_metadata
from exporter.models.registry import WEIGHTS_DIR

REPO = Path(__file__).resolve().parent.parent
PLANTED = '''
from pathlib import Path
Path("MARKER").write_text("imported")
from tests.foreign.einsum_lookupvit import build
'''


def lookupvit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter: a module imported there would run its top-level code."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "exporter.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def set_meta(path: Path, **values: str) -> Path:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {
        **{p.key: p.value for p in model.metadata_props}, **{f"lookupvit.{k}": v for k, v in values.items()},
    })
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def digits_g2(tmp_path_factory) -> Path:
    from exporter.export import export_onnx, resolve_variant_source

    out = tmp_path_factory.mktemp("digits")
    return export_onnx(resolve_variant_source("lookupvit_digits", grid="2"), out).path


def test_validate_and_compare_never_import_a_factory_named_in_metadata(tmp_path):
    (tmp_path / "planted.py").write_text(PLANTED)
    r = lookupvit("export", "--model", "planted:build", "--grids", "2", "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "MARKER").exists()  # --model on the command line: the user chose to run it
    (tmp_path / "MARKER").unlink()
    model = tmp_path / "out" / "planted_build_g2.onnx"
    for verb in ("validate", "compare"):
        r = lookupvit(verb, str(model), cwd=tmp_path)
        assert r.returncode == 2, (verb, r.stdout, r.stderr)
        assert "--model planted:build" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "MARKER").exists(), f"{verb} imported the factory named in the model's metadata"


def test_a_factory_planted_in_a_variants_metadata_is_not_imported(digits_g2, tmp_path):
    (tmp_path / "planted.py").write_text(PLANTED)
    model = tmp_path / "crafted.onnx"
    model.write_bytes(digits_g2.read_bytes())
    source = json.dumps({"factory": "planted:build", "grid": [2, 2], "head": "logits", "image_size": None,
                         "overrides": {}, "variant": None, "weights": None})
    set_meta(model, source=source, factory="planted:build")
    r = lookupvit("validate", str(model), cwd=tmp_path)
    assert r.returncode == 2 and "--model planted:build" in r.stderr
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"dim": 100_000}, "source.overrides.dim"),  # would allocate tens of GB
        ({"depth": 200, "dim": 8192, "heads": 64}, "G parameters"),
        ({"depth": "12"}, "expected a int"),
        ({"__class__": 1}, "not an overridable field"),
        ({"image_size": 100_000}, "between 1 and 4096"),
        ({"heads": 7}, "not divisible"),
    ],
)
def test_crafted_overrides_are_refused_before_anything_is_built(digits_g2, tmp_path, overrides, message):
    model = tmp_path / "crafted.onnx"
    model.write_bytes(digits_g2.read_bytes())
    meta = read_model_metadata(digits_g2)
    source = json.loads(meta.raw["source"]) | {"overrides": overrides}
    set_meta(model, source=json.dumps(source))
    with pytest.raises(UserError, match="invalid metadata") as e:
        read_model_metadata(model)
    assert message in e.value.message


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("grid", "2x2x2x2", "2 or 3 sizes"),
        ("input_shape", "[1, 100000, 100000]", "pixels per side"),
        ("mean", "[0.5, 0.5]", "one per input channel"),
        ("precision", "int4", "not one of"),
        ("weights", "sha256:../../etc/passwd", "sha256:<64 hex digits>"),
        ("source", "not json", "not valid JSON"),
    ],
)
def test_every_metadata_value_is_validated(digits_g2, tmp_path, key, value, message):
    model = tmp_path / "crafted.onnx"
    model.write_bytes(digits_g2.read_bytes())
    set_meta(model, **{key: value})
    with pytest.raises(UserError, match=message):
        read_model_metadata(model)


def test_validate_never_opens_the_checkpoint_named_in_metadata(tmp_path, cli):
    """Issue 24, finding 5: the checkpoint path recorded at export is described, never opened; the user
    passes the checkpoint with --weights (before: the recorded path was hashed and loaded)."""
    weights = tmp_path / "w.safetensors"
    weights.write_bytes((WEIGHTS_DIR / "lookupvit_digits.safetensors").read_bytes())
    assert cli("export", "lookupvit_digits", "--weights", str(weights), "--grid", "2", "-o", str(tmp_path)).exit_code == 0
    model = str(tmp_path / "lookupvit_digits_g2.onnx")
    state = load_file(str(weights))
    state["head.bias"] = state["head.bias"] + 1.0
    save_file(state, str(weights))
    r = cli("validate", model)
    assert r.exit_code == 2 and "never opens a file named in a model's metadata" in r.output
    assert "--weights FILE" in r.output and "Traceback" not in r.output
    r = cli("validate", model, "--weights", str(weights), "--json")  # compared against other weights on purpose
    assert r.exit_code == 1 and json.loads(r.stdout)["status"] == "FAILED"


def test_weights_with_nan_are_refused_naming_the_tensors(tmp_path, cli):
    state = load_file(str(WEIGHTS_DIR / "lookupvit_digits.safetensors"))
    name = sorted(state)[3]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = torch.nan
    save_file(state, str(tmp_path / "nan.safetensors"))
    r = cli("export", "lookupvit_digits", "--weights", str(tmp_path / "nan.safetensors"), "-o", str(tmp_path / "o"))
    assert r.exit_code == 2 and "NaN or Inf" in r.output and name in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
