"""Issue 24, "Files we read are untrusted": one test (or more) per numbered finding of the audit.

Each asserts the exit code, that the message names the file and the key, and for findings 1 and 2
that a sentinel file outside the folder is untouched. The run folder is a real one (the session's
``digits_run`` fixture), copied before it is changed. docs/security.md says what is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.child import default_sigint

ROOT = Path(__file__).resolve().parent.parent
DIGITS_ONLY = ROOT / "tests" / "profiles" / "digits-only.toml"
G2 = "lookupvit_digits/g2/onnx/lookupvit_digits_g2.opt.onnx"
EXPORT_ID = "export:lookupvit_digits:g2"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture
def work(digits_run, tmp_path):
    """A copy of the session's run folder at tmp/run, next to tmp/victim holding a sentinel file."""
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, symlinks=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.onnx").write_bytes(b"the user's own file")
    return run, victim


def no_traceback(r) -> None:
    assert "Traceback" not in r.output and "RecursionError" not in r.output


def json_error(r) -> dict:
    doc = json.loads(r.stdout)
    assert set(doc) == {"error", "hint", "exit"}
    return doc


def set_meta(path: Path, **values: str) -> Path:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {
        **{p.key: p.value for p in model.metadata_props}, **{f"lookupvit.{k}": v for k, v in values.items()},
    })
    onnx.save(model, str(path))
    return path


def _edit_stages(run: Path, edit) -> None:
    doc = json.loads((run / "stages.json").read_text())
    edit(doc)
    (run / "stages.json").write_text(json.dumps(doc))


# --- finding 1: deletion outside the output folder -------------------------------------------------


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_f1_a_recorded_output_outside_the_run_folder_is_refused_and_nothing_deleted(work, cli, how):
    run, victim = work
    precious = victim / "precious.onnx"
    rel = {"dotdot": "../victim/precious.onnx", "absolute": str(precious),
           "symlink": "lookupvit_digits/g2/onnx/elsewhere.onnx"}[how]
    if how == "symlink":
        (run / rel).symlink_to(precious)
    _edit_stages(run, lambda d: d["stages"][EXPORT_ID]["outputs"].__setitem__(rel, sha(precious)))
    before = files(run)
    r = cli("run", "--profile", str(DIGITS_ONLY), "-o", str(run))
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "stages.json" in r.output and f"stages.{EXPORT_ID}.outputs" in r.output
    assert precious.read_bytes() == b"the user's own file"  # the sentinel outside is untouched
    assert files(run) == before  # nothing written or deleted inside either (summary.json kept)


def test_f1_keep_final_deletes_only_the_export_of_its_own_entry(work, cli):
    """A file of the user's inside the run folder, named as an export output with its real sha256: not
    the layout's export file, so --keep final leaves it (and the run still passes)."""
    run, victim = work
    mine = run / "lookupvit_digits" / "notes.onnx"
    mine.write_bytes(b"mine")
    _edit_stages(run, lambda d: d["stages"][EXPORT_ID]["outputs"].__setitem__("lookupvit_digits/notes.onnx", sha(mine)))
    r = cli("run", "--profile", str(DIGITS_ONLY), "-o", str(run))
    assert r.exit_code == 0, r.output
    assert mine.read_bytes() == b"mine" and (victim / "precious.onnx").is_file()


# --- finding 2: package names, --force and the user's files -----------------------------------------


def _package(cli, run: Path, repo: Path, *extra: str):
    return cli("package", str(run), "--triton", "-o", str(repo), *extra)


@pytest.mark.parametrize("name", ["../../victim", "../escape", "/abs", ".hidden", "a/b"])
def test_f2_name_must_be_one_path_component(work, tmp_path, cli, name):
    run, victim = work
    before = files(victim)
    for force in ((), ("--force",)):
        r = _package(cli, run, tmp_path / "repo" / "sub", "--name", name, *force)
        assert r.exit_code == 2, r.output
        no_traceback(r)
        assert "--name" in r.output and "one path component" in r.output
    assert files(victim) == before and not (tmp_path / "escape").exists()
    assert not (tmp_path / "repo").exists()  # refused before anything was written


