"""Triton kernels of the plugin pair (the math of ``plugins``' docstring) on contiguous
``[B, H, S, d]`` tensors, one program per (block of query rows, batch x head).

- ``gather_kernel``: for BLOCK_M compressed queries, loop over the N lookup tokens in BLOCK_N tiles:
  S = scale q k^T (fp32 accumulate), online softmax over N in fp32 (running max and sum, as in
  FlashAttention), acc += P V; S is stored to ``shared`` in the same loop (logit reuse); with
  probability reuse a second loop recomputes S and stores P = exp(S - max) / sum once the row's max
  and sum are final.
- ``scatter_kernel``: for BLOCK_N lookup tokens, loop over the M compressed tokens in BLOCK_M tiles:
  read S^T from ``shared``, online softmax over M in fp32, acc += W v_z (logit reuse); or read P^T
  and accumulate P^T v_z (probability reuse).

Argument order is (input pointers, int32 sizes, output pointers), then constexprs: the order
TensorRT's ahead-of-time plugins launch with (``tensorrt.plugin.aot_impl``: the scalar ``extra_args``
sit between the inputs and the outputs). The scale and the reuse mode are constexprs, compiled into
the kernel (an AOT plugin's attributes are not serialised into the engine).

``gather``/``scatter`` launch the kernels on torch tensors (CUDA, or CPU under ``TRITON_INTERPRET=1``,
which must be set before Triton is first imported in the process). ``compile_ptx`` compiles for a CUDA target with no
GPU present (``triton.compile`` with a ``GPUTarget``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

MIN_BLOCK = 16  # tl.dot needs every block dimension >= 16
TYPE_STR = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}


@triton.jit
def gather_kernel(q_ptr, k_ptr, v_ptr, M, N, out_ptr, shared_ptr,
                  SCALE: tl.constexpr, SHARE_PROBS: tl.constexpr, HEAD_DIM: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)  # batch x head
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # compressed tokens of this program
    dims = tl.arange(0, BLOCK_D)
    row_ok = rows < M
    dim_ok = dims < HEAD_DIM
    q = tl.load(q_ptr + bh * M * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :],
                mask=row_ok[:, None] & dim_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    kv_base = bh * N * HEAD_DIM
    s_base = bh * M * N
    for n0 in range(0, N, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < N
        kv_mask = col_ok[:, None] & dim_ok[None, :]
        k = tl.load(k_ptr + kv_base + cols[:, None] * HEAD_DIM + dims[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_base + cols[:, None] * HEAD_DIM + dims[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k)) * SCALE  # (BLOCK_M, BLOCK_N) fp32
        if not SHARE_PROBS:
            tl.store(shared_ptr + s_base + rows[:, None] * N + cols[None, :],
                     s.to(shared_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])
        s = tl.where(col_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(out_ptr + bh * M * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :],
             out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & dim_ok[None, :])
    if SHARE_PROBS:  # the probabilities need the final max and sum: a second pass over N
        for n0 in range(0, N, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            col_ok = cols < N
            k = tl.load(k_ptr + kv_base + cols[:, None] * HEAD_DIM + dims[None, :],
                        mask=col_ok[:, None] & dim_ok[None, :], other=0.0)
            s = tl.dot(q, tl.trans(k)) * SCALE
            p = tl.exp(s - m_i[:, None]) / l_i[:, None]
            tl.store(shared_ptr + s_base + rows[:, None] * N + cols[None, :],
                     p.to(shared_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def scatter_kernel(shared_ptr, vz_ptr, M, N, out_ptr,
                   SHARE_PROBS: tl.constexpr, HEAD_DIM: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_n = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # lookup tokens of this program
    dims = tl.arange(0, BLOCK_D)
    col_ok = cols < N
    dim_ok = dims < HEAD_DIM
    m_i = tl.full([BLOCK_N], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_N], tl.float32)
    acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    s_base = bh * M * N
    v_base = bh * M * HEAD_DIM
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        # S^T tile (BLOCK_N, BLOCK_M): lookup tokens x compressed tokens
        x = tl.load(shared_ptr + s_base + rows[None, :] * N + cols[:, None],
                    mask=col_ok[:, None] & row_ok[None, :], other=0.0).to(tl.float32)
        vz = tl.load(vz_ptr + v_base + rows[:, None] * HEAD_DIM + dims[None, :],
                     mask=row_ok[:, None] & dim_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
        if SHARE_PROBS:
            acc += tl.dot(x.to(vz.dtype), vz)
        else:
            x = tl.where(row_ok[None, :], x, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(x, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(x - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(vz.dtype), vz)
            m_i = m_new
    if not SHARE_PROBS:
        acc = acc / l_i[:, None]
    tl.store(out_ptr + bh * N * HEAD_DIM + cols[:, None] * HEAD_DIM + dims[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=col_ok[:, None] & dim_ok[None, :])


@dataclass(frozen=True)
class Tiles:
    """A tactic: the tile sizes and warps of both kernels."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int = 1  # software-pipelining depth: each stage holds another K/V (or S/V) tile in shared memory


