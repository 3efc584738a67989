"""Files by content hash between the nodes of a cluster, and run folders that change place.

docs/architecture.md, Distribution. A task sends the files it made as a :class:`FileSet`: each
relative path with its sha256, and the bytes of those the receiver does not hold yet (Ray's object
store carries them: a task's return value, or ``ray.put``, is shipped to a node once and shared
there by every task that reads it). On a node, :func:`materialise` writes each content once into
``<temp>/lookupvit-cache/<sha256>`` and hard-links it (a copy where linking fails) into a task's
work folder: a large graph is written to disk at most once per node, however many tasks use it.

With ``--shared-dir PATH`` (a folder every node mounts at the same path) the contents go there
instead, ``PATH/<sha256>``, each written once, and tasks link (or copy) them from there: nothing
but the file lists travels through the object store (:meth:`FileSet.stored`).

A run folder is relocatable because its manifest records paths relative to the folder; the few
absolute paths in stage results and the summary (a stage's result ``path``, ``run_dir``) are
rewritten by :func:`relocate` when a folder's files land in another place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..io import atomic_path, json_text
from ..pipeline.manifest import MANIFEST, write_entries

CACHE = "lookupvit-cache"
WORK = "lookupvit-work"
RELOCATED = (MANIFEST, "summary.json", "prepared.json")  # files whose absolute paths name their folder


@dataclass
class FileSet:
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (only what the receiver lacks)
    store: str | None = None  # a shared folder holding the contents as <sha256> (--shared-dir), else None

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.blobs.values())

    def content(self, digest: str) -> bytes:
        if digest in self.blobs:
            return self.blobs[digest]
        if self.store is not None:
            return (Path(self.store) / digest).read_bytes()
        raise KeyError(digest)

    def stored(self, store: str | None) -> FileSet:
        """With ``store`` (a folder every node mounts): the contents written there once each, and the
        set without bytes, so nothing travels through the object store; without it, the set itself."""
        if store is None:
            return self
        for digest, data in self.blobs.items():
            cache_file(digest, partial(bytes, data), Path(store))
        return FileSet(dict(self.files), {}, store)


def _is_temporary(rel: str) -> bool:
    return any(part.startswith(".") for part in Path(rel).parts)  # exporter.io's private names


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect(folder: Path, known: Iterable[str] = (), skip: Iterable[str] = ()) -> FileSet:
    """Every file under ``folder`` by content hash; bytes only for contents not in ``known``."""
    known, skip = set(known), set(skip)
    out = FileSet()
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not p.is_file() or rel in skip or _is_temporary(rel):
            continue
        data = p.read_bytes()
        digest = _sha(data)
        out.files[rel] = digest
        if digest not in known:
            out.blobs[digest] = data
    return out


NODE_TEMP_VAR = "LOOKUPVIT_NODE_TEMP"


def node_temp() -> Path:
    """Where a node keeps its cache and work folders: ``$LOOKUPVIT_NODE_TEMP`` as the node was
    started with it (Ray's workers inherit the node's environment), else the system's temporary folder."""
    return Path(os.environ.get(NODE_TEMP_VAR) or tempfile.gettempdir())


def cache_file(digest: str, data: Callable[[], bytes], cache: Path | None = None) -> Path:
    """``<temp>/lookupvit-cache/<sha256>``, written once (atomically) per node."""
    path = (cache or node_temp() / CACHE) / digest
    if not path.is_file():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data())
    return path


def place(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src``'s content: a hard link, or a copy across file systems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def materialise(files: dict[str, str], blob: Callable[[str], bytes], folder: Path, cache: Path | None = None) -> int:
    """Lay ``files`` (relative path -> sha256) out under ``folder`` from the node cache (or the
    shared folder ``cache``); returns the number of files placed (those already there with the same
    content are left alone)."""
    placed = 0
    for rel, digest in files.items():
        if rel in RELOCATED:
            continue  # merged by the caller, never linked (they are rewritten in place)
        dst = folder / rel
        if dst.is_file() and _same(dst, digest):
            continue
        place(cache_file(digest, partial(blob, digest), cache), dst)
        placed += 1
    return placed


def _same(path: Path, digest: str) -> bool:
    from ..pipeline.manifest import file_hash

    return file_hash(path) == digest


def relocate(doc: Any, old_root: str, new_root: str) -> Any:
    """``doc`` with every string naming a path under ``old_root`` moved under ``new_root``."""
    old = old_root.rstrip("/")
    if isinstance(doc, str):
        if doc == old:
            return new_root
        return new_root + doc[len(old):] if doc.startswith(old + "/") else doc
    if isinstance(doc, list):
        return [relocate(x, old_root, new_root) for x in doc]
    if isinstance(doc, dict):
        return {k: relocate(v, old_root, new_root) for k, v in doc.items()}
    return doc


def stage_entries(text: str, source: str | Path) -> dict[str, dict[str, Any]]:
    """The entries of a ``stages.json`` text, bounded and validated like every manifest read back
    (exporter.schema.run_folder.StagesDoc; docs/security.md); a bad one is a SchemaError (exit 2)."""
    from ..schema import parse_json_text, validate
    from ..schema.run_folder import StagesDoc

    doc = parse_json_text(text, source)
    validate(StagesDoc, doc, source)
    return dict(doc["stages"])


def read_entries(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        text = (folder / MANIFEST).read_text()
    except FileNotFoundError:
        return {}
    return stage_entries(text, folder / MANIFEST)


def write_back(folder: Path, files: dict[str, str], blob: Callable[[str], bytes], old_root: str) -> int:
    """The driver's side: write a task's files into the run folder ``folder`` (each atomically,
    the manifest last, so an interrupted write-back still resumes); files already there with the
    same content are not rewritten. JSON documents naming ``old_root`` are relocated. Returns bytes written."""
    written = 0
    order = sorted(files, key=lambda r: (r in RELOCATED, r == MANIFEST, r))
    for rel in order:
        digest = files[rel]
        dst = folder / rel
        if rel == MANIFEST:  # through the manifest's own writer, relocated
            entries = relocate(stage_entries(blob(digest).decode(), dst), old_root, str(folder.resolve()))
            written += write_entries(folder, entries).stat().st_size
            continue
        if rel in RELOCATED:
            doc = relocate(json.loads(blob(digest)), old_root, str(folder.resolve()))
            data = json_text(doc).encode()
        else:
            if dst.is_file() and _same(dst, digest):
                continue
            data = blob(digest)
        with atomic_path(dst) as tmp:
            tmp.write_bytes(data)
        written += len(data)
    return written
