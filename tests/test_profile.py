"""The latency profile: statistics, peak, sweep shape, interleaving with the ViT baseline, the verb."""

import json
import math

import numpy as np
import pytest

from exporter.latency import stats
from exporter.latency.api import ProfileRequest, build_spec, default_baseline, make_timer_factory, resolve_target
from exporter.latency.peak import MatmulPeak, PeakMeasurement, PeakRef, measure_peak
from exporter.latency.sweep import SweepSettings, run_sweep

# --- statistics -----------------------------------------------------------------------------------


def test_percentiles_on_known_samples():
    xs = [float(v) for v in range(1, 11)]  # 1..10, shuffled below
    shuffled = [7.0, 2.0, 10.0, 4.0, 1.0, 9.0, 3.0, 8.0, 6.0, 5.0]
    assert sorted(shuffled) == xs
    assert stats.percentile(shuffled, 50) == pytest.approx(5.5)
    assert stats.percentile(shuffled, 90) == pytest.approx(9.1)
    assert stats.percentile(shuffled, 99) == pytest.approx(9.91)
    assert stats.percentile(shuffled, 0) == 1.0 and stats.percentile(shuffled, 100) == 10.0
    assert stats.percentile([3.0], 99) == 3.0
    assert stats.median([1.0, 100.0, 2.0]) == 2.0


def test_percentiles_match_numpy_linear():
    rng = np.random.default_rng(1)
    for n in (2, 7, 100, 1001):
        xs = rng.exponential(size=n).tolist()
        for q in (50, 90, 99, 12.5):
            assert stats.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q, method="linear")))


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summarize_throughput_and_gflops():
    s = stats.summarize([0.001, 0.002, 0.003, 0.004])  # seconds
    assert (s.n, s.min_ms, s.max_ms) == (4, 1.0, 4.0)
    assert s.p50_ms == pytest.approx(2.5) and s.mean_ms == pytest.approx(2.5)
    assert s.std_ms == pytest.approx(math.sqrt(5 / 3))  # sample standard deviation
    assert s.spread is None and s.rounds == 1 and not s.noisy()  # one round: no spread to judge
    assert stats.throughput(8, 4.0) == pytest.approx(2000.0)  # 8 images per 4 ms
    # 1e9 MACs per image, batch 2, 10 ms: 2 FLOPs per MAC -> 400 GFLOP/s
    assert stats.gflops(10**9, 2, 10.0) == pytest.approx(400.0)


def test_spread_is_the_variation_of_round_medians():
    steady = [[0.010, 0.010, 0.011], [0.010, 0.0101, 0.012], [0.0102, 0.010, 0.013]]  # seconds, 3 rounds
    s = stats.summarize([x for r in steady for x in r], steady)
    medians = [10.0, 10.1, 10.2]  # ms
    assert s.rounds == 3
    assert s.spread == pytest.approx(float(np.std(medians, ddof=1) / np.mean(medians)))
    assert not s.noisy(0.05) and s.noisy(0.001)
    drifting = [[0.010] * 5, [0.020] * 5, [0.010] * 5]  # one round at twice the time: noisy
    d = stats.summarize([x for r in drifting for x in r], drifting)
    assert d.p50_ms == pytest.approx(10.0) and d.spread == pytest.approx(math.sqrt(3) / 4) and d.noisy(0.05)
    assert stats.coefficient_of_variation([1.0]) is None


def test_median_confidence_interval():
    xs = [float(v) for v in range(1, 101)]
    lo, hi = stats.median_ci(xs)
    assert lo < stats.median(xs) < hi
    assert (lo, hi) == (41.0, 60.0)  # ranks 50 -+ 1.96 * sqrt(100) / 2 = 50 -+ 9.8
    assert stats.median_ci([3.0]) == (3.0, 3.0)
    s = stats.summarize([x / 1e3 for x in xs])
    assert (s.ci_low_ms, s.ci_high_ms) == pytest.approx((41.0, 60.0)) and s.p10_ms == pytest.approx(10.9)
    assert (s.p25_ms, s.p75_ms) == pytest.approx((25.75, 75.25))


