"""The stage manifest of a run directory: which stage ran on which inputs, so a rerun resumes.

docs/architecture.md, The unit of work and the one stage chain: stages are cacheable (same inputs -> skip). Each stage of a run is recorded in
``DIR/stages.json`` under a stable id (e.g. ``export:lookupvit_digits:g3``) with

- ``key``: sha256 over the stage's kind, its settings and the sha256 of every input file;
- ``outputs``: each output file with its sha256 (files written by the stage);
- ``result``: the stage's JSON-able result, returned again when the stage is skipped;
- ``seconds`` and ``finished`` (UTC);
- ``node``: where the stage ran (the host name, or the cluster node a distributed run set with
  :func:`set_node_name`; docs/architecture.md, Distribution);
- ``dropped``: outputs deleted on purpose by ``run --keep final`` (the stage stays done, and the
  recorded sha256 stands in for the file where a later stage's key needs it).

A stage is skipped when its key is unchanged and every recorded output still exists with the same
content.

``stages.json`` is read back as untrusted (docs/security.md): it is bounded and validated against
:class:`exporter.schema.run_folder.StagesDoc`, and every output and dropped path must stay inside the
folder (:func:`exporter.safe_paths.confined`); a file that fails either is refused (exit 2) before
the run writes anything, naming the key, so an earlier run's summary is never replaced by one made
from a bad record. The manifest is rewritten atomically after each stage, so an interrupted run keeps what
finished. File hashes are memoised per (path, size, mtime) within a process, since a large model
is an output of one stage and an input of several.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import sha256_file, write_json
from ..safe_paths import confined
from .stages import OutcomeKind, StageKind, is_stage_kind

MANIFEST = "stages.json"

_hash_memo: dict[tuple[str, int, int], str] = {}
_node_name: str | None = None


def set_node_name(name: str | None) -> None:
    """Name this process's machine in the entries it writes (a cluster node; None: the host name)."""
    global _node_name
    _node_name = name


def node_name() -> str:
    import socket

    return _node_name or socket.gethostname()


def file_hash(path: str | Path) -> str:
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        _hash_memo[key] = sha256_file(p)
    return _hash_memo[key]


