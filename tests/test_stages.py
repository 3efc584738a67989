"""The pipeline's stages are declared once (exporter/pipeline/stages.py; docs/architecture.md, The
stages): the declarations are the kinds a run records and the split a cluster run makes, and no other
module names a stage by a string."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

from exporter.pipeline.stages import (
    BUILD,
    DEVICE_STAGES,
    HOST_STAGES,
    STAGE_KINDS,
    STAGES,
    StageKind,
    stage,
)

ROOT = Path(__file__).resolve().parent.parent
DECLARATION = ROOT / "exporter" / "pipeline" / "stages.py"
CHAIN_ORDER = ("export", "optimize", "precision", "check", "build", "validate", "compare", "profile")


def test_the_eight_stages_are_declared_once_in_chain_order():
    from typing import get_args

    from exporter.schema.run_folder import RESULTS

    assert tuple(s.kind for s in STAGES) == CHAIN_ORDER == get_args(StageKind) == STAGE_KINDS
    assert all(stage(k).kind == k for k in CHAIN_ORDER)
    assert set(DEVICE_STAGES) == {"build", "validate", "compare", "profile"}
    assert set(HOST_STAGES) | set(DEVICE_STAGES) == set(CHAIN_ORDER) and not set(HOST_STAGES) & set(DEVICE_STAGES)
    assert set(RESULTS) <= set(CHAIN_ORDER)
    for s in STAGES:  # every declaration names modules that exist and says what the stage takes and makes
        assert s.description and s.takes and s.makes and s.where in ("host", "device"), s
        for module in (s.module, s.recorded_by):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), (s.kind, module)
    try:
        stage("latency")  # type: ignore[arg-type]
    except KeyError as e:
        assert "not a stage" in str(e)
    else:
        raise AssertionError("stage() accepted a name that is not a stage")


# --- no stage named by a string outside its declaration ------------------------------------------------

KIND_CALLS = {"Step", "stage", "note", "stage_id", "label", "_id", "restore", "output_path", "stage_key", "StageOutcome"}


def _is_kind(node: ast.AST) -> bool:
    """A string literal that is a stage kind (or a tuple, list or set holding one)."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_kind(e) for e in node.elts)
    return isinstance(node, ast.Constant) and node.value in STAGE_KINDS


def _holds_a_kind(node: ast.AST) -> bool:
    """An expression that is a stage's kind: ``x.kind``, ``x.stage``, ``x["kind"]``, ``x.get("kind")``."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("kind", "stage")
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind"
    return False


def _stage_kind_literals(tree: ast.AST) -> list[int]:
    """Lines where a stage kind is spelled as a string: an argument of a call that takes a stage's kind
    or id (``Step(unit, "build", ...)``, ``manifest.stage(id, "validate", ...)``, ``unit.stage_id("check")``),
    a comparison of a kind with a string (``o.kind == "build"``, ``st.stage == "validate"``), or a stage id
    spelled by hand (``"optimize:" + rest``, ``f"compare:{variant}"``; docstrings aside)."""
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in KIND_CALLS and any(_is_kind(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = (node.left, *node.comparators)
            if any(_holds_a_kind(s) for s in sides) and any(_is_kind(s) for s in sides):
                lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            head, colon, _ = node.value.partition(":")
            if colon and head in STAGE_KINDS:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_no_module_names_a_stage_by_a_string():
    """Stages are named by their declarations (exporter.pipeline.stages: ``BUILD``, ``stage(...)``),
    never by a string, outside that module; the kinds' Literal type sits with the stages.json schema
    (exporter/schema/run_folder.py), whose tables are keyed by it and checked by the type checker."""
    found = {}
    for path in sorted((ROOT / "exporter").rglob("*.py")):
        if path == DECLARATION:
            continue
        lines = _stage_kind_literals(ast.parse(path.read_text()))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}
    # the check can fail: it finds each way a kind was spelled before the declarations
    sample = "\n".join([
        'Step(unit, "build", run)',
        'manifest.stage(stage_id, "validate", settings, inputs, run)',
        'manifest.note("profile", "profile", "failed", why)',
        'ids = [unit.stage_id("precision")]',
        'if o.kind == "build": pass',
        'validated = {s.unit for s in steps if s.stage == "validate"}',
        'if entry.get("kind") != "export": pass',
        'manifest.entries.get("optimize:" + rest)',
        'manifest.output_path(f"compare:{variant}", rel, key)',
        'Step(unit, BUILD, run); print("build"); o.kind == BUILD; ui.step("profile latency")',
    ])
    assert _stage_kind_literals(ast.parse(sample)) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


# --- the declarations are what a run records and what a cluster run splits on -------------------------


def test_a_run_records_declared_kinds_and_its_prepare_task_runs_the_host_ones(digits_run, tmp_path):
    """A real run folder (tests/conftest.py's ``digits_run``) records only declared kinds. The cluster's
    prepare task (exporter.run.prepare.prepare_graph, what exporter/cluster/tasks.py runs on any node)
    run over a copy of it asks for host stages only (all found done), so what it leaves to the device
    task (exporter.run.job.run_job on the profile's node) is the device stages."""
    from exporter.run.options import RunOptions
    from exporter.run.prepare import prepare_graph

    recorded = {e["kind"] for e in json.loads((digits_run / "stages.json").read_text())["stages"].values()}
    assert recorded <= set(STAGE_KINDS)
    assert {"export", "validate", "compare", "profile"} <= recorded

    run = tmp_path / "run"
    shutil.copytree(digits_run, run, symlinks=True)
    profile = ROOT / "tests" / "profiles" / "digits-only.toml"
    outcomes = prepare_graph(RunOptions(profile=profile, out_dir=run), "lookupvit_digits", (2, 2), ("fp32",))
    prepared = {o.kind for o in outcomes}
    assert prepared and prepared <= set(HOST_STAGES), prepared
    assert all(o.status == "skipped" for o in outcomes), [(o.id, o.status) for o in outcomes]
    assert recorded - prepared <= set(DEVICE_STAGES), recorded - prepared


def test_the_prepare_chain_of_a_tensorrt_profile_is_its_host_stages(tmp_path):
    """The chain a prepare task runs for a TensorRT profile (built, not run): the host stages, plus the
    build only where the node builds the engines without a GPU; the full chain adds the device stages."""
    import math

    from exporter.pipeline.artefacts import Artefacts, ChainSettings
    from exporter.pipeline.manifest import Manifest
    from exporter.profiles import load_profile
    from exporter.run.options import RunOptions
    from exporter.run.scope import backend_of
    from exporter.run.stages import chain_steps
    from exporter.run.state import RunState

    prof = load_profile(ROOT / "tests" / "profiles" / "tiny-trt.toml")
    manifest = Manifest(tmp_path)
    artefacts = Artefacts(tmp_path, ChainSettings(profile=prof), manifest)
    opts, state = RunOptions(profile=prof.path, out_dir=tmp_path), RunState(math.inf)

    def kinds(**kw: bool) -> list[str]:
        return [s.stage for s in chain_steps(artefacts, manifest, "lookupvit_tiny32", (2, 2), "fp16", backend_of(prof),
                                             opts, state, **kw)]

    assert kinds(prepare_only=True) == list(HOST_STAGES)
    assert kinds(prepare_only=True, build=True) == [*HOST_STAGES, BUILD]
    assert kinds() == ["export", "optimize", "precision", "check", "build", "validate"]
    assert set(kinds()) - set(kinds(prepare_only=True)) <= set(DEVICE_STAGES)
