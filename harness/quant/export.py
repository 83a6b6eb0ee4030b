"""Fake-quant network -> integer IR (:class:`~harness.ir.model.IntModel`), with the numbers the fake-quant
forward pass uses, so the integer reference reproduces it up to rounding ties and the 31-bit multipliers.

Per layer: weights quantized per output channel at ``w_bits`` (narrow range) in the IR layouts; bias int32 at
``s_in * s_w[o]``; ``multiplier/shift = quantize_multiplier(s_in * s_w[o] / s_out)``; ReLU/ReLU6 become the
output clamp. ``add`` uses TFLite's ADD parameters (left shift 20), ``avgpool`` one multiplier that includes the
1/window factor. Tensor precisions follow :func:`harness.quant.qnet.tensor_bits_for` (the input tensor takes the
first layer's ``a_bits``; the final fc writes 8-bit logits).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import AddParams, IntLayer, IntModel, TensorSpec
from harness.ir.requant import add_params, quantize_multiplier
from harness.ops import WEIGHTED_OPS
from harness.ops.validate import validate_model
from harness.precision.config import PrecisionConfig
from harness.quant import numerics as N
from harness.quant.calibrate import calibrate
from harness.quant.qnet import QuantNet, apply_config


def _tensor_spec(qnet: QuantNet, name: str, shape: tuple[int, int, int]) -> TensorSpec:
    a = qnet.act(name)
    if not bool(a.calibrated):
        raise ConfigError(f"tensor {name!r} is not calibrated; pass calibration data to export_int_model")
    scale, zp = a.qparams()
    return TensorSpec(name=name, shape=tuple(shape), bits=a.bits, scale=scale, zero_point=zp)


def _clamp(spec: LayerSpec, out: TensorSpec) -> tuple[int, int]:
    return N.act_clamp(out.bits, out.zero_point, out.scale, spec.activation)


def _ir_weight(spec: LayerSpec, wq: torch.Tensor) -> np.ndarray:
    """torch layout -> IR layout (conv2d (Cout,Kh,Kw,Cin); depthwise (Kh,Kw,C); pointwise/fc (Cout,Cin))."""
    if spec.op == "conv2d":
        w = wq.permute(0, 2, 3, 1)
    elif spec.op == "depthwise":
        w = wq[:, 0].permute(1, 2, 0)
    else:
        w = wq.reshape(wq.shape[0], -1)
    return w.contiguous().numpy().astype(np.int8)


def _weighted(qnet: QuantNet, spec: LayerSpec, ins: TensorSpec, out: TensorSpec) -> IntLayer:
    layer = qnet.layer(spec.name)
    w = layer.weight.detach().float()
    bits = layer.w_bits
    s_w = N.weight_scales(w, bits, layer.weight_quant.policy.method).double()
    wq = N.quantize_weight(w.double(), s_w, bits)
    acc_scale = ins.scale * s_w
    bias = N.quantize_bias(layer.bias.detach().double(), acc_scale).numpy().astype(np.int64)
    mult, shift = zip(*(quantize_multiplier(float(r)) for r in (acc_scale / out.scale).tolist()))
    lo, hi = _clamp(spec, out)
    return IntLayer(
        name=spec.name, op=spec.op, inputs=[spec.inputs[0]], output=spec.name, kernel=tuple(spec.kernel),
        stride=int(spec.stride), padding=tuple(spec.padding), weight=_ir_weight(spec, wq), w_bits=bits,
        bias=bias.astype(np.int32), multiplier=np.asarray(mult, np.int32), shift=np.asarray(shift, np.int32),
        act_min=lo, act_max=hi,
        meta={"source": spec.name, "activation": spec.activation, "weight_scale": s_w.float().tolist()})


def export_int_model(qnet: QuantNet, config: PrecisionConfig | None = None,
                     calib: torch.Tensor | Iterable | None = None, validate: bool = True) -> IntModel:
    """The integer model of ``qnet`` under ``config`` (applied first, if given).

    ``calib`` (a tensor or batches of model inputs) recalibrates the activation ranges before export; without
    it the quantizers must already be calibrated (e.g. after QAT with learned ranges).
    """
    if config is not None:
        apply_config(qnet, config)
    if calib is not None:
        calibrate(qnet, calib)
    c, h, w = qnet.input_shape
    tensors = {INPUT: _tensor_spec(qnet, INPUT, (h, w, c))}
    layers: list[IntLayer] = []
    for spec in qnet.specs:
        out = _tensor_spec(qnet, spec.name, spec.out_shape)
        tensors[spec.name] = out
        ins = tensors[spec.inputs[0]]
        if spec.op in WEIGHTED_OPS:
            layers.append(_weighted(qnet, spec, ins, out))
        elif spec.op == "add":
            in2 = tensors[spec.inputs[1]]
            lo, hi = _clamp(spec, out)
            layers.append(IntLayer(
                name=spec.name, op="add", inputs=list(spec.inputs), output=spec.name,
                add=AddParams(*add_params(ins.scale, in2.scale, out.scale)), act_min=lo, act_max=hi,
                meta={"activation": spec.activation}))
        elif spec.op == "avgpool":
            kh, kw = spec.kernel
            m, s = quantize_multiplier(ins.scale / (kh * kw * out.scale))
            lo, hi = _clamp(spec, out)
            layers.append(IntLayer(
                name=spec.name, op="avgpool", inputs=[spec.inputs[0]], output=spec.name, kernel=(kh, kw),
                stride=int(spec.stride), multiplier=np.asarray([m], np.int32), shift=np.asarray([s], np.int32),
                act_min=lo, act_max=hi))
        else:  # pragma: no cover
            raise ConfigError(f"cannot export op {spec.op!r}")
    model = IntModel(tensors=tensors, layers=layers, input=INPUT, output=qnet.output_name, name=qnet.model_name)
    if validate:
        validate_model(model)
    return model


def quantize_input(x: torch.Tensor | np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Model inputs (N, C, H, W) or (C, H, W) floats -> integer input tensors (N, H, W, C) / (H, W, C) int8,
    exactly as the network's input quantizer rounds them."""
    t = torch.as_tensor(x, dtype=torch.float32)
    q = N.quantize_act(t, torch.tensor(spec.scale), torch.tensor(float(spec.zero_point)), spec.bits)
    q = q.permute(0, 2, 3, 1) if q.dim() == 4 else q.permute(1, 2, 0)
    return q.numpy().astype(np.int8)


def dequantize_output(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Integer output values -> real values (``scale * (q - zero_point)``), flattened per image."""
    q = np.asarray(q, np.float64)
    return spec.scale * (q - spec.zero_point)