def stage_key(kind: StageKind, settings: dict[str, Any], inputs: dict[str, Path],
              digest: Callable[[Path], str] = file_hash) -> str:
    from .. import __version__

    doc = {
        "kind": kind,
        "tool_version": __version__,
        "settings": settings,
        "inputs": {name: digest(p) for name, p in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class StageError(Exception):
    """A stage raised; ``reason`` says why. Raised again, without rerunning, for later requests of the
    same stage (same key) in this process, so a failing conversion is not retried by every consumer."""

    def __init__(self, stage_id: str, reason: str, cannot_run: bool = False):
        super().__init__(f"{stage_id}: {reason}")
        self.stage_id = stage_id
        self.reason = reason
        self.cannot_run = cannot_run  # not run on this machine (CannotRunHere), rather than failed


def error_text(e: BaseException) -> str:
    """A one-line reason: a UserError's message, else the exception's type and first line."""
    from ..errors import UserError

    if isinstance(e, UserError):
        return e.message
    if isinstance(e, StageError):
        return f"{e.stage_id} failed: {e.reason}"
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


@dataclass
class StageOutcome:
    id: str
    kind: OutcomeKind
    status: str  # "ran", "skipped", "failed", "not run" (cannot run on this machine), "unavailable"
    seconds: float
    result: Any = None
    note: str = ""
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "status": self.status, "seconds": round(self.seconds, 3),
            "note": self.note, "outputs": self.outputs,
        }


class Manifest:
    """``DIR/stages.json``: see the module docstring."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST
        self.entries: dict[str, dict[str, Any]] = {}
        self.outcomes: list[StageOutcome] = []
        self.failures: dict[str, tuple[str, str, bool]] = {}  # stage id -> (key, reason, cannot run), this process only
        self._done: dict[str, tuple[str, StageOutcome]] = {}  # stage id -> (key, outcome), this process only
        self._load()

    def _load(self) -> None:
        """The recorded entries, validated (see the module docstring); none when there is no file."""
        from ..schema import read_json, validate
        from ..schema.run_folder import StagesDoc

        try:
            raw = read_json(self.path)
        except FileNotFoundError:
            return
        hint = (f"{self.path} was edited or comes from another tool. Restore it, or delete it to start the run "
                "folder's record afresh (every stage then runs again; nothing else in the folder is touched).")
        doc = validate(StagesDoc, raw, self.path, hint=hint)
        for stage_id, entry in doc.stages.items():
            for rel in entry.outputs:
                confined(self.root, rel, self.path, f"stages.{stage_id}.outputs")
        self.entries = {k: dict(v) for k, v in raw["stages"].items()}
        for recorded in self.entries.values():
            self._trusted_result(recorded)  # a path leaving the folder is refused now, before anything is written

    def output_path(self, stage_id: str, rel: object, key: str) -> Path:
        """A path named in ``stage_id``'s recorded result (``key``), inside the folder, or PathEscape."""
        return confined(self.root, rel, self.path, f"stages.{stage_id}.{key}")

    def _fresh(self, entry: dict[str, Any] | None, key: str) -> bool:
        if not entry or not key or entry.get("key") != key:
            return False
        dropped = set(entry.get("dropped", []))
        for rel, digest in entry.get("outputs", {}).items():
            p = self.root / rel
            if rel in dropped and not p.is_file():  # removed by `run --keep final` on purpose
                continue
            if not p.is_file() or file_hash(p) != digest:
                return False
        return self._trusted_result(entry)

    def _trusted_result(self, entry: dict[str, Any]) -> bool:
        """Whether a recorded result may stand in for running its stage: it fits its kind's schema
        (else the stage runs again), and every file it names lies inside the folder (else PathEscape)."""
        from pydantic import ValidationError

        from ..schema.run_folder import RESULTS, result_paths

        kind = entry.get("kind")
        if not is_stage_kind(kind) or kind not in RESULTS:  # a newer file's kind, or a result not typed
            return True
        model = RESULTS[kind]
        try:
            model.model_validate(entry.get("result"))
        except ValidationError:
            return False
        stage_id = next((k for k, v in self.entries.items() if v is entry), kind)
        for key, rel in result_paths(kind, entry["result"]):
            confined(self.root, rel, self.path, f"stages.{stage_id}.{key}")
        return True

    def digest(self, path: Path) -> str:
        """sha256 of ``path``; for an output dropped by ``run --keep final``, the one recorded when it was written."""
        p = Path(path)
        if not p.is_file():
            rel = self._rel(p)
            for entry in self.entries.values():
                if rel in entry.get("dropped", []):
                    return entry["outputs"][rel]
        return file_hash(p)

    def drop(self, stage_id: str, rel: str) -> None:
        """Record that the output ``rel`` of ``stage_id`` was deleted on purpose (the stage stays done)."""
        entry = self.entries[stage_id]
        entry["dropped"] = sorted({*entry.get("dropped", []), rel})
        self.save()

    def restore(self, stage_id: str) -> None:
        """Forget ``stage_id``'s dropped outputs, so that the next request runs it again and remakes them."""
        entry = self.entries.get(stage_id)
        if entry and entry.pop("dropped", None):
            self.forget(stage_id)

    def forget(self, stage_id: str) -> None:
        """Run ``stage_id`` again at its next request, whatever is recorded (a verb's ``--force``, or a
        record whose report cannot be read back); its files stay until the stage replaces them."""
        entry = self.entries.get(stage_id)
        if entry is not None:
            entry["key"] = ""
        self._done.pop(stage_id, None)
        self.failures.pop(stage_id, None)

    def _rel(self, p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(Path(p).resolve())

    def stage(
        self,
        stage_id: str,
        kind: StageKind,
        settings: dict[str, Any],
        inputs: dict[str, Path],
        run: Callable[[], tuple[Any, list[Path]]],
    ) -> StageOutcome:
        """Run ``run`` (returning its JSON-able result and the files it wrote) unless a finished
        stage with the same key and intact outputs is recorded; then return the recorded result."""
        try:
            key = stage_key(kind, settings, inputs, self.digest)
        except FileNotFoundError:  # an input is missing: the stage runs, and its own error says what is wrong
            key = ""
        done = self._done.get(stage_id)
        if done is not None and done[0] == key:  # asked again in this process (an input of a later stage)
            return done[1]
        entry = self.entries.get(stage_id)
        if self._fresh(entry, key):
            assert entry is not None
            outcome = StageOutcome(stage_id, kind, "skipped", 0.0, entry.get("result"), "unchanged inputs",
                                   list(entry.get("outputs", {})))
            self.outcomes.append(outcome)
            self._done[stage_id] = (key, outcome)
            return outcome
        failed = self.failures.get(stage_id)
        if failed is not None and failed[0] == key:
            raise StageError(stage_id, failed[1], failed[2])
        t0 = time.perf_counter()
        try:
            result, outputs = run()
        except Exception as e:
            from ..errors import CannotRunHere

            reason = error_text(e)
            cannot = isinstance(e, CannotRunHere)  # work this machine cannot do: not run, rather than failed
            self.failures[stage_id] = (key, reason, cannot)
            self.note(stage_id, kind, "not run" if cannot else "failed", reason, time.perf_counter() - t0)
            raise StageError(stage_id, reason, cannot) from e
        seconds = time.perf_counter() - t0
        files = {self._rel(p): file_hash(p) for p in outputs}
        self.entries[stage_id] = {
            "kind": kind,
            "key": key,
            "settings": settings,
            "inputs": {name: self._rel(p) for name, p in inputs.items()},
            "outputs": files,
            "result": result,
            "seconds": round(seconds, 3),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "node": node_name(),
        }
        self.save()
        outcome = StageOutcome(stage_id, kind, "ran", seconds, result, "", list(files))
        self.outcomes.append(outcome)
        self._done[stage_id] = (key, outcome)
        return outcome

    def note(self, stage_id: str, kind: OutcomeKind, status: str, note: str, seconds: float = 0.0) -> StageOutcome:
        """Record a stage that did not run (unavailable here, or failed) without caching it; once."""
        for o in self.outcomes:
            if o.id == stage_id and o.status == status:
                return o
        outcome = StageOutcome(stage_id, kind, status, seconds, None, note)
        self.outcomes.append(outcome)
        return outcome

    def save(self) -> None:
        write_entries(self.root, self.entries)


def write_entries(root: str | Path, entries: dict[str, dict[str, Any]]) -> Path:
    """``root/stages.json`` holding ``entries``, written atomically: the one place the manifest is
    written (a run's stages as they finish; a cluster node seeding a task's folder; the driver writing
    back a task's folder)."""
    return write_json(Path(root) / MANIFEST, {"kind": "lookupvit-run-stages", "stages": entries})