def test_f2_force_replaces_only_the_tools_own_outputs(work, tmp_path, cli):
    run, victim = work
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("my own notes")
    r = _package(cli, run, repo)
    assert r.exit_code == 2 and "did not write" in r.output and str(repo) in r.output, r.output
    r = _package(cli, run, repo, "--force")
    assert r.exit_code == 2 and "README.md" in r.output and "not replaced" in r.output, r.output
    assert (repo / "README.md").read_text() == "my own notes" and not (repo / "lookupvit_digits_g2").exists()
    (repo / "README.md").rename(repo / "NOTES.md")
    r = _package(cli, run, repo, "--force")  # the user's other files stay, the models are added
    assert r.exit_code == 0, r.output
    assert (repo / "NOTES.md").read_text() == "my own notes" and (repo / "lookupvit_digits_g2" / "config.pbtxt").is_file()
    r = _package(cli, run, repo)
    assert r.exit_code == 2 and "--force" in r.output
    r = _package(cli, run, repo, "--force")  # its own previous output: replaced
    assert r.exit_code == 0, r.output
    (repo / "lookupvit_digits_g2" / "mine.txt").write_text("added by the user")
    r = _package(cli, run, repo, "--force")
    assert r.exit_code == 2 and "mine.txt" in r.output and "only the tool's own previous outputs" in r.output
    assert (repo / "lookupvit_digits_g2" / "mine.txt").read_text() == "added by the user"
    assert (victim / "precious.onnx").read_bytes() == b"the user's own file"


def test_f2_a_symbolic_link_in_the_repository_is_left_alone(work, tmp_path, cli):
    run, victim = work
    repo = tmp_path / "repo"
    assert _package(cli, run, repo).exit_code == 0
    shutil.rmtree(repo / "lookupvit_digits_g2")
    (repo / "lookupvit_digits_g2").symlink_to(victim, target_is_directory=True)
    r = _package(cli, run, repo, "--force")
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "symbolic link" in r.output and "lookupvit_digits_g2" in r.output
    assert files(victim) == {"precious.onnx": sha(victim / "precious.onnx")}


# --- finding 3: a stale claim shipped -------------------------------------------------------------------


def test_f3_a_changed_graph_is_not_packaged_or_picked_with_the_runs_claims(work, tmp_path, cli):
    run, _ = work
    graph = run / G2
    model = onnx.load(str(graph))
    init = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.raw_data) >= 4)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(graph))
    r = _package(cli, run, tmp_path / "repo", "--json")
    assert r.exit_code == 2
    err = json_error(r)["error"]
    assert G2 in err and "changed since the run measured it" in err and f"artefacts.{G2}" in err
    assert not (tmp_path / "repo" / "lookupvit_digits_g2").exists()
    r = cli("pick", str(run), "--latency-ms", "100")
    assert r.exit_code == 2 and f"artefacts.{G2}" in r.output


# --- finding 4: metadata that poisons a served model ------------------------------------------------------


@pytest.mark.parametrize("std", ["[0]", "[-1.0]", "[1e400]"])
def test_f4_std_must_be_positive_and_finite(work, tmp_path, cli, std):
    run, _ = work
    model = set_meta(Path(shutil.copy(run / G2, tmp_path / "m.onnx")), std=std)
    r = cli("validate", str(model))
    assert r.exit_code == 2 and "lookupvit.std" in r.output and str(model) in r.output, r.output
    r = cli("package", str(model), "--profile", str(DIGITS_ONLY), "--triton", "-o", str(tmp_path / "repo"))
    assert r.exit_code == 2 and "lookupvit.std" in r.output
    assert not (tmp_path / "repo").exists() or not list((tmp_path / "repo").rglob("model.onnx"))


