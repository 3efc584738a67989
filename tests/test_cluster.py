"""`lookupvit run --cluster`: profiles on a real Ray cluster, started here with two nodes on this machine.

The head node offers a custom resource ``alpha``, the second node ``special`` (each with its own
ports and 2 CPUs). The tests run the tiny profile and a copy of it that needs ``special``, a profile
that needs a resource no node offers, and a worker killed in the middle of a profile's run. The
cluster is stopped on every path, and no Ray process of it may remain. Without Ray installed the
tests are skipped; every other test of the suite runs without it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

TINY = Path(__file__).resolve().parent / "profiles" / "tiny.toml"
RAY = Path(sys.executable).with_name("ray")
LIGHT = """description = "the digits model only, fp32 (cluster tests)"
backend = "onnxruntime"
precisions = ["fp32"]

[models]
accuracy = ["lookupvit_digits"]

[grids]
accuracy = [2]

[batch]
opt = [1]

[benchmark]
warmup = 1
iterations = 4
threads = 2
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports() -> list[str]:
    """Every port a node opens, chosen free, so the test's nodes meet no other cluster of this machine."""
    args = ["--num-cpus", "2", "--object-store-memory", str(200 * 2**20), "--disable-usage-stats",
            "--min-worker-port", "0", "--max-worker-port", "0"]
    for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"):
        args += [flag, str(_free_port())]
    return args


def _session_processes(sids: set[int]) -> list[str]:
    """Processes (pid and command) still in the sessions of the nodes this test started."""
    left = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":  # exited, waiting to be reaped: nothing runs
                continue
            sid = int(stat[4])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if sid in sids and int(d.name) not in sids | {os.getpid()}:
            left.append(f"{d.name} {cmd[:120]}")
    return left


