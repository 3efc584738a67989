"""What TensorRT's ONNX parser accepts: its operator table and the revision it was read from.

Source: the open-source ONNX parser of TensorRT, github.com/onnx/onnx-tensorrt, at its TensorRT 10.15
GA revision: ``onnxOpCheckers.cpp`` and ``onnxOpImporters.cpp`` at commit
dd0a3a9f8794ae4f0316ed07ea68cda9b944bb3c, ``AttentionHelpers.cpp`` at commit
fa5aa9f61e7781d2ca8f5351d42c1f19525a6124, and ``docs/operators.md`` headed "TensorRT 10.15 supports
operators in the inclusive range of opset 9 to opset 24" (the changelog's topmost entry is "TensorRT
10.15 GA Release - 2026-2-2"). Our ``tensorrt`` extra asks for ``tensorrt-cu13>=10.14``, which
installs the newest release; the release/10.14-GA tag was not available to us. The 10.15 changelog's
operator additions over 10.14 are RotaryEmbedding, RMSNormalization and TensorScatter (10.14's entry:
"Added support for the Attention operator"), none of which a LookupViT graph contains. The rules in
:mod:`exporter.check.rules` come from the static checks (``onnxOpCheckers.cpp``, run before import)
and the checks made while importing a node (``onnxOpImporters.cpp``, ``AttentionHelpers.cpp``);
each rule names its function there (``DEFINE_OP_CHECKER(Attention)``, ``QuantDequantLinearHelper``,
...) and quotes the parser's message.

``SUPPORTED`` below is the table's "Supported = Y" rows with their "Supported Types" column, written
out here (an operator missing from it is refused, or imported only as a plugin of that name).
"""

from __future__ import annotations

from onnx import TensorProto

ONNX_TENSORRT_REPO = "github.com/onnx/onnx-tensorrt"
ONNX_TENSORRT_REVISION = "10.15 GA (onnxOpCheckers.cpp, onnxOpImporters.cpp @ dd0a3a9f; AttentionHelpers.cpp @ fa5aa9f6; docs/operators.md 'TensorRT 10.15')"
OPERATORS_DOC = "onnx-tensorrt docs/operators.md (TensorRT 10.15)"
CHECKERS = "onnx-tensorrt onnxOpCheckers.cpp"
IMPORTERS = "onnx-tensorrt onnxOpImporters.cpp"
ATTENTION_HELPERS = "onnx-tensorrt AttentionHelpers.cpp"
MIN_OPSET, MAX_OPSET = 9, 24

