"""`lookupvit package --triton`: the repository layout, every config.pbtxt parsed with Triton's own
model-configuration schema (tritonclient's model_config_pb2), the folded preprocessing against the
graph it wraps, TensorRT profiles without a GPU (complete config, engine marked missing), several
GPUs, the plugin note, and the refusals."""

import json
import shutil

import numpy as np
import pytest

from exporter.errors import UserError
from exporter.serve.schema import model_config_module, parse_config
from tests.serve_data import ROOT, digits_uint8, export_digits, write_run

pytest.importorskip("tritonclient", reason="the tests parse configs with tritonclient's schema: pip install -e '.[triton]'")
TINY_TRT = ROOT / "tests" / "profiles" / "tiny-trt.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with the real lookupvit_digits graphs at grids 2 and 3 (fp32)."""
    d = write_run(tmp_path_factory.mktemp("pkg") / "run")
    export_digits(d, ("2", "3"))
    return d


def _config(path):
    return parse_config(path.read_text(), str(path))


def test_cpu_profile_repository(run_dir, tmp_path, cli):
    repo = tmp_path / "repo"
    r = cli("package", str(run_dir), "--profile", "cpu", "--triton", "-o", str(repo), "--grids", "2,3", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    pb = model_config_module()
    for g in ("2", "3"):
        folder = repo / f"lookupvit_digits_g{g}"
        assert (folder / "1" / "model.onnx").is_file()
        assert (folder / "labels.txt").read_text().split() == [str(i) for i in range(10)]
        c = _config(folder / "config.pbtxt")
        assert c.name == folder.name and c.platform == "onnxruntime_onnx" and c.max_batch_size == 8
        (i,), (o,) = c.input, c.output
        assert (i.name, pb.DataType.Name(i.data_type), list(i.dims)) == ("images", "TYPE_UINT8", [1, 32, 32])
        assert (o.name, pb.DataType.Name(o.data_type), list(o.dims), o.label_filename) == ("logits", "TYPE_FP32", [10], "labels.txt")
        (grp,) = c.instance_group
        assert pb.ModelInstanceGroup.Kind.Name(grp.kind) == "KIND_CPU" and grp.count == 1
        assert list(c.dynamic_batching.preferred_batch_size) == [8]  # cpu: opt 1, 8; 1 would never merge
        assert c.dynamic_batching.max_queue_delay_microseconds == 100  # a tenth of 0.46 ms, at least 100 us
        assert c.parameters["intra_op_thread_count"].string_value == "0"  # cpu profile: threads = "auto" -> its default
        assert [(w.batch_size, list(w.inputs)) for w in c.model_warmup] == [(1, ["images"]), (8, ["images"])]
    readme = (repo / "README.md").read_text()
    assert "tritonserver --model-repository" in readme and "Preprocessing" in readme and "ensemble" in readme
    assert "lookupvit_digits_g2" in readme and "lookupvit_digits_g3" in readme
    assert "Default model: `lookupvit_digits_g3`" in readme  # the grid the run's front chose (g3), not the first listed


def test_default_choice_is_the_front_top_and_latency_ms_uses_pick(run_dir, tmp_path, cli):
    r = cli("package", str(run_dir), "--triton", "-o", str(tmp_path / "a"), "--latency-ms", "0.5", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [m["name"] for m in d["models"]] == ["lookupvit_digits_g2"] and "pick" in d["choice"]
    assert d["complete"] and d["models"][0]["schema_checked"]
    r = cli("package", str(run_dir), "--triton", "-o", str(tmp_path / "b"), "--json")
    assert r.exit_code == 2  # the front's top is g3 int8, a graph this run folder does not hold
    assert "no int8 graph of lookupvit_digits at grid 3" in r.stdout


def test_folded_normalisation_matches_the_float_graph(run_dir, tmp_path):
    import onnxruntime as ort

    from exporter.data import prepare_images
    from exporter.export import read_model_metadata
    from exporter.serve.preprocess import fold_normalisation, model_normalisation

    src = run_dir / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.onnx"
    folded = fold_normalisation(src, tmp_path / "m.onnx", model_normalisation(src))
    meta = read_model_metadata(src)
    from exporter.data import InputSpec

    x, _ = digits_uint8(16)
    ref = ort.InferenceSession(str(src)).run(None, {"images": prepare_images(x / 255.0, InputSpec(meta.input_shape, meta.mean, meta.std))})[0]
    got = ort.InferenceSession(str(folded)).run(None, {"images": x})[0]
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    with pytest.raises(Exception, match=r"INVALID_ARGUMENT|data type"):
        ort.InferenceSession(str(folded)).run(None, {"images": x.astype(np.float32)})


def test_tensorrt_profile_without_a_gpu_is_complete_and_says_so(run_dir, tmp_path, cli):
    repo = tmp_path / "trt"
    r = cli("package", str(run_dir), "--profile", str(TINY_TRT), "--triton", "-o", str(repo), "--grids", "2",
            "--precision", "fp32")
    assert r.exit_code == 2, r.output  # written, but the engine could not be built here
    folder = repo / "lookupvit_digits_g2"
    text = (folder / "config.pbtxt").read_text()
    c = parse_config(text)
    pb = model_config_module()
    assert c.platform == "tensorrt_plan" and c.max_batch_size == 16
    assert dict(c.cc_model_filenames) == {"9.0": "model.sm_90.plan"}
    assert [(pb.ModelInstanceGroup.Kind.Name(g.kind), list(g.profile)) for g in c.instance_group] == [
        ("KIND_GPU", ["0"]), ("KIND_GPU", ["1"])]  # one instance group per optimisation profile (opt 1, 8)
    assert list(c.dynamic_batching.preferred_batch_size) == [8]
    assert [w.batch_size for w in c.model_warmup] == [1, 8]
    assert "NOT BUILT HERE" in text and not (folder / "1" / "model.sm_90.plan").exists()
    assert (folder / "source" / "model.onnx").is_file()
    readme = (repo / "README.md").read_text()
    assert "MISSING" in readme and f"lookupvit build {repo}/lookupvit_digits_g2/source/model.onnx --profile" in readme


def test_engines_of_several_gpus(run_dir, tmp_path, cli):
    r = cli("package", str(run_dir), "--profile", "h100", "--profile", "a100", "--triton", "-o", str(tmp_path / "r"),
            "--grids", "2", "--precision", "fp32", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 2 and not d["complete"]
    c = _config(tmp_path / "r" / "lookupvit_digits_g2" / "config.pbtxt")
    assert dict(c.cc_model_filenames) == {"9.0": "model.sm_90.plan", "8.0": "model.sm_80.plan"}
    assert [list(g.profile) for g in c.instance_group] == [["0"], ["1"], ["2"]]  # opt 1, 8, 64
    assert list(c.dynamic_batching.preferred_batch_size) == [8, 64] and c.max_batch_size == 128
    r = cli("package", str(run_dir), "--profile", "h100", "--profile", "h200", "--triton", "-o", str(tmp_path / "s"),
            "--grids", "2", "--precision", "fp32")
    assert r.exit_code == 2 and "same compute capability" in r.output


def test_plugin_graph_gets_the_plugin_note(run_dir, tmp_path):
    from exporter.passes import optimize_model
    from exporter.serve.triton import PackageRequest, package

    src = run_dir / "lookupvit_digits" / "g2" / "onnx" / "lookupvit_digits_g2.onnx"
    plugged = tmp_path / "plugin.onnx"
    optimize_model(src, plugged, target="plugin")
    res = package(PackageRequest(source=plugged, profiles=("h100",), out_dir=tmp_path / "repo"))
    assert res.models[0].plugin_nodes > 0 and not res.complete
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert "LookupGather/LookupScatter" in readme and "--backend-config=tensorrt,plugins=" in readme


def test_an_onnx_model_is_packaged_as_given_and_refusals(run_dir, tmp_path, cli):
    src = run_dir / "lookupvit_digits" / "g3" / "onnx" / "lookupvit_digits_g3.onnx"
    r = cli("package", str(src), "--profile", "cpu", "--triton", "-o", str(tmp_path / "r"), "--input", "float",
            "--name", "digits")
    assert r.exit_code == 0, r.output
    c = _config(tmp_path / "r" / "digits" / "config.pbtxt")
    assert model_config_module().DataType.Name(c.input[0].data_type) == "TYPE_FP32"
    r = cli("package", str(src), "--profile", "cpu", "--triton", "-o", str(tmp_path / "r"), "--name", "digits")
    assert r.exit_code == 2 and "--force" in r.output
    r = cli("package", str(src), "--profile", "cpu", "--triton", "-o", str(tmp_path / "r"), "--name", "digits", "--force")
    assert r.exit_code == 0
    r = cli("package", str(src), "--profile", "cpu", "--triton", "-o", str(tmp_path / "x"), "--grids", "2")
    assert r.exit_code == 2 and "packaged as it is" in r.output


def test_the_schema_rejects_a_misspelt_field(run_dir, tmp_path):
    from exporter.serve.triton import PackageRequest, package

    res = package(PackageRequest(source=run_dir, profiles=("cpu",), out_dir=tmp_path / "r", grids=("2",), precision="fp32"))
    text = (res.models[0].folder / "config.pbtxt").read_text()
    parse_config(text)
    for wrong in (text.replace("max_batch_size", "max_batch_sise"), text.replace("KIND_CPU", "KIND_TPU"),
                  text.replace("max_queue_delay_microseconds: 100", 'max_queue_delay_microseconds: "soon"')):
        with pytest.raises(UserError, match="Triton's model-configuration schema"):
            parse_config(wrong)
    shutil.rmtree(tmp_path / "r")