class Cluster:
    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="lvray")  # short: Ray's socket paths live in it
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")

    def start_node(self, args: list[str], log: str) -> None:
        with open(Path(self.temp) / log, "wb") as out:  # `--block`: the node's processes live in its session
            self.nodes.append(subprocess.Popen([str(RAY), "start", "--block", *args, *_node_ports()], stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True, env=self.env))

    def start(self) -> None:
        self.start_node(["--head", "--port", str(self.port), "--resources", json.dumps({"alpha": 1}),
                         "--include-dashboard=false", "--temp-dir", self.temp], "head.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.nodes[0].poll() is not None:
                    raise RuntimeError("the head node did not start: " + (Path(self.temp) / "head.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        self.start_node(["--address", self.address, "--resources", json.dumps({"special": 1})], "worker.log")
        self.ids = self._wait_for_nodes()

    def _wait_for_nodes(self) -> dict[str, str]:
        """Resource name -> the id of the node offering it, once both nodes are alive."""
        code = ("import json, time, ray\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                "for _ in range(120):\n"
                "    n = [x for x in ray.nodes() if x['Alive']]\n"
                "    if len(n) == 2: break\n"
                "    time.sleep(0.5)\n"
                "print(json.dumps({k: x['NodeID'] for x in n for k in x['Resources'] if k in ('alpha', 'special')}))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=self.env)
        ids = json.loads(out.stdout.strip().splitlines()[-1])
        assert set(ids) == {"alpha", "special"}, out.stderr
        return ids

    def stop(self) -> list[str]:
        sids = {p.pid for p in self.nodes}
        for p in reversed(self.nodes):
            with_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for p in self.nodes:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _ in range(20):  # whatever did not stop, and any worker left in a node's session
            left = _session_processes(sids)
            if not left and all(p.poll() is not None for p in self.nodes):
                break
            for p in self.nodes:
                with_group(p.pid, signal.SIGKILL)
            for p in self.nodes:
                try:
                    p.wait(1)
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(0.3)
        return _session_processes(sids)


def with_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        left = c.stop()
        assert not left, f"Ray processes left after stopping the cluster: {left}"


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


DEVICE_KINDS = {"validate", "compare", "profile", "build"}


def test_two_profiles_one_bound_to_a_node(cluster, tmp_path):
    """The tiny profile and a copy that needs `special`: every device stage of the copy ran on the
    special node; both equal a local run of tiny; the fleet report sets them side by side."""
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

    local = tmp_path / "local"
    r = _lookupvit("run", "--profile", str(TINY), "-o", str(local))
    assert r.returncode == 0, r.stderr

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


def test_profile_no_node_can_serve_fails_fast(cluster, tmp_path):
    light = _profile(tmp_path, "light", LIGHT)
    nobody = _profile(tmp_path, "nobody", LIGHT, {"special2": 1})
    out = tmp_path / "fleet"
    r = _lookupvit("run", "--profile", f"{light},{nobody}", "--cluster", cluster.address, "-o", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    first = re.search(r"^\[(\d+):(\d+)\] nobody: not run", r.stderr, re.M)
    assert first and 60 * int(first[1]) + int(first[2]) <= 10, r.stderr  # at once, not after the other's run
    text = " ".join(r.stderr.split())
    assert "profile nobody needs {CPU: 1, special2: 1}" in text and "special: 1" in text and "alpha: 1" in text
    assert (out / "light" / "summary.json").is_file() and not (out / "nobody").exists()
    fleet = json.loads((out / "fleet.json").read_text())
    assert [(p["profile"], p["status"]) for p in fleet["profiles"]] == [("light", "PASSED"), ("nobody", "not run")]


def test_worker_killed_mid_run_is_retried(cluster, tmp_path):
    """kill -9 of the worker process running a profile: Ray runs the task again, which resumes."""
    from exporter.cluster.scheduler import run_key
    from exporter.cluster.transport import WORK, node_temp

    light = _profile(tmp_path, "light-special", LIGHT, {"special": 1})
    out = tmp_path / "run"
    running = node_temp() / WORK / run_key(out) / "light-special" / "running.json"
    proc = subprocess.Popen([sys.executable, "-m", "exporter.cli", "run", "--profile", str(light), "--cluster",
                             cluster.address, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    try:
        deadline = time.monotonic() + 240
        while not running.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert running.is_file(), "the device task never started"
        pid = json.loads(running.read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    stages = _stages(out)
    assert {"validate:lookupvit_digits:g2:fp32", "compare:lookupvit_digits:g2", "profile"} <= set(stages)
    assert all(v["node"].endswith("/" + cluster.ids["special"][:12]) for v in stages.values() if v["kind"] in DEVICE_KINDS)


def test_without_cluster_ray_is_never_imported(tmp_path):
    """Several profiles without --cluster run here, one after the other, and never load Ray."""
    trt = Path(__file__).resolve().parent / "profiles" / "tiny-trt.toml"
    copy = _profile(tmp_path, "tiny-trt-copy", trt.read_text())
    code = ("import sys\nfrom click.testing import CliRunner\nfrom exporter.cli import main\n"
            f"r = CliRunner().invoke(main, ['run', '--profile', {str(trt) + ',' + str(copy)!r}, '-o', {str(tmp_path / 'o')!r}])\n"
            "print(r.exit_code, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-2:] == ["2", "False"], out.stdout + out.stderr  # TensorRT missing: not run, exit 2


def test_bad_address_exits_2_naming_it(tmp_path):
    r = _lookupvit("run", "--profile", str(TINY), "--cluster", f"127.0.0.1:{_free_port()}", "-o", str(tmp_path), timeout=60)
    assert r.returncode == 2 and "No Ray cluster answers at 127.0.0.1:" in r.stderr and "ray start --head" in r.stderr
    assert "Traceback" not in r.stderr
    r = _lookupvit("run", "--profile", str(TINY), "--cluster", "nowhere", "-o", str(tmp_path), timeout=60)
    assert r.returncode == 2 and "not a cluster address" in r.stderr
