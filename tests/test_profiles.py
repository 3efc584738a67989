"""Deployment profiles: the shipped files, parsing, every validation error, lookup and the CLI."""

import json
import sys
from pathlib import Path

import pytest

from exporter.errors import UserError
from exporter.profiles import (
    PACKAGE_PROFILES,
    gpu_has_precision,
    list_profiles,
    load_profile,
    load_profile_file,
    parse_size,
    profile_files,
)

REQUIRED = ["cpu", "h100", "h200", "a100", "l4", "rtx4090", "jetson-orin"]
SHIPPED = sorted(PACKAGE_PROFILES.glob("*.toml"))

VALID = """\
description = "test GPU"
gpu = "Test GPU"
backend = "tensorrt"
compute_capability = "9.0"
precisions = ["fp32", "fp16", "fp8"]

[models]
accuracy = ["lookupvit_digits"]
latency = ["lookupvit_b16"]
baseline = "vit_b16"

[grids]
accuracy = [1, 2, 4]
latency = [3, "7x7", 14]

[batch]
min = 1
opt = [1, 8]
max = 16

[builder]
optimization_level = 4
workspace = "2GiB"
timing_cache = "tc/test.cache"

[compatibility]
hardware = "none"
version_compatible = false

[benchmark]
warmup = 5
iterations = 50
seconds = 1.5
threads = 2
cuda_graphs = true
"""


