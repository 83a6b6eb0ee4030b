"""A TFLite int8 graph -> tinyhil's integer model (:class:`~harness.ir.model.IntModel`), with TFLite's numbers.

Every requantization constant is computed as TensorFlow Lite Micro's kernels compute it when they prepare, so the
firmware and the Python reference give the interpreter's integers:

* conv, depthwise, fully connected: per output channel ``QuantizeMultiplier(double(s_in) * double(s_w[c]) /
  double(s_out))`` (scales are float32 in the file; a per-tensor weight scale serves every channel);
* add: TFLite's ADD parameters (left shift 20, inputs at twice the larger input scale; ``ir.requant.add_params``);
* fused activations: ``zp + round(f / scale)`` in float32, rounded half away from zero, clamped to int8;
* average pool: the raw window sum divided by the window count, rounded half away from zero (the ``avgpool``
  operator's division mode, :data:`harness.ops.avgpool.DIVIDE`), as TFLite's integer AVERAGE_POOL_2D;
* RESHAPE moves no data: its output is its input under another shape. It may feed FULLY_CONNECTED (a flattened
  ``(H, W, C)`` input becomes a conv2d whose kernel covers the whole input: the same sums in the same order) or be
  the model's output.

Anything else (another operator, a float or int16 tensor, dilation, a depth multiplier, a padded average pool) is
one ConfigError naming it, raised before anything is built.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, UnsupportedLayerError
from harness.ir.model import AddParams, IntLayer, IntModel, TensorSpec, qrange
from harness.ir.requant import add_params, quantize_multiplier
from harness.ops.avgpool import DIVIDE
from harness.ops.validate import validate_model
from harness.tflite import schema as S
from harness.tflite.reader import Graph, Operator, Tensor, read_file, read_graph


def unsupported_operators(graph: Graph) -> list[str]:
    """Names (with counts) of the graph's operators tinyhil cannot import."""
    bad = Counter(op.name for op in graph.operators if op.name not in S.SUPPORTED)
    return [f"{name} (x{n})" if n > 1 else name for name, n in sorted(bad.items())]


def _round_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def activation_range(act: int, t: Tensor) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for an int8 output tensor."""
    name = S.ACTIVATIONS.get(act, f"activation {act}")
    lo, hi = qrange(8)
    zp, scale = t.zero_point, np.float32(t.scale)

    def q(f: float) -> int:
        return zp + _round_away(float(np.float32(f) / scale))

    if name == "NONE":
        return lo, hi
    if name == "RELU":
        return max(lo, q(0.0)), hi
    if name == "RELU6":
        return max(lo, q(0.0)), min(hi, q(6.0))
    if name == "RELU_N1_TO_1":
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise UnsupportedLayerError(f"fused activation {name} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)")


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding (before, after) of one dimension."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _padding(kind: int, ih: int, iw: int, kh: int, kw: int, stride: int) -> tuple[int, int, int, int]:
    if S.PADDING.get(kind) == "VALID":
        return 0, 0, 0, 0
    pt, pb = same_padding(ih, kh, stride)
    pl, pr = same_padding(iw, kw, stride)
    return pt, pl, pb, pr


def _hwc(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    """A TFLite activation shape ([1, H, W, C], [1, N], ...) as tinyhil's (H, W, C)."""
    if not shape or shape[0] != 1 or len(shape) > 4:
        raise ConfigError(f"{what}: shape {list(shape)} (tinyhil runs batch 1 and at most 4 dimensions)")
    dims = [int(d) for d in shape[1:]]
    dims = [1] * (3 - len(dims)) + dims
    return dims[0], dims[1], dims[2]


