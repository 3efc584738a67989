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
