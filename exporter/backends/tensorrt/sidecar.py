"""An engine's sidecar (``<model>.<precision>.plan.json``, written by exporter/engine/build.py): where it
is, and reading it as untrusted data (bounded in size and nesting before it is parsed: exporter.schema).
A runner reads which TensorRT built the engine and which optimisation profile serves which batch and
grid from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ENGINE_SUFFIX = ".plan"
SIDECAR_SUFFIX = ".plan.json"


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    name = engine.name.removesuffix(ENGINE_SUFFIX)
    return engine.with_name(name + SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """A sidecar's JSON, or None when it is missing or unreadable (a stale cache entry); bounded in
    size and nesting before it is parsed (exporter.schema)."""
    from ...schema import read_sidecar as read_document

    return read_document(path)
