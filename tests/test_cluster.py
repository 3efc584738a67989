"""`lookupvit run --cluster`: profiles on a real Ray cluster, started here with two nodes on this machine.

The head node offers a custom resource ``alpha``, the second node ``special``, each with its own
ports and 2 CPUs (:class:`exporter.cluster.local.LocalCluster`). The tests run the tiny profile and
a copy of it that needs ``special``, a profile that needs a resource no node offers, a worker killed
in the middle of a profile's run, and Ctrl-C. The cluster is stopped on every path, and no process
of it may remain. Without Ray installed the tests are skipped; the rest of the suite never needs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.child import default_sigint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="the ray extra is not installed (pip install -e '.[ray]')")

TINY = Path(__file__).resolve().parent / "profiles" / "tiny.toml"
LIGHT = (Path(__file__).resolve().parent / "profiles" / "digits-only.toml").read_text()

TRT_LIGHT = """description = "the digits model only on TensorRT, fp32 (cluster tests)"
gpu = "NVIDIA H100"
backend = "tensorrt"
compute_capability = "9.0"
precisions = ["fp32"]

[models]
accuracy = ["lookupvit_digits"]

[grids]
accuracy = [2]

[batch]
min = 1
opt = [1]
max = 1

[cluster]
gpus = 0                                # this machine has none: the node is chosen by its resource
resources = { special = 1 }
"""


@pytest.fixture(scope="module")
def cluster():
    from exporter.cluster.local import LocalCluster

    c = LocalCluster([{"alpha": 1}, {"special": 1}]).start()
    try:
        yield c
    finally:
        left = c.stop()
        assert not left, f"Ray processes left after stopping the cluster: {left}"


def _free_port() -> int:
    from exporter.cluster.local import free_port

    return free_port()


def _profile(tmp: Path, name: str, text: str, resources: dict[str, int] | None = None) -> Path:
    if resources:
        text += "\n[cluster]\nresources = { " + ", ".join(f'{k} = {v}' for k, v in resources.items()) + " }\n"
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _lookupvit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))


def _stages(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "stages.json").read_text())["stages"]


from exporter.pipeline.stages import DEVICE_STAGES as DEVICE_KINDS  # noqa: E402  (where each stage runs, declared once)


def test_two_profiles_one_bound_to_a_node(cluster, quickstart_run, tmp_path):
    """The tiny profile and a copy that needs `special`: every device stage of the copy ran on the
    special node; both equal a local run of tiny (the session's, tests/conftest.py); the fleet report
    sets them side by side."""
    special = _profile(tmp_path, "tiny-special", TINY.read_text(), {"special": 1})
    out = tmp_path / "fleet"
    r = _lookupvit("run", "--profile", f"{TINY},{special}", "--cluster", cluster.address, "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"tiny-special: running \d+/\d+ \| .+ \| on \S+", r.stderr)  # progress: one line per profile

    special_node = cluster.ids["special"][:12]
    stages = _stages(out / "tiny-special")
    device = {k: v for k, v in stages.items() if v["kind"] in DEVICE_KINDS}
    assert device and all(v["node"].endswith("/" + special_node) for v in device.values()), \
        {k: v["node"] for k, v in device.items()}
    fleet = json.loads((out / "fleet.json").read_text())
    assert [p["profile"] for p in fleet["profiles"]] == ["tiny", "tiny-special"]
    assert fleet["profiles"][1]["node"].endswith("/" + special_node)
    # each graph was prepared once for both profiles: the same bytes, made on one node
    for k, v in _stages(out / "tiny").items():
        if v["kind"] in ("export", "optimize", "precision"):
            assert stages[k]["outputs"] == v["outputs"] and stages[k]["node"] == v["node"], k

    local, local_result, _ = quickstart_run  # `lookupvit run --profile TINY` on this machine, without a cluster
    assert local_result.exit_code == 0, local_result.output

    def results(folder: Path) -> tuple:
        s = json.loads((folder / "summary.json").read_text())
        return (sorted((v["model"], v["grid"], v["precision"], v["status"]) for v in s["validation"]),
                sorted((a["model"], a["grid"], a["precision"], a["status"], a["top1"]) for a in s["accuracy"]))

    assert results(out / "tiny") == results(local) == results(out / "tiny-special")
    page = (out / "report.html").read_text()
    assert "tiny-special" in page and "Speedup over the ViT baseline" in page and "Accuracy per precision" in page
    assert {r["model"] for r in fleet["latency"]} >= {"lookupvit_tiny32", "vit_tiny32 (baseline)"}

    # the profile's folder is a local run's: a local rerun into it skips every stage
    r = _lookupvit("run", "--profile", str(special), "-o", str(out / "tiny-special"), "--json")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)["stage_counts"]
    assert set(counts) == {"skipped"}, counts

    # and a cluster rerun resumes both profiles from their folders
    r = _lookupvit("run", "--profile", f"{TINY},{special}", "--cluster", cluster.address, "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("tiny", "tiny-special"):
        counts = json.loads((out / name / "summary.json").read_text())["stage_counts"]
        assert set(counts) == {"skipped"}, (name, counts)


def _driver_with_a_running_task(args: list[str], running: Path) -> tuple[subprocess.Popen[str], int]:
    """``lookupvit ARGS`` started in the background, once the device task it waits for has written
    ``running``: the driver process and the pid of the worker running that task."""
    proc = subprocess.Popen([sys.executable, "-m", "exporter.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 240
    while not running.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if not running.is_file():
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the device task never started: {err[-2000:]}")
    return proc, json.loads(running.read_text())["pid"]


def test_infeasible_profile_fails_fast_and_a_killed_worker_is_survived(cluster, tmp_path):
    """Three profiles: one needs a resource no node offers (reported at once, with every node's
    resources, and not run: exit 2); one is bound to the special node, and its worker process is
    killed with SIGKILL mid-run: Ray runs the task again, which resumes, and its results are written;
    a TensorRT profile bound to the same node has its graphs prepared, and its device part is refused
    there (no TensorRT on this machine): not run, with the reason, the others unaffected."""
    from exporter.cluster.scheduler import run_key
    from exporter.cluster.transport import WORK

    light = _profile(tmp_path, "light-special", LIGHT, {"special": 1})
    nobody = _profile(tmp_path, "nobody", LIGHT, {"special2": 1})
    trt = _profile(tmp_path, "trt-special", TRT_LIGHT)
    out = tmp_path / "fleet"
    running = cluster.node_temp / WORK / run_key(out) / "light-special" / "running.json"
    proc, pid = _driver_with_a_running_task(
        ["run", "--profile", f"{light},{nobody},{trt}", "--cluster", cluster.address, "-o", str(out)], running)
    try:
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, stdout + stderr

    first = re.search(r"^\[(\d+):(\d+)\] nobody: not run", stderr, re.M)
    assert first and 60 * int(first[1]) + int(first[2]) <= 10, stderr  # at once, not after the other's run
    text = " ".join(stderr.split())
    assert "profile nobody needs {CPU: 1, special2: 1}" in text and "special: 1" in text and "alpha: 1" in text
    assert not (out / "nobody").exists()
    fleet = json.loads((out / "fleet.json").read_text())
    assert [(p["profile"], p["status"]) for p in fleet["profiles"]] == [
        ("light-special", "PASSED"), ("nobody", "not run"), ("trt-special", "not run")]
    assert "TensorRT" in fleet["profiles"][2]["message"], fleet["profiles"][2]
    assert fleet["profiles"][2]["node"].endswith("/" + cluster.ids["special"][:12])
    assert {t["kind"] for t in fleet["tasks"]} == {"prepare", "device"} and len(fleet["tasks"]) == 4

    stages = _stages(out / "light-special")
    assert {"validate:lookupvit_digits:g2:fp32", "compare:lookupvit_digits:g2", "profile"} <= set(stages)
    assert all(v["node"].endswith("/" + cluster.ids["special"][:12]) for v in stages.values() if v["kind"] in DEVICE_KINDS)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                    reason="TensorRT-RTX is not installed (pip install -e '.[tensorrt-rtx]')")
def test_engines_are_built_ahead_of_time_by_the_prepare_task_on_any_node(cluster, tmp_path):
    """An sm_89 TensorRT profile on a cluster without GPUs: the prepare task (1 CPU, any node) builds
    the engine with TensorRT-RTX ahead of time; the profile's device task reuses it (its build stage
    skipped) and reports validation and comparison as not run here (exit 2)."""
    aot = _profile(tmp_path, "aot-special", TRT_LIGHT.replace('compute_capability = "9.0"', 'compute_capability = "8.9"')
                   .replace('gpu = "NVIDIA H100"', 'gpu = "NVIDIA L4"'))
    out = tmp_path / "aot"
    r = _lookupvit("run", "--profile", str(aot), "--cluster", cluster.address, "-o", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    stages = _stages(out)
    build = stages["build:lookupvit_digits:g2:fp32:aot-special"]
    assert build["result"]["ahead_of_time"] is True and build["result"]["target"] == "sm_89"
    fleet_tasks = [s for s in json.loads((out / "summary.json").read_text())["stages"] if s["id"].startswith("build:")]
    assert [s["status"] for s in fleet_tasks] == ["skipped"]  # built by the prepare task, reused by the device run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engines"][0]["status"] == "built" and summary["verdict"]["failed_stages"] == []
    assert any("Cannot run a TensorRT engine here" in s["note"] for s in summary["stages"] if s["id"].startswith("validate:"))


def test_shared_dir_carries_the_files(cluster, tmp_path):
    """--shared-dir: contents stored once each as <sha256> in the shared folder, none sent through
    the object store; the run folder is the same as through the object store."""
    import hashlib

    light = _profile(tmp_path, "light", LIGHT)
    shared = tmp_path / "shared"
    shared.mkdir()
    out = tmp_path / "run"
    r = _lookupvit("run", "--profile", str(light), "--cluster", cluster.address, "--shared-dir", str(shared), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    stored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shared.iterdir() if p.is_file()}
    assert stored and all(name == digest for name, digest in stored.items())
    graph = out / "lookupvit_digits/g2/onnx/lookupvit_digits_g2.opt.onnx"
    assert hashlib.sha256(graph.read_bytes()).hexdigest() in stored
    tasks = json.loads((out / "fleet.json").read_text())["tasks"]
    assert {t["kind"] for t in tasks} == {"prepare", "device"} and all(t["bytes_in"] == 0 for t in tasks), tasks
    assert {"validate:lookupvit_digits:g2:fp32", "compare:lookupvit_digits:g2", "profile"} <= set(_stages(out))


def test_a_node_with_another_version_refuses():
    from exporter import __version__
    from exporter.cluster.tasks import _version_refusal

    assert _version_refusal(__version__, "n") is None
    r = _version_refusal("0.0.1", "10.0.0.7/abc")
    assert r is not None and __version__ in r.message and "0.0.1" in r.message and "10.0.0.7/abc" in r.message
    assert r.hint and "lookupvit-deploy[ray]==0.0.1" in r.hint


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_ctrl_c_cancels_the_clusters_tasks(cluster, tmp_path):
    """SIGINT to the driver while a profile runs: its task's worker is killed, the driver exits 130."""
    from exporter.cluster.scheduler import run_key
    from exporter.cluster.transport import WORK

    light = _profile(tmp_path, "light", LIGHT)
    out = tmp_path / "run"
    running = cluster.node_temp / WORK / run_key(out) / "light" / "running.json"
    proc, pid = _driver_with_a_running_task(
        ["run", "--profile", str(light), "--cluster", cluster.address, "-o", str(out)], running)
    try:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    deadline = time.monotonic() + 20
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(pid), "the task's worker still runs after Ctrl-C"