# --- finding 5: metadata that makes the tool read other files ---------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
@pytest.mark.parametrize("verb", ["validate", "compare"])
def test_f5_a_weights_path_in_metadata_is_never_opened(work, tmp_path, verb):
    """The recorded weights path is a FIFO: opening it would block until the timeout."""
    run, _ = work
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    model = Path(shutil.copy(run / G2, tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    src = json.loads(meta["lookupvit.source"]) | {"weights": str(fifo)}
    set_meta(model, source=json.dumps(src))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "exporter.cli", verb, str(model)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "never opens a file named in a model's metadata" in r.stderr and "--weights FILE" in r.stderr
    assert "Traceback" not in r.stderr


# --- finding 6: metadata that disagrees with the graph --------------------------------------------------


@pytest.fixture(scope="module")
def dynamic_crafted(tmp_path_factory):
    """A dynamic-grid export serving grids 2 and 4 whose metadata claims 2, 3 and 4."""
    from click.testing import CliRunner

    from exporter.cli import main

    out = tmp_path_factory.mktemp("dyn")
    r = CliRunner().invoke(main, ["export", "lookupvit_digits", "--dynamic-grid", "--grids", "2,4", "-o", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    model = next(out.glob("*_gdynamic.onnx"))
    return set_meta(Path(shutil.copy(model, out / "crafted.onnx")), grids="2x2,3x3,4x4")


@pytest.mark.parametrize("args", [
    ["validate"],
    ["profile", "--backend", "openvino", "--grids", "3", "--iters", "2"],
    ["profile", "--backend", "ort", "--grids", "3", "--iters", "2"],
    ["build", "--profile", str(ROOT / "tests" / "profiles" / "tiny-trt.toml"), "-o", "OUT"],
])
def test_f6_a_grid_list_the_graph_does_not_serve_is_refused_on_every_backend(dynamic_crafted, tmp_path, cli, args):
    if "openvino" in args:
        pytest.importorskip("openvino")
    argv = [args[0], str(dynamic_crafted), *[str(tmp_path / "o") if a == "OUT" else a for a in args[1:]]]
    if args[0] == "profile":
        argv += ["-o", str(tmp_path / "p")]
    r = cli(*argv)
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "lookupvit.grids" in r.output and "crafted.onnx" in r.output and "graph serves the grids 2x2, 4x4" in r.output


# --- finding 7: crafted nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["mean", "std", "input_shape", "source"])
def test_f7_deeply_nested_metadata_is_one_json_error(work, tmp_path, cli, key):
    run, _ = work
    deep = "[" * 3000 + "]" * 3000  # under the 16,384-character cap
    model = set_meta(Path(shutil.copy(run / G2, tmp_path / "m.onnx")), **{key: deep})
    r = cli("validate", str(model), "--json")
    assert r.exit_code == 2
    no_traceback(r)
    err = json_error(r)
    assert f"lookupvit.{key}" in err["error"] and "nested" in err["error"] and err["exit"] == 2


@pytest.mark.parametrize("text", ["x = " + "[" * 3000 + "]" * 3000, "x = " + "{a = " * 3000 + "1" + "}" * 3000])
def test_f7_deeply_nested_profile_toml_is_one_json_error(tmp_path, cli, text):
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    for argv in (["profiles", "check", str(path), "--json"], ["run", "--profile", str(path), "-o", str(tmp_path / "r"), "--json"]):
        r = cli(*argv)
        assert r.exit_code == 2
        no_traceback(r)
        err = json_error(r)
        assert "deep.toml" in err["error"] and "nested 3000 levels" in err["error"]
    assert not (tmp_path / "r").exists()


# --- finding 8: pick trusts whatever it reads -------------------------------------------------------------------


def _summary_edits():
    def cells(d):
        return d["latency"]["cells"]

    return {
        "list at top level": (lambda d: [d], "summary.json: input should be a valid dictionary"),
        "p50 -5 ms": (lambda d: cells(d)[0]["latency"].__setitem__("p50_ms", -5) or d, "latency.cells[0].latency.p50_ms"),
        "top-1 1e9": (lambda d: d["accuracy"][0].__setitem__("top1", 1e9) or d, "accuracy[0].top1"),
        "top-1 as text": (lambda d: d["accuracy"][0].__setitem__("top1", "99%") or d, "accuracy[0].top1"),
        "batch as a list": (lambda d: cells(d)[0].__setitem__("batch", [1]) or d, "latency.cells[0].batch"),
        "latency.file outside": (lambda d: d["latency"].update(cells=None, file="../evil/x.json") or d, "latency.file"),
        "profile missing": (lambda d: d.pop("profile") and d, "key profile"),
    }


@pytest.mark.parametrize("edit", list(_summary_edits()))
def test_f8_a_tampered_summary_is_refused_naming_the_key(work, tmp_path, cli, edit):
    run, _ = work
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "x.json").write_text(json.dumps({"cells": []}))
    change, key = _summary_edits()[edit]
    doc = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(change(doc)))
    for argv in (["pick", str(run), "--latency-ms", "100", "--json"],
                 ["package", str(run), "--triton", "-o", str(tmp_path / "repo"), "--json"]):
        r = cli(*argv)
        assert r.exit_code == 2, r.output
        no_traceback(r)
        err = json_error(r)["error"]
        assert "summary.json" in err and key in err, err
    assert not (tmp_path / "repo").exists()


def test_f8_the_recorded_profile_never_names_another_file(work, tmp_path, cli):
    run, victim = work
    doc = json.loads((run / "summary.json").read_text())
    doc["profile"].update(name="../victim/precious", path=str(victim / "precious.onnx"))
    (run / "summary.json").write_text(json.dumps(doc))
    r = _package(cli, run, tmp_path / "repo")
    assert r.exit_code == 2 and "profile.name" in r.output and "summary.json" in r.output, r.output
    no_traceback(r)
    assert not (tmp_path / "repo" / "lookupvit_digits_g2").exists()


@pytest.mark.parametrize("verdict", ["FAILED", "NOT MEANINGFUL"])
def test_f8_a_setting_that_did_not_pass_is_chosen_only_when_asked(work, tmp_path, cli, verdict):
    run, _ = work
    doc = json.loads((run / "summary.json").read_text())
    doc["accuracy"][0]["status"] = verdict
    (run / "summary.json").write_text(json.dumps(doc))
    r = cli("pick", str(run), "--latency-ms", "100")
    assert r.exit_code == 2 and verdict in r.output and "--allow-failed" in r.output
    r = cli("pick", str(run), "--latency-ms", "100", "--allow-failed")
    assert r.exit_code == 0 and f"WARNING: the chosen setting g2 fp32 has the accuracy verdict {verdict}" in r.output
    assert f"its accuracy verdict is {verdict}: chosen because of --allow-failed" in r.output
    r = _package(cli, run, tmp_path / "repo")
    assert r.exit_code == 2 and "--allow-failed" in r.output and not (tmp_path / "repo" / "lookupvit_digits_g2").exists()
    r = _package(cli, run, tmp_path / "repo", "--grids", "2", "--precision", "fp32")
    assert r.exit_code == 2 and verdict in r.output
    r = _package(cli, run, tmp_path / "repo", "--allow-failed")
    assert r.exit_code == 0, r.output
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert "WARNING" in readme and f"accuracy verdict {verdict}" in readme


# --- finding 9: exit codes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [
    {"kind": "lookupvit-run-stages", "stages": []},
    [],
    {"kind": "lookupvit-run-stages", "stages": {EXPORT_ID: {"kind": 5, "key": "x"}}},
    {"kind": "lookupvit-run-stages", "stages": {EXPORT_ID: {"kind": "export", "key": "x", "outputs": ["a.onnx"]}}},
    {"kind": "lookupvit-run-stages", "stages": {EXPORT_ID: {"kind": "export", "key": "x", "outputs": {"a.onnx": "zz"}}}},
    {"kind": "lookupvit-run-stages", "stages": {EXPORT_ID: {"kind": "export", "key": "x", "dropped": ["b.onnx"]}}},
])
def test_f9_stages_json_of_the_wrong_shape_is_refused_and_the_summary_kept(work, cli, doc):
    run, _ = work
    (run / "stages.json").write_text(json.dumps(doc))
    before = files(run)
    r = cli("run", "--profile", str(DIGITS_ONLY), "-o", str(run), "--json")
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "stages.json" in json_error(r)["error"]
    assert files(run) == before  # the earlier PASSED summary.json is not replaced


