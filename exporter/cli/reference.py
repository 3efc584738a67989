"""``docs/cli.md``: the command-line reference, generated from the click commands themselves.

Every verb (and sub-verb) with its usage line, its help text and its options as click declares them,
so the reference cannot drift from the code: ``python -m exporter.cli.reference > docs/cli.md``
writes it, and a test (tests/test_docs.py) fails when the file is not what this prints.
"""

from __future__ import annotations

import inspect
import sys

import click

from .main import main

HEADER = """# Command-line reference

Generated from the code by `python -m exporter.cli.reference > docs/cli.md` (tests/test_docs.py checks
that it is current). The README's tour shows the verbs at work; each section here is the verb's own
`--help` (every verb takes `-h` / `--help`).
"""


def _option_rows(cmd: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    helps = {"--help", "-h"}
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) and not set(param.opts) <= helps else None
        if record is None:  # arguments are in the usage line; -h/--help is on every verb (the header says so)
            continue
        names, text = (part.replace("|", "\\|").replace("\n", " ") for part in record)
        rows.append(f"| `{names}` | {text} |")
    return rows


def _section(cmd: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    ctx = click.Context(cmd, info_name=path[-1], parent=parent)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [f"## `{' '.join(path)}`", "", "```", f"{' '.join(path)} {usage}".rstrip(), "```", ""]
    help_text = inspect.cleandoc(cmd.help or "")
    if help_text:
        lines += [click.unstyle(help_text).replace("\b\n", ""), ""]
    rows = _option_rows(cmd, ctx)
    if rows:
        lines += ["| option | meaning |", "|---|---|", *rows, ""]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            sub = cmd.commands[name]
            if not sub.hidden:
                lines += _section(sub, [*path, name], ctx)
    return lines


def reference() -> str:
    """The whole reference as Markdown."""
    root = click.Context(main, info_name="lookupvit")
    lines = [HEADER]
    for name in sorted(main.commands):
        cmd = main.commands[name]
        if not cmd.hidden:
            lines += _section(cmd, ["lookupvit", name], root)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
