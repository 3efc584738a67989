"""Loading the LookupViT attention plugin for a build whose graph has plugin nodes
(``lookupvit optimize --form plugin``).

TensorRT's ONNX parser imports a node that carries ``plugin_namespace`` as the registered plugin of
that name, namespace and version, and falls back to the node's ONNX local function when none is
registered (onnx-tensorrt ``parseNode``; see ``plugins.onnx_form``). A silent fallback would build an
engine without the plugin, so a build refuses instead when the plugin cannot be registered in this
process (``tensorrt.plugin`` with ahead-of-time implementations and Triton are needed at build time;
the engine carries the compiled kernels and needs neither at run time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import UserError


@dataclass(frozen=True)
class PluginUse:
    """What the engine's sidecar records about the plugin."""

    namespace: str
    version: str
    nodes: dict[str, int]  # op type -> nodes in the graph

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def plugin_nodes(onnx_path: str | Path) -> dict[str, int]:
    """How many LookupGather/LookupScatter nodes the graph has (weights stay on disk)."""
    from plugins.onnx_form import plugin_nodes as count

    from ...onnx_io import load_onnx

    return {op: n for op, n in count(load_onnx(Path(onnx_path), weights=False)).items() if n}


def load_plugin(onnx_path: str | Path, backend: str) -> PluginUse | None:
    """Register the plugin with TensorRT when the graph has plugin nodes (None when it has none);
    raises :class:`UserError` when it cannot be registered."""
    from plugins import PLUGIN_NAMESPACE

    nodes = plugin_nodes(onnx_path)
    if not nodes:
        return None
    found = ", ".join(f"{n} {op}" for op, n in nodes.items())
    fix = ("Install the plugin's build dependencies (pip install 'lookupvit-deploy[plugins]' and a TensorRT "
           "with tensorrt.plugin.aot_impl), or optimize the model with --form attention instead.")
    if backend == "tensorrt-rtx":
        raise UserError(f"{onnx_path} has LookupViT plugin nodes ({found}), and TensorRT-RTX has no plugin support: its "
                        "parser would build the nodes' ONNX local functions (the reference subgraphs) instead.",
                        "Optimize with --form attention for TensorRT-RTX (the same math, and fused attention in "
                        "fp16/bf16), or build the plugin form with full TensorRT.")
    if backend != "tensorrt":
        raise UserError(f"{onnx_path} has LookupViT plugin nodes ({found}); the plugin is written for TensorRT, "
                        f"not {backend}.", "Build with a TensorRT profile, or optimize with --form attention.")
    try:
        from plugins.trt_plugin import register

        version = register()
    except Exception as e:  # ImportError (no tensorrt.plugin / triton / AOT support) or a registration error
        raise UserError(
            f"{onnx_path} has LookupViT plugin nodes ({found}) and the plugin cannot be loaded: "
            f"{type(e).__name__}: {str(e)[:300]}. Without it TensorRT would build the nodes' reference "
            "subgraphs instead.", fix,
        ) from None
    return PluginUse(PLUGIN_NAMESPACE, version, nodes)


def register_if_available() -> str | None:
    """Before running an engine built with the plugin: register it where this process can (an AOT
    plugin's engine holds the compiled kernels and should deserialize without it); the reason when it
    cannot, else None."""
    try:
        from plugins.trt_plugin import register

        register()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


__all__ = ["PluginUse", "load_plugin", "plugin_nodes", "register_if_available"]