def test_settings_bound_the_measurement_by_time_and_count():
    st = SweepSettings(warmup=3, warmup_seconds=0.2, iterations=20, seconds=1.0, repeats=5)
    assert st.rounds() == 5 and st.chunk_iterations() == 4 and st.chunk_seconds() == pytest.approx(0.2)
    assert st.predict_seconds(0.001) == pytest.approx(0.2 + 1.0)  # fast calls: the time minimum rules
    assert st.predict_seconds(0.1) == pytest.approx(0.3 + 2.0)  # slow calls: the count minimum rules


# --- peak -----------------------------------------------------------------------------------------


def test_measured_peak_records_every_engine_and_size():
    peak = measure_peak(threads=1, sizes=(64, 128), repeats=3, cuda=False, round_seconds=0.01)
    assert {(m.engine, m.dtype, m.size) for m in peak.measurements} == {
        ("torch", "fp32", 64), ("torch", "fp32", 128), ("onnxruntime", "fp32", 64), ("onnxruntime", "fp32", 128),
        ("onnxruntime", "int8", 64), ("onnxruntime", "int8", 128),
    }
    assert all(m.gflops > 0 and m.device == "cpu" and m.rounds == 3 and m.repeats >= 6 for m in peak.measurements)
    assert all(m.spread is not None and m.spread >= 0 for m in peak.measurements)  # its own spread, over rounds
    assert peak.load is None or peak.load >= 0
    best = peak.best("cpu")
    assert best is not None and best.gflops == max(m.gflops for m in peak.measurements if m.dtype == "fp32")
    assert peak.for_cell("cpu", "fp16") == PeakRef("cpu/fp32", best.gflops, best.spread)  # no fp16 peak: fp32
    int8 = peak.best("cpu", "int8")
    assert int8 is not None and peak.for_cell("cpu", "int8") == PeakRef("cpu/int8", int8.gflops, int8.spread)
    assert peak.for_cell("cuda", "fp16") is None
    again = MatmulPeak.from_dict(json.loads(json.dumps(peak.to_dict())))
    assert again.best("cpu") == best


def test_peak_prefers_the_matching_dtype():
    peak = MatmulPeak(1, [PeakMeasurement("torch", "cuda", "fp32", 8, 10.0, 3),
                          PeakMeasurement("torch", "cuda", "fp16", 8, 40.0, 3, 3, 0.02)])
    assert peak.for_cell("cuda", "fp16") == PeakRef("cuda/fp16", 40.0, 0.02)
    assert peak.for_cell("cuda", "int8") == PeakRef("cuda/fp32", 10.0, None)


# --- targets and the sweep definition ---------------------------------------------------------------


def test_default_baseline_is_the_vit_of_the_same_width():
    assert default_baseline("lookupvit_b16") == "vit_b16"
    assert default_baseline("lookupvit_tiny32") == "vit_tiny32"
    assert default_baseline("lookupvit_b16_features") == "vit_b16"
    assert default_baseline("lookupvit_b16_video") is None  # a video model has no image ViT baseline
    assert default_baseline("lookupvit_digits") is None  # no vit_digits


def test_sweep_shape():
    tgt = resolve_target("lookupvit_tiny32", "2,4")
    req = ProfileRequest([tgt], precisions=("fp32", "int8"), batches=(1, 8), backends=("torch", "ort"))
    spec = build_spec(req)
    assert [m.name for m in spec.models] == ["lookupvit_tiny32", "vit_tiny32"]
    assert spec.models[0].baseline == "vit_tiny32" and spec.models[1].is_baseline
    groups = spec.groups()
    assert len(groups) == 2 * 2 * 2  # backends x precisions x batches
    for g in groups:
        assert [c.grid for c in g.cells] == [(2, 2), (4, 4)]
        assert g.baseline is not None and g.baseline.model == "vit_tiny32" and g.baseline.grid is None
        assert {c.precision for c in g.cells} == {g.baseline.precision}
    cells = [c for g in groups for c in [*g.cells, g.baseline]]
    assert len({c.key for c in cells}) == len(cells) == 24


