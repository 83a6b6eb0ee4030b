"""The two models QuantuneV2 compares, built on the project's fake-quant network (:mod:`harness.quant`).

The deployed fake-quant network (:class:`~harness.quant.qnet.QuantNet`) is fused and BN-folded, so it has no
separate conv, BN and ReLU to observe. The probe therefore rebuilds the *same* quantization on the *unfused*
graph: ``torch.fx`` copies the float model (module names unchanged), and

* every deployed activation tensor (the network input and each fused layer's output: after the conv's BN and
  ReLU, an add, a pool) gets a quantizer node right after the op that produces it, a copy of the calibrated
  :class:`~harness.quant.quantizers.ActQuant` of that tensor in the QuantNet (same bits, range, signedness);
* every conv/linear computes with its weights passed through the QuantNet layer's
  :class:`~harness.quant.quantizers.WeightQuant` at the layer's ``w_bits``. The quantizer is per output channel
  and symmetric and its scale rule (max or MSE-optimal clip ratio) is invariant to scaling a channel, so
  quantizing the unfolded weight equals quantizing the BN-folded one, rescaled (up to float rounding).

Differences from the deployed network, both below one LSB: the int32 bias rounding is not applied, and outputs
are fake-quantized from the float result instead of through the integer multiplier/shift. The float twin is
the same graph with every quantizer switched off, so both passes observe identically named modules.

Every tensor is quantized at its activation group's precision, as deployed (:mod:`.grouping`): a tensor only
an add or a pool reads (a MobileNetV2 projection output) holds the precision of the group it joins, not 8 bits.

Attribution: a tensor's quantizer belongs to the layers that *read* its group (a PrecisionConfig's ``a_bits`` is
the precision of a layer's input, and one group holds one precision), so the input SQNR of a fused layer is taken
before its input's quantizer (``input_op``) and the noise of the other quantizers of its input group is added to
it (``group_ops``): without that, the noise of a tensor read only by an add would be charged to no layer.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from harness.errors import UnsupportedLayerError
from harness.graph.spec import INPUT
from harness.graph.trace import TracedLayer, trace_model
from harness.ops import WEIGHTED_OPS
from harness.precision.config import PrecisionConfig
from harness.quant.calibrate import calibrate
from harness.quant.qnet import QuantNet
from harness.search.quantune.grouping import input_group_tensors, quantize_grouped
from harness.search.quantune.units import UnfusedOp, unfused_ops

_ADDS = {operator.add, operator.iadd, torch.add}
_POOL_FNS = {F.adaptive_avg_pool2d, F.avg_pool2d}
_ACT_FNS = {F.relu, torch.relu, F.relu6}
_INPLACE_METHODS = ("relu_", "add_", "mul_", "clamp_", "hardtanh_")
QUANT_KIND = "act_quant"


class TensorQuant(nn.Module):
    """A deployed activation quantizer inserted into the unfused graph (identity when ``enabled`` is off)."""

    def __init__(self, tensor: str, act: nn.Module, enabled: bool) -> None:
        super().__init__()
        self.tensor = tensor
        self.act = copy.deepcopy(act)
        self.act.enabled = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class _WeightQuantized(nn.Module):
    """Parametrization: the weight as the deployed layer's weight quantizer sees it."""

    def __init__(self, wq: nn.Module) -> None:
        super().__init__()
        self.wq = copy.deepcopy(wq)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.wq(w)


@dataclass
class Probe:
    """The float and quantized unfused models, the ops to observe, and which op's input is a layer's input."""

    float_model: nn.Module
    quant_model: nn.Module
    ops: list[UnfusedOp]
    input_op: dict[str, str]  # conv/linear name -> key of the op whose input SQNR is the fused layer's input
    qnet: QuantNet
    group_ops: dict[
        str, list[str]
    ]  # conv/linear name -> quantizer ops of the other tensors of its input group


def _is_act(node: fx.Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], (nn.ReLU, nn.ReLU6))
    if node.op == "call_function":
        return node.target in _ACT_FNS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _chain_end(node: fx.Node, modules: Mapping[str, nn.Module], bn: str | None, act: str | None) -> fx.Node:
    """The last node fused into the layer that starts at ``node`` (its BN, then its activation)."""
    end = node
    if bn is not None:
        (end,) = end.users
        if str(end.target) != bn:
            raise UnsupportedLayerError(
                f"expected BatchNorm {bn!r} after {node.target!r}, found {end.target!r}"
            )
    if act is not None:
        (nxt,) = end.users
        if not _is_act(nxt, modules):
            raise UnsupportedLayerError(f"expected the fused {act} after {end.name!r}, found {nxt.name!r}")
        end = nxt
    return end


