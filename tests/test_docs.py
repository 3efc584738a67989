"""The documents that describe the code stay true to it: docs/cli.md is what the click commands say
(regenerate with `python -m exporter.cli.reference > docs/cli.md`), and docs/architecture.md's
checkable claims hold: which modules import TensorRT, Ray and OpenVINO."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_reference_is_current():
    from exporter.cli.reference import reference

    assert (ROOT / "docs" / "cli.md").read_text() == reference(), (
        "docs/cli.md is out of date: python -m exporter.cli.reference > docs/cli.md")


def _importers(package: str) -> set[str]:
    """The modules of exporter/ and plugins/ that import ``package`` (any import statement, at any depth,
    or a dynamic import of its name)."""
    found = set()
    for folder in ("exporter", "plugins"):
        for f in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                dynamic = (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) ==
                           "import_module" and package.startswith("tensorrt") and "TENSORRT_MODULES" in ast.unparse(node))
                if dynamic or any(n == package or n.startswith(package + ".") for n in names):
                    found.add(str(f.relative_to(ROOT)))
    return found


def test_architecture_names_every_module_that_imports_an_optional_framework():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("tensorrt", "tensorrt_rtx", "ray", "openvino"):
        for module in _importers(package):
            assert module in text, f"{module} imports {package} but docs/architecture.md does not say so"
