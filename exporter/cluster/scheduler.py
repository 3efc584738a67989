"""The driver of a cluster run: plan, submit, collect, write back (docs/architecture.md, Distribution).

1. Join the cluster (:mod:`.address`) and compare each profile's ``[cluster]`` needs with the alive
   nodes (:mod:`.resources`): a profile no node can serve is reported at once, the others go on.
2. One prepare task per distinct graph set across the profiles: the same (model, grid, target
   runtime) is exported and optimised once, and each of its precisions converted once, however many
   profiles ask for it (1 CPU, any node); the TensorRT engines of those profiles are built there too
   where the node builds them ahead of time (TensorRT-RTX needs no GPU), and the device task, on a
   node with the same TensorRT, reuses them.
3. One device task per profile, with the profile's CPUs, GPUs and resources, fed the prepared
   results it needs (Ray resolves them on the chosen node, once per node) and, on a rerun, the
   profile's folder as it stands, so its run skips what is done.
4. Results are collected as they come (``ray.wait``): one profile failing never loses the others'
   files. Each profile's files go into its folder, the manifest last (:func:`.transport.write_back`).

Ray's rules relied upon (docs.ray.io, "Fault tolerance" and "Cancelling tasks"): a task whose
worker process dies is retried up to ``max_retries`` times (exceptions it raises are not); a task is
scheduled only on a node covering its resources; ``ray.cancel(ref, force=True)`` kills the worker
running a task. Ctrl-C cancels every pending task this way before the run ends (exit 130).
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.config import Grid
from ..pipeline.unit import CellGrid, GridSet
from ..profiles import Profile
from ..run.options import RunOptions
from ..run.outcome import FleetProgress, ProfileLine, ProfileOutcome
from ..run.scope import dynamic_grid_sets, plan_models
from .address import ClusterAddress, connect
from .resources import alive_nodes, fits, infeasible_message, profile_needs
from .tasks import DeviceJob, DeviceResult, GraphJob, PreparedGraph, Refusal, device_task, prepare_task
from .transport import FileSet, collect, write_back

MAX_RETRIES = 3  # a worker that dies mid-stage: the retry resumes from its folder's manifest


@dataclass
class GraphSet:
    variant: str
    grid: CellGrid  # a GridSet: one dynamic-grid graph (a profile with [models] dynamic_grid = true)
    target: str
    profile: Profile  # the first profile asking for it (its chain settings; TensorRT: its parser check)
    precisions: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)

    def key(self, optimize: bool | None) -> str:
        grid = [list(g) for g in self.grid.grids] if isinstance(self.grid, GridSet) else list(self.grid or ()) or None
        doc = [self.variant, grid, self.target, sorted(self.precisions), optimize,
               self.profile.name if self.target == "tensorrt" else None,
               sorted(self.profiles) if self.target == "tensorrt" else None]  # whose engines it builds
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:20]


@dataclass
class TaskRecord:
    """When a task was submitted, started and finished, and where: the scheduling overhead."""

    kind: str  # "prepare" or "device"
    name: str
    submitted: float
    node: str = ""
    started: float = 0.0
    finished: float = 0.0
    collected: float = 0.0
    materialise_s: float = 0.0
    work_s: float = 0.0
    collect_s: float = 0.0
    write_back_s: float = 0.0
    bytes_in: int = 0  # bytes that travelled to the driver with the result
    inputs_ready: float = 0.0  # a device task: when the last prepare task it needs finished

    def to_dict(self) -> dict[str, Any]:
        """With ``submit_to_start_s``: from the later of submission and inputs ready to the task's start."""
        d = dict(self.__dict__)
        ready = max(self.submitted, self.inputs_ready)
        d["submit_to_start_s"] = round(self.started - ready, 3) if self.started else None
        d["overhead_s"] = round(self.collected - ready - self.work_s, 3) if self.collected and self.started else None
        return d


def plan_graphs(profiles: list[Profile]) -> dict[tuple[str, CellGrid, str], GraphSet]:
    """The distinct graph sets the profiles need, each with the union of their precisions; a profile
    with ``dynamic_grid = true`` needs one dynamic-grid graph per LookupViT (its grids' set)."""
    sets: dict[tuple[str, CellGrid, str], GraphSet] = {}
    for prof in profiles:
        target = "tensorrt" if prof.is_tensorrt else "onnxruntime"
        models = plan_models(prof)
        shared = dynamic_grid_sets(prof, models)
        for _, variant, grids in models:
            cells: list[CellGrid] = [shared[variant] if g is not None and variant in shared else g for g in grids]
            for grid in dict.fromkeys(cells):
                key = (variant, grid, target)
                g = sets.setdefault(key, GraphSet(variant, grid, target, prof))
                g.precisions += [p for p in prof.precisions if p not in g.precisions]
                if prof.name not in g.profiles:
                    g.profiles.append(prof.name)
    return sets