class _Converter:
    def __init__(self, graph: Graph, name: str):
        self.g = graph
        self.name = name
        self.tensors: dict[str, TensorSpec] = {}
        self.layers: list[IntLayer] = []
        self.alias: dict[int, str] = {}  # TFLite tensor index -> IR tensor name
        self.reshaped: dict[int, tuple[int, int, int]] = {}  # RESHAPE outputs: their own (H, W, C)

    # -- tensors
    def t(self, i: int) -> Tensor:
        return self.g.tensors[i]

    def _check_int8(self, t: Tensor, what: str) -> None:
        if t.type != S.INT8:
            raise ConfigError(
                f"{what} {t.name!r} is {t.type_name}: tinyhil imports fully integer int8 models (convert with "
                "int8 inputs and outputs, e.g. the TFLite converter's inference_input_type=tf.int8)"
            )
        if t.scales.size != 1:
            raise ConfigError(f"{what} {t.name!r} needs one scale and zero point, has {t.scales.size}")

    def activation(self, i: int, what: str) -> str:
        """The IR tensor of TFLite activation tensor ``i`` (created on first use)."""
        if i in self.alias:
            return self.alias[i]
        t = self.t(i)
        self._check_int8(t, what)
        if t.data is not None:
            raise ConfigError(f"{what} {t.name!r} is a constant; tinyhil's layers take activations there")
        name = f"t{i}"
        self.tensors[name] = TensorSpec(name, _hwc(t.shape, f"tensor {t.name!r}"), 8, float(t.scale), t.zero_point)
        self.alias[i] = name
        return name

    def consumed(self, op: Operator, i: int) -> str:
        """The IR input tensor of ``op`` for TFLite tensor ``i``; a reshaped one only where the op allows it."""
        name = self.activation(i, f"input of {op.name}")
        if i in self.reshaped and op.name != "FULLY_CONNECTED" and self.reshaped[i] != self.tensors[name].shape:
            raise UnsupportedLayerError(
                f"operator {op.index} ({op.name}) reads a RESHAPE to {list(self.t(i).shape)}; tinyhil moves no "
                "data for RESHAPE, so a reshape may only feed FULLY_CONNECTED or be the model's output"
            )
        return name

    def weights(self, op: Operator, i: int) -> tuple[np.ndarray, int, np.ndarray]:
        """(int8 values in the file's layout, w_bits, float32 scale per output channel or one)."""
        t = self.t(i)
        if t.data is None:
            raise ConfigError(f"operator {op.index} ({op.name}): weights {t.name!r} are not constant")
        n = int(np.prod(t.shape))
        if t.type == S.INT8:
            w = np.frombuffer(t.data, dtype=np.int8, count=n).reshape(t.shape)
        elif t.type == S.INT4:  # two per byte, the first in the low nibble
            b = np.frombuffer(t.data, dtype=np.uint8, count=(n + 1) // 2)
            nib = np.stack([b & 0xF, b >> 4], axis=1).reshape(-1)[:n].astype(np.int8)
            w = np.where(nib > 7, nib - 16, nib).astype(np.int8).reshape(t.shape)
        else:
            raise ConfigError(f"operator {op.index} ({op.name}): weights {t.name!r} are {t.type_name}; "
                              "tinyhil reads int8 or int4 weights")
        if t.zero_points.size and np.any(t.zero_points != 0):
            raise ConfigError(f"operator {op.index} ({op.name}): weights {t.name!r} have a non-zero zero point")
        if int(w.min(initial=0)) == -128:
            raise ConfigError(
                f"operator {op.index} ({op.name}): weights {t.name!r} use -128; tinyhil's kernels take TFLite's "
                "symmetric int8 weights in [-127, 127]"
            )
        bits = 4 if int(np.abs(w).max(initial=0)) <= 7 and t.type == S.INT4 else 8
        return w, bits, t.scales

    def bias(self, op: Operator, i: int, cout: int) -> np.ndarray:
        if i < 0:
            return np.zeros(cout, np.int32)
        t = self.t(i)
        if t.type != S.INT32 or t.data is None:
            raise ConfigError(f"operator {op.index} ({op.name}): bias {t.name!r} must be a constant int32 tensor")
        return np.frombuffer(t.data, dtype="<i4", count=cout).astype(np.int32)

    @staticmethod
    def multipliers(s_in: np.float32, w_scales: np.ndarray, s_out: np.float32, cout: int):
        ws = np.broadcast_to(np.asarray(w_scales, np.float32), (cout,)) if w_scales.size == 1 else w_scales
        if ws.size != cout:
            raise ConfigError(f"{ws.size} weight scales for {cout} output channels")
        pairs = [quantize_multiplier(float(s_in) * float(s) / float(s_out)) for s in ws]
        return np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32)

    # -- operators
    def out(self, op: Operator) -> tuple[str, Tensor]:
        if len(op.outputs) != 1:
            raise ConfigError(f"operator {op.index} ({op.name}) has {len(op.outputs)} outputs; tinyhil's have one")
        return self.activation(op.outputs[0], f"output of {op.name}"), self.t(op.outputs[0])

    def layer_name(self, op: Operator) -> str:
        return f"{op.index}_{op.name.lower()}"

    def conv(self, op: Operator, depthwise: bool) -> None:
        x = self.consumed(op, op.inputs[0])
        y, ty = self.out(op)
        o = op.options
        slots = S.DEPTHWISE_OPTIONS if depthwise else S.CONV2D_OPTIONS
        g = (lambda k, d=0: o.scalar(slots[k], "<i" if k not in ("padding", "activation") else "<b", d)) if o \
            else (lambda k, d=0: d)
        sw, sh = int(g("stride_w", 1)), int(g("stride_h", 1))
        if sw != sh:
            raise UnsupportedLayerError(f"operator {op.index} ({op.name}): strides {sh}x{sw} differ")
        if int(g("dilation_w", 1)) != 1 or int(g("dilation_h", 1)) != 1:
            raise UnsupportedLayerError(f"operator {op.index} ({op.name}): dilated convolution is not supported")
        w, bits, wscales = self.weights(op, op.inputs[1])
        ins, outs = self.tensors[x], self.tensors[y]
        if depthwise:
            if w.shape[0] != 1 or w.shape[3] != ins.shape[2]:
                raise UnsupportedLayerError(
                    f"operator {op.index} ({op.name}): depth multiplier {w.shape[3] // max(ins.shape[2], 1)} "
                    "(tinyhil's depthwise keeps the channel count)"
                )
            kh, kw = int(w.shape[1]), int(w.shape[2])
            weight = np.ascontiguousarray(w[0])
        else:
            kh, kw = int(w.shape[1]), int(w.shape[2])
            weight = np.ascontiguousarray(w)
        cout = outs.shape[2]
        pad = _padding(int(g("padding", 0)), ins.shape[0], ins.shape[1], kh, kw, sw)
        kind = "depthwise" if depthwise else "conv2d"
        if not depthwise and (kh, kw) == (1, 1) and not any(pad):
            kind, weight = "pointwise", weight.reshape(cout, -1)
        m, s = self.multipliers(self.t(op.inputs[0]).scale, wscales, ty.scale, cout)
        lo, hi = activation_range(int(g("activation", 0)), ty)
        self.layers.append(IntLayer(
            name=self.layer_name(op), op=kind, inputs=[x], output=y, kernel=(kh, kw), stride=sw, padding=pad,
            weight=weight, w_bits=bits, bias=self.bias(op, op.inputs[2] if len(op.inputs) > 2 else -1, cout),
            multiplier=m, shift=s, act_min=lo, act_max=hi, meta={"tflite_op": op.name, "tflite_index": op.index},
        ))  # fmt: skip

    def fully_connected(self, op: Operator) -> None:
        x = self.consumed(op, op.inputs[0])
        y, ty = self.out(op)
        o = op.options
        if o is not None and int(o.scalar(S.FC_OPTIONS["weights_format"], "<b", 0)) != 0:
            raise UnsupportedLayerError(f"operator {op.index} (FULLY_CONNECTED): shuffled weights format")
        act = int(o.scalar(S.FC_OPTIONS["activation"], "<b", 0)) if o is not None else 0
        w, bits, wscales = self.weights(op, op.inputs[1])
        ins = self.tensors[x]
        cout, cin = int(w.shape[0]), int(w.shape[1])
        h, wd, c = ins.shape
        if h * wd * c != cin:
            raise ConfigError(f"operator {op.index} (FULLY_CONNECTED): input {ins.shape} has {h * wd * c} values, "
                              f"weights expect {cin}")
        if self.tensors[y].shape != (1, 1, cout):
            raise UnsupportedLayerError(f"operator {op.index} (FULLY_CONNECTED): batched output {list(ty.shape)}")
        m, s = self.multipliers(self.t(op.inputs[0]).scale, wscales, ty.scale, cout)
        lo, hi = activation_range(act, ty)
        common = {
            "name": self.layer_name(op), "inputs": [x], "output": y, "w_bits": bits, "multiplier": m, "shift": s,
            "act_min": lo, "act_max": hi, "bias": self.bias(op, op.inputs[2] if len(op.inputs) > 2 else -1, cout),
            "meta": {"tflite_op": op.name, "tflite_index": op.index},
        }
        if (h, wd) == (1, 1):
            self.layers.append(IntLayer(op="fc", weight=np.ascontiguousarray(w), **common))
        else:  # flatten (H, W, C) in TFLite's NHWC order == a conv whose kernel covers the input
            self.layers.append(IntLayer(op="conv2d", kernel=(h, wd),
                                        weight=np.ascontiguousarray(w.reshape(cout, h, wd, c)), **common))

    def add(self, op: Operator) -> None:
        a, b = (self.consumed(op, i) for i in op.inputs[:2])
        y, ty = self.out(op)
        if not (self.tensors[a].shape == self.tensors[b].shape == self.tensors[y].shape):
            raise UnsupportedLayerError(f"operator {op.index} (ADD): broadcasting {self.tensors[a].shape} + "
                                        f"{self.tensors[b].shape} is not supported")
        o = op.options
        act = int(o.scalar(S.ADD_OPTIONS["activation"], "<b", 0)) if o is not None else 0
        ta, tb = self.t(op.inputs[0]), self.t(op.inputs[1])
        p = AddParams(*add_params(float(ta.scale), float(tb.scale), float(ty.scale), 20))
        lo, hi = activation_range(act, ty)
        self.layers.append(IntLayer(name=self.layer_name(op), op="add", inputs=[a, b], output=y, add=p,
                                    act_min=lo, act_max=hi, meta={"tflite_op": op.name, "tflite_index": op.index}))

    def average_pool(self, op: Operator) -> None:
        x = self.consumed(op, op.inputs[0])
        y, ty = self.out(op)
        o = op.options
        if o is None:
            raise ConfigError(f"operator {op.index} (AVERAGE_POOL_2D) has no options")
        g = S.POOL2D_OPTIONS
        sw, sh = int(o.scalar(g["stride_w"], "<i", 1)), int(o.scalar(g["stride_h"], "<i", 1))
        kw, kh = int(o.scalar(g["filter_w"], "<i", 1)), int(o.scalar(g["filter_h"], "<i", 1))
        if sw != sh:
            raise UnsupportedLayerError(f"operator {op.index} (AVERAGE_POOL_2D): strides {sh}x{sw} differ")
        ins = self.tensors[x]
        pad = _padding(int(o.scalar(g["padding"], "<b", 0)), ins.shape[0], ins.shape[1], kh, kw, sw)
        if any(pad):
            raise UnsupportedLayerError(
                f"operator {op.index} (AVERAGE_POOL_2D): SAME padding that pads {pad} (TFLite averages only the "
                "valid taps there; tinyhil's average pool takes no padding: use VALID)"
            )
        lo, hi = activation_range(int(o.scalar(g["activation"], "<b", 0)), ty)
        self.layers.append(IntLayer(
            name=self.layer_name(op), op="avgpool", inputs=[x], output=y, kernel=(kh, kw), stride=sw,
            multiplier=np.array([0], np.int32), shift=np.array([DIVIDE], np.int32), act_min=lo, act_max=hi,
            meta={"tflite_op": op.name, "tflite_index": op.index},
        ))  # fmt: skip

    def reshape(self, op: Operator) -> None:
        src = self.activation(op.inputs[0], "input of RESHAPE")
        dst = op.outputs[0]
        t = self.t(dst)
        self._check_int8(t, "output of RESHAPE")
        tin = self.t(op.inputs[0])
        if float(t.scale) != float(tin.scale) or t.zero_point != tin.zero_point:
            raise ConfigError(f"operator {op.index} (RESHAPE) changes the quantization; tinyhil's moves no data")
        self.alias[dst] = src
        self.reshaped[dst] = _hwc(t.shape, f"tensor {t.name!r}")

    def convert(self) -> IntModel:
        bad = unsupported_operators(self.g)
        if bad:
            raise UnsupportedLayerError(
                f"the .tflite model uses operators tinyhil cannot run: {', '.join(bad)} (supported: "
                f"{', '.join(S.SUPPORTED)})"
            )
        if len(self.g.inputs) != 1 or len(self.g.outputs) != 1:
            raise ConfigError(f"the .tflite model has {len(self.g.inputs)} inputs and {len(self.g.outputs)} "
                              "outputs; tinyhil runs models with one of each")
        first = self.activation(self.g.inputs[0], "model input")
        handlers = {
            "CONV_2D": lambda op: self.conv(op, False), "DEPTHWISE_CONV_2D": lambda op: self.conv(op, True),
            "FULLY_CONNECTED": self.fully_connected, "ADD": self.add, "AVERAGE_POOL_2D": self.average_pool,
            "RESHAPE": self.reshape,
        }  # fmt: skip
        for op in self.g.operators:
            handlers[op.name](op)
        if not self.layers:
            raise ConfigError("the .tflite model has no layer tinyhil can run")
        out = self.alias.get(self.g.outputs[0])
        if out is None:
            raise ConfigError("the .tflite model's output is not produced by any operator")
        model = IntModel(self.tensors, self.layers, input=first, output=out, name=self.name)
        validate_model(model)
        return model


def model_name(stem: str) -> str:
    """A C-friendly model name from a file name."""
    return re.sub(r"[^0-9A-Za-z_]", "_", stem)[:40] or "tflite"


def import_graph(graph: Graph, name: str = "tflite") -> IntModel:
    """The integer model of a read TFLite graph (ConfigError / UnsupportedLayerError naming what does not fit)."""
    return _Converter(graph, name).convert()


def import_tflite(path: str | Path | bytes, name: str | None = None) -> IntModel:
    """Read an int8 ``.tflite`` file (a path, or its bytes) into an :class:`IntModel`."""
    if isinstance(path, (bytes, bytearray)):
        return import_graph(read_graph(bytes(path)), name or "tflite")
    return import_graph(read_file(path), name or model_name(Path(path).stem))
