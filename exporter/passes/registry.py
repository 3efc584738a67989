"""The pass registry: graph-surgeon passes by name, registered with a decorator, run in a declared
default order per target (docs/architecture.md, How to add a pass).

A pass is a function ``fn(graph, ctx) -> PassResult`` over an onnx-graphsurgeon ``Graph`` that edits
the graph in place (or returns a replacement graph) and says what it changed. It never needs to
keep the graph valid on failure: the optimiser runs each pass on a fresh import of the current
model and keeps the result only if ONNX Runtime agrees with the graph before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError, closest

TARGETS: dict[str, str] = {
    "attention": "the ONNX Attention op (opset 23; ONNX Runtime >= 1.23, TensorRT >= 10.14)",
    "trt-mha": "MatMul-Softmax-MatMul in 4-D [B, H, S, d] layout, scale on Q (older TensorRT's MHA fusion)",
    "plugin": "each layer's gather/scatter as the LookupGather/LookupScatter plugin pair (local functions for "
              "ONNX Runtime; the TensorRT plugin of plugins/ where it is loaded)",
    "cpu": "ONNX Runtime on the CPU: projections of one tensor merged into one MatMul + Split (skip-layernorm, "
           "com.microsoft SkipLayerNormalization for ONNX Runtime only, on request)",
}

# The declared default order. Canonicalisation first (so that the attention matchers see one form),
# then the three attention patterns of a LookupViT layer.
DEFAULT_ORDER: dict[str, tuple[str, ...]] = {
    "attention": (
        "opset", "einsum", "fold-constants", "layout", "layernorm", "gelu",
        "gather", "self-attention", "scatter",
    ),
    "trt-mha": (
        "einsum", "fold-constants", "layout", "layernorm", "gelu",
        "unfuse-attention", "gather", "self-attention", "scatter",
    ),
    "plugin": (
        "opset", "einsum", "fold-constants", "layout", "layernorm", "gelu",
        "gather", "self-attention", "scatter", "lookup-plugin",
    ),
    "cpu": (
        "einsum", "fold-constants", "layout", "layernorm", "gelu", "merge-projections",
    ),  # skip-layernorm only on request (--passes): measured slower than ONNX Runtime's Add + LayerNorm (docs/optimize.md)
}


@dataclass
class PassContext:
    """What a pass may need to know besides the graph."""

    target: str = "attention"


@dataclass
class PassResult:
    """What a pass did: how many patterns it rewrote, a one-line note, optional details."""

    matches: int = 0
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    graph: Any = None  # a replacement graph (only for passes that rebuild the model, e.g. opset)


PassFn = Callable[[Any, PassContext], PassResult]


@dataclass(frozen=True)
class Pass:
    name: str
    family: str
    summary: str
    fn: PassFn
    targets: tuple[str, ...]


_PASSES: dict[str, Pass] = {}


def register_pass(
    name: str, family: str, summary: str, targets: tuple[str, ...] = tuple(TARGETS)
) -> Callable[[PassFn], PassFn]:
    """Decorator: register ``fn`` as the pass ``name`` (one line of ``summary`` for ``--list``)."""

    def add(fn: PassFn) -> PassFn:
        if name in _PASSES:
            raise ValueError(f"pass {name!r} is registered twice")
        _PASSES[name] = Pass(name, family, summary, fn, tuple(targets))
        return fn

    return add


def _load() -> None:
    from . import attention, canonical, cpu, plugin  # noqa: F401  (the pass families register themselves)


def all_passes() -> list[Pass]:
    """Every registered pass: the default orders first (attention, then trt-mha), then the rest."""
    _load()
    names: list[str] = []
    for order in DEFAULT_ORDER.values():
        names += [n for n in order if n not in names]
    names += sorted(n for n in _PASSES if n not in names)
    return [_PASSES[n] for n in names]


def get_pass(name: str) -> Pass:
    _load()
    try:
        return _PASSES[name]
    except KeyError:
        near = closest(name, _PASSES)
        raise UserError(
            f"Unknown pass {name!r}." + (f" Did you mean {', '.join(near)}?" if near else ""),
            "Run `lookupvit optimize --list` for the registered passes.",
        ) from None


def check_target(target: str) -> str:
    if target not in TARGETS:
        near = closest(target, TARGETS)
        raise UserError(
            f"Unknown target {target!r}." + (f" Did you mean {', '.join(near)}?" if near else ""),
            f"Targets: {', '.join(TARGETS)}.",
        )
    return target


def resolve_passes(target: str, names: str | list[str] | tuple[str, ...] | None) -> list[Pass]:
    """The passes to run, in order: ``names`` (a list or "a,b,c") as given, else the target's default."""
    check_target(target)
    if names is None:
        return [get_pass(n) for n in DEFAULT_ORDER[target]]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UserError("--passes names no pass.", "Give a comma-separated list, e.g. --passes layout,gather.")
    chosen = [get_pass(n) for n in names]
    for p in chosen:
        if target not in p.targets:
            raise UserError(
                f"Pass {p.name!r} does not apply to target {target!r} (only {', '.join(p.targets)}).",
                f"Drop it from --passes or use --target {p.targets[0]}.",
            )
    return chosen
