"""The ``lookupvit`` click group: every verb's failures end the same way.

- A user's mistake (:class:`~exporter.errors.UserError`) and an operating-system error about the
  files the user pointed at (read-only or unwritable folder, full disk, file-size limit, a regular
  file where a folder is needed or the reverse: ``EACCES``, ``EROFS``, ``ENOSPC``, ``EFBIG``,
  ``ENOTDIR``, ``EISDIR``, ``EEXIST`` ...) print one paragraph naming the path and the fix, and exit 2.
- With ``--json`` the same error is also printed on stdout as ``{"error", "hint", "exit"}``.
- Ctrl-C exits 130 with one line; SIGTERM unwinds like Ctrl-C (143), so temporary files are removed.
Never a traceback for any of these.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any, NoReturn

import click

from .. import __version__
from ..errors import UserError
from ..io import is_environment_error, os_error


def _terminate(signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds: `finally` blocks remove temporaries


def _fail(message: str, hint: str | None, code: int, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": message, "hint": hint, "exit": code}, indent=2))
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)
    sys.exit(code)


class LookupViTGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        as_json = "--json" in [*getattr(ctx, "_protected_args", []), *ctx.args]
        try:
            previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread
            previous = None
        try:
            return super().invoke(ctx)
        except UserError as e:
            _fail(e.message, e.hint, e.exit_code, as_json)
        except OSError as e:
            if not is_environment_error(e):
                raise
            err = os_error(e)
            _fail(err.message, err.hint, err.exit_code, as_json)
        except KeyboardInterrupt:
            if as_json:
                click.echo(json.dumps({"error": "interrupted", "hint": None, "exit": 130}, indent=2))
            click.echo("Interrupted (Ctrl-C); nothing half-written was left behind.", err=True)
            sys.exit(130)
        except click.ClickException as e:  # usage errors: click prints them and exits 2
            if as_json:
                click.echo(json.dumps({"error": e.format_message(), "hint": "See --help.", "exit": e.exit_code}, indent=2))
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=LookupViTGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lookupvit")
def main() -> None:
    """Deploy LookupViT vision transformers: export to ONNX, optimise, choose precisions,
    build TensorRT engines and profile latency per compressed-token grid.

    Start with `lookupvit variants` to see the models, and `lookupvit evaluate lookupvit_digits`
    for the trained model shipped with the tool.
    """


def _register() -> None:
    from . import (  # noqa: F401  (verbs register themselves on ``main``)
        check,  # check: TensorRT readiness of a graph
        engine,  # profiles, build, doctor
        export,
        models,
        optimize,
        package,  # package: a Triton model repository
        pick,  # pick: the grid and precision for a latency budget
        precision,  # precision, compare
        profile,  # profile: latency sweeps
        run,  # run: the main job and its report
        validate,
    )


_register()