def test_without_cluster_ray_is_never_imported(tmp_path):
    """Several profiles without --cluster run here, one after the other, and never load Ray."""
    trt = Path(__file__).resolve().parent / "profiles" / "tiny-trt.toml"
    copy = _profile(tmp_path, "tiny-trt-copy", trt.read_text())
    code = ("import sys\nfrom click.testing import CliRunner\nfrom exporter.cli import main\n"
            f"r = CliRunner().invoke(main, ['run', '--profile', {str(trt) + ',' + str(copy)!r}, '-o', {str(tmp_path / 'o')!r}])\n"
            "print(r.exit_code, 'ray' in sys.modules)\n")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU, wherever the suite runs: each profile is refused
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split()[-2:] == ["2", "False"], out.stdout + out.stderr  # not run here: exit 2


def test_bad_address_exits_2_naming_it(tmp_path):
    r = _lookupvit("run", "--profile", str(TINY), "--cluster", f"127.0.0.1:{_free_port()}", "-o", str(tmp_path), timeout=60)
    assert r.returncode == 2 and "No Ray cluster answers at 127.0.0.1:" in r.stderr and "ray start --head" in r.stderr
    assert "Traceback" not in r.stderr
    r = _lookupvit("run", "--profile", str(TINY), "--cluster", "nowhere", "-o", str(tmp_path), timeout=60)
    assert r.returncode == 2 and "not a cluster address" in r.stderr
