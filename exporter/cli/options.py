"""Options shared by several verbs, as click decorators, and the output helpers they imply."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True)


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout and nothing else there."
    )(fn)


def weights_option(fn: F) -> F:
    return click.option(
        "--weights",
        type=click.Path(dir_okay=False),
        default=None,
        help="Checkpoint to load (.safetensors or torch). Default: the variant's shipped weights, "
        "else a seeded random initialisation.",
    )(fn)


def data_option(fn: F) -> F:
    return click.option(
        "--data",
        default="digits",
        show_default=True,
        help="'digits' (held-out split of the bundled handwritten digits), a folder with one "
        "sub-folder of images per class, or an .npz with 'images' and 'labels'.",
    )(fn)


def grids_option(fn: F) -> F:
    """``--grids 3,5,7`` (a list); ``--grid 7`` is its one-value spelling, the same option."""
    return click.option(
        "--grids",
        "--grid",
        "grids",
        default=None,
        help="Comma-separated compressed grids, e.g. 3,5,7 or 4x7x7 (video). Default: the variant's grids.",
    )(fn)


class BackendChoice(click.ParamType):
    """A backend by name (torch, onnxruntime, openvino, tensorrt) or alias (ort, trt, ov); the value is
    the code's key (exporter/backends/registry.py). ``allowed``: the keys this verb runs (None: every
    registered backend). ``many``: a comma-separated list."""

    name = "backend"

    def __init__(self, allowed: tuple[str, ...] | None = None, many: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.allowed, self.many, self.extra = allowed, many, extra

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from ..backends.registry import backend, backends

        names = [backend(k).name for k in self.allowed] if self.allowed else [b.name for b in backends()]
        return f"[{'|'.join([*names, *self.extra])}]" + (",..." if self.many else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..backends.registry import backend

        if not isinstance(value, str) or value in self.extra:
            return value
        option = param.opts[0] if param is not None and param.opts else "--backend"
        keys = [backend(v, self.allowed, option).key for v in value.split(",") if v.strip()]
        if not keys:
            raise click.BadParameter("no backend given", ctx=ctx, param=param)
        return tuple(dict.fromkeys(keys)) if self.many else keys[0]


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        table.add_row(*[str(v) for v in r])
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
        console = Console(width=200)
    console.print(table)


@contextlib.contextmanager
def progress_status(title: str) -> Iterator[Callable[[str], None]]:
    """Progress of a long verb on stderr; yields ``say(message)``. On a terminal, a spinner whose
    text ``say`` replaces; elsewhere (CI logs, pipes), where a spinner shows nothing, one plain line
    per message with the elapsed time."""
    if stderr.is_terminal:
        with stderr.status(f"{title} ...") as status:
            yield lambda message: status.update(f"{title}: {message} ...")
        return
    t0 = time.perf_counter()

    def say(message: str) -> None:
        click.echo(f"[{elapsed(time.perf_counter() - t0)}] {title}: {message}", err=True)

    say("started")
    yield say
    say("done")


def elapsed(seconds: float) -> str:
    """``seconds`` as m:ss (h:mm:ss past an hour), for progress lines."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