def test_f9_a_reference_of_another_input_is_refused(digits_run, cli):
    r = cli("validate", str(digits_run / G2), "--reference", "lookupvit_tiny32")
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "lookupvit_digits_g2.opt.onnx" in r.output and "lookupvit_tiny32" in r.output and "1x32x32" in r.output


@pytest.mark.skipif(os.geteuid() != 0, reason="a small tmpfs needs root")
def test_f9_a_run_into_a_nearly_full_disk_is_exit_2(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3100k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKUPVIT_CACHE": str(tmp_path / "cache")}
        r = subprocess.run([sys.executable, "-m", "exporter.cli", "run", "--profile", str(DIGITS_ONLY), "-o",
                            str(disk / "r")], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, r.stderr[-2000:]
        assert "disk is full" in r.stderr and str(disk / "r") in r.stderr and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def _server(reply: bytes | None):
    """A TCP server that answers every connection with ``reply`` (None: says nothing and holds it)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted = threading.Semaphore(0)
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            accepted.release()
            if reply is not None:
                try:
                    c.recv(1024)
                    c.sendall(reply)
                finally:
                    c.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, accepted


def _lookupvit_proc(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKUPVIT_CACHE": str(cwd / "cache")}
    return subprocess.Popen([sys.executable, "-m", "exporter.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)


def test_f9_cluster_address_that_is_not_ray_fails_fast(tmp_path):
    pytest.importorskip("ray")
    srv, _ = _server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    try:
        port = srv.getsockname()[1]
        p = _lookupvit_proc("run", "--profile", str(DIGITS_ONLY), "--cluster", f"127.0.0.1:{port}", "-o",
                            str(tmp_path / "r"), cwd=tmp_path)
        _, err = p.communicate(timeout=120)  # ray.init would wait for minutes
        assert p.returncode == 2, err
        assert f"127.0.0.1:{port}" in err and "not a Ray cluster" in err and "Traceback" not in err
    finally:
        srv.close()


def test_f9_ctrl_c_while_connecting_exits_130(tmp_path):
    pytest.importorskip("ray")
    srv, accepted = _server(None)
    try:
        port = srv.getsockname()[1]
        p = _lookupvit_proc("run", "--profile", str(DIGITS_ONLY), "--cluster", f"127.0.0.1:{port}", "-o",
                            str(tmp_path / "r"), cwd=tmp_path)
        assert accepted.acquire(timeout=120) and accepted.acquire(timeout=60)  # reachable, then the probe waits
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        assert "Interrupted" in err and "Traceback" not in err
    finally:
        srv.close()


# --- finding 10: smaller ones ----------------------------------------------------------------------------------------


def test_f10_pace_reference_out_of_band_is_refused(tmp_path):
    from exporter.latency.pace import Pace, PaceRecord

    path = tmp_path / "pace.json"
    path.write_text(json.dumps({"this machine": [1e-12, 1e-12, 1e-12], "other": [3e-5]}))
    rec = PaceRecord.load(path, "this machine")
    assert rec.bests == [] and str(path) in rec.note and "['this machine'][0] = 1e-12" in rec.note
    pace = Pace(budget=0.0, record=rec, probe=lambda: 3e-5, sleep=lambda s: None, clock=lambda: 0.0)
    assert pace.pace() == pytest.approx(1.0)  # this run's own probe is the reference, never 1e-12
    summary = pace.finish()
    assert summary.reference_us == pytest.approx(30.0) and "refused as the reference" in summary.source
    assert json.loads(path.read_text())["this machine"] == [3e-5]  # the implausible values are not kept


def test_f10_validate_a_folder_says_it_is_a_folder(tmp_path, cli):
    (tmp_path / "dir.onnx").mkdir()
    r = cli("validate", str(tmp_path / "dir.onnx"))
    assert r.exit_code == 2 and "dir.onnx is a folder" in r.output and "does not exist" not in r.output


@pytest.mark.parametrize("arrays, words", [
    ({"images": np.zeros((4, 32, 32), np.uint8)}, "has no array 'labels' (it holds 'images')"),
    ({"images": np.zeros((4, 32, 32), np.uint8), "labels": np.array([-5, 1, 2, 3])},
     "1 label(s) are negative (the smallest is -5)"),
    ({"images": np.zeros((4, 32, 32), np.uint8), "labels": np.array([0.5, 1, 2, 3])}, "'labels' is an array of float64"),
])
def test_f10_npz_labels_are_checked_with_a_clear_message(tmp_path, cli, arrays, words):
    np.savez(tmp_path / "d.npz", **arrays)
    r = cli("evaluate", "lookupvit_digits", "--data", str(tmp_path / "d.npz"))
    assert r.exit_code == 2 and words in r.output and "d.npz" in r.output, r.output


def test_f10_a_repeated_grid_is_exported_once(tmp_path, cli):
    r = cli("export", "lookupvit_digits", "--grid", "3,,3", "-o", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 1 and [p.name for p in tmp_path.glob("*.onnx")] == ["lookupvit_digits_g3.onnx"]
