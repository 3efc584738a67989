"""The TensorRT implementation of the plugin pair with TensorRT's Python plugin API
(``tensorrt.plugin``, "quickly deployable plugins", TensorRT >= 10.7; ahead-of-time
implementations need a release that has ``tensorrt.plugin.aot_impl``):

- ``@trtp.register("lookupvit::LookupGather")`` / ``("lookupvit::LookupScatter")``: the inputs,
  the attributes (``scale: float``, ``share_probs: int``, as the ONNX parser's ``loadFields`` passes
  ONNX FLOAT/INT attributes: kFLOAT32/kINT32 fields) and shape/type inference of the outputs;
- ``@trtp.autotune``: every input and output in the same type, fp32, fp16 or bf16, linear layout, and
  the tile tactics of ``plugins.kernels.TACTICS`` that fit in 48 KiB of shared memory for that dtype,
  head width and GPU (TensorRT times each and keeps the fastest);
- ``@trtp.aot_impl``: compiles the Triton kernel for the build GPU to PTX and returns it with its
  launch parameters (grid from symbolic shapes, block = warps x 32, shared memory) and the int32
  sizes (M, N) as symbolic ``extra_args``; the engine carries the PTX and launches it itself, so it
  needs no Python (nor this package) at run time. No JIT ``impl`` is defined: TensorRT cannot pick a
  Python callback for these nodes.

The scale and the reuse mode are compiled into the kernel (AOT plugin attributes are not serialised
into the engine). The plugin ids' namespace and version are the ``plugin_namespace`` and
``plugin_version`` attributes the ONNX nodes carry (``plugins.onnx_form``).

This module does not use postponed annotations: ``tensorrt.plugin`` validates the annotations of
the decorated functions as objects (``tensorrt/plugin/_validate.py``: the register function's inputs
are ``TensorDesc`` then serialisable attributes, its return ``TensorDesc`` or ``tuple[TensorDesc, ...]``;
the aot_impl schema is ``(inputs, attributes, outputs, tactic) -> tuple[str | bytes, str | bytes,
KernelLaunchParams, SymExprs]``; the autotune one ``(inputs, outputs) -> list[AutoTuneCombination]``).
Everything TensorRT- and Triton-specific is imported by :func:`register`, never at import time.
"""

from typing import Any

from . import GATHER, PLUGIN_NAMESPACE, PLUGIN_VERSION, SCATTER

_registered = False

DTYPES = ("fp32", "fp16", "bf16")


def plugin_id(op: str) -> str:
    return f"{PLUGIN_NAMESPACE}::{op}"


def register() -> str:
    """Register both plugins with TensorRT's plugin registry (once per process) and return the
    plugin version. Raises ImportError when ``tensorrt.plugin`` or ``triton`` cannot be imported."""
    global _registered
    if not _registered:
        _define()
        _registered = True
    return PLUGIN_VERSION


