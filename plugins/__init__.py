"""The LookupViT attention plugin pair: the gather and the scatter of a LookupViT layer (Koner et
al., arXiv 2407.12753) as two fused ops that share the logits computed once per layer.

    LookupGather(q_z [B,H,M,d], k_x [B,H,N,d], v_x [B,H,N,d]) -> (out_z [B,H,M,d], shared [B,H,M,N])
        S = scale * q_z k_x^T;  P = softmax_N(S);  out_z = P v_x
        shared = S (share_probs = 0: logit reuse, the paper) or P (share_probs = 1: probability reuse)
    LookupScatter(shared [B,H,M,N], v_z [B,H,M,d]) -> out_x [B,H,N,d]
        out_x = softmax_M(S^T) v_z   (share_probs = 0)   or   P^T v_z   (share_probs = 1)

fp16 and bf16 inputs keep the softmax in fp32; ``shared`` has the dtype of the inputs.

Modules: ``onnx_form`` (the ONNX nodes and the local functions that define them), ``reference``
(numpy reference, also registered for Polygraphy's plugin reference runner), ``kernels`` (Triton),
``trt_plugin`` (TensorRT's Python plugin API, imported only where TensorRT is installed).

How TensorRT picks the plugin over the local function (onnx-tensorrt's importer, ``parseNode`` in
ModelImporter.cpp): a node carrying a ``plugin_namespace`` attribute is looked up in the plugin
registry by (op_type, ``plugin_version`` (default "1"), ``plugin_namespace``) *before* the builtin
importers and the model's local functions; if a creator is registered it is imported as that plugin
(FallbackPluginImporter), otherwise the local function is imported (its body: the reference math).
Line numbers and the older behaviour are in ``onnx_form``'s docstring.
"""

from __future__ import annotations

DOMAIN = "lookupvit"  # the ONNX domain of the two ops (and their local functions)
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE = "lookupvit"  # TensorRT plugin namespace: plugin ids are "lookupvit::LookupGather", ...
PLUGIN_VERSION = "1"
GATHER = "LookupGather"
SCATTER = "LookupScatter"
OPS = (GATHER, SCATTER)

__all__ = ["DOMAIN", "DOMAIN_VERSION", "GATHER", "OPS", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "SCATTER"]
