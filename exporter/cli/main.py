"""The ``lookupvit`` click group. User errors print as one paragraph and exit 2, never a traceback."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import UserError


class LookupViTGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"Error: {e.message}", err=True)
            if e.hint:
                click.echo(e.hint, err=True)
            sys.exit(e.exit_code)


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
        engine,  # profiles, build, doctor
        export,
        models,
        optimize,
        precision,  # precision, compare
        profile,  # profile: latency sweeps
        run,  # run: the main job and its report
        validate,
    )


_register()
