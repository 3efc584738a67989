"""Issue 24's property: random mutations of a real run folder's JSON files (type changes, nesting,
path edits, deletions), then ``pick``, ``package`` and ``run`` on it. Whatever the mutation:

- never a traceback (the CLI is invoked in-process with exceptions propagating);
- never a write or a delete outside the run folder and the repository folder (a sentinel folder and
  the sandbox around them are compared byte for byte);
- exit 0 only when the result is sound: the chosen / packaged / measured graph is byte-identical to
  the one the run measured, and the figures reported are within their ranges; otherwise exit 2 (a
  run may also be 1 or 2 when a stage it reran does not pass).

Hypothesis runs derandomized (a fixed seed from the test's name), with a bounded number of examples
and no example database, so the test is deterministic and hermetic.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis: pip install -e '.[test]'")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS_ONLY = ROOT / "tests" / "profiles" / "digits-only.toml"
G2 = "lookupvit_digits/g2/onnx/lookupvit_digits_g2.opt.onnx"

ODD_VALUES: list[Any] = [None, 0, -5, 1e-12, 1e9, "x", "", [], {}, True, [[[[1]]]], {"a": {"b": {"c": [None]}}}]
ESCAPES = ["../victim/precious.onnx", "../../victim", "/etc/passwd", "VICTIM_ABS", "lookupvit_digits/../../victim/x",
           "link_out/precious.onnx", "."]
SETTINGS = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate],  # no shrinking: the run time stays bounded
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree(folder: Path, skip: tuple[Path, ...]) -> dict[str, str]:
    """Every file under ``folder`` outside ``skip`` (relative path -> sha256; a link -> its target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if any(p == s or s in p.parents for s in skip):
            continue
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + str(p.readlink())
        elif p.is_file():
            out[str(p.relative_to(folder))] = sha(p)
    return out


def nodes(doc: Any, at: tuple = ()) -> list[tuple]:
    """Every path into ``doc`` (dict keys and list indices), in document order, at most 400."""
    out: list[tuple] = []
    stack = [(doc, at)]
    while stack and len(out) < 400:
        value, here = stack.pop(0)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            out.append((*here, k))
            stack.append((v, (*here, k)))
    return out


def parent_of(doc: Any, path: tuple) -> Any:
    for k in path[:-1]:
        doc = doc[k]
    return doc


def json_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*.json"))


# the parts of the documents that pick, package and a resumed run read (mutations aim there half the time)
READ = {"summary.json": ("kind", "profile", "accuracy", "latency", "artefacts"),
        "stages.json": ("kind", "stages")}


@st.composite
def mutation(draw, files: list[str]) -> dict[str, Any]:
    read = [f for f in files if f in READ]
    return {
        "file": draw(st.sampled_from(read) if read and draw(st.booleans()) else st.sampled_from(files)),
        "focus": draw(st.booleans()),
        "kind": draw(st.sampled_from(["value", "value", "delete", "path", "rename", "file"])),
        "pick": draw(st.integers(0, 10_000)),
        "value": draw(st.sampled_from(ODD_VALUES)),
        "escape": draw(st.sampled_from(ESCAPES)),
        "whole": draw(st.sampled_from(["delete", "list", "deep", "text"])),
    }


def apply(run: Path, victim: Path, m: dict[str, Any]) -> str:
    """Apply one mutation to the copy ``run``; returns what was done (for the failure message)."""
    path = run / m["file"]
    if not path.is_file():
        return f"{m['file']}: gone already"
    escape = str(victim / "precious.onnx") if m["escape"] == "VICTIM_ABS" else m["escape"]
    if m["kind"] == "file":
        if m["whole"] == "delete":
            path.unlink()
        else:
            path.write_text({"list": "[1, 2]", "deep": "[" * 5000 + "]" * 5000, "text": "not json"}[m["whole"]])
        return f"{m['file']}: whole file -> {m['whole']}"
    doc = json.loads(path.read_text())
    where = nodes(doc)
    if m["focus"] and m["file"] in READ:
        where = [p for p in where if p[0] in READ[m["file"]]] or where
    if not where:
        return f"{m['file']}: nothing to change"
    at = where[m["pick"] % len(where)]
    parent, key = parent_of(doc, at), at[-1]
    if m["kind"] == "delete":
        del parent[key]
    elif m["kind"] == "value":
        parent[key] = m["value"]
    elif m["kind"] == "path":
        strings = [p for p in where if isinstance(parent_of(doc, p)[p[-1]], str)]
        if not strings:
            return f"{m['file']}: no string to edit"
        at = strings[m["pick"] % len(strings)]
        parent_of(doc, at)[at[-1]] = escape
    else:  # rename a key (stages.json's outputs are keyed by path)
        keyed = [p for p in where if isinstance(parent_of(doc, p), dict)]
        at = keyed[m["pick"] % len(keyed)]
        parent = parent_of(doc, at)
        parent[escape] = parent.pop(at[-1])
    path.write_text(json.dumps(doc))
    return f"{m['file']}: {m['kind']} at {'.'.join(map(str, at))}"


@pytest.fixture(scope="module")
def original(digits_run):
    return {"graph": sha(digits_run / G2), "files": json_files(digits_run)}


def sandbox(digits_run: Path, base: Path) -> tuple[Path, Path]:
    run = base / "run"
    shutil.copytree(digits_run, run, symlinks=True)
    victim = base / "victim"
    victim.mkdir()
    (victim / "precious.onnx").write_bytes(b"the user's own file")
    (run / "link_out").symlink_to(victim, target_is_directory=True)  # a link out of the run folder
    return run, victim


def _invoke(*args: str):
    from click.testing import CliRunner

    from exporter.cli import main

    r = CliRunner().invoke(main, list(args), catch_exceptions=False)  # an exception is a failed example
    assert "Traceback" not in r.output
    return r


def _pick_is_sound(r, run: Path, original: dict[str, Any]) -> None:
    d = json.loads(r.stdout)
    c = d["chosen"]
    assert 0 <= c["top1"] <= 100 and c["p50_ms"] > 0 and c["p99_ms"] > 0
    assert sha(run / f"{c['model']}/g{c['grid']}/onnx/{c['model']}_g{c['grid']}.opt.onnx") == original["graph"]


def _package_is_sound(r, run: Path, repo: Path, original: dict[str, Any]) -> None:
    from exporter.serve.triton import PackageRequest, package

    d = json.loads(r.stdout)
    assert d["complete"] and [m["name"] for m in d["models"]] == ["lookupvit_digits_g2"]
    assert sha(run / G2) == original["graph"]  # the bytes the claims are about are the ones shipped
    twin = repo.parent / "twin"  # the same package from the untouched graph gives the same model file
    package(PackageRequest(source=run / G2, profiles=(str(DIGITS_ONLY),), out_dir=twin))
    assert sha(repo / "lookupvit_digits_g2" / "1" / "model.onnx") == sha(twin / "lookupvit_digits_g2" / "1" / "model.onnx")


@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_pick_and_package_on_a_mutated_run_folder(digits_run, tmp_path_factory, original, data):
    base = tmp_path_factory.mktemp("mut")
    run, victim = sandbox(digits_run, base)
    done = [apply(run, victim, m) for m in data.draw(st.lists(mutation(original["files"]), min_size=1, max_size=3))]
    repo = base / "repo"
    outside = tree(base, skip=(run, repo))
    r = _invoke("pick", str(run), "--latency-ms", "100", "--json")
    assert r.exit_code in (0, 2), (done, r.output)
    if r.exit_code == 0:
        _pick_is_sound(r, run, original)
    r = _invoke("package", str(run), "--triton", "-o", str(repo), "--json")
    assert r.exit_code in (0, 2), (done, r.output)
    assert tree(base, skip=(run, repo, base / "twin")) == outside, done  # nothing outside written or deleted
    if r.exit_code == 0:
        _package_is_sound(r, run, repo, original)
    else:
        assert json.loads(r.stdout)["exit"] == 2 and not (repo / "lookupvit_digits_g2").exists()


@settings(SETTINGS, max_examples=6)
@given(data=st.data())
def test_run_on_a_mutated_record(digits_run, tmp_path_factory, original, data):
    """``run`` again on a folder whose stages.json was mutated: refused (2) before anything is written, or
    resumed (the stages whose records were not trusted run again) to a sound summary."""
    base = tmp_path_factory.mktemp("mutrun")
    run, victim = sandbox(digits_run, base)
    ms = data.draw(st.lists(mutation(["stages.json"]), min_size=1, max_size=2))
    done = [apply(run, victim, m) for m in ms]
    outside = tree(base, skip=(run,))
    before = tree(run, skip=())
    r = _invoke("run", "--profile", str(DIGITS_ONLY), "-o", str(run), "--repeats", "1", "--budget", "0", "--json")
    assert tree(base, skip=(run,)) == outside, done
    assert r.exit_code in (0, 1, 2), (done, r.output)
    if r.exit_code == 2 and "error" in json.loads(r.stdout):
        assert tree(run, skip=()) == before, done  # a refused record: nothing written or deleted
    if r.exit_code == 0:
        from exporter.schema import load_document
        from exporter.schema.run_folder import SummaryDoc

        summary = load_document(SummaryDoc, run / "summary.json")
        assert summary.artefacts and all(sha(run / rel) == digest for rel, digest in summary.artefacts.items())
        assert json.loads((run / "summary.json").read_text())["verdict"]["status"] == "PASSED"
        assert sha(run / G2) == original["graph"]
