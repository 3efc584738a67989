"""A real Triton server for a packaged repository, on this machine: PyTriton's bundled ``tritonserver``.

The ``nvidia-pytriton`` wheel (PyPI) ships ``tritonserver`` with the Python backend only. Its pins
(numpy < 2, protobuf < 7) conflict with ours, so it lives in its own virtual environment
(:func:`ensure_environment`: ``python -m venv DIR`` from the same base interpreter, then
``pip install nvidia-pytriton onnxruntime``; no torch). :mod:`.pytriton_host` runs there and serves
the repository's ONNX Runtime models (their config.pbtxt: inputs, outputs, max batch, dynamic
batcher) through that server on 127.0.0.1.

PyTriton's Python-backend stub for Python 3.x links ``libpython3.x.so.1.0``; when the interpreter is
a shared build outside the system's library path (pyenv), the loader may find the system's copy of
another patch release, whose ``_thread`` does not match the interpreter's standard library (seen:
``AttributeError: '_thread.RLock' object has no attribute '_recursion_count'`` in the stub). The
server therefore starts with the interpreter's own ``LIBDIR`` first on ``LD_LIBRARY_PATH``.

The host runs in its own process group (``start_new_session``); :meth:`LiveServer.stop` sends it
SIGTERM (PyTriton then stops tritonserver, which also gets SIGTERM should its parent die:
``PR_SET_PDEATHSIG``), waits, then SIGKILLs the group and every descendant still alive.
"""

from __future__ import annotations

import contextlib
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
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import psutil

HOST_SCRIPT = Path(__file__).with_name("pytriton_host.py")
PYTRITON_REQUIREMENTS = ("nvidia-pytriton==0.7.0", "onnxruntime>=1.20")


@dataclass(frozen=True)
class ServerEnvironment:
    python: Path
    ld_library_path: str | None  # the interpreter's LIBDIR, when it holds a shared libpython


def _libdir(python: Path) -> str | None:
    out = subprocess.run([str(python), "-c", "import sysconfig as s; print(s.get_config_var('LIBDIR') or '');"
                          "print(s.get_config_var('Py_ENABLE_SHARED') or 0)"], capture_output=True, text=True, timeout=60)
    lines = out.stdout.split()
    if len(lines) == 2 and lines[1] == "1" and Path(lines[0]).is_dir():
        return lines[0]
    return None


def environment(venv: Path) -> ServerEnvironment:
    """The server environment in ``venv``; UserError naming :func:`ensure_environment` when unusable."""
    python = venv / "bin" / "python"
    if not python.is_file():
        raise UserError(f"No PyTriton environment at {venv}.",
                        f"Create it: {sys.executable} -m venv {venv} && {venv}/bin/pip install "
                        + " ".join(f"'{r}'" for r in PYTRITON_REQUIREMENTS))
    probe = subprocess.run([str(python), "-c", "import pytriton, onnxruntime, tritonclient"], capture_output=True,
                           text=True, timeout=120)
    if probe.returncode != 0:
        raise UserError(f"The PyTriton environment at {venv} is incomplete: {probe.stderr.strip().splitlines()[-1:]}.",
                        f"{venv}/bin/pip install " + " ".join(f"'{r}'" for r in PYTRITON_REQUIREMENTS))
    return ServerEnvironment(python, _libdir(python))


def ensure_environment(venv: Path, timeout_s: float = 900) -> ServerEnvironment:
    """Create ``venv`` with PyTriton and ONNX Runtime unless it is there already (network: PyPI)."""
    with contextlib.suppress(UserError):
        return environment(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = subprocess.run([*pip, *PYTRITON_REQUIREMENTS], capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise UserError(f"pip could not install {' '.join(PYTRITON_REQUIREMENTS)} into {venv}: "
                        f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}",
                        "Check that PyPI is reachable and that nvidia-pytriton has a wheel for this platform.")
    return environment(venv)

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (psutil)."""
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:  # gone, or not ours to see
        return []


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies excluded)."""
    import psutil

    out = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                out.append(proc.pid)
        except (OSError, psutil.Error):  # gone meanwhile
            continue
    return out


@dataclass
class LiveServer:
    """A started server: ``url`` for tritonclient, ``pid`` (also its process group)."""

    process: subprocess.Popen[str]
    http_port: int
    log: Path
    access_token: str = ""  # header triton-access-token for the restricted APIs (statistics)
    workspace: Path | None = None  # PyTriton's workspace (removed by stop)
    descendants: set[int] = field(default_factory=set)

    @property
    def headers(self) -> dict[str, str]:
        return {"triton-access-token": self.access_token}

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = 30) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL of the group and its descendants); its exit status."""
        self.descendants.update(_children(self.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if code is None:
            code = self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        for pid in sorted(self.descendants):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        while time.monotonic() < deadline and (self.alive_descendants() or group_members(self.pid)):
            time.sleep(0.1)
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
        return code

    def alive_descendants(self) -> list[int]:
        import psutil

        alive = []
        for pid in self.descendants:
            try:
                if _alive(psutil.Process(pid)):
                    alive.append(pid)
            except psutil.Error:
                continue
        return alive


def start_server(env: ServerEnvironment, repo: Path, models: list[str], workdir: Path,
                 timeout_s: float = 240) -> LiveServer:
    """Start :mod:`.pytriton_host` for ``models`` of ``repo``; returns once it answers READY (raises
    RuntimeError with the log's tail when it exits or times out first, having stopped it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    log = workdir / "server.log"
    # PyTriton's proxy listens on ipc:// sockets in its workspace, and a Unix socket path has at most
    # 107 bytes: the workspace is a short temporary folder, removed when the server stops.
    workspace = Path(tempfile.mkdtemp(prefix="lvt-"))  # PyTriton makes its workspace folder itself: a child of it
    process_env = dict(os.environ)
    if env.ld_library_path:
        process_env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [env.ld_library_path, *filter(None, [process_env.get("LD_LIBRARY_PATH")])])
    process_env["PYTHONUNBUFFERED"] = "1"
    args = [str(env.python), str(HOST_SCRIPT), "--repo", str(repo), "--http-port", str(http), "--grpc-port", str(grpc),
            "--metrics-port", str(metrics), "--workspace", str(workspace / "w")]
    for m in models:
        args += ["--model", m]
    out = workdir / "server.out"
    with open(log, "w") as log_file, open(out, "w") as out_file:
        proc = subprocess.Popen(args, stdout=out_file, stderr=log_file, text=True, env=process_env,
                                start_new_session=True)
    server = LiveServer(proc, http, log, workspace=workspace)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server.descendants.update(_children(proc.pid))
        ready = [line.split() for line in out.read_text(errors="replace").splitlines() if line.startswith("READY")]
        if ready:
            server.access_token = ready[0][2] if len(ready[0]) > 2 else ""
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    code = server.stop()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    why = f"exited with status {code}" if proc.returncode is not None and time.monotonic() < deadline else "timed out"
    raise RuntimeError(f"tritonserver (PyTriton) did not become ready ({why}); last lines of {log}:\n{tail}")
