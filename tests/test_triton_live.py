"""A real Triton server on this machine: `lookupvit package` output served by PyTriton's bundled
tritonserver (Python backend, ONNX Runtime in the model), requests with tritonclient over HTTP on
127.0.0.1: two grids, answers against the PyTorch reference (validate's metrics and tolerance
table), concurrent requests merged by the dynamic batcher, bad shape / dtype / model refused,
start-up and shutdown with no process left behind.

The server's environment is separate (nvidia-pytriton pins numpy < 2 and protobuf < 7): it is made
once at ``$LOOKUPVIT_PYTRITON_VENV`` (default ``<this venv>/pytriton``) with
``python -m venv`` + ``pip install nvidia-pytriton onnxruntime`` (about 450 MB from PyPI), and
reused by later runs. Where it cannot be made or the server cannot start here, the tests are
skipped with the reason.
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.serve_data import digits_uint8, export_digits, write_run

http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed: pip install -e '.[triton]'")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow
GRIDS = ("2", "3")
VENV = Path(os.environ.get("LOOKUPVIT_PYTRITON_VENV") or Path(sys.prefix) / "pytriton")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from exporter.serve.triton import PackageRequest, package

    tmp = tmp_path_factory.mktemp("live")
    run = write_run(tmp / "run")
    export_digits(run, GRIDS)
    res = package(PackageRequest(source=run, profiles=("cpu",), out_dir=tmp / "repo", grids=GRIDS, precision="fp32"))
    return res


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    from exporter.errors import UserError
    from exporter.serve.live import ensure_environment, start_server

    try:
        env = ensure_environment(VENV)
    except (UserError, OSError) as e:
        pytest.skip(f"no PyTriton environment at {VENV}: {e}")
    try:
        srv = start_server(env, repo.repo, [m.name for m in repo.models], tmp_path_factory.mktemp("server"))
    except RuntimeError as e:
        pytest.skip(f"tritonserver cannot start on this machine: {e}")
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.alive_descendants()


def _infer(url, model, images, dtype="UINT8"):
    """One request; batches above the model's max (8) go as several requests."""
    if len(images) > 8:
        return np.concatenate([_infer(url, model, images[i:i + 8], dtype) for i in range(0, len(images), 8)])
    return _request(url, model, images, dtype)


def _request(url, model, images, dtype="UINT8"):
    client = http.InferenceServerClient(url)
    x = http.InferInput("images", list(images.shape), dtype)
    x.set_data_from_numpy(images)
    return client.infer(model, [x], outputs=[http.InferRequestedOutput("logits")]).as_numpy("logits")


def test_start_request_and_shutdown_leave_no_process(repo, tmp_path):
    """A server of its own, started and stopped here (before the module's server starts: two PyTriton
    servers in one session interfere)."""
    from exporter.errors import UserError
    from exporter.serve.live import ensure_environment, group_members, start_server

    try:
        env = ensure_environment(VENV)
        srv = start_server(env, repo.repo, [repo.models[0].name], tmp_path / "s")
    except (UserError, OSError, RuntimeError) as e:
        pytest.skip(f"tritonserver cannot start on this machine: {e}")
    try:
        assert srv.descendants, "tritonserver and its backend stub run under the host"
        assert _infer(srv.url, repo.models[0].name, np.zeros((1, 1, 32, 32), np.uint8)).shape == (1, 10)
    finally:
        code = srv.stop()
    assert code == 0
    assert not srv.alive_descendants() and not group_members(srv.pid)
    with pytest.raises(Exception):  # noqa: B017  the port is closed
        http.InferenceServerClient(srv.url).is_server_live()


def test_startup_serves_the_packaged_configs(server, repo):
    client = http.InferenceServerClient(server.url)
    assert client.is_server_live() and client.is_server_ready()
    for m in repo.models:
        assert client.is_model_ready(m.name)
        cfg = client.get_model_config(m.name)
        assert cfg["max_batch_size"] == m.config.max_batch_size == 8
        assert cfg["input"][0]["data_type"] == "TYPE_UINT8" and cfg["input"][0]["dims"] == [1, 32, 32]
        assert cfg["dynamic_batching"]["preferred_batch_size"] == [8]


@pytest.mark.parametrize("grid", GRIDS)
def test_answers_match_the_pytorch_reference(server, repo, grid):
    import torch

    from exporter.data import InputSpec, prepare_images
    from exporter.export import load_source
    from exporter.validate import tolerances
    from exporter.validate.comparison import output_metrics
    from exporter.validate.validate import reference_source

    model = next(m for m in repo.models if m.grid == grid)
    onnx_path = repo.repo.parent / "run" / "lookupvit_digits" / f"g{grid}" / "onnx" / f"lookupvit_digits_g{grid}.onnx"
    loaded = load_source(reference_source(onnx_path))
    images, labels = digits_uint8(32)
    x = prepare_images(images / 255.0, InputSpec(loaded.input_shape, loaded.mean, loaded.std))
    with torch.no_grad():
        ref = loaded.module(torch.from_numpy(x)).numpy()
    got = _infer(server.url, model.name, images)
    m = output_metrics(got, ref)
    tol = tolerances.tolerance_for("fp32")
    assert m["max_rel"] <= tol.max_error and m["cosine"] >= tol.min_cosine, m
    assert m["top1_agreement"] == 1.0 and (got.argmax(-1) == labels).mean() > 0.9


def test_concurrent_requests_are_merged_by_the_dynamic_batcher(server, repo):
    name = repo.models[0].name
    client = http.InferenceServerClient(server.url)

    def count():
        s = client.get_inference_statistics(name, headers=server.headers)["model_stats"][0]
        return s["inference_count"], s["execution_count"]

    images, _ = digits_uint8(24, offset=40)
    before = count()
    with ThreadPoolExecutor(max_workers=24) as pool:
        outs = list(pool.map(lambda i: _infer(server.url, name, images[i:i + 1]), range(24)))
    after = count()
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 24
    assert executions < inferences  # several requests ran as one batch
    single = _infer(server.url, name, images)
    assert np.abs(np.concatenate(outs) - single).max() < 1e-4  # merged or not, the same answers


def test_request_errors(server, repo):
    name = repo.models[0].name
    with pytest.raises(InferenceServerException, match=r"unexpected shape|shape"):
        _request(server.url, name, np.zeros((1, 1, 16, 16), np.uint8))
    with pytest.raises(InferenceServerException, match=r"(?i)data.?type|datatype|FP32"):
        _request(server.url, name, np.zeros((1, 1, 32, 32), np.float32), "FP32")
    with pytest.raises(InferenceServerException, match=r"batch-size must be <= 8"):
        _request(server.url, name, np.zeros((9, 1, 32, 32), np.uint8))
    with pytest.raises(InferenceServerException, match=r"(?i)unknown model|not found|unavailable"):
        _request(server.url, "lookupvit_digits_g99", np.zeros((1, 1, 32, 32), np.uint8))
    assert http.InferenceServerClient(server.url).is_server_ready()  # still serving
