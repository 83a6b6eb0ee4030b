"""The integer model: what the firmware runs and the Python integer reference computes, bit for bit.

Conventions (shared by the reference, the code generator and the C kernels):

* Tensors are NHWC without the batch dimension: ``shape = (H, W, C)``; a vector is ``(1, 1, C)``.
* Every activation tensor holds signed ``bits``-bit integers ``q`` in ``[-2**(bits-1), 2**(bits-1)-1]``
  with a zero point ``zero_point`` in the same range: ``real = scale * (q - zero_point)``. An unsigned
  (post-ReLU) activation therefore has ``zero_point = -2**(bits-1)``.
* Weights are symmetric (zero point 0) with per-output-channel scales; their integer values lie in
  ``[-2**(w_bits-1) + 1, 2**(w_bits-1) - 1]`` (narrow range, as TFLite) and are stored here as ``int8`` arrays.
  Layouts: conv2d ``(Cout, Kh, Kw, Cin)``; depthwise ``(Kh, Kw, C)``; pointwise and fc ``(Cout, Cin)``.
* Accumulation: ``acc[o] = bias[o] + sum((x - in_zp) * w)`` over valid (non-padded) taps, in int32.
* Requantization follows TFLite: ``out = out_zp + MultiplyByQuantizedMultiplier(acc, multiplier[o], shift[o])``
  then clamped to ``[act_min, act_max]`` (``shift > 0`` is a left shift). The output is written directly at the
  output tensor's precision: the *narrowing* to the next layer's input precision happens in the producing
  layer's requantization, so the producing layer's measured count includes it.
* ``add`` follows TFLite's int8 ADD (left shift 20, per-input multipliers, output multiplier).
* ``avgpool`` has no padding; ``acc = sum(x - in_zp)`` over the window, requantized with one multiplier/shift
  that includes the ``1/window`` factor. With ``shift == [64]`` (``harness.ops.avgpool.DIVIDE``, imported TFLite
  models) it is TFLite's AVERAGE_POOL_2D instead: the raw window sum divided by the tap count, rounded half away
  from zero, clamped.
* Packed storage (bits < 8): the innermost dimension of a tensor (channels of a pixel; ``Cin`` of a weight row;
  ``C`` of a depthwise tap) starts at a byte boundary; inside a byte, element ``j`` of the row sits at bit
  ``(j % (8 // bits)) * bits`` (low bits first), two's complement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BITS: tuple[int, ...] = (2, 4, 8)


def qrange(bits: int) -> tuple[int, int]:
    """Signed integer range of a ``bits``-bit activation."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def wrange(bits: int) -> tuple[int, int]:
    """Narrow signed range of a ``bits``-bit weight (symmetric)."""
    m = (1 << (bits - 1)) - 1
    return -m, m


@dataclass
class TensorSpec:
    """One activation tensor in the integer model."""

    name: str
    shape: tuple[int, int, int]
    bits: int = 8
    scale: float = 1.0
    zero_point: int = 0

    @property
    def numel(self) -> int:
        h, w, c = self.shape
        return h * w * c

    @property
    def row_bytes(self) -> int:
        """Bytes of one packed channel row (one pixel)."""
        return (self.shape[2] * self.bits + 7) // 8

    @property
    def nbytes(self) -> int:
        """Bytes in packed storage."""
        return self.shape[0] * self.shape[1] * self.row_bytes


@dataclass
class AddParams:
    """TFLite ADD requantization parameters."""

    left_shift: int
    in1_multiplier: int
    in1_shift: int
    in2_multiplier: int
    in2_shift: int
    out_multiplier: int
    out_shift: int


@dataclass
class IntLayer:
    """One integer layer. ``a_bits``/``o_bits`` come from its input/output tensors."""

    name: str
    op: str  # an operator kind of harness.ops.OPS
    inputs: list[str]
    output: str
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    weight: np.ndarray | None = None
    w_bits: int = 8
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None  # int32, one per output channel (avgpool: one)
    shift: np.ndarray | None = None  # int32, one per output channel (avgpool: one)
    act_min: int = -128
    act_max: int = 127
    add: AddParams | None = None
    meta: dict = field(default_factory=dict)  # free-form (source module name, float scales, ...)


@dataclass
class IntModel:
    """A whole integer network: tensors, layers in execution order, one input and one output tensor."""

    tensors: dict[str, TensorSpec]
    layers: list[IntLayer]
    input: str
    output: str
    name: str = "model"

    def a_bits(self, layer: IntLayer) -> int:
        return self.tensors[layer.inputs[0]].bits

    def o_bits(self, layer: IntLayer) -> int:
        return self.tensors[layer.output].bits

    def in_spec(self, layer: IntLayer, i: int = 0) -> TensorSpec:
        return self.tensors[layer.inputs[i]]

    def out_spec(self, layer: IntLayer) -> TensorSpec:
        return self.tensors[layer.output]
