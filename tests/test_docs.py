"""The documents that describe the code stay true to it: docs/cli.md is what the click commands say
(regenerate with `python -m exporter.cli.reference > docs/cli.md`), and docs/architecture.md's
checkable claims hold: which modules import TensorRT, Ray and OpenVINO, and that the packages import
one another in one direction only (Layers)."""

from __future__ import annotations

import ast
import itertools
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


# --- the import graph -------------------------------------------------------------------------------


def _package_of(module: str) -> str:
    """``exporter.engine.build`` -> ``engine``; a top-level module is its own node (``errors``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<exporter>"


def _package_imports() -> dict[str, dict[str, str]]:
    """For each package (or top-level module) of exporter/, the packages it imports, with one place
    that does (any import statement, at any depth: function-level imports included)."""
    graph: dict[str, dict[str, str]] = {}
    for f in sorted((ROOT / "exporter").rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        here = module.split(".") if rel.name == "__init__" else module.split(".")[:-1]
        source = _package_of(module)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - node.level + 1]
                targets = [".".join([*base, node.module] if node.module else base)]
                if not node.module:  # `from . import env`: the names are modules of that package
                    targets = [".".join([*base, a.name]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "exporter":
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "exporter"]
            else:
                continue
            for target in targets:
                if target == "exporter":
                    continue
                dest = _package_of(target)
                if dest != source:
                    graph.setdefault(source, {}).setdefault(dest, f"{rel}.py:{node.lineno}")
    return graph


def test_no_package_of_the_library_imports_itself_back():
    """docs/architecture.md, Layers: the packages form a directed acyclic graph (no two packages import
    each other, directly or through others), so a reader can follow a run downwards only."""
    graph = _package_imports()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt, _where in graph.get(node, {}).items():
            if seen.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
                raise AssertionError("packages import each other in a loop: " + "; ".join(steps))
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    assert {"engine", "backends", "pipeline", "run", "cluster"} <= set(graph)  # the walk found the library


def test_the_layers_in_architecture_are_the_import_graph():
    """docs/architecture.md, Layers: each package imports only packages to its right in the order shown
    there (packages it does not name are the top-level modules, the last rank)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    ranks = [[name.strip() for name in rank.split(",")] for rank in block.replace("\n", " ").split(">")]
    rank_of = {name: i for i, rank in enumerate(ranks) for name in rank}
    last = len(ranks) - 1
    graph = _package_imports()
    assert {"cli", "pipeline", "backends", "engine"} <= set(rank_of)
    upward = [f"{a} -> {b} ({where})" for a, targets in graph.items() for b, where in targets.items()
              if rank_of.get(b, last) < rank_of.get(a, last)]
    assert not upward, "imports against the documented layers: " + "; ".join(upward)


BACKEND_SPELLINGS = {"torch", "pytorch", "ort", "onnxruntime", "openvino", "ov", "trt", "tensorrt"}


def _backend_name_comparisons(tree: ast.AST) -> list[int]:
    """Lines where a backend's name is compared (==, !=, in, not in) with something: a dispatch over
    backend names. A comparison with a precision ``target`` (the runtime a graph is written for,
    `precision --target`) is that stage's own setting, not a backend dispatch."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(
                isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            continue
        sides = (node.left, *node.comparators)
        if any((isinstance(x, ast.Name) and x.id == "target") or (isinstance(x, ast.Attribute) and x.attr == "target")
               for x in sides):
            continue
        for side in sides:
            values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            if any(isinstance(v, ast.Constant) and v.value in BACKEND_SPELLINGS for v in values):
                lines.append(node.lineno)
                break
    return lines


def test_backends_are_dispatched_by_the_registry_not_by_name():
    """No module outside exporter/backends/ compares a backend's name: verbs ask the registry
    (exporter/backends/registry.py) and call the backend it returns."""
    found = {}
    for path in sorted((ROOT / "exporter").rglob("*.py")):
        if (ROOT / "exporter" / "backends") in path.parents:
            continue
        lines = _backend_name_comparisons(ast.parse(path.read_text()))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}
    # the check can fail: it finds a dispatch over names
    assert _backend_name_comparisons(ast.parse('if backend == "trt":\n    pass\nelif b in ("ort", "ov"):\n    pass')) == [1, 3]


def test_the_profile_key_reference_is_current_and_complete():
    """docs/profiles.md's "Every key" is what exporter.profiles.reference generates (regenerate with
    `python -m exporter.profiles.reference --write docs/profiles.md`); every key the parser accepts
    has a meaning and a default there, and no other key does."""
    from exporter.profiles import reference as ref

    page = (ROOT / "docs" / "profiles.md").read_text()
    assert ref.with_reference(page) == page, "python -m exporter.profiles.reference --write docs/profiles.md"
    accepted = {(table, k) for table, keys, _ in ref.TABLES for k in keys}
    assert set(ref.MEANING) == accepted
    for table, keys, defaults in ref.TABLES:
        for k in keys:
            assert ref.default_of(table, k, defaults)


def test_a_profile_that_leaves_keys_out_gets_the_dataclass_defaults(tmp_path):
    """Every default is stated once, in the settings models: the parser fills an omitted key from them."""
    from exporter.profiles import load_profile
    from exporter.profiles.profile import (
        BatchSettings,
        BenchmarkSettings,
        BuilderSettings,
        ClusterSettings,
        Compatibility,
        Models,
        PickSettings,
    )

    cpu = tmp_path / "bare-cpu.toml"
    cpu.write_text('backend = "onnxruntime"\nprecisions = ["fp32"]\n[models]\naccuracy = ["lookupvit_digits"]\n')
    p = load_profile(cpu)
    assert p.benchmark == BenchmarkSettings() and p.pick == PickSettings() and p.batch == BatchSettings()
    assert p.models.model_copy(update={"accuracy": ()}) == Models()
    assert p.cluster == ClusterSettings().model_copy(update={"gpus": 0.0})
    gpu = tmp_path / "bare-gpu.toml"
    gpu.write_text('backend = "tensorrt"\ncompute_capability = "8.9"\nprecisions = ["fp16"]\n'
                   '[models]\naccuracy = ["lookupvit_digits"]\n')
    p = load_profile(gpu)
    assert p.builder == BuilderSettings().model_copy(update={"timing_cache": "timing-cache/bare-gpu.cache"})
    assert p.compatibility == Compatibility() and p.cluster == ClusterSettings().model_copy(update={"gpus": 1.0})