def write(tmp_path: Path, text: str, name: str = "test") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_required_profiles_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_passes_the_check(path, cli):
    p = load_profile_file(path)
    assert p.name == path.stem
    result = cli("profiles", "check", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {path}")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_precisions_follow_the_hardware(path):
    p = load_profile_file(path)
    assert "fp32" in p.precisions
    if p.compute_capability is None:
        assert p.backend in ("onnxruntime", "openvino")
        return
    cc = p.compute_capability
    # fp8 exactly where the hardware has it (sm_89, sm_90+), bf16 only from sm_80
    assert ("fp8" in p.precisions) == (cc == (8, 9) or cc >= (9, 0))
    if "bf16" in p.precisions:
        assert cc >= (8, 0)
    assert p.batch.min <= min(p.batch.opt) and max(p.batch.opt) <= p.batch.max
    assert p.builder.timing_cache and p.benchmark.cuda_graphs


def test_shipped_compute_capabilities():
    cc = {n: load_profile(n).compute_capability for n in REQUIRED}
    assert cc == {
        "cpu": None, "h100": (9, 0), "h200": (9, 0), "a100": (8, 0), "l4": (8, 9), "rtx4090": (8, 9),
        "jetson-orin": (8, 7),
    }


def test_cpu_profile_is_the_embedded_default():
    from exporter.models import get_variant

    p = load_profile("cpu")
    assert p.backend == "onnxruntime" and not p.is_tensorrt
    (acc,) = p.models.accuracy
    assert acc.variant == "lookupvit_digits"
    assert acc.grids == get_variant("lookupvit_digits").config.default_grids  # "at its grids"
    (lat,) = p.models.latency
    assert lat.variant == "lookupvit_b16" and lat.grids == ((3, 3), (5, 5), (7, 7), (10, 10))
    assert p.models.baseline is not None and p.models.baseline.variant == "vit_b16"
    assert [r.variant for r in p.models.all] == ["lookupvit_digits", "lookupvit_b16", "vit_b16"]


def test_parsed_profile_exposes_everything(tmp_path):
    p = load_profile_file(write(tmp_path, VALID))
    assert p.name == "test" and p.gpu == "Test GPU" and p.sm == "sm_90"
    assert p.precisions == ("fp32", "fp16", "fp8")
    assert p.models.latency[0].grids == ((3, 3), (7, 7), (14, 14))
    assert p.models.accuracy[0].grid_labels == ["1", "2", "4"]
    assert p.batch.optimization_profiles() == [(1, 1, 16), (1, 8, 16)]
    assert p.batch_sizes == (1, 8)
    assert p.builder.optimization_level == 4 and p.builder.workspace_bytes == 2 << 30
    assert p.timing_cache_path(tmp_path / "out") == tmp_path / "out" / "tc" / "test.cache"
    assert p.compatibility.hardware == "none" and not p.compatibility.version_compatible
    b = p.benchmark
    assert (b.warmup, b.iterations, b.seconds, b.threads, b.cuda_graphs) == (5, 50, 1.5, 2, True)
    d = p.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["models"]["baseline"] == "vit_b16" and d["compute_capability"] == "9.0"


def test_defaults_when_tables_are_left_out(tmp_path):
    text = 'backend = "tensorrt"\ncompute_capability = "8.0"\nprecisions = ["fp16"]\n'
    p = load_profile_file(write(tmp_path, text, "minimal"))
    assert p.batch.optimization_profiles() == [(1, 1, 1)]
    assert p.builder.timing_cache == "timing-cache/minimal.cache"
    assert p.models.all == []
    text += '[models]\nlatency = ["lookupvit_b16"]\n[builder]\ntiming_cache = false\n'
    p = load_profile_file(write(tmp_path, text, "minimal"))
    assert p.models.latency[0].grids == ((3, 3), (5, 5), (7, 7), (10, 10))  # the variant's defaults
    assert p.timing_cache_path(tmp_path) is None


@pytest.mark.parametrize(
    "old,new,message,hint",
    [
        # unknown keys, with the closest valid key
        ('precisions = ', 'precision = ', "unknown key 'precision'", "Did you mean 'precisions'?"),
        ("optimization_level = 4", "optimisation_level = 4", "unknown key 'builder.optimisation_level'",
         "Did you mean 'builder.optimization_level'?"),
        ("cuda_graphs = true", "cuda_graph = true", "unknown key 'benchmark.cuda_graph'",
         "Did you mean 'benchmark.cuda_graphs'?"),
        ("[grids]", "[grids]\nlatecy = [3]", "unknown key 'grids.latecy'", "Did you mean 'grids.latency'?"),
        # batch ordering
        ("min = 1", "min = 9", "min = 9 is larger than opt = 1", "min <= every opt <= max"),
        ("max = 16", "max = 4", "opt = 8 is larger than max = 4", "min <= every opt <= max"),
        ("opt = [1, 8]", "opt = [1, 1]", "batch.opt: expected distinct batches", None),
        # grids larger than the model's lookup grid
        ('latency = [3, "7x7", 14]', "latency = [3, 15]", "grids.latency (lookupvit_b16): Grid 15",
         "no larger than"),
        ("accuracy = [1, 2, 4]", "accuracy = [1, 9]", "grids.accuracy (lookupvit_digits): Grid 9",
         "no larger than"),
        ('latency = [3, "7x7", 14]', 'latency = ["seven"]', "Cannot read grid 'seven'", None),
        # precisions the GPU lacks, or unknown ones
        ('compute_capability = "9.0"', 'compute_capability = "8.0"',
         "fp8 is not available on compute capability 8.0", 'Remove "fp8"'),
        ('compute_capability = "9.0"\nprecisions = ["fp32", "fp16", "fp8"]',
         'compute_capability = "7.5"\nprecisions = ["fp32", "bf16"]',
         "bf16 is not available on compute capability 7.5: bf16 needs sm_80 or newer", 'Remove "bf16"'),
        ('precisions = ["fp32", "fp16", "fp8"]', 'precisions = ["fp32", "fp4"]', "unknown precision 'fp4'", None),
        ('precisions = ["fp32", "fp16", "fp8"]', 'precisions = "fp16"', "precisions: expected a list", None),
        ('precisions = ["fp32", "fp16", "fp8"]', "precisions = []", "precisions: expected at least one", None),
        ('compute_capability = "9.0"', 'compute_capability = "6.1"', "older than TensorRT 10 supports", None),
        ('compute_capability = "9.0"', 'compute_capability = "nine"', "compute_capability: expected a compute", None),
        ('compute_capability = "9.0"\n', "", "missing key 'compute_capability'", "9.0"),
        # bad types and values
        ("optimization_level = 4", 'optimization_level = "4"', "builder.optimization_level: expected an integer 0..5",
         None),
        ("optimization_level = 4", "optimization_level = 6", "expected an integer 0..5, got 6", None),
        ('workspace = "2GiB"', 'workspace = "2GB"', "builder.workspace: expected a positive size", "GiB"),
        ("max = 16", "max = 16.5", "batch.max: expected a positive integer", None),
        ("opt = [1, 8]", "opt = [0, 8]", "batch.opt: expected a positive integer or a non-empty list", None),
        ("cuda_graphs = true", 'cuda_graphs = "yes"', "benchmark.cuda_graphs: expected true or false", None),
        ("seconds = 1.5", "seconds = -1", "benchmark.seconds: expected a non-negative number", None),
        ("iterations = 50", "iterations = 0", "benchmark.iterations: expected a positive integer", None),
        ('backend = "tensorrt"', 'backend = "trt"', "backend: expected one of onnxruntime, openvino, tensorrt", None),
        ('backend = "tensorrt"\n', "", "missing key 'backend'", None),
        ('hardware = "none"', 'hardware = "ampere"', "compatibility.hardware: expected one of none, ampere_plus", None),
        ("version_compatible = false", "version_compatible = false\nexclude_lean_runtime = true",
         "exclude_lean_runtime = true needs version_compatible = true", None),
        ("[batch]", "batch = 4\n[batch2]", "unknown key 'batch2'", "Did you mean 'batch'?"),
        # models
        ('latency = ["lookupvit_b16"]', 'latency = ["lookupvit_b61"]', "models.latency: Unknown variant", "lookupvit_b16"),
        ('baseline = "vit_b16"', 'baseline = "lookupvit_b16"', "models.baseline: lookupvit_b16 is a LookupViT",
         "vit_b16"),
        ('latency = ["lookupvit_b16"]', 'latency = ["vit_b16"]', "vit_b16 is a plain ViT", "models.baseline"),
        ('accuracy = ["lookupvit_digits"]\n', "", "grids.accuracy is set but models.accuracy lists no model", None),
        # TOML syntax
        ("[builder]", "[builder", "not valid TOML", None),
        # absurd values, bounded
        ('gpu = "Test GPU"', 'gpu = "Test GPU"\ngpu_memory = "1GiB"', "larger than the GPU's memory", "workspace"),
        ('workspace = "2GiB"', 'workspace = "2TiB"', "larger than any GPU's memory", None),
        ('workspace = "2GiB"', f'workspace = "{"9" * 400}GiB"', "builder.workspace: expected a positive size", "GiB"),
        ("max = 16", f"max = {'9' * 5000}", "not valid TOML", None),  # past Python's integer digit limit
        ('gpu = "Test GPU"', 'gpu = "Test GPU"\ngpu_memory = "2TiB"', "outside 1 B .. 512 GiB", "80GiB"),
        ("max = 16", "max = 1000000", "batch: max = 1000000 is beyond 65536", "max = 128"),
        ("iterations = 50", "iterations = 100000000", "benchmark.iterations = 100000000 is beyond", None),
        ("seconds = 1.5", "seconds = 86400", "benchmark.seconds = 86400 is beyond 3600 seconds", None),
        ('baseline = "vit_b16"', 'baseline = "vit_b16"\nlatency_precisions = ["int8"]',
         "models.latency_precisions lists ['int8']", "subset"),
        ('baseline = "vit_b16"', 'baseline = "vit_b16"\nlatency_batches = [64]', "models.latency_batches lists [64]",
         "batch.opt"),
    ],
)
def test_every_validation_error_names_key_and_fix(tmp_path, old, new, message, hint):
    text = edit(VALID, old, new)
    with pytest.raises(UserError) as e:
        load_profile_file(write(tmp_path, text))
    assert message in e.value.message, e.value.message
    assert str(tmp_path / "test.toml") in e.value.message  # errors name the file
    if hint:
        assert e.value.hint and hint in e.value.hint, e.value.hint


@pytest.mark.parametrize(
    "text,message",
    [
        ('backend = "onnxruntime"\nprecisions = ["fp32"]\ncompute_capability = "9.0"\n', "runs on the CPU"),
        ('backend = "onnxruntime"\nprecisions = ["fp32"]\n[builder]\noptimization_level = 3\n',
         "[builder] applies to TensorRT builds"),
        ('backend = "onnxruntime"\nprecisions = ["fp32"]\n[benchmark]\ncuda_graphs = true\n', "has no CUDA graphs"),
        ('backend = "onnxruntime"\nprecisions = ["fp8"]\n', "fp8 has no ONNX Runtime CPU kernels"),
        ('backend = "tensorrt"\ncompute_capability = "7.5"\nprecisions = ["fp16"]\n'
         '[compatibility]\nhardware = "ampere_plus"\n', "needs an Ampere or newer GPU"),
    ],
)
def test_backend_specific_errors(tmp_path, text, message):
    with pytest.raises(UserError) as e:
        load_profile_file(write(tmp_path, text))
    assert message in e.value.message


OPENVINO = """\
backend = "openvino"
precisions = ["fp32", "int8"]

[models]
accuracy = ["lookupvit_digits"]

[benchmark]
threads = 4
hint = "throughput"
"""


def test_an_openvino_profile(tmp_path):
    p = load_profile_file(write(tmp_path, OPENVINO))
    assert p.backend == "openvino" and not p.is_tensorrt and p.compute_capability is None
    assert p.precisions == ("fp32", "int8")
    assert (p.benchmark.hint, p.benchmark.threads) == ("throughput", 4)
    assert p.to_dict()["benchmark"]["hint"] == "throughput"
    assert "hint" not in load_profile("cpu").to_dict()["benchmark"]  # OpenVINO's key, shown for OpenVINO only
    default = load_profile_file(write(tmp_path, edit(OPENVINO, 'hint = "throughput"\n', ""), "default"))
    assert default.benchmark.hint == "latency"
    shipped = load_profile("cpu-openvino")  # the cpu profile's models, on OpenVINO
    cpu = load_profile("cpu")
    assert shipped.backend == "openvino" and shipped.benchmark.hint == "latency"
    assert shipped.models == cpu.models and shipped.batch == cpu.batch
    assert set(shipped.precisions) == set(cpu.precisions) - {"fp16"}


@pytest.mark.parametrize(
    "old,new,message,hint",
    [
        ('precisions = ["fp32", "int8"]', 'precisions = ["fp32", "fp16"]',
         "precisions: fp16 has no OpenVINO CPU kernels worth measuring; expected some of fp32, int8", 'Remove "fp16"'),
        ('hint = "throughput"', 'hint = "fastest"', "benchmark.hint: expected one of 'latency', 'throughput'", None),
        ('backend = "openvino"', 'backend = "onnxruntime"',
         "benchmark.hint = 'throughput' is OpenVINO's performance hint, but backend = \"onnxruntime\"",
         'set backend = "openvino"'),
        ('backend = "openvino"', 'backend = "openvino"\ncompute_capability = "9.0"',
         'compute_capability is set but backend = "openvino" runs on the CPU', "Remove compute_capability"),
        ('backend = "openvino"', 'backend = "openvino"\ngpu_memory = "8GiB"', "gpu_memory is set but backend", None),
        ("[benchmark]", "[builder]\noptimization_level = 3\n[benchmark]", "[builder] applies to TensorRT builds",
         "Remove the [builder] table"),
        ("[benchmark]", '[compatibility]\nhardware = "none"\n[benchmark]', "[compatibility] applies to TensorRT", None),
        ("threads = 4", "cuda_graphs = true", 'backend = "openvino" has no CUDA graphs', None),
        ("threads = 4", "thread = 4", "unknown key 'benchmark.thread'", "Did you mean 'benchmark.threads'?"),
        ("threads = 4", 'threads = "many"', 'benchmark.threads: expected a non-negative integer (0: every core) or "auto"', None),
        ("threads = 4", "pace_wait = -1", "benchmark.pace_wait", None),
    ],
)
def test_openvino_profile_errors_name_key_and_fix(tmp_path, old, new, message, hint):
    with pytest.raises(UserError) as e:
        load_profile_file(write(tmp_path, edit(OPENVINO, old, new)))
    assert message in e.value.message, e.value.message
    if hint:
        assert e.value.hint and hint in e.value.hint, e.value.hint


def test_threads_auto_and_pace_wait_in_a_profile(tmp_path):
    p = load_profile_file(write(tmp_path, edit(OPENVINO, "threads = 4", 'threads = "auto"\npace_wait = 12.5')))
    assert (p.benchmark.threads, p.benchmark.pace_wait) == ("auto", 12.5)
    from exporter.latency.pace import PACE_WAIT
    from exporter.profiles.profile import BenchmarkSettings

    assert BenchmarkSettings().pace_wait == PACE_WAIT  # the profile's default is the sweep's
    assert load_profile("cpu").benchmark.threads == "auto"


def test_an_openvino_profile_without_openvino_stops_before_any_work(cli, tmp_path, monkeypatch):
    # a None entry makes `import openvino` raise ImportError, as on a machine without the extra
    monkeypatch.setitem(sys.modules, "openvino", None)
    out = tmp_path / "run"
    result = cli("run", "--profile", "cpu-openvino", "-o", str(out))
    assert result.exit_code == 2, result.output
    assert "OpenVINO is not installed" in result.output and "pip install -e '.[openvino]'" in result.output
    assert not out.exists()  # nothing exported, nothing written


def test_hardware_rules():
    assert gpu_has_precision((8, 9), "fp8") and gpu_has_precision((9, 0), "fp8") and gpu_has_precision((12, 0), "fp8")
    assert not gpu_has_precision((8, 0), "fp8") and not gpu_has_precision((8, 7), "fp8")
    assert gpu_has_precision((8, 0), "bf16") and not gpu_has_precision((7, 5), "bf16")
    assert all(gpu_has_precision((7, 5), p) for p in ("fp32", "fp16", "int8"))
    assert parse_size("512MiB", "w") == 512 << 20 and parse_size(1024, "w") == 1024
    assert parse_size("1.5GiB", "w") == 3 << 29


def test_build_hash_covers_only_engine_settings(tmp_path):
    base = load_profile_file(write(tmp_path, VALID)).build_hash
    for old, new in [("optimization_level = 4", "optimization_level = 5"), ("max = 16", "max = 32"),
                     ('workspace = "2GiB"', 'workspace = "4GiB"'), ("version_compatible = false", "version_compatible = true"),
                     ('compute_capability = "9.0"', 'compute_capability = "10.0"'), ("opt = [1, 8]", "opt = [1, 4]")]:
        assert load_profile_file(write(tmp_path, edit(VALID, old, new))).build_hash != base, new
    for old, new in [("iterations = 50", "iterations = 99"), ("accuracy = [1, 2, 4]", "accuracy = [1]"),
                     ('timing_cache = "tc/test.cache"', 'timing_cache = "elsewhere.cache"'),
                     ('description = "test GPU"', 'description = "renamed"')]:
        assert load_profile_file(write(tmp_path, edit(VALID, old, new))).build_hash == base, new


def test_lookup_by_name_path_and_env(tmp_path, monkeypatch):
    assert load_profile("h100").path == PACKAGE_PROFILES / "h100.toml"
    assert load_profile(str(PACKAGE_PROFILES / "a100.toml")).name == "a100"
    assert load_profile(str(PACKAGE_PROFILES / "l4")).name == "l4"  # .toml may be left off a path
    with pytest.raises(UserError) as e:
        load_profile("h10")
    assert "Unknown profile 'h10'" in e.value.message and "h100" in e.value.hint
    with pytest.raises(UserError, match="does not exist"):
        load_profile(str(tmp_path / "nope.toml"))

    extra = tmp_path / "mine"
    extra.mkdir()
    write(extra, VALID, "lab-gpu")
    write(extra, "backend = 3\n", "broken")
    monkeypatch.setenv("LOOKUPVIT_PROFILES", str(extra))
    assert load_profile("lab-gpu").gpu == "Test GPU"
    assert profile_files()["lab-gpu"] == extra.resolve() / "lab-gpu.toml"
    rows = {r.name: r for r in list_profiles()}
    assert rows["broken"].profile is None and "backend" in rows["broken"].error
    assert rows["h100"].profile is not None


def test_profiles_cli_lists_table_and_json(cli):
    out = cli("profiles").output
    for name in REQUIRED:
        assert name in out
    assert "sm_90" in out and "onnxruntime" in out
    result = cli("profiles", "--json")
    assert result.exit_code == 0
    docs = {d["name"]: d for d in json.loads(result.output)}  # stdout is one JSON document
    assert set(REQUIRED) <= set(docs)
    assert docs["h100"]["precisions"] == ["fp32", "fp16", "bf16", "int8", "fp8"]
    assert docs["a100"]["compute_capability"] == "8.0"
    assert docs["cpu"]["models"]["accuracy"][0] == {"variant": "lookupvit_digits", "grids": ["1", "2", "3", "4", "6"]}


def test_profiles_check_cli_errors(cli, tmp_path):
    bad = write(tmp_path, edit(VALID, "max = 16", "max = 4"), "broken-example")
    result = cli("profiles", "check", str(tmp_path / "broken-example"))
    assert result.exit_code == 2
    assert "opt = 8 is larger than max = 4" in result.output and "Traceback" not in result.output
    result = cli("profiles", "check", str(bad), "--json")
    assert result.exit_code == 2
    result = cli("profiles", "check", "h100", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["profile"]["name"] == "h100"
