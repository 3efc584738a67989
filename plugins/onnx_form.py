"""The ONNX form of the plugin pair: ``LookupGather`` and ``LookupScatter`` nodes in the ``lookupvit``
domain, each defined by an ONNX local function (a ``FunctionProto`` in the model) whose body is the
reference math, so that ONNX Runtime (which inlines local functions) and any runtime without the
plugin run the graph unchanged, while TensorRT maps each node to the plugin when it is loaded.

Node attributes:
- ``scale`` (float): the logits scale (1/sqrt(d) in a LookupViT);
- ``share_probs`` (int, 0 or 1): 0 ``shared`` is the logits S (the paper: the scatter takes a fresh
  softmax over M of S^T); 1 ``shared`` is the gather's probabilities P (the scatter uses P^T as is);
- ``plugin_namespace`` ("lookupvit") and ``plugin_version`` ("1"): what TensorRT's ONNX parser reads
  to find the plugin creator. The functions declare them too, so that a node carrying them is a
  valid call of its function (their bodies ignore them).

Function bodies (T = the input type; fp16/bf16 are cast to fp32 around the softmax):

    LookupGather:  S = Cast<f32>(q_z @ k_x^T) * scale;  P = Softmax(S, -1);  out_z = CastLike(P, v_x) @ v_x
                   shared = CastLike(Where(share_probs, P, S), q_z)
    LookupScatter: X = Cast<f32>(shared^T);  W = Where(share_probs, X, Softmax(X, -1));  out_x = CastLike(W, v_z) @ v_z

(ONNX functions cannot switch their body on an attribute; ``Where`` on a constant flag chooses
exactly and costs one elementwise pass over the M x N logits.)

Which wins in TensorRT when both a plugin and a local function exist (onnx-tensorrt,
``ModelImporter.cpp``, ``parseNode``):
- TensorRT 10.x releases that carry ``isNodeInPluginRegistry`` (the copy read: onnx-tensorrt at
  commit dd0a3a9f, the 10.15 GA revision; ModelImporter.cpp lines 240-250 ``isNodeInPluginRegistry``
  and lines 324-353 the dispatch in ``parseNode``, counted in that copy): a node
  with a ``plugin_namespace`` attribute (or any node when ``OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE`` is
  set) is first looked up in the plugin registry by (op_type, plugin_version, plugin_namespace); if a
  creator is found it is imported with ``FallbackPluginImporter``; otherwise the builtin importer, then
  the local function (``LocalFunctionImporter``) is used. The static checker
  (``parseNodeStaticCheck``) likewise prefers the plugin over the local function. So: plugin loaded
  -> plugin; plugin not loaded -> the local function's body (standard ops).
- onnx-tensorrt 10.1-GA (commit 96e7811, ModelImporter.cpp lines 155-168): a local function always
  wins over the plugin fallback; with that parser the plugin is never used for these nodes.
- ``FallbackPluginImporter`` (onnxOpImporters.cpp, 10.1-GA line 6438) passes the node attributes that
  match the creator's field names (``loadFields``); ``plugin_namespace``/``plugin_version`` are not
  plugin fields and are ignored there.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper

from . import DOMAIN, DOMAIN_VERSION, GATHER, PLUGIN_NAMESPACE, PLUGIN_VERSION, SCATTER

FUNCTION_ATTRIBUTES = ["scale", "share_probs", "plugin_namespace", "plugin_version"]
SWAP = [0, 1, 3, 2]


def _ref(name: str, attr: str, kind: onnx.AttributeProto.AttributeType) -> onnx.AttributeProto:
    a = onnx.AttributeProto()
    a.name, a.ref_attr_name, a.type = name, attr, kind
    return a


def _constant_from_attr(out: str, value_field: str, attr: str,
                        kind: onnx.AttributeProto.AttributeType) -> onnx.NodeProto:
    node = helper.make_node("Constant", [], [out])
    node.attribute.append(_ref(value_field, attr, kind))
    return node


def gather_function(opset: int) -> onnx.FunctionProto:
    """``LookupGather(q_z, k_x, v_x) -> (out_z, shared)`` as a local function (body in the module docstring)."""
    nodes = [
        helper.make_node("Transpose", ["k_x"], ["kt"], perm=SWAP),  # (B, H, d, N)
        helper.make_node("MatMul", ["q_z", "kt"], ["qk"]),  # (B, H, M, N)
        helper.make_node("Cast", ["qk"], ["qk32"], to=TensorProto.FLOAT),
        _constant_from_attr("scale_c", "value_float", "scale", onnx.AttributeProto.FLOAT),
        helper.make_node("Mul", ["qk32", "scale_c"], ["s"]),  # S (B, H, M, N), fp32
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),  # P = softmax over the N lookup tokens
        helper.make_node("CastLike", ["p", "v_x"], ["p_t"]),
        helper.make_node("MatMul", ["p_t", "v_x"], ["out_z"]),  # (B, H, M, d)
        _constant_from_attr("flag_i", "value_int", "share_probs", onnx.AttributeProto.INT),
        helper.make_node("Cast", ["flag_i"], ["flag"], to=TensorProto.BOOL),
        helper.make_node("Where", ["flag", "p", "s"], ["shared32"]),
        helper.make_node("CastLike", ["shared32", "q_z"], ["shared"]),  # (B, H, M, N)
    ]
    return helper.make_function(
        DOMAIN, GATHER, ["q_z", "k_x", "v_x"], ["out_z", "shared"], nodes,
        [helper.make_opsetid("", opset)], FUNCTION_ATTRIBUTES,
        doc_string="LookupViT gather: S = scale q_z k_x^T once, out_z = softmax_N(S) v_x; shared = S or P",
    )


def scatter_function(opset: int) -> onnx.FunctionProto:
    """``LookupScatter(shared, v_z) -> out_x`` as a local function (body in the module docstring)."""
    nodes = [
        helper.make_node("Transpose", ["shared"], ["st"], perm=SWAP),  # (B, H, N, M)
        helper.make_node("Cast", ["st"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Softmax", ["x"], ["px"], axis=-1),  # softmax over the M compressed tokens
        _constant_from_attr("flag_i", "value_int", "share_probs", onnx.AttributeProto.INT),
        helper.make_node("Cast", ["flag_i"], ["flag"], to=TensorProto.BOOL),
        helper.make_node("Where", ["flag", "x", "px"], ["w"]),  # P^T as is, or softmax_M(S^T)
        helper.make_node("CastLike", ["w", "v_z"], ["w_t"]),
        helper.make_node("MatMul", ["w_t", "v_z"], ["out_x"]),  # (B, H, N, d)
    ]
    return helper.make_function(
        DOMAIN, SCATTER, ["shared", "v_z"], ["out_x"], nodes,
        [helper.make_opsetid("", opset)], FUNCTION_ATTRIBUTES,
        doc_string="LookupViT scatter: out_x = softmax_M(S^T) v_z (logit reuse) or P^T v_z (probability reuse)",
    )


def functions(opset: int) -> list[onnx.FunctionProto]:
    return [gather_function(opset), scatter_function(opset)]


def node_attrs(scale: float, share_probs: bool) -> dict[str, Any]:
    """The attributes of either node."""
    return {"scale": float(scale), "share_probs": int(bool(share_probs)),
            "plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": PLUGIN_VERSION}


def add_to_graph(graph) -> None:
    """Give an onnx-graphsurgeon ``graph`` the two local functions (once) at its default-domain opset."""
    from onnx_graphsurgeon.importers.onnx_importer import OnnxImporter

    have = {(f.domain, f.name) for f in graph.functions}
    for fp in functions(graph.opset):
        if (DOMAIN, fp.name) not in have:
            graph.functions.append(OnnxImporter.import_function(fp, model_opset=graph.opset))
    if not any(d.domain == DOMAIN for d in graph.import_domains or []):
        graph.import_domains = [*(graph.import_domains or []), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]


def pair_model(batch: int | str, heads: int, m: int, n: int, d: int, scale: float, share_probs: bool,
               elem_type: int = TensorProto.FLOAT, opset: int = 23) -> onnx.ModelProto:
    """A model of one gather/scatter pair: inputs q_z, k_x, v_x, v_z; outputs out_z, out_x, shared."""
    attrs = node_attrs(scale, share_probs)
    nodes = [
        helper.make_node(GATHER, ["q_z", "k_x", "v_x"], ["out_z", "shared"], "gather", domain=DOMAIN, **attrs),
        helper.make_node(SCATTER, ["shared", "v_z"], ["out_x"], "scatter", domain=DOMAIN, **attrs),
    ]

    def vi(name: str, s: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, elem_type, [batch, heads, s, d])

    graph = helper.make_graph(
        nodes, "lookup_pair", [vi("q_z", m), vi("k_x", n), vi("v_x", n), vi("v_z", m)],
        [vi("out_z", m), vi("out_x", n), helper.make_tensor_value_info("shared", elem_type, [batch, heads, m, n])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        functions=functions(opset), ir_version=10,
    )


def plugin_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each plugin op ``model``'s main graph has."""
    counts = {GATHER: 0, SCATTER: 0}
    for node in model.graph.node:
        if node.domain == DOMAIN and node.op_type in counts:
            counts[node.op_type] += 1
    return counts


__all__ = ["add_to_graph", "functions", "gather_function", "node_attrs", "pair_model", "plugin_nodes",
           "scatter_function"]
