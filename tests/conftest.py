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


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A real run folder, made once per test session: `lookupvit run` of the trained digits model on the
    lightest ONNX Runtime profile (tests/profiles/digits-only.toml). Tests copy it before changing it."""
    from pathlib import Path

    from click.testing import CliRunner

    from exporter.cli import main

    profile = Path(__file__).resolve().parent / "profiles" / "digits-only.toml"
    out = tmp_path_factory.mktemp("digits-run") / "run"
    with pytest.MonkeyPatch.context() as mp:  # made before the per-test cache fixture: the same cache folder
        mp.setenv("LOOKUPVIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        r = CliRunner().invoke(main, ["run", "--profile", str(profile), "-o", str(out), "--repeats", "2"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out