def test_bad_targets_are_user_errors():
    from exporter.errors import UserError

    with pytest.raises(UserError, match="Did you mean"):
        resolve_target("lookupvit_b61")
    with pytest.raises(UserError, match="does not fit"):
        resolve_target("lookupvit_tiny32", "9")
    with pytest.raises(UserError, match="no compressed grid"):
        resolve_target("vit_b16", "7")
    with pytest.raises(UserError, match="plain ViT"):
        build_spec(ProfileRequest([resolve_target("lookupvit_tiny32")], baseline="lookupvit_digits"))


# --- the sweep, on real PyTorch models -------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_sweep(tmp_path_factory):
    """lookupvit_tiny32 at grids 2 and 4 next to vit_tiny32, PyTorch eager on the CPU."""
    from exporter.pipeline.artefacts import Artefacts, ChainSettings
    from exporter.pipeline.manifest import Manifest

    out = tmp_path_factory.mktemp("sweep")
    req = ProfileRequest(
        [resolve_target("lookupvit_tiny32", "2,4")], precisions=("fp32", "int8"), batches=(1, 2),
        backends=("torch",), settings=SweepSettings(warmup=1, warmup_seconds=0.0, iterations=6, seconds=0.3, repeats=3,
                                                     threads=1),
    )
    artefacts = Artefacts(out, ChainSettings(optimize=False), Manifest(out))
    peak = MatmulPeak(1, [PeakMeasurement("torch", "cpu", "fp32", 64, 50.0, 5, 5, 0.01)])
    return run_sweep(build_spec(req), make_timer_factory(req, artefacts, 1), peak=peak)


def test_sweep_measures_every_cell(torch_sweep):
    from exporter.models import get_variant, model_cost

    ok = torch_sweep.ok()
    assert len(ok) == 2 * 3  # fp32 cells at batches 1 and 2: two grids and the baseline
    assert all(c.precision == "fp32" for c in ok)
    for c in ok:
        # 3 rounds of at least 2 calls and 0.1 s wall time (the calls themselves a little less); the baseline
        # runs after each grid's chunk, so twice as often
        rounds = 3 if c.role == "lookupvit" else 6
        assert c.latency.rounds == rounds and c.latency.n == len(c.samples_ms) >= 2 * rounds
        assert c.latency.seconds >= 0.1 * rounds * 0.8 and sum(c.samples_ms) == pytest.approx(1e3 * c.latency.seconds, rel=1e-3)
        lat = c.latency
        assert lat.p10_ms <= lat.p25_ms <= lat.p50_ms <= lat.p75_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
        assert c.latency.spread is not None and c.noisy == (c.latency.spread > 0.05)
        assert c.load is None or c.load >= 0
        assert c.throughput == pytest.approx(1e3 * c.batch / c.latency.p50_ms)
        assert c.gflops == pytest.approx(2 * c.gmacs * c.batch / (c.latency.p50_ms / 1e3))
        assert c.efficiency == pytest.approx(c.gflops / 50.0) and c.peak == "cpu/fp32"
        assert c.efficiency_error == pytest.approx(c.efficiency * math.hypot(c.latency.spread, 0.01))
    g2 = next(c for c in ok if c.grid == "2" and c.batch == 1)
    assert g2.gmacs == pytest.approx(model_cost(get_variant("lookupvit_tiny32").config, (2, 2)).gmacs)
    vit = model_cost(get_variant("vit_tiny32").config).macs
    assert g2.baseline == "vit_tiny32" and g2.speedup is not None and g2.speedup > 0
    assert g2.analytic_speedup == pytest.approx(vit / model_cost(get_variant("lookupvit_tiny32").config, (2, 2)).macs)


def test_unsupported_precisions_are_reported_not_fatal(torch_sweep):
    int8 = [c for c in torch_sweep.cells if c.precision == "int8"]
    mine = [c for c in int8 if c.role == "lookupvit"]
    assert len(int8) == 6 and len(mine) == 4 and all(c.status == "unsupported" for c in mine)
    assert all("int8" in c.reason and c.latency is None for c in mine)
    # the baseline is made only when a LookupViT cell of its group runs: never loaded here
    base = [c for c in int8 if c.role == "baseline"]
    assert all(c.status == "not run" and "no LookupViT cell" in c.reason for c in base)


