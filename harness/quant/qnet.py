"""The fake-quantized network: the deployed (fused, BN-folded) layer graph with declared quantizers.

:func:`quantize_model` traces a float model, folds every BatchNorm into its conv, and builds a :class:`QuantNet`
that executes exactly the graph the integer model will have: one :class:`QuantLayer` per conv/fc (weight
quantizer at the layer's ``w_bits``, bias at int32 on ``s_in * s_w``) and one :class:`ActQuant` per activation
tensor (the network input and every layer output). A tensor's bit-width follows the precision configuration:
the widest ``a_bits`` of the configured layers that read it; tensors read only by adds/pools and the network
output stay 8-bit (the rule of :func:`harness.memory.liveness.bits_from_config`, shared with memory accounting).
A tensor is unsigned when its producer ends in ReLU/ReLU6.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.graph.trace import TracedLayer, input_shape_of, trace_model
from harness.ir.requant import add_params
from harness.memory.liveness import bits_from_config
from harness.ops import WEIGHTED_OPS
from harness.precision.config import PrecisionConfig
from harness.quant import numerics as N
from harness.quant.bnfold import fold_conv_bn
from harness.quant.quantizers import (
    DEFAULT_ACT_POLICY,
    DEFAULT_WEIGHT_POLICY,
    ActQuant,
    ActQuantPolicy,
    WeightQuant,
    WeightQuantPolicy,
)


def _key(name: str) -> str:
    """ModuleDict keys may not contain dots."""
    return name.replace(".", "__")


class QuantLayer(nn.Module):
    """A conv (any kind) or fc with folded float weights, a weight quantizer and int32 bias quantization."""

    def __init__(self, spec: LayerSpec, weight: torch.Tensor, bias: torch.Tensor, groups: int,
                 w_bits: int = 8, policy: WeightQuantPolicy = DEFAULT_WEIGHT_POLICY) -> None:
        super().__init__()
        self.spec = spec
        self.groups = groups
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = nn.Parameter(bias.detach().clone().float())
        self.weight_quant = WeightQuant(w_bits, policy)
        self.quant_bias = True

    @property
    def w_bits(self) -> int:
        return self.weight_quant.bits

    def forward(self, x: torch.Tensor, in_scale: torch.Tensor | None) -> torch.Tensor:
        w = self.weight_quant(self.weight)
        b = self.bias
        if in_scale is not None and self.weight_quant.enabled and self.quant_bias:
            b = N.fake_quant_bias(b, in_scale * self.weight_quant.scale(self.weight))
        if self.spec.op == "fc":
            return F.linear(x.flatten(1), w, b)
        t, left, bottom, right = self.spec.padding
        if (t, left) == (bottom, right):
            return F.conv2d(x, w, b, self.spec.stride, (t, left), 1, self.groups)
        return F.conv2d(F.pad(x, (left, right, t, bottom)), w, b, self.spec.stride, 0, 1, self.groups)


class QuantNet(nn.Module):
    """Executes the fused layer graph with fake quantization; ``forward(x) -> logits``."""

    def __init__(self, traced: Sequence[TracedLayer], params: Mapping[str, tuple[torch.Tensor, torch.Tensor, int]],
                 input_shape: tuple[int, int, int], weight_policy: WeightQuantPolicy = DEFAULT_WEIGHT_POLICY,
                 act_policy: ActQuantPolicy = DEFAULT_ACT_POLICY, name: str = "model") -> None:
        super().__init__()
        self.specs: list[LayerSpec] = [t.spec for t in traced]
        self.input_shape = tuple(input_shape)
        self.model_name = name
        self.layers = nn.ModuleDict()
        for s in self.specs:
            if s.op in WEIGHTED_OPS:
                w, b, groups = params[s.name]
                self.layers[_key(s.name)] = QuantLayer(s, w, b, groups, 8, weight_policy)
        self.acts = nn.ModuleDict({_key(INPUT): ActQuant(8, False, act_policy)})
        for s in self.specs:
            unsigned = s.activation in ("relu", "relu6") or (
                s.op == "avgpool" and self._producer_unsigned(s.inputs[0]))
            self.acts[_key(s.name)] = ActQuant(8, unsigned, act_policy)
        self._last_use = {}
        for i, s in enumerate(self.specs):
            for t in s.inputs:
                self._last_use[t] = i
        self.config = PrecisionConfig.uniform(self.layer_names(), 8, 8)
        # mirror the integer requantization (see run_layer); in training mode only when asked, since it costs
        # a few int64 passes per layer and the gradients are the same
        self.integer_exact = True
        self.integer_exact_in_training = False

    def _producer_unsigned(self, name: str) -> bool:
        return name != INPUT and bool(self.acts[_key(name)].unsigned)

    # -- structure --------------------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Names of the quantizable (conv/fc) layers in execution order: the keys of a PrecisionConfig."""
        return [s.name for s in self.specs if s.op in WEIGHTED_OPS]

    def layer(self, name: str) -> QuantLayer:
        return self.layers[_key(name)]

    def act(self, tensor: str) -> ActQuant:
        """The quantizer of a tensor, named after its producer (``"input"`` for the network input)."""
        return self.acts[_key(tensor)]

    def tensor_names(self) -> list[str]:
        return [INPUT] + [s.name for s in self.specs]

    @property
    def output_name(self) -> str:
        return self.specs[-1].name

    # -- switches ---------------------------------------------------------------------------------------------
    def set_quant(self, weights: bool = True, acts: bool = True) -> QuantNet:
        """Switch weight and/or activation fake-quantization on or off (off = the folded float model)."""
        for m in self.layers.values():
            m.weight_quant.enabled = weights
        for a in self.acts.values():
            a.enabled = acts
        return self

    # -- execution --------------------------------------------------------------------------------------------
    def run_layer(self, i: int, vals: dict[str, torch.Tensor], quantize_output: bool = True) -> torch.Tensor:
        """Output of layer ``i`` from the (already quantized) tensors in ``vals``; frees dead inputs.

        When every quantizer involved is active and ``integer_exact`` is set, the output value is computed
        with the integer model's requantization (TFLite multiplier/shift rounding, ADD's left shift), so the
        fake-quant network matches the exported :class:`~harness.ir.model.IntModel` bit for bit up to float
        rounding of the accumulators; gradients still flow through the float path (straight-through).
        """
        s = self.specs[i]
        ins = [vals[t] for t in s.inputs]
        in_q = self.act(s.inputs[0])
        if s.op in WEIGHTED_OPS:
            layer = self.layers[_key(s.name)]
            y = layer(ins[0], in_q.scale_tensor() if in_q.active else None)
        elif s.op == "add":
            y = ins[0] + ins[1]
        elif s.op == "avgpool":
            y = F.avg_pool2d(ins[0], s.kernel, s.stride)
        else:  # pragma: no cover - trace only produces the ops above
            raise ConfigError(f"unknown op {s.op!r}")
        pre = y
        if s.activation == "relu":
            y = F.relu(y)
        elif s.activation == "relu6":
            y = F.relu6(y)
        out_q = self.acts[_key(s.name)]
        exact = None
        if (quantize_output and self.integer_exact and (not self.training or self.integer_exact_in_training)
                and out_q.active and all(self.act(t).active for t in s.inputs)
                and (s.op not in WEIGHTED_OPS or layer.weight_quant.enabled)):
            with torch.no_grad():
                exact = self._integer_output(s, ins, pre, out_q)
        for t in s.inputs:  # free what no later layer reads
            if self._last_use.get(t) == i:
                vals.pop(t, None)
        if not quantize_output:
            return y
        fq = out_q(y)
        return fq if exact is None else fq + (exact - fq).detach()

    def _integer_output(self, s: LayerSpec, ins: list[torch.Tensor], pre: torch.Tensor,
                        out_q: ActQuant) -> torch.Tensor:
        """The dequantized output the integer kernels produce (see :meth:`run_layer`)."""
        s_out, zp_out = out_q.qparams()
        lo, hi = N.act_clamp(out_q.bits, zp_out, s_out, s.activation)
        chan = (1, -1, 1, 1) if pre.dim() == 4 else (1, -1)

        def ints(name: str, v: torch.Tensor) -> tuple[torch.Tensor, float, int]:
            sc, zp = self.act(name).qparams()
            return torch.round(v.double() / sc).long() + zp, sc, zp

        if s.op in WEIGHTED_OPS:
            layer = self.layers[_key(s.name)]
            s_in, _ = self.act(s.inputs[0]).qparams()
            acc_scale = s_in * layer.weight_quant.scale(layer.weight).double()
            acc = torch.round(pre.double() / acc_scale.reshape(chan)).long()
            m, sh = N.quantize_multiplier_t(acc_scale / s_out)
            q = N.mbqm_t(acc, m.reshape(chan), sh.reshape(chan))
        elif s.op == "add":

            (x1, s1, z1), (x2, s2, z2) = ints(s.inputs[0], ins[0]), ints(s.inputs[1], ins[1])
            ls, m1, e1, m2, e2, mo, eo = (torch.tensor(v) for v in add_params(s1, s2, s_out))
            q = N.mbqm_t(N.mbqm_t((x1 - z1) << ls, m1, e1) + N.mbqm_t((x2 - z2) << ls, m2, e2), mo, eo)
        else:  # avgpool: window sum of centred integers, one multiplier with the 1/window factor
            x1, s1, z1 = ints(s.inputs[0], ins[0])
            kh, kw = s.kernel
            acc = torch.round(F.avg_pool2d((x1 - z1).double(), s.kernel, s.stride) * (kh * kw)).long()
            m, sh = N.quantize_multiplier_t(torch.tensor(s1 / (kh * kw * s_out), dtype=torch.float64))
            q = N.mbqm_t(acc, m, sh)
        q = torch.clamp(q + zp_out, lo, hi)
        return ((q - zp_out).double() * s_out).to(pre.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals = {INPUT: self.acts[_key(INPUT)](x)}
        for i, s in enumerate(self.specs):
            vals[s.name] = self.run_layer(i, vals)
        out = vals[self.output_name]
        return out.flatten(1) if out.dim() == 4 else out


def fold_model(model: nn.Module, input_shape: tuple[int, int, int] | None = None
               ) -> tuple[list[TracedLayer], dict[str, tuple[torch.Tensor, torch.Tensor, int]]]:
    """Trace ``model`` and fold each BatchNorm into its conv: (traced layers, {layer: (weight, bias, groups)})."""
    traced = trace_model(model, input_shape)
    mods = dict(model.named_modules())
    params = {}
    for t in traced:
        if t.spec.op not in WEIGHTED_OPS:
            continue
        m = mods[t.module]
        if isinstance(m, nn.Linear):
            b = m.bias.detach() if m.bias is not None else torch.zeros(m.out_features)
            params[t.name] = (m.weight.detach().clone(), b.clone(), 1)
        else:
            w, b = fold_conv_bn(m, mods[t.bn] if t.bn else None)
            params[t.name] = (w, b, m.groups)
    return traced, params


def quantize_model(model: nn.Module, config: PrecisionConfig | None = None,
                   input_shape: tuple[int, int, int] | None = None,
                   weight_policy: WeightQuantPolicy = DEFAULT_WEIGHT_POLICY,
                   act_policy: ActQuantPolicy = DEFAULT_ACT_POLICY) -> QuantNet:
    """Build the fake-quant :class:`QuantNet` of a float model (uniform 8-bit unless ``config`` says otherwise).

    The float model is not modified. Activation quantizers need :func:`harness.quant.calibrate.calibrate`
    before they quantize.
    """
    shape = input_shape_of(model, input_shape)
    traced, params = fold_model(model, shape)
    q = QuantNet(traced, params, shape, weight_policy, act_policy, getattr(model, "name", type(model).__name__))
    if config is not None:
        apply_config(q, config)
    return q


def quantizable_layers(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> list[str]:
    """Names a :class:`PrecisionConfig` may use for ``model`` (its conv and linear layers, execution order)."""
    if isinstance(model, QuantNet):
        return model.layer_names()
    return [t.name for t in trace_model(model, input_shape) if t.spec.op in WEIGHTED_OPS]


def tensor_bits_for(specs: Sequence[LayerSpec], config: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    """Bit-width of every activation tensor under ``config`` (see the module docstring for the rule)."""
    return bits_from_config(list(specs), config)


def apply_config(qnet: QuantNet, config: PrecisionConfig | Mapping[str, tuple[int, int]],
                 strict: bool = True) -> QuantNet:
    """Set every layer's ``w_bits`` and every tensor's bits from ``config`` (in place; returns ``qnet``).

    ``strict``: every quantizable layer must be configured; unknown names are always an error.
    """
    cfg = config if isinstance(config, PrecisionConfig) else PrecisionConfig(dict(config))
    names = qnet.layer_names()
    unknown = sorted(set(cfg.layers) - set(names))
    if unknown:
        raise ConfigError(f"precision configuration names layers the model does not have: {unknown[:5]}"
                          f"{' ...' if len(unknown) > 5 else ''}; quantizable layers are {names[:3]} ...")
    missing = [n for n in names if n not in cfg.layers]
    if strict and missing:
        raise ConfigError(f"precision configuration misses {len(missing)} layer(s): {missing[:5]}")
    merged = {**qnet.config.layers, **cfg.layers}
    for n in names:
        qnet.layer(n).weight_quant.bits = merged[n][1]
    for t, b in tensor_bits_for(qnet.specs, merged).items():
        qnet.act(t).bits = b
    qnet.config = PrecisionConfig(merged, dict(cfg.patches), dict(cfg.meta))
    return qnet


def copy_quantnet(qnet: QuantNet) -> QuantNet:
    """An independent copy (e.g. to fine-tune one configuration without touching another)."""
    return copy.deepcopy(qnet)


def iter_inputs(calib: torch.Tensor | Iterable) -> Iterable[torch.Tensor]:
    """Accept a tensor, an iterable of tensors, or an iterable of (inputs, labels) batches."""
    if isinstance(calib, torch.Tensor):
        yield calib
        return
    for item in calib:
        yield item[0] if isinstance(item, (tuple, list)) else item