def run_key(out_dir: Path) -> str:
    """Names a run's work folders on the nodes: the same run folder from the same driver, the same key."""
    return hashlib.sha256(f"{socket.gethostname()}:{out_dir.resolve()}".encode()).hexdigest()[:16]


def _seed(folder: Path) -> FileSet | None:
    """A profile folder as it stands (an earlier run, local or not): sent so the run resumes."""
    if not (folder / "stages.json").is_file():
        return None
    return collect(folder)


def _shared_folder(path: Path | None) -> str | None:
    """``--shared-dir``, checked here (each node checks that it sees it too)."""
    if path is None:
        return None
    from ..errors import UserError
    from ..io import check_writable_dir

    if not Path(path).is_dir():
        raise UserError(f"--shared-dir {path} is not a folder.",
                        "Give a folder every node of the cluster mounts at the same path (NFS, a cluster file system).")
    check_writable_dir(path)
    return str(Path(path).resolve())


def _cause(e: BaseException) -> BaseException:
    return getattr(e, "cause", None) or e


def run_on_cluster(
    address: ClusterAddress, profiles: list[Profile], out_dir: Path, folders: dict[str, Path], opts: RunOptions,
    progress: FleetProgress, records: list[TaskRecord] | None = None, shared_dir: Path | None = None,
) -> list[ProfileOutcome]:
    """Every profile's run on the cluster at ``address``, each into ``folders[name]`` (inside ``out_dir``);
    ``shared_dir``: a folder every node mounts, through which files travel instead of the object store."""
    from .. import __version__
    from ..pipeline.manifest import error_text

    shared = _shared_folder(shared_dir)
    ray = connect(address)
    records = records if records is not None else []
    outcomes: dict[str, ProfileOutcome] = {}
    pending: dict[Any, tuple[str, str]] = {}  # ref -> (kind, name)
    try:
        offers = alive_nodes(ray)
        runnable = []
        for prof in profiles:
            needs = profile_needs(prof.cluster)
            if any(fits(needs, o) for o in offers):
                runnable.append(prof)
                continue
            message = infeasible_message(prof.name, needs, offers)
            outcomes[prof.name] = ProfileOutcome(prof.name, folders[prof.name], "not run", 2, message)
            progress.update(ProfileLine(prof.name, "not run", note="no node offers its resources"))

        from .progress import ProgressBoard

        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        key_of_run = run_key(out_dir)
        graph_sets = plan_graphs(runnable)
        remote_prepare = ray.remote(prepare_task)
        remote_device = ray.remote(device_task)
        prepare_refs: dict[tuple[str, Grid | None, str], Any] = {}
        texts = {p.name: p.path.read_text() for p in runnable}
        for k, g in graph_sets.items():
            builds = tuple((name, texts[name]) for name in g.profiles if name in texts)  # their engines, where it can
            job = GraphJob(g.key(opts.optimize), key_of_run, __version__, g.profile.name, texts[g.profile.name],
                           g.variant, g.grid, tuple(g.precisions), opts.optimize, shared,
                           builds if g.target == "tensorrt" else ())
            ref = remote_prepare.options(num_cpus=1, max_retries=MAX_RETRIES, name=f"prepare {g.variant}").remote(job)
            prepare_refs[k] = ref
            pending[ref] = ("prepare", job.key)
            records.append(TaskRecord("prepare", job.key, time.time()))
        needed: dict[str, list[Any]] = {p.name: [prepare_refs[k] for k, g in graph_sets.items() if p.name in g.profiles]
                                        for p in runnable}
        seed_roots: dict[str, str] = {}
        seeds: dict[str, FileSet | None] = {}
        for prof in runnable:
            c = prof.cluster
            seed = _seed(folders[prof.name])
            seeds[prof.name] = seed.stored(shared) if seed is not None else None
            seed_roots[prof.name] = str(folders[prof.name].resolve())
            device_job = DeviceJob(key_of_run, __version__, prof.name, texts[prof.name], opts, shared)
            ref = remote_device.options(
                num_cpus=c.cpus, num_gpus=c.gpus, resources=c.ray_resources() or None, max_retries=MAX_RETRIES,
                name=f"run {prof.name}",
            ).remote(device_job, board, seeds[prof.name], seed_roots[prof.name], *needed[prof.name])
            pending[ref] = ("device", prof.name)
            records.append(TaskRecord("device", prof.name, time.time()))
            progress.update(ProfileLine(prof.name, "preparing", total=len(needed[prof.name])))

        prepared: dict[Any, PreparedGraph | Refusal | None] = {}
        by_name = {r.name: r for r in records}
        by_ref = {ref: by_name[name] for ref, (_, name) in pending.items()}
        shown: dict[str, Any] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                kind, name = pending.pop(ref)
                rec = by_name[name]
                try:
                    value = ray.get(ref)
                except Exception as e:  # a task that raised, or a worker that died more often than retried
                    value = e
                rec.collected = time.time()
                if kind == "prepare":
                    prepared[ref] = value if isinstance(value, PreparedGraph | Refusal) else None
                    if isinstance(value, PreparedGraph):
                        _stamp(rec, value.timing, value.files.nbytes)
                    for prof in runnable:
                        if prof.name not in outcomes and ref in needed[prof.name] and prof.name not in shown:
                            done = sum(r in prepared for r in needed[prof.name])
                            progress.update(ProfileLine(prof.name, "preparing", done, len(needed[prof.name])))
                    continue
                rec.inputs_ready = max((by_ref[r].finished for r in needed[name]), default=0.0)
                outcomes[name] = _device_outcome(name, folders[name], value, rec, prepared, needed[name],
                                                 seeds[name], ray, error_text)
                o = outcomes[name]
                progress.update(ProfileLine(name, o.status, node=o.node or "", note=o.message))
            for name, r in ray.get(board.read.remote()).items():
                if name not in outcomes and shown.get(name) != r:
                    shown[name] = r
                    progress.update(ProfileLine(name, "running", r.done, r.total, r.stage, r.node))
    except KeyboardInterrupt:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished, or its worker already gone
                pass
        raise
    finally:
        ray.shutdown()
    return [outcomes[p.name] for p in profiles]


