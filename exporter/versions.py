"""Versions of the tools that produced an artefact (recorded in every sidecar)."""

from __future__ import annotations

import platform
from importlib import metadata

from . import __version__

_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "onnx-graphsurgeon", "polygraphy", "numpy")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"lookupvit-deploy": __version__, "python": platform.python_version()}
    versions.update({p: package_version(p) for p in _PACKAGES})
    return versions
