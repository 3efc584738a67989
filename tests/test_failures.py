"""Clean failures: operating-system errors, scratch files, stale temporaries, foreign forward
signatures, progress in logs and JSON errors.

Everything here is real: a read-only folder is a read-only bind mount when the tests run as root
(permission bits do not stop root) and a folder without write permission otherwise; a full disk is
a small tmpfs (as root) or the file-size limit RLIMIT_FSIZE of a child process (SIGXFSZ ignored, so
a write past it fails with EFBIG); an interruption is a real SIGINT/SIGTERM sent to a child process.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.child import default_sigint

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def make_readonly():
    """Turn a folder read-only for real: a read-only bind mount as root, else no write permission."""
    done: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            if not _mount("--bind", str(folder), str(folder)):
                pytest.skip("running as root without permission to mount: a read-only folder cannot be made here")
            done.append(folder)
            if not _mount("-o", "remount,bind,ro", str(folder), str(folder)):
                pytest.skip("running as root without permission to remount read-only")
        else:
            folder.chmod(0o555)
            done.append(folder)
        return folder

    yield make
    for folder in done:
        if IS_ROOT:
            subprocess.run(["umount", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    from exporter.export import export_onnx, resolve_variant_source

    out = tmp_path_factory.mktemp("tiny")
    return export_onnx(resolve_variant_source("lookupvit_tiny32", grid="2"), out).path


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory) -> Path:
    from exporter.export import export_onnx, resolve_variant_source

    out = tmp_path_factory.mktemp("digits")
    return export_onnx(resolve_variant_source("lookupvit_digits", grid="2"), out).path


def _child(args: list[str], fsize: int | None = None, **kw) -> subprocess.Popen:
    """``lookupvit ARGS`` in a child process; with ``fsize``, writes past that many bytes fail (EFBIG)."""

    def limit() -> None:
        default_sigint()
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen([sys.executable, "-m", "exporter.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit, **kw)


def _run(args: list[str], fsize: int | None = None, timeout: float = 300) -> tuple[int, str, str]:
    p = _child(args, fsize)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def _one_paragraph(text: str) -> None:
    assert "Traceback" not in text
    assert text.count("Error:") == 1


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- operating-system errors ---------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["export", "optimize", "precision-fp16", "precision-int8", "compare", "profile",
                                  "train", "run"])
def test_read_only_output_folder_is_exit_2_before_any_work(cli, tiny_onnx, tmp_path, make_readonly, verb):
    ro = make_readonly(tmp_path / "ro")
    args = {
        "export": ["export", "lookupvit_tiny32", "--grid", "2", "-o", str(ro / "x")],
        "optimize": ["optimize", str(tiny_onnx), "-o", str(ro / "x.onnx")],
        "precision-fp16": ["precision", str(tiny_onnx), "--to", "fp16", "-o", str(ro / "x.onnx")],
        "precision-int8": ["precision", str(tiny_onnx), "--to", "int8", "-o", str(ro / "x.onnx")],
        "compare": ["compare", str(tiny_onnx), "--precisions", "fp32", "-o", str(ro / "c")],
        "profile": ["profile", "lookupvit_tiny32", "--grids", "2", "--backends", "ort", "-o", str(ro / "p")],
        # a million epochs: it can only pass by refusing before training
        "train": ["train", "lookupvit_tiny32", "--epochs", "1000000", "-o", str(ro / "w.safetensors")],
        "run": ["run", "--profile", str(ROOT / "tests" / "profiles" / "tiny.toml"), "-o", str(ro / "r")],
    }[verb]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    _one_paragraph(result.output)
    assert str(ro) in result.output and ("read-only" in result.output or "may not write" in result.output)
    assert _names(ro) == []  # refused before any work: nothing was written anywhere


def test_output_under_a_regular_file(cli, tiny_onnx, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    for args in (["export", "lookupvit_tiny32", "--grid", "2", "-o", str(blocker / "sub")],
                 ["precision", str(tiny_onnx), "--to", "fp16", "-o", str(blocker / "x.onnx")],
                 ["optimize", str(tiny_onnx), "-o", str(blocker / "deeper" / "x.onnx")]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        _one_paragraph(result.output)
        assert "regular file" in result.output and "afile" in result.output
    assert blocker.read_text() == "not a folder"


def test_output_path_that_is_a_folder(cli, tiny_onnx, tmp_path):
    from exporter.errors import UserError
    from exporter.precision import convert_precision

    folder = tmp_path / "model.fp16.onnx"
    folder.mkdir()
    with pytest.raises(UserError, match=r"is a folder, where a file is expected"):
        convert_precision(tiny_onnx, folder, "fp16")
    result = cli("precision", str(tiny_onnx), "--to", "fp16", "-o", str(folder))  # click's own check
    assert result.exit_code == 2 and "is a directory" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("verb", ["precision", "optimize", "export", "run"])
def test_file_size_limit_fails_cleanly_and_leaves_nothing(tiny_onnx, tmp_path, verb):
    """RLIMIT_FSIZE in a child process: the model file cannot be written (EFBIG)."""
    out = tmp_path / "out"
    out.mkdir()
    args = {
        "precision": ["precision", str(tiny_onnx), "--to", "fp16", "-o", str(out / "x.onnx")],
        "optimize": ["optimize", str(tiny_onnx), "-o", str(out / "x.onnx")],
        "export": ["export", "lookupvit_tiny32", "--grid", "2", "-o", str(out)],
        "run": ["run", "--profile", str(ROOT / "tests" / "profiles" / "tiny.toml"), "-o", str(out)],
    }[verb]
    code, _, err = _run(args, fsize=64 * 1024)
    assert code == 2, err
    _one_paragraph(err)
    assert "file-size limit" in err and str(out) in err
    assert [p for p in out.rglob("*") if p.is_file()] == []  # no model, no sidecar, no temporary
    assert not [p for p in out.rglob(".*")]


def test_full_disk_never_leaves_a_model_without_its_sidecar(tiny_onnx, tmp_path):
    """A tmpfs just big enough for the fp16 model but not for its sidecar as well."""
    if not IS_ROOT:
        pytest.skip("a small tmpfs needs root; the file-size-limit test covers full writes as a user")
    from exporter.precision import convert_precision

    reference = tmp_path / "ref" / "x.onnx"
    convert_precision(tiny_onnx, reference, "fp16")
    size = reference.stat().st_size
    disk = tmp_path / "disk"
    disk.mkdir()
    pages = -(-size // 4096) + 1  # the model, plus one page: less than model + sidecar + folder
    if not _mount("-t", "tmpfs", "-o", f"size={pages * 4096}", "tmpfs", str(disk)):
        pytest.skip("running as root without permission to mount a tmpfs")
    try:
        code, _, err = _run(["precision", str(tiny_onnx), "--to", "fp16", "-o", str(disk / "x.onnx")])
        assert code == 2, err
        _one_paragraph(err)
        assert "disk is full" in err or "Not enough free space" in err
        assert _names(disk) == []  # neither the model alone nor any temporary
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_not_enough_free_space_is_refused_before_the_work(tiny_onnx, tmp_path):
    if not IS_ROOT:
        pytest.skip("a small tmpfs needs root; the file-size-limit test covers full writes as a user")
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)):
        pytest.skip("running as root without permission to mount a tmpfs")
    try:
        code, _, err = _run(["precision", str(tiny_onnx), "--to", "int8", "-o", str(disk / "x.onnx")])
        assert code == 2 and "Not enough free space" in err and "is free" in err, err
        _one_paragraph(err)
        assert _names(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_data_folder_of_non_images(cli, tmp_path):
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    (data / "a" / "one.png").write_text("not an image")
    (data / "b" / "two.png").write_bytes(b"\x89PNG broken")
    result = cli("evaluate", "lookupvit_digits", "--data", str(data))
    assert result.exit_code == 2, result.output
    _one_paragraph(result.output)
    assert "one.png is not a readable image" in result.output
    for f in data.rglob("*.png"):
        f.rename(f.with_suffix(".txt"))
    result = cli("evaluate", "lookupvit_digits", "--data", str(data))
    assert result.exit_code == 2 and "no images found" in result.output and "Traceback" not in result.output


def test_validate_refuses_extra_input_unknown_ops_and_outside_external_data(cli, tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    extra = onnx.ModelProto()
    extra.CopyFrom(model)
    extra.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    onnx.save(extra, str(tmp_path / "extra.onnx"))
    custom = onnx.ModelProto()
    custom.CopyFrom(model)
    custom.graph.node.append(helper.make_node("Foo", [model.graph.output[0].name], ["foo"], domain="com.example"))
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(custom, str(tmp_path / "custom.onnx"))
    (tmp_path / "m").mkdir()
    onnx.save(model, str(tmp_path / "m" / "outside.onnx"), save_as_external_data=True, location="w.data",
              size_threshold=1024)
    reloaded = onnx.load(str(tmp_path / "m" / "outside.onnx"), load_external_data=False)
    for t in reloaded.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../secret.data"  # a file outside the model's folder
    os.replace(tmp_path / "m" / "w.data", tmp_path / "secret.data")
    onnx.save(reloaded, str(tmp_path / "m" / "outside.onnx"))
    cases = {
        "extra.onnx": "has 2 graph inputs (images, extra)",
        "custom.onnx": "com.example:Foo",
        "m/outside.onnx": "outside the model's folder",
    }
    for name, message in cases.items():
        result = cli("validate", str(tmp_path / name))
        assert result.exit_code == 2, result.output
        _one_paragraph(result.output)
        assert message in result.output
    assert not (tmp_path / "m" / "outside.validate.json").exists()


def test_memory_is_estimated_before_allocating(cli):
    for args in (["export", "lookupvit_tiny32", "--grid", "2", "--batch", "100000000", "-o", "unused"],
                 ["export", "lookupvit_tiny32", "--grid", "2", "--image-size", "100000", "-o", "unused"],
                 ["profile", "lookupvit_tiny32", "--grids", "2", "--batch", "1,100000000", "--backends", "ort",
                  "-o", "unused"]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        _one_paragraph(result.output)
        assert "of memory; this machine has" in result.output
    assert not (ROOT / "unused").exists()  # refused before allocating or writing anything


# --- scratch files of the int8/fp8 conversion ----------------------------------------------------

def _tmp_scratch() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).iterdir()
            if p.name.startswith(("lookupvit-quant-", "ort.quant.", "pre.quant."))}


def test_int8_scratch_stays_in_a_private_folder(tiny_onnx, tmp_path, make_readonly):
    """The input's folder is read-only: ONNX Runtime's `<input>-inferred.onnx` cannot go there."""
    from exporter.precision import convert_precision

    src = tmp_path / "in"
    src.mkdir()
    model = src / tiny_onnx.name
    model.write_bytes(tiny_onnx.read_bytes())
    make_readonly(src)
    before = _tmp_scratch()
    out = tmp_path / "out" / "x.int8.onnx"
    report = convert_precision(model, out, "int8", calib_size=16)
    assert report.after["quantize_linear"] > 0
    assert _names(src) == [tiny_onnx.name]
    assert _names(out.parent) == ["x.int8.onnx", "x.int8.onnx.json"]
    assert _tmp_scratch() <= before


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_int8_conversion_leaves_nothing(tiny_onnx, tmp_path, sig, code):
    src = tmp_path / "in"
    src.mkdir()
    model = src / tiny_onnx.name
    model.write_bytes(tiny_onnx.read_bytes())
    out = tmp_path / "out"
    before = _tmp_scratch()
    p = _child(["precision", str(model), "--to", "int8", "--calib-size", "4096", "-o", str(out / "x.int8.onnx")])

    def calibrating() -> bool:  # ONNX Runtime is imported and working in the scratch folder
        return any(".scratch." in n and (out / n / "input").exists() for n in _names(out))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not calibrating():
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    assert calibrating(), "the conversion never made its scratch folder"
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err
    if sig == signal.SIGINT:
        assert "Interrupted" in err and len(err.strip().splitlines()) == 1
    assert _names(out) == []
    assert _names(src) == [tiny_onnx.name]
    assert _tmp_scratch() <= before


# --- stale temporaries ---------------------------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    from exporter import io
    from exporter.onnx_io import save_onnx

    host, dead, me = io._HOST, _dead_pid(), os.getpid()
    # name -> (is a folder, hours since last modified, stale?)
    planted = {
        f".m.onnx.{host}.{dead}.0123abcd": (True, 0, True),  # this host, its process is gone
        f".m.opt.onnx.{host}.{dead}.89abcdef.tmp": (False, 0, True),
        ".m.onnx.k3j4h5g6": (True, 3, True),  # an older version's name, untouched for 3 hours
        ".m.opt.onnx.abcd_123.tmp": (False, 3, True),
        ".m.onnx.otherhost.12.0123abcd": (True, 3, True),  # another host, untouched for 3 hours
        f".n.onnx.{host}.{me}.0123abcd": (True, 3, False),  # a live writer: kept whatever its age
        ".n.onnx.zzzz1111.tmp": (False, 0, False),  # recent: maybe a live writer of an older version
        ".n.onnx.otherhost.12.0123abcd": (True, 0, False),  # another host, recently written
        ".config.abcdefgh": (True, 3, False),  # not ours
        ".bashrc": (False, 3, False),
        "notes.txt": (False, 3, False),
    }
    for name, (folder, hours, _) in planted.items():
        p = tmp_path / name
        if folder:
            p.mkdir()
            (p / "model.onnx").write_text("partial")
        else:
            p.write_text("x")
        t = time.time() - hours * 3600
        for q in [*(p.iterdir() if folder else []), p]:
            os.utime(q, (t, t))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    save_onnx(helper.make_model(graph), tmp_path / "x.onnx", sidecar=lambda sha: {"sha256": sha})
    kept = [name for name, (_, _, stale) in planted.items() if not stale]
    assert _names(tmp_path) == sorted([*kept, "x.onnx", "x.onnx.json"])
    assert json.loads((tmp_path / "x.onnx.json").read_text())["sha256"] == io.sha256_file(tmp_path / "x.onnx")


def test_a_killed_export_is_cleaned_by_the_next_one(tiny_onnx, tmp_path):
    """SIGKILL cannot be caught: the staging folder stays, and the next write there removes it."""
    out = tmp_path / "out"
    p = _child(["export", "lookupvit_tiny32", "--grid", "2", "-o", str(out)])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(n.startswith(".lookupvit_tiny32_g2.onnx.") for n in _names(out)):
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    p.kill()
    p.communicate()
    leftovers = [n for n in _names(out) if n.startswith(".")]
    assert leftovers, "SIGKILL left no temporary (the export finished first?)"
    from exporter.precision import convert_precision

    convert_precision(tiny_onnx, out / "y.fp16.onnx", "fp16")  # any write into that folder
    assert _names(out) == ["y.fp16.onnx", "y.fp16.onnx.json"]


# --- foreign models ------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", ["build_x"])  # build_img: the same with `img`
def test_foreign_forward_argument_name_exports_with_dynamic_batch(tmp_path, factory):
    import torch

    from exporter.backends import ort_session
    from exporter.export import ModelSource, export_onnx
    from tests.foreign import argname_lookupvit

    r = export_onnx(ModelSource(None, f"tests.foreign.argname_lookupvit:{factory}", None, (2, 2)), tmp_path)
    model = onnx.load(str(r.path), load_external_data=False)
    assert model.graph.input[0].name == "images"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    got = ort_session(r.path).run(None, {"images": x})[0]
    with torch.inference_mode():
        want = getattr(argname_lookupvit, factory)((2, 2)).eval()(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 10) and np.allclose(got, want, atol=1e-4)


def test_exporter_failure_shows_its_root_cause(cli, tmp_path):
    result = cli("export", "--model", "tests.foreign.argname_lookupvit:build_data_dependent", "--grid", "2",
                 "-o", str(tmp_path))
    assert result.exit_code == 2
    _one_paragraph(result.output)
    assert "Cause: GuardOnDataDependentSymNode" in result.output
    assert "if x.sum() > 0:" in result.output  # the failing line, at the end of torch's long message
    assert "def forward(self, arg0_1" not in result.output  # torch's graph dump stays out of the terminal


# --- progress, warnings, JSON errors -------------------------------------------------------------

def test_progress_lines_when_stderr_is_not_a_terminal(cli, digits_onnx, tmp_path):
    result = cli("compare", str(digits_onnx), "--precisions", "fp32", "-o", str(tmp_path / "c"), "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays one JSON document
    lines = result.stderr.splitlines()
    assert any(line.startswith("[0:") and "compare" in line and "grid 2: fp32" in line for line in lines), lines
    assert any(line.startswith("[") and line.endswith(": done") for line in lines), lines


def test_run_progress_lines_when_stderr_is_not_a_terminal(capsys):
    from exporter.cli.run import _plain_progress

    ui = _plain_progress()
    ui.start(2)
    ui.step("export lookupvit_digits g2")
    ui.done("export lookupvit_digits g2")
    ui.step("profile latency")
    err = capsys.readouterr().err.splitlines()
    assert err == ["[0:00] run: 2 steps", "[0:00] step 1/2: export lookupvit_digits g2", "[0:00] step 2/2: profile latency"]


def test_fp16_clamp_warnings_become_one_note(tmp_path):
    from exporter.precision import convert_precision

    w = numpy_helper.from_array(np.array([[1e-12, 1e6, -1e-12, -1e6, 1.0]], dtype=np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])
    model = helper.make_model(helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 23)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = convert_precision(tmp_path / "m.onnx", tmp_path / "m.fp16.onnx", "fp16")
    assert not [w for w in caught if "truncated" in str(w.message)]
    clamped = [n for n in report.notes if "clamped" in n]
    assert len(clamped) == 1 and clamped[0].startswith("fp16: 4 constant value(s)")


def test_json_errors_are_a_document_on_stdout(cli, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = cli("export", "lookupvit_tiny32", "--grid", "2", "-o", str(blocker / "sub"), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["exit"] == 2 and "afile" in doc["error"] and "regular file" in doc["hint"]
    assert result.stderr.count("Error: ") == 1 and "Traceback" not in result.stderr
    result = cli("evaluate", "no_such_variant", "--json")  # a UserError
    doc = json.loads(result.stdout)
    assert result.exit_code == 2 and doc["exit"] == 2 and "no_such_variant" in doc["error"]
    result = cli("precision", "m.onnx", "--to", "fp99", "--json")  # a usage error
    doc = json.loads(result.stdout)
    assert result.exit_code == 2 and doc["exit"] == 2 and "fp99" in doc["error"]