_F = "FP32,FP16,BF16"
_FI = f"{_F},INT32,INT64"
_FIB = f"{_FI},BOOL"
_TABLE = f"""
Abs:{_FI} Acos:{_F} Acosh:{_F} Add:{_FI} And:BOOL ArgMax:{_FI} ArgMin:{_FI} Asin:{_F} Asinh:{_F}
Atan:{_F} Atanh:{_F} Attention:FP32,FP16,BF16,INT8,FP8 AveragePool:{_F} BatchNormalization:{_F}
BlackmanWindow:FP32,FP16 Cast:FP32,FP16,BF16,INT32,INT64,UINT8,BOOL CastLike:FP32,FP16,BF16,INT32,INT64,UINT8,BOOL
Ceil:{_F} Celu:{_F} Clip:{_F} Concat:{_FIB} Constant:FP32,FP16,BF16,FP8,FP4,INT4,INT32,INT64,BOOL
ConstantOfShape:FP32,FP16,BF16,FP8,FP4,INT4,INT32,INT64,BOOL Conv:{_F} ConvTranspose:{_F} Cos:{_F} Cosh:{_F}
CumSum:{_F} DeformConv:FP32,FP16 DepthToSpace:{_FI} DequantizeLinear:INT8,FP8,FP4,INT4 Div:{_FI} Dropout:{_F}
Einsum:{_F} Elu:{_F} Equal:{_FI} Erf:{_F} Exp:{_F} Expand:{_FIB} EyeLike:{_FIB} Flatten:{_FIB} Floor:{_F}
Gather:{_FIB} GatherElements:{_FIB} GatherND:{_FIB} Gelu:FP32,FP16,BF16,INT8,INT32,INT64 Gemm:{_F}
GlobalAveragePool:{_F} GlobalLpPool:{_F} GlobalMaxPool:{_F} Greater:{_FI} GreaterOrEqual:{_FI}
GridSample:FP32,FP16 GroupNormalization:{_F} GRU:{_F} HammingWindow:FP32,FP16 HannWindow:FP32,FP16
HardSigmoid:{_F} HardSwish:{_F} Hardmax:{_F} Identity:{_FIB} If:{_FIB} ImageScaler:{_F} InstanceNormalization:{_F}
IsInf:{_F} IsNaN:{_FI} LayerNormalization:{_F} LeakyRelu:{_F} Less:{_FI} LessOrEqual:{_FI} Log:{_F} LogSoftmax:{_F}
Loop:{_FIB} LRN:{_F} LSTM:{_F} LpNormalization:{_F} LpPool:{_F} MatMul:{_F} Max:{_FI} MaxPool:{_F}
Mean:FP32,FP16,BF16,FP8,INT32,INT64 MeanVarianceNormalization:{_F} Min:{_FI} Mish:FP32,FP16 Mod:{_FI} Mul:{_FI}
Neg:{_FI} NonMaxSuppression:FP32,FP16 NonZero:FP32,FP16 Not:BOOL OneHot:{_FIB} Or:BOOL Pad:{_FI}
ParametricSoftplus:{_F} Pow:{_FI} PRelu:{_F} QuantizeLinear:{_F} RandomNormal:{_F} RandomNormalLike:{_F}
RandomUniform:{_F} RandomUniformLike:{_F} Range:{_FI} Reciprocal:{_F} ReduceL1:{_FI} ReduceL2:{_FI}
ReduceLogSum:{_FI} ReduceLogSumExp:{_FI} ReduceMax:{_FI} ReduceMean:{_FI} ReduceMin:{_FI} ReduceProd:{_FI}
ReduceSum:{_FI} ReduceSumSquare:{_FI} Relu:{_FI} Reshape:{_FIB} Resize:{_F} ReverseSequence:{_FIB}
RMSNormalization:{_F} RNN:{_F} RoiAlign:FP32,FP16 RotaryEmbedding:{_F} Round:{_F} STFT:FP32 ScaledTanh:{_F}
Scan:{_F} Scatter:{_FI} ScatterElements:{_FI} ScatterND:{_FI} Selu:{_F} Shape:{_FIB} Shrink:{_FI} Sigmoid:{_F}
Sign:{_FI} Sin:{_F} Sinh:{_F} Size:{_FIB} Slice:{_FIB} Softmax:{_F} Softplus:{_F} Softsign:{_F}
SpaceToDepth:{_FI} Split:{_FIB} Sqrt:{_F} Squeeze:{_FIB} Sub:{_FI} Sum:{_FI} Tan:{_F} Tanh:{_F}
TensorScatter:FP32,FP16,BF16,INT32 ThresholdedRelu:{_F} Tile:{_FIB} TopK:{_FI} Transpose:{_FIB} Trilu:{_FIB}
Unsqueeze:{_FIB} Upsample:{_F} Where:{_FIB} Xor:BOOL
"""


# op -> the types the table lists for it
SUPPORTED: dict[str, frozenset[str]] = {
    op: frozenset(types.split(",")) for op, types in (item.split(":") for item in _TABLE.split())
}

# ONNX element type -> the name TensorRT's table uses; DOUBLE is narrowed to FP32 by the parser
# ("TensorRT will attempt to cast DOUBLE down to FLOAT"); types absent here have no TensorRT type.
TRT_TYPE: dict[int, str] = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "FP32",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.BOOL: "BOOL",
    TensorProto.FLOAT8E4M3FN: "FP8",
    TensorProto.INT4: "INT4",
    TensorProto.FLOAT4E2M1: "FP4",
}
QUANTIZED = frozenset({"INT8", "FP8", "INT4", "FP4"})


def type_name(elem_type: int) -> str:
    """ONNX's name of an element type, e.g. ``FLOAT8E5M2``."""
    return TensorProto.DataType.Name(elem_type)
