"""A TensorRT build in a child process, bounded in time and memory.

Why: the builder is native code, and a defect in it kills the process that runs it (TensorRT-RTX
1.7.1 segfaults on some attention graphs: :mod:`exporter.precision.tensorrt_form`). Run in the
process of ``lookupvit run``, one such graph would end the whole run with its other cells. Here the
build runs in ``python -m exporter.engine.child``; a signal (SIGSEGV, SIGABRT, ...), a timeout or the
memory bound becomes a :class:`BuildFailed` naming the graph, what happened and the builder's last
messages, and the caller goes on.

Bounds (``[builder]`` of the profile, :class:`BuildLimits`):
- time: the child's process group is killed after ``timeout_s`` (default 30 minutes);
- memory: the child's address space is limited (``RLIMIT_AS``) to ``host_memory`` (default three
  quarters of this machine's memory); past it the builder's allocations fail (``std::bad_alloc``) and
  the build is refused with that message.

A child that exits without writing its outcome (an import that fails, an interpreter error) is a
crashed build, never a refusal: the builder did not judge the graph.

Protocol (between this module's two halves only): the parent writes ``request.json`` (the plan, from
:meth:`~.plan.BuildPlan.to_doc`, and the destination) into a private folder next to the engine; the
child writes progress events as JSON lines to an inherited pipe, its log (TensorRT's and Polygraphy's
messages) to ``log.txt`` and its outcome to ``result.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FailedVerdict
from ..io import memory_bytes, private_folder
from ..profiles import BuilderSettings
from .plan import BuildPlan, BuildProgress

DEFAULT_TIMEOUT_S = BuilderSettings().timeout_s  # a profile's builder.timeout_s when it leaves it out
LOG_TAIL = 12  # builder messages quoted in a failure


class BuildFailed(FailedVerdict):
    """The builder refused the graph, crashed, or ran out of its time or memory: a FAILED build (exit 1).
    ``kind``: refused | crashed | timeout | memory."""

    def __init__(self, message: str, hint: str, kind: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.log_tail = log_tail or []


@dataclass(frozen=True)
class BuildLimits:
    """How long and how much memory one build may take."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    host_memory_bytes: int | None = None  # None: three quarters of this machine's memory

    def memory(self) -> int | None:
        if self.host_memory_bytes is not None:
            return self.host_memory_bytes
        total = memory_bytes()
        return total * 3 // 4 if total else None


@dataclass(frozen=True)
class ChildResult:
    """What a successful child build reports."""

    seconds: float
    network_layers: int
    engine_bytes: int
    warnings: list[str]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _tail(log: Path, n: int = LOG_TAIL) -> list[str]:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keep = [ln.strip() for ln in lines if ln.strip()]
    return [ln[:400] for ln in keep[-n:]]


def _pump(fd: int, sink: BuildProgress | None, open_phases: list[str]) -> None:
    """Forward the child's progress events to ``sink`` until the pipe closes; ``open_phases`` keeps
    the builder phases started and not finished (where a crash happened)."""
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as events:
        for line in events:
            with contextlib.suppress(Exception):  # a progress display never fails a build
                e = json.loads(line)
                name = str(e.get("name"))
                if e.get("event") == "start":
                    open_phases.append(name)
                elif e.get("event") == "finish" and name in open_phases:
                    open_phases.remove(name)
                if sink is None:
                    continue
                if e.get("event") == "start":
                    sink.phase_start(str(e["name"]), e.get("parent"), int(e.get("steps", 1)))
                elif e.get("event") == "step":
                    sink.step(str(e["name"]), int(e["step"]))
                elif e.get("event") == "finish":
                    sink.phase_finish(str(e["name"]))


_OUT_OF_MEMORY = ("bad_alloc", "MemoryError", "cannot allocate memory", "Cannot allocate memory")
_MAP_FAILED = "failed to map segment"  # the dynamic loader; also a noexec mount or a damaged library


def _out_of_memory(lines: list[str], bounded: bool) -> bool:
    """Whether the child's messages say an allocation failed (the builder's ``std::bad_alloc``, Python's
    ``MemoryError``, or, under a memory bound, the loader's failure to map a library within ``RLIMIT_AS``)."""
    markers = _OUT_OF_MEMORY + ((_MAP_FAILED,) if bounded else ())
    return any(marker in line for line in lines for marker in markers)