def test_baseline_is_interleaved(torch_sweep):
    for batch in (1, 2):
        group = [o for o in torch_sweep.order if f"|b{batch}|" in o["cell"] and "|fp32|" in o["cell"]]
        cells = [c for c in torch_sweep.cells if c.batch == batch and c.precision == "fp32" and c.backend == "torch"]
        n = {c.attempts for c in cells}
        assert len(n) == 1  # a group is timed again as a whole
        assert sorted({o["attempt"] for o in group}) == list(range(n.pop()))
        for attempt in {o["attempt"] for o in group}:  # each attempt: rounds of A/B/A/B
            entries = [o for o in group if o["attempt"] == attempt]
            roles = [o["role"] for o in entries]
            assert roles == ["lookupvit", "baseline"] * (len(roles) // 2) and len(roles) == 3 * 2 * 2
            grids = [o["grid"] for o in entries if o["role"] == "lookupvit"]
            assert grids == ["2", "4"] * 3  # round by round
            assert [o["round"] for o in entries[::4]] == [0, 1, 2]


def test_a_noisy_group_is_timed_again_and_the_quietest_attempt_stands():
    """A timer whose first attempt's middle round is slow (as when another process takes the core):
    the group is timed again, the quiet attempt's samples are reported, and the cell says it took two
    attempts; with retries = 0 the slow attempt stands, flagged noisy.

    Deterministic: the timer returns scripted seconds (no sleeping, no wall clock), chunks are counted
    (``seconds=0``), and the machine's pace is a scripted, always-quiet probe, so no slow phase of the
    machine running the tests can make the sweep time a chunk again and shift the script."""
    from exporter.latency.pace import Pace
    from exporter.latency.peak import MatmulPeak
    from exporter.latency.sweep import Cell, SweepModel, SweepSettings, SweepSpec, run_sweep
    from exporter.latency.timers import Timer

    def make(retries: int):
        calls = {"n": 0}

        def call() -> float:
            calls["n"] += 1
            return 0.004 if 4 <= calls["n"] <= 6 else 0.001  # the first attempt's second round (3 calls a round)

        def factory(cell: Cell) -> Timer:
            return Timer("torch", "cpu", "scripted", call, lambda: None)

        settings = SweepSettings(warmup=0, warmup_seconds=0.0, iterations=9, seconds=0.0, repeats=3,
                                 threads=1, retries=retries, retry_pause=0.0)
        spec = SweepSpec((SweepModel("m", None, (None,)),), ("fp32",), (1,), ("torch",), settings)
        quiet = Pace(budget=60.0, record=None, probe=lambda: 1e-4, sleep=lambda s: None, clock=lambda: 0.0)
        result = run_sweep(spec, factory, peak=MatmulPeak(threads=1), pace=quiet)
        return result.cells[0], calls["n"]

    again, n = make(1)
    assert again.attempts == 2 and not again.noisy
    assert n == 18  # two attempts of three rounds of three calls, none timed again
    assert again.latency is not None and again.latency.p90_ms == pytest.approx(1.0)
    once, n = make(0)
    assert n == 9
    assert once.attempts == 1 and once.noisy
    assert once.latency is not None and once.latency.p50_ms == pytest.approx(1.0)
    assert once.latency.p90_ms == pytest.approx(4.0)


def test_sweep_result_round_trips_through_json(torch_sweep):
    from exporter.latency.sweep import SweepResult

    doc = json.loads(json.dumps(torch_sweep.to_dict()))
    again = SweepResult.from_dict(doc)
    assert again.cells == torch_sweep.cells
    assert again.to_dict() == doc


def test_plots_from_a_sweep(torch_sweep, tmp_path):
    from exporter.latency.plots import AccuracyPoint, plot_all

    acc = [AccuracyPoint("lookupvit_tiny32", "2", "fp32", 50.0, "test"),
           AccuracyPoint("lookupvit_tiny32", "4", "fp32", 60.0, "test")]
    files = plot_all(torch_sweep, tmp_path, acc)
    assert sorted(p.name for p in files) == ["accuracy_latency.png", "latency_lookupvit_tiny32.png", "speedup.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files)


# --- the verb -------------------------------------------------------------------------------------


def test_profile_verb_json_on_onnxruntime(cli, tmp_path):
    from exporter.backends.tensorrt.env import tensorrt_usable

    has_trt = tensorrt_usable()
    if not has_trt:  # the preflight: a backend named on the command line that cannot run here is an error
        refused = cli("profile", "lookupvit_tiny32", "--backends", "ort,trt", "-o", str(tmp_path / "trt"))
        assert refused.exit_code == 2 and "TensorRT" in refused.output and not (tmp_path / "trt").exists()
    backends = "ort,trt" if has_trt else "ort"
    result = cli("profile", "lookupvit_tiny32", "--grids", "2", "--backends", backends, "--iters", "4", "--seconds", "0",
                 "--repeats", "2", "--warmup", "1", "--threads", "1", "--peak-sizes", "64,128", "--no-optimize",
                 "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout is one JSON document
    cells = {(c["model"], c["backend"]): c for c in doc["cells"]}
    assert cells[("lookupvit_tiny32", "ort")]["status"] == "ok"
    assert cells[("vit_tiny32", "ort")]["role"] == "baseline"
    assert cells[("lookupvit_tiny32", "ort")]["speedup"] > 0
    if has_trt:
        assert cells[("lookupvit_tiny32", "trt")]["status"] == "ok"
    assert doc["peak"]["threads"] == 1 and doc["threads"] == 1
    assert (tmp_path / "latency.json").is_file()
    assert (tmp_path / "lookupvit_tiny32" / "g2" / "onnx" / "lookupvit_tiny32_g2.onnx").is_file()
    assert all((tmp_path / p).is_file() for p in doc["plots"]) and "plots/speedup.png" in doc["plots"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["lookupvit_b61"], "Did you mean"),
        (["lookupvit_tiny32", "--iters", "0"], "at least 1"),
        (["lookupvit_tiny32", "--seconds", "-1"], "must not be negative"),
        (["lookupvit_tiny32", "--backends", "ort,onnx"], "is not a backend this verb runs"),
        (["lookupvit_tiny32", "--batch", "0"], "positive integers"),
        (["lookupvit_tiny32", "--precisions", "fp4"], "Unknown precision"),
    ],
)
def test_profile_bad_input_exits_2(cli, args, message):
    result = cli("profile", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


# --- a given graph is described by what it declares --------------------------------------------------


@pytest.fixture(scope="module")
def int8_graph(tmp_path_factory):
    """lookupvit_digits at grid 2, exported and quantized to int8 by the precision stage."""
    from exporter.export import export_onnx, resolve_variant_source
    from exporter.precision import convert_precision

    folder = tmp_path_factory.mktemp("int8")
    exported = export_onnx(resolve_variant_source("lookupvit_digits", grid=(2, 2)), folder)
    out = folder / "lookupvit_digits_g2.opt.int8.onnx"
    convert_precision(exported.path, out, "int8", calib="digits", calib_size=16)
    return out


def test_an_int8_graph_is_profiled_as_int8_and_not_converted_again(cli, int8_graph, tmp_path):
    target = resolve_target(str(int8_graph))
    assert (target.kind, target.precision, target.precision_source) == ("onnx", "int8", "metadata")
    assert target.variant == "lookupvit_digits" and target.grids == ((2, 2),)
    beside = sorted(p.name for p in int8_graph.parent.iterdir())
    out = tmp_path / "prof"
    result = cli("profile", str(int8_graph), "--precisions", "int8", "--backends", "torch,ort", "--iters", "4",
                 "--seconds", "0", "--repeats", "2", "--warmup", "1", "--warmup-seconds", "0", "--threads", "1",
                 "--peak-sizes", "64", "-o", str(out), "--json")
    assert result.exit_code == 2, result.output  # the torch cell cannot run: not everything asked for ran
    doc = json.loads(result.stdout)
    cells = {c["backend"]: c for c in doc["cells"]}
    ort = cells["ort"]
    assert (ort["status"], ort["precision"], ort["peak"]) == ("ok", "int8", "cpu/int8")  # labelled and divided as int8
    assert cells["torch"]["status"] == "unsupported" and "int8" in cells["torch"]["reason"]
    assert sorted(p.name for p in int8_graph.parent.iterdir()) == beside  # nothing written beside the graph
    assert not list(out.rglob("*.onnx"))  # never optimised or converted again (no ...int8.opt.onnx)


def test_another_precision_of_a_given_graph_is_refused_before_any_work(cli, int8_graph, tmp_path):
    out = tmp_path / "prof"
    result = cli("profile", str(int8_graph), "--precisions", "fp32,int8", "--backends", "ort", "-o", str(out))
    assert result.exit_code == 2 and "int8 graph" in result.output and "Traceback" not in result.output
    assert not out.exists()  # refused before the peak, the baseline or any conversion


# --- plots and the report's settings ------------------------------------------------------------------


def test_one_axis_rule_for_latency():
    from exporter.latency.plots import latency_scale

    assert latency_scale([1.0, 2.0, 29.0]) == "linear"
    assert latency_scale([1.0, 31.0]) == "log"
    assert latency_scale([]) == "linear"


def test_point_labels_do_not_overlap():
    from exporter.latency.plots import _pyplot, place_labels

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1.0, 1.01, 1.02, 5.0], [90.0, 90.0, 90.05, 95.0], "o")
    crowd = [(1.0 + 0.01 * i, 90.0, f"g{i} int8") for i in range(8)]  # eight labels on one spot
    place_labels(ax, [(1.0, 90.0, "g1"), (1.01, 90.0, "g2"), (1.02, 90.05, "g3"), (5.0, 95.0, "g6"), *crowd])
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    assert len(boxes) == 12
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    plt.close(fig)


