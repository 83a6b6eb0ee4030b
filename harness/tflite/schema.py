"""Facts of TFLite's ``schema.fbs`` the importer reads: field slots of each table and the enum values it needs.

A slot is the field's index in its table (FlatBuffers' vtable order); only the fields tinyhil reads are listed.
"""

from __future__ import annotations

FILE_IDENTIFIER = b"TFL3"

# -- tables: field slots
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4}
OPERATOR_CODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5, "sparsity": 6}
QUANTIZATION = {"min": 0, "max": 1, "scale": 2, "zero_point": 3, "details_type": 4, "quantized_dimension": 6}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options_type": 3, "builtin_options": 4}
BUFFER = {"data": 0, "offset": 1, "size": 2}
CONV2D_OPTIONS = {"padding": 0, "stride_w": 1, "stride_h": 2, "activation": 3, "dilation_w": 4, "dilation_h": 5}
DEPTHWISE_OPTIONS = {"padding": 0, "stride_w": 1, "stride_h": 2, "depth_multiplier": 3, "activation": 4,
                     "dilation_w": 5, "dilation_h": 6}
FC_OPTIONS = {"activation": 0, "weights_format": 1, "keep_num_dims": 2}
ADD_OPTIONS = {"activation": 0}
POOL2D_OPTIONS = {"padding": 0, "stride_w": 1, "stride_h": 2, "filter_w": 3, "filter_h": 4, "activation": 5}

# -- enums
TENSOR_TYPES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL",
                7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 17: "INT4", 19: "INT2"}
INT8, INT32, INT4 = 9, 2, 17
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

#: BuiltinOperator values the importer knows by name (the supported ones and the usual others, for messages)
BUILTIN_OPERATORS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE",
    9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE",
    25: "SOFTMAX", 28: "TANH", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 43: "SQUEEZE",
    45: "STRIDED_SLICE", 49: "SPLIT", 53: "CAST", 54: "PRELU", 55: "MAXIMUM", 57: "MINIMUM", 67: "TRANSPOSE_CONV",
    83: "PACK", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 114: "QUANTIZE", 117: "HARD_SWISH",
}
#: The operators tinyhil imports.
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "RESHAPE")


def operator_name(code: int, custom: str = "") -> str:
    """A builtin operator's name (``CUSTOM:<code>`` for custom operators, ``BUILTIN_<n>`` when unknown)."""
    if code == 32 or custom:  # BuiltinOperator.CUSTOM
        return f"CUSTOM:{custom or '?'}"
    return BUILTIN_OPERATORS.get(code, f"BUILTIN_{code}")