def build_in_child(plan: BuildPlan, dest: Path, progress: BuildProgress | None = None,
                   limits: BuildLimits | None = None) -> ChildResult:
    """Build ``plan`` into ``dest`` in a child process (see the module docstring); raises
    :class:`BuildFailed` when the builder refuses the graph, crashes or exceeds its bounds."""
    limits = limits or BuildLimits()
    memory = limits.memory()
    with private_folder(plan.engine, ".build") as work:
        request, result, log = work / "request.json", work / "result.json", work / "log.txt"
        request.write_text(json.dumps({"plan": plan.to_doc(), "dest": str(dest), "result": str(result)}))
        read_fd, write_fd = os.pipe()

        def bound() -> None:  # in the child, before exec
            os.setsid()  # its own process group: a timeout kills the builder's threads and helpers too
            if memory:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        env = {**os.environ, "LOOKUPVIT_BUILD_EVENTS_FD": str(write_fd)}
        with log.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "exporter.engine.child", str(request)], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env, preexec_fn=bound,
            )
        os.close(write_fd)
        phases: list[str] = []
        pump = threading.Thread(target=_pump, args=(read_fd, progress, phases), daemon=True)
        pump.start()
        timed_out = False
        try:
            code = child.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            code = child.wait()
        except BaseException:  # Ctrl-C or SIGTERM in the parent: the builder goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
        pump.join(timeout=5)
        tail = _tail(log)
        outcome: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            outcome = json.loads(result.read_text())
    graph = plan.onnx.name
    during = f" during the builder's phase {' > '.join(phases)}" if phases else ""
    messages = "\n".join(f"  {t}" for t in tail) or "  (no builder message)"
    if timed_out:
        raise BuildFailed(
            f"The TensorRT build of {graph} for profile {plan.profile} did not finish within {limits.timeout_s:.0f} s "
            f"and was stopped{during}. Its last messages:\n{messages}",
            "Raise [builder] timeout_s in the profile, or lower builder.optimization_level.", "timeout", tail)
    if outcome.get("status") == "built" and code == 0:
        return ChildResult(float(outcome["seconds"]), int(outcome["network_layers"]), int(outcome["engine_bytes"]),
                           [str(w) for w in outcome.get("warnings", [])])
    errors = [str(e) for e in outcome.get("errors", [])] or tail
    details = "\n".join(f"  {e}" for e in errors[-LOG_TAIL:]) or messages
    if _out_of_memory(errors + tail, bool(memory)):  # whether the allocation failure was caught, aborted or killed the loader
        raise BuildFailed(
            f"The TensorRT build of {graph} for profile {plan.profile} ran out of its memory bound "
            f"({(memory or 0) / (1 << 30):.1f} GiB){during}:\n{details}",
            "Raise [builder] host_memory in the profile (default: three quarters of this machine's memory).",
            "memory", tail)
    if code < 0:
        what = _signal_name(code)
        raise BuildFailed(
            f"The TensorRT builder crashed ({what}){during} building {graph} for profile {plan.profile} "
            f"({plan.backend}, strongly typed). Its last messages:\n{messages}",
            "This is a defect of the builder, not of your input; `lookupvit check --build` on the graph names the "
            "known causes. Other cells are not affected.", "crashed", tail)
    if not outcome:
        raise BuildFailed(
            f"The build process for {graph} (profile {plan.profile}) exited with code {code} before the builder "
            f"answered{during}; the builder did not judge the graph. Its last messages:\n{messages}",
            "Run `lookupvit doctor` to check the installation; a package changed or removed while a build runs "
            "causes this. Build again once it passes.", "crashed", tail)
    raise BuildFailed(
        f"TensorRT could not build {graph} for profile {plan.profile}:\n{details}",
        "Check that every op is supported by this TensorRT version (`lookupvit check --build "
        f"{plan.onnx}` runs the parser and the builder and names what they refuse).", "refused", tail)


# --- the child ----------------------------------------------------------------------------------


class _EventSink:
    """Writes the builder's progress (``BuildProgress``) as JSON lines to the parent's pipe."""

    def __init__(self, fd: int) -> None:
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.lock = threading.Lock()

    def _send(self, **event: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(event) + "\n")

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        self._send(event="start", name=name, parent=parent, steps=steps)

    def step(self, name: str, step: int) -> None:
        self._send(event="step", name=name, step=step)

    def phase_finish(self, name: str) -> None:
        self._send(event="finish", name=name)


def _child(request_path: str) -> int:
    from ..errors import UserError
    from .trt import build_engine_file

    req = json.loads(Path(request_path).read_text())
    result = Path(req["result"])
    plan = BuildPlan.from_doc(req["plan"])
    fd = os.environ.get("LOOKUPVIT_BUILD_EVENTS_FD")
    sink = _EventSink(int(fd)) if fd and fd.isdigit() else None
    t0 = time.perf_counter()
    try:
        built = build_engine_file(plan, Path(req["dest"]), sink)
    except UserError as e:
        result.write_text(json.dumps({"status": "refused", "errors": str(e.message).splitlines()[1:] or [e.message]}))
        return 1
    except MemoryError:
        result.write_text(json.dumps({"status": "refused", "errors": ["std::bad_alloc (MemoryError)"]}))
        return 1
    result.write_text(json.dumps({"status": "built", "seconds": built.seconds, "network_layers": built.layers,
                                  "engine_bytes": built.engine_bytes, "warnings": built.warnings,
                                  "wall_seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