# Tactics offered to TensorRT's autotuner (1-based ids; 0 is "no tactic"), the first is the default.
TACTICS: dict[int, Tiles] = {
    1: Tiles(16, 64, 4),
    2: Tiles(32, 64, 4),
    3: Tiles(64, 64, 4),
    4: Tiles(16, 128, 4),
    5: Tiles(64, 128, 8),
}


# Dynamic shared memory a kernel may use without opting in to more (cudaFuncAttributeMaxDynamicSharedMemorySize),
# which the launch of an AOT plugin kernel is not known to do: tactics above it are not offered.
MAX_SHARED_MEM = 48 * 1024


def usable_tactics(kind: str, dtype: str, head_dim: int, share_probs: bool, arch: int) -> list[int]:
    """The tactics whose kernel fits in ``MAX_SHARED_MEM`` for this dtype, head width and GPU
    (e.g. fp32 at d = 64 on sm_90: tactics 1-4; fp16/bf16: all). Compiles each (Triton caches them)."""
    return [t for t in TACTICS
            if compile_ptx(kind, dtype, head_dim, share_probs, tactic=t, arch=arch).shared_mem <= MAX_SHARED_MEM]


def block_d(head_dim: int) -> int:
    return max(MIN_BLOCK, triton.next_power_of_2(head_dim))


def gather_grid(m: int, bh: int, tiles: Tiles) -> tuple[int, int]:
    return triton.cdiv(m, tiles.block_m), bh


def scatter_grid(n: int, bh: int, tiles: Tiles) -> tuple[int, int]:
    return triton.cdiv(n, tiles.block_n), bh


def gather(q: Any, k: Any, v: Any, scale: float, share_probs: bool, tactic: int = 1) -> tuple[Any, Any]:
    """Launch ``gather_kernel`` on torch tensors q (B,H,M,d), k/v (B,H,N,d): (out_z, shared)."""
    import torch

    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    b, h, m, d = q.shape
    n = k.shape[2]
    tiles = TACTICS[tactic]
    out = torch.empty_like(q)
    shared = torch.empty((b, h, m, n), dtype=q.dtype, device=q.device)
    gather_kernel[gather_grid(m, b * h, tiles)](
        q, k, v, m, n, out, shared, SCALE=float(scale), SHARE_PROBS=bool(share_probs), HEAD_DIM=d,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_D=block_d(d), num_warps=tiles.num_warps,
        num_stages=tiles.num_stages)
    return out, shared


def scatter(shared: Any, v_z: Any, share_probs: bool, tactic: int = 1) -> Any:
    """Launch ``scatter_kernel`` on torch tensors shared (B,H,M,N), v_z (B,H,M,d): out_x (B,H,N,d)."""
    import torch

    shared, v_z = shared.contiguous(), v_z.contiguous()
    b, h, m, n = shared.shape
    d = v_z.shape[3]
    tiles = TACTICS[tactic]
    out = torch.empty((b, h, n, d), dtype=v_z.dtype, device=v_z.device)
    scatter_kernel[scatter_grid(n, b * h, tiles)](
        shared, v_z, m, n, out, SHARE_PROBS=bool(share_probs), HEAD_DIM=d,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_D=block_d(d), num_warps=tiles.num_warps,
        num_stages=tiles.num_stages)
    return out


