"""A Ray cluster of several nodes on this machine, for trying a profile mapping, the tests and the benchmark.

Ray's rule (docs.ray.io, "Starting Ray on multiple nodes"): ``ray start --head --port P`` starts a
head node, ``ray start --address HOST:P`` joins another node, and each node advertises the custom
resources it was started with (``--resources '{"special": 1}'``). Two nodes on one machine need
their own ports (node manager, object manager, agents, metrics); every one is chosen free here, so
the cluster meets no other cluster of this machine. Each node runs with ``--block`` in its own
session: stopping it ends that session's processes (raylet, gcs_server, workers), and
:meth:`LocalCluster.stop` returns any process of those sessions still running (none, when all
went well). The nodes keep their caches and work folders in the cluster's own temporary folder
(``LOOKUPVIT_NODE_TEMP``), removed with it. It never uses ``ray stop``, which would stop every Ray process of the user.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_args(cpus: int, object_store_mb: int) -> list[str]:
    args = ["--num-cpus", str(cpus), "--object-store-memory", str(object_store_mb * 2**20), "--disable-usage-stats",
            "--min-worker-port", "0", "--max-worker-port", "0"]
    for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"):
        args += [flag, str(free_port())]
    return args


def session_processes(sids: set[int]) -> list[str]:
    """Running processes (pid and command) in the sessions ``sids`` (zombies excluded; psutil)."""
    import psutil

    left = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE or proc.pid in sids | {os.getpid()} or os.getsid(proc.pid) not in sids:
                continue
            cmd = " ".join(proc.cmdline())
        except (OSError, psutil.Error):  # gone meanwhile, or not ours to read
            continue
        left.append(f"{proc.pid} {cmd[:120]}")
    return left


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class LocalCluster:
    """``nodes``: the custom resources of each node, the head first."""

    nodes: list[dict[str, float]]
    cpus: int = 2
    object_store_mb: int = 200
    temp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="lvray"))  # short: Ray's sockets live in it
    port: int = field(default_factory=free_port)
    ids: dict[str, str] = field(default_factory=dict)  # custom resource -> id of the node offering it
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    @property
    def node_temp(self) -> Path:
        """The nodes' cache and work folders (``$LOOKUPVIT_NODE_TEMP``), removed with the cluster."""
        return Path(self.temp) / "nodes"

    def _start_node(self, args: list[str], log: str) -> None:
        from .transport import NODE_TEMP_VAR

        self.node_temp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **{NODE_TEMP_VAR: str(self.node_temp)})
        with open(Path(self.temp) / log, "wb") as out:
            self._procs.append(subprocess.Popen([self._ray(), "start", "--block", *args,
                                                 *_node_args(self.cpus, self.object_store_mb)],
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env))

    def start(self, timeout_s: float = 120) -> LocalCluster:
        """Start the nodes and wait until all are alive; on any failure, stop what was started."""
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop(grace_s=2.0)
            raise
        return self

    def _start(self, timeout_s: float) -> None:
        head, *others = self.nodes
        self._start_node(["--head", "--port", str(self.port), "--resources", json.dumps(head),
                          "--include-dashboard=false", "--temp-dir", self.temp], "head.log")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._procs[0].poll() is not None:
                    log = (Path(self.temp) / "head.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the head node did not start:\n{log}") from None
                time.sleep(0.3)
        for i, res in enumerate(others):
            self._start_node(["--address", self.address, "--resources", json.dumps(res)], f"node{i + 1}.log")
        self.ids = self._wait_for_nodes(timeout_s)

    def _wait_for_nodes(self, timeout_s: float) -> dict[str, str]:
        """Waits, in a separate process (this one stays free of Ray), until every node is alive."""
        names = sorted({k for n in self.nodes for k in n})
        code = ("import json, sys, time, ray\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                f"for _ in range({int(timeout_s * 2)}):\n"
                "    n = [x for x in ray.nodes() if x['Alive']]\n"
                f"    if len(n) == {len(self.nodes)}: break\n"
                "    time.sleep(0.5)\n"
                f"print(json.dumps({{k: x['NodeID'] for x in n for k in x['Resources'] if k in {names!r}}}))\n")
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s + 30, env=env)
        try:
            ids: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"the cluster's nodes did not come up:\n{out.stderr[-2000:]}") from None
        if set(ids) != set(names):
            raise RuntimeError(f"only the nodes offering {sorted(ids)} came up, of {names}")
        return ids

    def stop(self, grace_s: float = 3.0) -> list[str]:
        """Stop every node; returns the processes of their sessions still running (empty when clean).
        When none is left, the cluster's temporary folder (Ray's session, the nodes' caches) is removed."""
        sids = {p.pid for p in self._procs}
        for p in reversed(self._procs):
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in self._procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _ in range(20):  # what did not stop in time, and any worker left in a node's session
            if not session_processes(sids) and all(p.poll() is not None for p in self._procs):
                break
            for p in self._procs:
                _signal_group(p.pid, signal.SIGKILL)
            for p in self._procs:
                try:
                    p.wait(1)
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(0.3)
        left = session_processes(sids)
        if not left:
            shutil.rmtree(self.temp, ignore_errors=True)
        return left

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        left = self.stop()
        if left and exc[0] is None:
            raise RuntimeError(f"Ray processes left after stopping the cluster: {left}")