def test_settings_table_shows_only_keys_of_the_backend():
    from exporter.profiles import load_profile
    from exporter.run.report import settings_rows

    cpu = dict(settings_rows(load_profile("cpu").to_dict()))
    assert "benchmark.seconds" in cpu and "benchmark.noise_threshold" in cpu and "batch.opt" in cpu
    assert not [k for k in cpu if k.startswith(("builder", "compatibility", "build_hash", "gpu", "compute_capability"))]
    assert "batch.max" not in cpu and "benchmark.cuda_graphs" not in cpu
    assert cpu["models.latency"] == "lookupvit_b16 (grids 3 5 7 10)"
    h100 = dict(settings_rows(load_profile("h100").to_dict()))
    assert h100["builder.workspace_bytes"] == str(16 << 30) and h100["benchmark.cuda_graphs"] == "True"


def test_noise_advice_names_an_overloaded_machine():
    from exporter.latency.sweep import noise_advice

    assert "exceeds the 2 cores" in noise_advice([5.2, 4.0, 3.0], 2) and "--threads" in noise_advice([5.2], 2)
    assert "quieter machine" in noise_advice([0.4, 0.3, 0.2], 2) and "quieter machine" in noise_advice([], None)


def test_the_peak_is_measured_at_each_thread_count_and_retimes_a_round_that_met_a_slow_phase():
    """With threads = "auto" a cell on one thread is divided by the one-thread peak; a round in which
    the machine's pace probe was slow is timed again (a scripted probe: slow once, then quiet)."""
    from exporter.latency.pace import Pace

    probes = iter([1e-4] * 3 + [3e-4] + [1e-4] * 50)  # per round: before (settle) and after; round 2 ends slow
    pace = Pace(60.0, record=None, probe=lambda: next(probes), sleep=lambda s: None, clock=lambda: 0.0)
    peak = measure_peak(threads=2, sizes=(64,), repeats=3, cuda=False, round_seconds=0.01, thread_counts=(1, 2),
                        pace=pace)
    assert {(m.engine, m.dtype, m.threads) for m in peak.measurements} == {
        (e, d, t) for e, d in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")) for t in (1, 2)}
    assert all(m.rounds == 3 for m in peak.measurements)  # three kept rounds, one more timed and discarded
    assert pace.retimed == 1
    one = peak.best("cpu", "fp32", 1)
    assert one is not None and one.threads == 1
    assert peak.for_cell("cpu", "fp32", 1) == PeakRef("cpu/fp32 (1 thread)", one.gflops, one.spread)
    assert peak.for_cell("cpu", "fp32").label == "cpu/fp32" and peak.best("cpu").threads == 2
    assert "cpu/fp32@1" in peak.to_dict()["peaks"]