def _stamp(rec: TaskRecord, t: Any, nbytes: int) -> None:
    rec.node, rec.started, rec.finished = t.node, t.started, t.finished
    rec.materialise_s, rec.work_s, rec.collect_s = t.materialise_s, t.work_s, t.collect_s
    rec.bytes_in = nbytes


def _device_outcome(
    name: str, folder: Path, value: Any, rec: TaskRecord, prepared: dict[Any, Any], needed: list[Any],
    seed: FileSet | None, ray: Any, error_text: Callable[[BaseException], str],
) -> ProfileOutcome:
    from ..errors import UserError

    if isinstance(value, Refusal):
        text = value.message + (f". {value.hint}" if value.hint else "")
        return ProfileOutcome(name, folder, "not run", 2, text, node=value.node)
    if not isinstance(value, DeviceResult):
        cause = _cause(value)
        if isinstance(cause, UserError):
            return ProfileOutcome(name, folder, "not run", 2, str(cause))
        return ProfileOutcome(name, folder, "failed", 1, f"its task failed on the cluster: {error_text(cause)}")
    _stamp(rec, value.timing, value.files.nbytes)
    blobs: dict[str, bytes] = dict(value.files.blobs)

    def blob(digest: str) -> bytes:
        if digest not in blobs and value.files.store is not None:
            return value.files.content(digest)
        if digest not in blobs:
            for ref in needed:  # the prepared graphs this profile was fed, fetched once here
                p = prepared.get(ref) or ray.get(ref)
                if isinstance(p, PreparedGraph):
                    blobs.update(p.files.blobs)
            if seed is not None:
                blobs.update(seed.blobs)
        return blobs[digest]

    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    write_back(folder, value.files.files, blob, value.root)
    rec.write_back_s = time.perf_counter() - t0
    verdict = value.verdict
    lines = [f"{title}: {x}" for title, key in (("FAILED", "failed_verdicts"), ("stage failed", "failed_stages"),
                                                ("not run", "not_run")) for x in verdict.get(key, [])]
    return ProfileOutcome(name, folder, verdict["status"], int(verdict["exit_code"]), "", lines, value.timing.node,
                          value.seconds)