def _layer_nodes(gm: fx.GraphModule, traced: Sequence[TracedLayer]) -> dict[str, fx.Node]:
    """Fused layer name -> the fx node holding its output tensor (layers matched to nodes in execution order)."""
    modules = dict(gm.named_modules())
    by_module = {t.module: t for t in traced if t.spec.op in WEIGHTED_OPS}
    weightless = [t for t in traced if t.spec.op in ("add", "avgpool")]
    out: dict[str, fx.Node] = {}
    wl = iter(weightless)
    for node in gm.graph.nodes:
        t = None
        if node.op == "call_module" and str(node.target) in by_module:
            t = by_module[str(node.target)]
        elif (
            (
                node.op == "call_function"
                and (node.target in _ADDS or node.target in _POOL_FNS or node.target is torch.mean)
            )
            or (node.op == "call_method" and node.target in ("add", "add_", "mean"))
            or (
                node.op == "call_module"
                and isinstance(modules[str(node.target)], (nn.AdaptiveAvgPool2d, nn.AvgPool2d))
            )
        ):
            t = next(wl, None)
            if t is None:
                raise UnsupportedLayerError(
                    f"node {node.name!r} has no counterpart in the traced layer graph"
                )
        if t is not None:
            out[t.name] = _chain_end(node, modules, t.bn, t.spec.activation)
    if len(out) != len(traced) or next(wl, None) is not None:
        raise UnsupportedLayerError("the unfused graph and the traced layer graph do not match one to one")
    return out


def _no_inplace(gm: fx.GraphModule) -> None:
    """Make every op out-of-place, so the float pass can keep references instead of copies."""
    for m in gm.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is operator.iadd:
            n.target = operator.add
        elif n.op == "call_method" and isinstance(n.target, str) and n.target in _INPLACE_METHODS:
            n.target = n.target[:-1]
        if n.kwargs.get("inplace") is True:
            n.kwargs = {**n.kwargs, "inplace": False}


def _build(
    model: nn.Module, qnet: QuantNet, tensor_nodes: Mapping[str, str], quantized: bool
) -> tuple[fx.GraphModule, dict[str, str]]:
    """One fx copy with quantizer nodes (named ``quant:<tensor>`` -> module ``_aq<i>``) after every tensor."""
    gm = fx.symbolic_trace(copy.deepcopy(model))
    _no_inplace(gm)
    nodes = {n.name: n for n in gm.graph.nodes}
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    modules_of: dict[str, str] = {}
    for i, (tensor, node_name) in enumerate(tensor_nodes.items()):
        node = placeholder if tensor == INPUT else nodes[node_name]
        mod_name = f"_aq{i}"
        gm.add_module(mod_name, TensorQuant(tensor, qnet.act(tensor), quantized))
        with gm.graph.inserting_after(node):
            q = gm.graph.call_module(mod_name, (node,))
        node.replace_all_uses_with(q, delete_user_cb=lambda user, q=q: user is not q)
        modules_of[tensor] = mod_name
    gm.graph.lint()
    gm.recompile()
    if quantized:
        from torch.nn.utils import parametrize

        mods = dict(gm.named_modules())
        for name in qnet.layer_names():
            if name not in mods:
                raise UnsupportedLayerError(f"layer {name!r} is not a module of the model (a shared layer?)")
            # the weight seen by forward (and by weight SQNR) is the quantized one; the float one stays stored
            parametrize.register_parametrization(
                mods[name], "weight", _WeightQuantized(qnet.layer(name).weight_quant)
            )
    return gm, modules_of


def build_probe(
    model: nn.Module, config: PrecisionConfig, calib: torch.Tensor, *, input_fixed: bool = True
) -> Probe:
    """Quantize ``model`` at ``config`` (activation ranges calibrated on ``calib``) and return the unfused
    float/quantized pair to observe.

    ``input_fixed``: the network input's precision is not a decision (it arrives as int8), so a layer reading
    it takes its input SQNR after the input quantizer; otherwise before, like every other layer.
    """
    model = model.eval()
    qnet = calibrate(quantize_grouped(model, config), calib)
    traced = trace_model(model)
    layer_nodes = {k: v.name for k, v in _layer_nodes(fx.symbolic_trace(model), traced).items()}
    tensor_nodes = {INPUT: "", **layer_nodes}
    fgm, mods = _build(model, qnet, tensor_nodes, quantized=False)
    qgm, _ = _build(model, qnet, tensor_nodes, quantized=True)
    fgm.eval(), qgm.eval()

    base_ops = unfused_ops(fgm)
    # the quantizer ops, placed right after the op producing their tensor (execution order for the tables)
    quant_ops = {t: UnfusedOp(f"quant:{t}", m, QUANT_KIND, None) for t, m in mods.items()}
    first_call: dict[str, int] = {}
    for i, n in enumerate(fgm.graph.nodes):
        if n.op == "call_module":
            first_call.setdefault(str(n.target), i)
    ops = sorted([*base_ops, *quant_ops.values()], key=lambda op: first_call[op.module])
    input_op: dict[str, str] = {}
    group_ops: dict[str, list[str]] = {}
    for name, tensors in input_group_tensors([t.spec for t in traced], input_fixed).items():
        if tensors:
            input_op[name] = quant_ops[tensors[0]].key
            group_ops[name] = [quant_ops[x].key for x in tensors[1:]]
    return Probe(fgm, qgm, ops, input_op, qnet, group_ops)
