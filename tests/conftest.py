import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (`make test` runs two workers, one per core) each worker computes on one thread.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

# Test files whose tests share a session fixture run on one worker (the fixture is then made once).
SHARED_WORKER = {"test_run": "quickstart", "test_readme": "quickstart", "test_cluster": "quickstart",
                 "test_untrusted": "digits_run", "test_untrusted_property": "digits_run"}
# The groups that take longest (seconds summed over their tests on the 2-core CI machine, `pytest
# --durations=0`), queued first so that the two workers end together (longest job first); the other
# files follow in collection order. Measured, not asserted: a wrong order costs minutes, not a failure.
LONGEST_FIRST = ("quickstart", "test_tensorrt_builds", "test_dynamic_grid", "digits_run",
                 "test_openvino", "test_triton_live", "test_export", "test_preflight", "test_compare")


def _group(item: pytest.Item) -> str:
    name = item.module.__name__.rsplit(".", 1)[-1] if item.module is not None else item.nodeid
    return SHARED_WORKER.get(name, name)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks into the test ids
def pytest_collection_modifyitems(config, items):
    """With `pytest -n 2 --dist loadgroup --no-loadscope-reorder` (`make test`): each test file runs
    on one worker, so its module fixtures (exports, a Ray cluster, a Triton server, the TensorRT graphs)
    are made once and never twice at a time; files sharing a session fixture share a worker; the
    longest groups are queued first. Without xdist the marks change nothing."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))  # stable: a file's tests stay in order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """On pytest-xdist's controller: refuse to run when the groups were lost (pytest 9 keeps a test's id
    where pytest-xdist 3.8 cannot suffix it, so every file was split over both workers and each worker
    made its module fixtures again; the test extra pins pytest below 9 for this)."""
    if node.config.getoption("dist", None) != "loadgroup":
        return
    lost = [i for i in ids if "@" not in i.rsplit("]", 1)[-1]]
    if lost:
        pytest.exit(f"pytest-xdist did not group {len(lost)} tests by file (e.g. {lost[0]}): pytest "
                    f"{pytest.__version__} with --dist loadgroup. Install the test extra's versions: "
                    "pip install -e '.[test]'.", returncode=4)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Per-machine records (the pace reference, exporter.latency.pace) go to a folder of the test
    session's, never to the user's cache: set for the whole session, before any session fixture runs
    the tool (its subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKUPVIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture
def cli():
    """Invoke the ``lookupvit`` click group in-process; returns click's Result."""
    from click.testing import CliRunner

    from exporter.cli import main

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


TINY = Path(__file__).resolve().parent / "profiles" / "tiny.toml"
QUICKSTART = "lookupvit run --profile cpu -o runs/quickstart"  # the README's quick start, as written there


def files_by_mtime(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory, _session_cache):
    """The README's quick-start command with the tiny profile in place of cpu (the same shape: an
    accuracy model, a latency model and its ViT, on ONNX Runtime), run once per test session:
    (folder, click result, file mtimes after the run)."""
    from click.testing import CliRunner

    from exporter.cli import main

    out = tmp_path_factory.mktemp("run") / "quickstart"
    args = QUICKSTART.split()[1:]
    args[args.index("cpu")] = str(TINY)
    args[args.index("runs/quickstart")] = str(out)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return out, result, files_by_mtime(out)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, _session_cache):
    """A real run folder, made once per test session: `lookupvit run` of the trained digits model on the
    lightest ONNX Runtime profile (tests/profiles/digits-only.toml). Tests copy it before changing it."""
    from click.testing import CliRunner

    from exporter.cli import main

    profile = Path(__file__).resolve().parent / "profiles" / "digits-only.toml"
    out = tmp_path_factory.mktemp("digits-run") / "run"
    r = CliRunner().invoke(main, ["run", "--profile", str(profile), "-o", str(out), "--repeats", "2"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out