def _define() -> None:
    import tensorrt as trt
    import tensorrt.plugin as trtp

    from . import kernels

    names = {trt.float32: "fp32", trt.float16: "fp16", trt.bfloat16: "bf16"}
    trt_names = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16"}  # AutoTuneCombination's type names

    def dtype_name(desc: Any) -> str:
        if desc.dtype not in names:
            raise ValueError(f"LookupViT plugin: unsupported dtype {desc.dtype} (fp32, fp16 or bf16)")
        return names[desc.dtype]

    def head_dim(desc: Any) -> int:
        d = desc.shape_expr[3]
        if not d.is_constant:
            raise ValueError("LookupViT plugin: the head width d must be static")
        return int(d.constant_value())

    def combinations(kind: str, positions: int, head_width: int, share_probs: int) -> list[Any]:
        """One combination per dtype (every input and output in it), with the tactics that fit."""
        gpu = arch()
        return [trtp.AutoTuneCombination(", ".join([trt_names[dt]] * positions), "LINEAR",
                                         kernels.usable_tactics(kind, dt, head_width, bool(share_probs), gpu))
                for dt in DTYPES]

    def checked(compiled: Any) -> Any:
        if compiled.shared_mem > kernels.MAX_SHARED_MEM:
            raise ValueError(f"LookupViT plugin: {compiled.name} needs {compiled.shared_mem} bytes of shared memory")
        return compiled

    def arch() -> int:
        import triton

        target = triton.runtime.driver.active.get_current_target()  # the GPU the engine is built on
        return int(target.arch)

    @trtp.register(plugin_id(GATHER))
    def gather_desc(q_z: trtp.TensorDesc, k_x: trtp.TensorDesc, v_x: trtp.TensorDesc, scale: float,
                    share_probs: int) -> tuple[trtp.TensorDesc, trtp.TensorDesc]:
        q = q_z.shape_expr
        shared = trtp.from_shape_expr((q[0], q[1], q[2], k_x.shape_expr[2]), dtype=q_z.dtype)  # (B, H, M, N)
        return q_z.like(), shared  # out_z (B, H, M, d)

    @trtp.autotune(plugin_id(GATHER))
    def gather_autotune(q_z: trtp.TensorDesc, k_x: trtp.TensorDesc, v_x: trtp.TensorDesc, share_probs: int,
                        outputs: tuple[trtp.TensorDesc, trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        return combinations("gather", 5, head_dim(q_z), share_probs)

    @trtp.aot_impl(plugin_id(GATHER))
    def gather_aot(q_z: trtp.TensorDesc, k_x: trtp.TensorDesc, v_x: trtp.TensorDesc, scale: float, share_probs: int,
                   outputs: tuple[trtp.TensorDesc, trtp.TensorDesc], tactic: int
                   ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        tactic = tactic if tactic in kernels.TACTICS else 1
        compiled = checked(kernels.compile_ptx("gather", dtype_name(q_z), head_dim(q_z), bool(share_probs), scale,
                                               tactic=tactic, arch=arch()))
        q = q_z.shape_expr
        m, n = q[2], k_x.shape_expr[2]
        params = trtp.KernelLaunchParams()
        params.grid_x = trtp.cdiv(m, kernels.TACTICS[tactic].block_m)  # blocks of compressed tokens
        params.grid_y = q[0] * q[1]  # batch x heads
        params.block_x = compiled.num_warps * 32
        params.shared_mem = compiled.shared_mem
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(m), trtp.SymInt32(n)])  # the kernel's M, N
        return compiled.name.encode(), compiled.ptx.encode(), params, extra

    @trtp.register(plugin_id(SCATTER))
    def scatter_desc(shared: trtp.TensorDesc, v_z: trtp.TensorDesc, scale: float,
                     share_probs: int) -> tuple[trtp.TensorDesc]:
        s = shared.shape_expr
        return (trtp.from_shape_expr((s[0], s[1], s[3], v_z.shape_expr[3]), dtype=v_z.dtype),)  # (B, H, N, d)

    @trtp.autotune(plugin_id(SCATTER))
    def scatter_autotune(shared: trtp.TensorDesc, v_z: trtp.TensorDesc, share_probs: int,
                         outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        return combinations("scatter", 3, head_dim(v_z), share_probs)

    @trtp.aot_impl(plugin_id(SCATTER))
    def scatter_aot(shared: trtp.TensorDesc, v_z: trtp.TensorDesc, share_probs: int,
                    outputs: tuple[trtp.TensorDesc], tactic: int
                    ) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        tactic = tactic if tactic in kernels.TACTICS else 1
        compiled = checked(kernels.compile_ptx("scatter", dtype_name(v_z), head_dim(v_z), bool(share_probs),
                                               tactic=tactic, arch=arch()))
        s = shared.shape_expr
        m, n = s[2], s[3]
        params = trtp.KernelLaunchParams()
        params.grid_x = trtp.cdiv(n, kernels.TACTICS[tactic].block_n)  # blocks of lookup tokens
        params.grid_y = s[0] * s[1]  # batch x heads
        params.block_x = compiled.num_warps * 32
        params.shared_mem = compiled.shared_mem
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(m), trtp.SymInt32(n)])
        return compiled.name.encode(), compiled.ptx.encode(), params, extra


__all__ = ["DTYPES", "plugin_id", "register"]
