"""Every command of the README runs as written: the shell blocks of its quick tour are extracted and
run in order, in an empty folder, through the CLI in-process. The slow one (`lookupvit run --profile
cpu -o runs/quickstart`, minutes) runs on the tiny profile of the same shape (the session's quick-start
run, tests/conftest.py), and `pick`/`package` read that run; `latency` runs without waiting out the
machine's slow phases or timing noisy groups again (`--pace-wait 0 --retries 0`), since the other test
worker is what makes this machine slow (both are tested in tests/test_pace.py and tests/test_profile.py). The README's first screen holds the two
set-up commands; its verbs table lists every verb `lookupvit --help` has; every docs/ page it links
exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exporter.backends.tensorrt.env import rtx_compute_capabilities

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def tour_commands() -> list[list[str]]:
    """The `lookupvit ...` lines of the quick tour's ```bash blocks, without their comments."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", _section("A quick tour"), re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("lookupvit "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_first_screen_has_the_two_set_up_commands():
    first = "\n".join(README.splitlines()[:40])
    assert "make quickstart" in first and "make test" in first
    assert len(README.splitlines()) <= 400


def test_every_tour_command_runs_as_written(cli, quickstart_run, tmp_path, monkeypatch):
    run_dir, run_result, _ = quickstart_run
    assert run_result.exit_code == 0, run_result.output
    commands = tour_commands()
    assert len(commands) >= 12 and any(c[0] == "run" for c in commands)
    monkeypatch.chdir(tmp_path)
    for args in commands:
        if args[0] == "run":  # minutes on the cpu profile: the session's run of the same command, tiny profile
            assert args == ["run", "--profile", "cpu", "-o", "runs/quickstart"]
            continue
        if args[0] == "build" and not rtx_compute_capabilities():
            continue  # needs the tensorrt-rtx extra (the README says so); `make test` installs it
        args = [str(run_dir) if a == "runs/quickstart" else a for a in args]
        if args[0] == "latency":  # the other test worker keeps this machine busy: waiting out its slow phases
            args += ["--pace-wait", "0", "--retries", "0"]  # (up to a minute) would time the suite (tests/test_pace.py)
        result = cli(*args)
        assert result.exit_code == 0, f"lookupvit {' '.join(args)}\n{result.output}"


def test_the_verbs_table_lists_every_verb():
    from exporter.cli import main

    table = _section("The verbs")
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.M))
    verbs = {name for name, cmd in main.commands.items() if not cmd.hidden}
    assert listed == verbs, verbs ^ listed


@pytest.mark.parametrize("link", sorted(set(re.findall(r"\]\((docs/[^)#]+)", README))))
def test_every_linked_page_exists(link):
    assert (ROOT / link).is_file()