@dataclass(frozen=True)
class Compiled:
    """A kernel compiled for one CUDA target: what an AOT plugin hands to TensorRT."""

    name: str  # the PTX entry point
    ptx: str
    num_warps: int
    shared_mem: int  # bytes of dynamic shared memory per block
    params: int  # parameters of the PTX entry (Triton may append scratch pointers)


def _signature(kind: str, dtype: str) -> dict[str, str]:
    t = "*" + TYPE_STR[dtype]
    if kind == "gather":
        return {"q_ptr": t, "k_ptr": t, "v_ptr": t, "M": "i32", "N": "i32", "out_ptr": t, "shared_ptr": t,
                "SCALE": "constexpr", "SHARE_PROBS": "constexpr", "HEAD_DIM": "constexpr",
                "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_D": "constexpr"}
    return {"shared_ptr": t, "vz_ptr": t, "M": "i32", "N": "i32", "out_ptr": t,
            "SHARE_PROBS": "constexpr", "HEAD_DIM": "constexpr",
            "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_D": "constexpr"}


def compile_ptx(kind: str, dtype: str, head_dim: int, share_probs: bool, scale: float = 1.0, tactic: int = 1,
                arch: int = 80, ptx_version: int | None = None) -> Compiled:
    """Compile the gather or scatter kernel to PTX for ``sm_<arch>`` without a GPU (Triton's own
    LLVM and the ptxas it ships; no CUDA driver is queried when the target is given).

    ``ptx_version`` (e.g. 84 for PTX ISA 8.4) caps the PTX ISA version: the driver that loads the
    engine must support it (Triton 3.9 writes 8.8 for sm_80 and 9.4 for sm_90 by default)."""
    import re

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    tiles = TACTICS[tactic]
    constexprs: dict[str, Any] = {"SHARE_PROBS": bool(share_probs), "HEAD_DIM": head_dim,
                                  "BLOCK_M": tiles.block_m, "BLOCK_N": tiles.block_n, "BLOCK_D": block_d(head_dim)}
    fn = gather_kernel
    if kind == "gather":
        constexprs["SCALE"] = float(scale)
    else:
        fn = scatter_kernel
    src = ASTSource(fn=fn, signature=_signature(kind, dtype), constexprs=constexprs)
    options: dict[str, Any] = {"num_warps": tiles.num_warps, "num_stages": tiles.num_stages}
    if ptx_version is not None:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    name = compiled.metadata.name
    ptx = _drop_unused_params(compiled.asm["ptx"], name, len(_signature(kind, dtype)) - len(constexprs))
    entry = re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, re.S)
    params = len(re.findall(r"\.param\b", entry.group(1))) if entry else -1
    return Compiled(name, ptx, compiled.metadata.num_warps, compiled.metadata.shared, params)


def _drop_unused_params(ptx: str, name: str, keep: int) -> str:
    """Triton (>= 3.3) appends scratch-buffer pointers to every kernel's parameters; TensorRT launches
    an AOT kernel with exactly (inputs, extra_args, outputs). Trailing parameters that the body never
    loads are removed from the ``.entry`` declaration; a used one is left (and the parameter count
    then tells that the kernel cannot be launched by TensorRT)."""
    import re

    entry = re.search(r"(\.entry\s+" + re.escape(name) + r"\s*\()(.*?)(\))", ptx, re.S)
    if entry is None:
        return ptx
    decls = [d for d in entry.group(2).split(",")]
    while len(decls) > keep:
        last = re.search(r"(\w+_param_\d+)\s*$", decls[-1].strip())
        if last is None or len(re.findall(re.escape(last.group(1)) + r"\b", ptx)) != 1:
            break
        decls.pop()
    return ptx[: entry.start(2)] + ",".join(decls) + "\n" + ptx[entry.end(2):]


__all__ = ["MAX_SHARED_MEM", "TACTICS", "Compiled", "Tiles", "compile_ptx", "gather", "gather_kernel", "scatter",
           "scatter_kernel", "usable_tactics"]
