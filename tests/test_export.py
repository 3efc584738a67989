"""Export to ONNX and validation against PyTorch (tiny configs of every family)."""

import json

import onnx
import pytest

from exporter.export import export_onnx, read_metadata, resolve_variant_source
from exporter.models import create_model, save_weights
from exporter.validate import validate_model

FAMILIES = [
    ("lookupvit_tiny32", ["2", "4"], "logits"),
    ("lookupvit_tiny32_video", ["1x2x2", "2x4x4"], "logits"),
    ("lookupvit_tiny32_features", ["2", "5"], "features"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    models = {}
    for variant, grids, head in FAMILIES:
        for g in grids:
            models[(variant, g)] = export_onnx(resolve_variant_source(variant, grid=g, head=head), out)
    models[("vit_tiny32", None)] = export_onnx(resolve_variant_source("vit_tiny32"), out)
    return out, models


def test_every_family_exports_and_validates(exported):
    _, models = exported
    for (variant, grid), result in models.items():
        assert result.path.is_file() and not result.reused
        model = onnx.load(str(result.path))
        assert model.opset_import[0].version == 23
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param  # dynamic batch by default
        report = validate_model(result.path)
        assert report.passed, (variant, grid, [o.to_dict() for o in report.outputs])
        assert not result.path.with_suffix(".validate.json").exists()  # nothing written beside a model


def test_file_names_metadata_and_sidecar(exported):
    _, models = exported
    r = models[("lookupvit_tiny32", "4")]
    assert r.path.name == "lookupvit_tiny32_g4.onnx"
    assert models[("lookupvit_tiny32_video", "2x4x4")].path.name == "lookupvit_tiny32_video_g2x4x4.onnx"
    meta = read_metadata(r.path)
    assert meta["variant"] == "lookupvit_tiny32" and meta["grid"] == "4x4" and meta["opset"] == "23"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and meta["image_size"] == "32"
    assert meta["weights"] == "seed:0" and meta["tool_version"]
    side = json.loads(r.sidecar.read_text())
    assert side["output"]["sha256"] and side["versions"]["torch"] and side["timings"]["export_s"] > 0
    assert side["settings"]["batch"] == "dynamic"
    features = onnx.load(str(models[("lookupvit_tiny32_features", "5")].path), load_external_data=False)
    assert [o.name for o in features.graph.output] == ["lookup_tokens", "compressed_tokens"]


def test_reexport_is_reused_unless_forced(cli, tmp_path):
    """The verb runs a one-stage chain in its folder: its stages.json decides, not the sidecar."""
    def export(*extra: str) -> dict:
        r = cli("export", "lookupvit_tiny32", "--grid", "2", "-o", str(tmp_path), "--json", *extra)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)[0]

    first, again, forced = export(), export(), export("--force")
    assert not first["reused"] and again["reused"] and not forced["reused"] and again["path"] == first["path"]
    stages = json.loads((tmp_path / "stages.json").read_text())["stages"]
    assert list(stages) == ["export:lookupvit_tiny32_g2.onnx"]
    assert set(stages["export:lookupvit_tiny32_g2.onnx"]["outputs"]) == {"lookupvit_tiny32_g2.onnx",
                                                                         "lookupvit_tiny32_g2.onnx.json"}


def test_weights_change_the_cache_key(tmp_path):
    from exporter.pipeline import Manifest
    from exporter.pipeline.steps import export_step

    w = save_weights(create_model("lookupvit_tiny32", seed=5), tmp_path / "w.safetensors")
    manifest = Manifest(tmp_path)
    a = export_step(manifest, "export:m", resolve_variant_source("lookupvit_tiny32", grid="2"), tmp_path)
    assert export_step(manifest, "export:m", resolve_variant_source("lookupvit_tiny32", grid="2"), tmp_path).reused
    b = export_step(manifest, "export:m", resolve_variant_source("lookupvit_tiny32", weights=str(w), grid="2"), tmp_path)
    assert not b.reused
    assert read_metadata(b.path)["weights"].startswith("sha256:")
    assert validate_model(b.path, weights=str(w)).passed  # a checkpoint named in metadata is never opened: passed
    assert a.path == b.path  # same file name, new content


def test_validation_failure_exits_1(exported, tmp_path, cli):
    _, models = exported
    other = save_weights(create_model("lookupvit_tiny32", seed=7), tmp_path / "other.safetensors")
    path = models[("lookupvit_tiny32", "2")].path
    result = cli("validate", str(path), "--weights", str(other), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["status"] == "FAILED"
    assert doc["outputs"][0]["would_pass"]["max_error"] > 1e-4


def test_static_batch_and_lower_opset(tmp_path):
    r = export_onnx(resolve_variant_source("lookupvit_tiny32", grid="2"), tmp_path, batch=3, opset=20)
    model = onnx.load(str(r.path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert model.opset_import[0].version == 20
    assert validate_model(r.path).passed


def test_foreign_lookupvit_via_model_factory(tmp_path, cli):
    result = cli("export", "--model", "tests.foreign.einsum_lookupvit:build", "--grids", "2,3", "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    paths = [r["path"] for r in json.loads(result.stdout)]
    assert [p.split("/")[-1] for p in paths] == ["einsum_lookupvit_build_g2.onnx", "einsum_lookupvit_build_g3.onnx"]
    assert read_metadata(paths[1])["factory"] == "tests.foreign.einsum_lookupvit:build"
    refused = cli("validate", paths[1], "--json")  # the metadata names a factory: never imported from there
    assert refused.exit_code == 2 and "--model tests.foreign.einsum_lookupvit:build" in refused.output
    result = cli("validate", paths[1], "--model", "tests.foreign.einsum_lookupvit:build", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "PASSED"


def test_cli_validate_digits(tmp_path, cli):
    assert cli("export", "lookupvit_digits", "--grid", "3", "-o", str(tmp_path)).exit_code == 0
    result = cli("validate", str(tmp_path / "lookupvit_digits_g3.onnx"), "--data", "digits", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["samples"] == 360 and doc["outputs"][0]["top1_agreement"] == 1.0
    # the default: the data the model declares (as `run` validates it), said in the report; nothing written
    auto = json.loads(cli("validate", str(tmp_path / "lookupvit_digits_g3.onnx"), "--json").stdout)
    assert auto["samples"] == 360 and "digits" in auto["data"]
    assert not list(tmp_path.glob("*.validate.json"))
    out = tmp_path / "reports" / "v.json"
    (tmp_path / "reports").mkdir()
    assert cli("validate", str(tmp_path / "lookupvit_digits_g3.onnx"), "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["status"] == "PASSED"


def test_a_model_without_a_declared_dataset_is_validated_on_random_images(tmp_path, cli):
    assert cli("export", "lookupvit_tiny32", "--grid", "2", "-o", str(tmp_path)).exit_code == 0
    doc = json.loads(cli("validate", str(tmp_path / "lookupvit_tiny32_g2.onnx"), "--json").stdout)
    assert doc["data"].startswith("random normal")


@pytest.mark.parametrize(
    "args,message",
    [
        (["export", "lookupvit_tiny23", "-o", "{o}"], "Did you mean lookupvit_tiny32"),
        (["export", "lookupvit_tiny32", "--grid", "9", "-o", "{o}"], "does not fit the lookup grid 8x8"),
        (["export", "lookupvit_tiny32", "--opset", "13", "-o", "{o}"], "cannot produce opset 13"),
        (["export", "lookupvit_tiny32", "--batch", "zero", "-o", "{o}"], "neither 'dynamic'"),
        (["export", "lookupvit_tiny32", "--weights", "{w}", "-o", "{o}"], "do not fit this model"),
        (["export", "vit_tiny32", "--grid", "2", "-o", "{o}"], "no compressed grid"),
        (["export", "--model", "tests.foreign.nope:build", "-o", "{o}"], "Cannot import module"),
        (["export", "--model", "tests.foreign.einsum_lookupvit:missing", "-o", "{o}"], "no callable"),
        (["export", "--model", "tests.foreign.einsum_lookupvit:not_a_module", "-o", "{o}"], "not a torch.nn.Module"),
        (["export", "--model", "tests.foreign.einsum_lookupvit:wrong_output", "-o", "{o}"], "expected logits"),
        (["export", "-o", "{o}"], "exactly one"),
        (["validate", "{junk}"], "not a readable ONNX model"),
        (["validate", "{o}/missing.onnx"], "does not exist"),
    ],
)
def test_bad_input(cli, tmp_path, args, message):
    junk = tmp_path / "junk.onnx"
    junk.write_text("not onnx")
    weights = save_weights(create_model("lookupvit_digits"), tmp_path / "digits.safetensors")
    out = tmp_path / "out"
    result = cli(*[a.format(o=out, w=weights, junk=junk) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.glob("*.onnx"))


def test_foreign_model_without_metadata_needs_reference(tmp_path, cli):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "g", [x], [y])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    result = cli("validate", str(path))
    assert result.exit_code == 2 and "--reference" in result.output


def test_a_recorded_export_whose_model_changed_is_exported_again(tmp_path):
    """The manifest holds every output's sha256 (the model, its sidecar and any external data file): an
    edited or missing output makes the stage run again."""
    from exporter.pipeline import Manifest
    from exporter.pipeline.steps import export_step

    src = resolve_variant_source("lookupvit_tiny32", grid="2")
    first = export_step(Manifest(tmp_path), "export:m", src, tmp_path)
    first.sidecar.unlink()
    again = export_step(Manifest(tmp_path), "export:m", src, tmp_path)
    assert not again.reused and again.sidecar.is_file() and onnx.load(str(again.path)).graph.node
    assert export_step(Manifest(tmp_path), "export:m", src, tmp_path).reused  # the record reloads


def test_export_sources_resolve_what_the_verb_exports():
    """exporter.export.export_sources: the verb's sources, below the CLI."""
    from exporter.errors import UserError
    from exporter.export import export_sources
    from exporter.models import get_variant

    assert [s.grid for s in export_sources("lookupvit_digits", grids="3,3x3,2")] == [(3, 3), (2, 2)]  # 3 once
    assert [s.grid for s in export_sources("lookupvit_digits")] == [get_variant("lookupvit_digits").config.default_grids[-1]]
    dynamic = export_sources("lookupvit_digits", dynamic_grid=True)
    assert len(dynamic) == 1 and dynamic[0].grids == tuple(sorted(get_variant("lookupvit_digits").config.default_grids))
    assert export_sources(None, "tests.foreign.einsum_lookupvit:build", grids="2,5x7")[1].grid == (5, 7)
    with pytest.raises(UserError, match="exactly one"):
        export_sources("lookupvit_digits", "tests.foreign.einsum_lookupvit:build")
    with pytest.raises(UserError, match="needs a registered variant"):
        export_sources(None, "tests.foreign.einsum_lookupvit:build", dynamic_grid=True)
