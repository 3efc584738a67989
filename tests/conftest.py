from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Per-machine records (the pace reference, exporter.latency.pace) go to a folder of the test
    session's, never to the user's cache."""
    monkeypatch.setenv("LOOKUPVIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


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
def quickstart_run(tmp_path_factory):
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
