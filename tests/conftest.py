import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def cli():
    """Invoke the ``lookupvit`` click group in-process; returns click's Result."""
    from click.testing import CliRunner

    from exporter.cli import main

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke
