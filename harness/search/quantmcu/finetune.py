"""Fine-tuning a QuantMCU configuration with its per-patch precision maps fixed.

QuantMCU's search runs without training; its paper reports accuracy after it. Here a configuration (which patch
branch holds which feature map at which precision, with which range) is kept fixed and the shared weights are
trained with quantization-aware training *through the patch-based computation*: :class:`PatchQuantNet` runs the
patch stage patch by patch, exactly as the firmware and :func:`harness.patch.int_reference.run_patched` do
(each patch on its input window, each stage layer on the plan's window of it with the plan's zero padding at
the image border, the split layer's grains assembled into the stage output), and fake-quantizes every tensor of
patch ``p`` with patch ``p``'s own specification. Overlapping halos are computed once per patch, at that
patch's precision, so a pixel two branches share is quantized differently in each: a full-tensor network with a
per-pixel mask cannot express that.

* Weights and biases are the calibrated :class:`~harness.quant.qnet.QuantNet`'s (BN folded), shared by all
  patches, fake-quantized by its weight quantizers; a bias is rounded at ``s_in(p) * s_w`` of its patch.
* Activation specifications (bits, scale, zero point) are constants taken from the QuantMCU patched model:
  the base model's tensors (the QuantNet's calibrated ranges) and every patch's retargeted stage tensors
  (:func:`~harness.search.quantmcu.build.patched_from_config`: the same real range times the chosen clip).
  The ranges do not train, so after fine-tuning the QuantNet exports to an 8-bit base with the very same tensor
  specifications and :func:`finetuned_patched` rebuilds the per-patch models from the unchanged configuration.
* Gradients pass the rounding straight through (zero outside a tensor's range), as in the QuantNet.

The forward pass computes in floating point from fake-quantized values (not the integer requantization), so it
matches the integer patch reference up to rounding of the requantization; accuracy is always reported from the
integer reference (host) and the board.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from harness.data.base import DataSplits, ImageSet
from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import IntModel, TensorSpec, qrange
from harness.models.train import TrainConfig, fit
from harness.ops import WEIGHTED_OPS
from harness.patch.intmodel import PatchedModel, producers
from harness.precision.config import PrecisionConfig
from harness.quant import numerics as N
from harness.quant.export import export_int_model
from harness.quant.qnet import QuantNet
from harness.search.quantmcu.branches import branches
from harness.search.quantmcu.build import patched_from_config

Window = tuple[int, int, int, int]


def _planner_specs(model: IntModel) -> dict[str, TensorSpec]:
    """The model's tensor specifications keyed by the planner's names (producing layer, or ``"input"``)."""
    return {pname: model.tensors[t] for t, pname in producers(model).items()}


def fake_quant_spec(x: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
    """``x`` on the integer grid of ``spec`` (``scale * (clamp(round(x / scale) + zp) - zp)``); the gradient is 1
    inside the representable range and 0 outside it."""
    qmin, qmax = qrange(spec.bits)
    s, zp = float(spec.scale), int(spec.zero_point)
    value = (torch.clamp(torch.round(x.detach() / s) + zp, qmin, qmax) - zp) * s
    xc = torch.clamp(x, (qmin - zp) * s, (qmax - zp) * s)
    return xc + (value - xc).detach()


def _crop(t: torch.Tensor, want: Window, held: Window) -> torch.Tensor:
    """The part ``want`` of a per-patch buffer that holds window ``held`` (both in full-tensor coordinates)."""
    a0, a1, b0, b1 = want
    h0, _, w0, _ = held
    return t[:, :, a0 - h0 : a1 - h0, b0 - w0 : b1 - w0]


class PatchQuantNet(nn.Module):
    """The patch-based fake-quant network of a QuantMCU configuration (see the module docstring).

    ``qnet``: the calibrated 8-bit QuantNet the base integer model of ``pm`` was exported from (its weights are
    what trains); ``pm``: the QuantMCU patched model (per-patch precisions and ranges).
    """

    def __init__(self, qnet: QuantNet, pm: PatchedModel) -> None:
        super().__init__()
        self.qnet = qnet
        self.input_shape = tuple(qnet.input_shape)
        self.plan = pm.plan
        self.specs: dict[str, LayerSpec] = {s.name: s for s in qnet.specs}
        names = [s.name for s in qnet.specs]
        if [layer.name for layer in pm.model.layers] != names:
            raise ConfigError("the patched model was not exported from this QuantNet (its layers differ)")
        self.stage = names[: pm.n_stage]
        self.rest = names[pm.n_stage :]
        self.base_specs = _planner_specs(pm.model)
        self.patch_specs = [_planner_specs(m) for m in pm.patch_models]

    def _layer(
        self, s: LayerSpec, ins: list[torch.Tensor], padding: tuple[int, int, int, int], in_spec: TensorSpec
    ) -> torch.Tensor:
        """Layer ``s`` on (already quantized) inputs, in real values, its activation applied, not quantized."""
        if s.op in WEIGHTED_OPS:
            layer = self.qnet.layer(s.name)
            w = layer.weight_quant(layer.weight)
            b = layer.bias
            if layer.weight_quant.enabled and layer.quant_bias:
                b = N.fake_quant_bias(b, float(in_spec.scale) * layer.weight_quant.scale(layer.weight))
            if s.op == "fc":
                y = F.linear(ins[0].flatten(1), w, b)
            else:
                t, left, bottom, right = padding
                x = F.pad(ins[0], (left, right, t, bottom)) if any(padding) else ins[0]
                y = F.conv2d(x, w, b, s.stride, 0, 1, layer.groups)
        elif s.op == "add":
            y = ins[0] + ins[1]
        elif s.op == "avgpool":
            y = F.avg_pool2d(ins[0], s.kernel, s.stride)
        else:  # pragma: no cover - the trace produces only the ops above
            raise ConfigError(f"unknown op {s.op!r}")
        if s.activation == "relu":
            y = F.relu(y)
        elif s.activation == "relu6":
            y = F.relu6(y)
        return y

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant_spec(x, self.base_specs[INPUT])

    def branch(self, xq: torch.Tensor, p: int) -> dict[str, torch.Tensor]:
        """Patch ``p``'s branch on the quantized input ``xq``: every per-patch buffer (planner names: the input
        window, each stage layer's window at patch ``p``'s precision; the split layer's: its output grain)."""
        plan, specs = self.plan, self.patch_specs[p]
        bufs = {INPUT: _crop(xq, plan.windows[INPUT][p], (0, xq.shape[2], 0, xq.shape[3]))}
        for st in plan.schedule[p]:
            ins = [_crop(bufs[src], win, plan.windows[src][p]) for src, win in zip(st.inputs, st.in_windows)]
            y = self._layer(self.specs[st.layer], ins, st.padding, specs[st.inputs[0]])
            bufs[st.layer] = fake_quant_spec(y, specs[st.layer])
        return bufs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize_input(x)
        cols = len(self.plan.grid_cols)
        grains = [self.branch(xq, p)[self.plan.split] for p in range(self.plan.num_patches)]
        rows = [torch.cat(grains[r * cols : (r + 1) * cols], dim=3) for r in range(len(self.plan.grid_rows))]
        vals = {self.plan.split: torch.cat(rows, dim=2)}
        for name in self.rest:
            s = self.specs[name]
            y = self._layer(s, [vals[t] for t in s.inputs], s.padding, self.base_specs[s.inputs[0]])
            vals[name] = fake_quant_spec(y, self.base_specs[name])
        out = vals[self.rest[-1] if self.rest else self.plan.split]
        return out.flatten(1)


def finetuned_patched(
    qnet: QuantNet, base: PatchedModel, config: PrecisionConfig, scope: str
) -> PatchedModel:
    """The integer patch-based model of ``config`` on the (fine-tuned) weights of ``qnet``: its 8-bit export,
    checked to hold the tensor specifications of ``base`` (the uniform model the configuration was searched on),
    then each patch's stage retargeted as the configuration says (same precisions and clips)."""
    model = export_int_model(qnet)
    for t, spec in base.model.tensors.items():
        got = model.tensors[t]
        if (got.bits, got.scale, got.zero_point) != (spec.bits, spec.scale, spec.zero_point):
            raise ConfigError(
                f"tensor {t!r} changed its range during fine-tuning ({spec.scale}/{spec.zero_point} -> "
                f"{got.scale}/{got.zero_point}); per-patch precision maps need fixed activation ranges"
            )
    return patched_from_config(branches(PatchedModel.uniform(model, base.plan), scope), config)


def finetune(
    qnet: QuantNet,
    pm: PatchedModel,
    data: DataSplits,
    settings: Mapping,
    log: Callable[[str], None] = print,
) -> dict:
    """Fine-tune ``qnet``'s weights in place through :class:`PatchQuantNet` of ``pm`` (precisions and ranges
    fixed) on ``data.train``; ``settings`` are trainer settings (epochs, lr, batch size, ...). Returns the
    trainer's record (``train_seconds``, ``history``) and the fake-quant top-1 on ``data.test``."""
    net = PatchQuantNet(qnet, pm)
    cfg = TrainConfig.from_mapping(dict(settings))
    res = fit(net, data, cfg, input_shape=net.input_shape, log=log)
    qnet.eval()
    return {
        "train_seconds": res["train_seconds"],
        "steps": res["steps"],
        "fakequant_top1": res["test_top1"],
        "loss_history": [h["loss"] for h in res["history"]],
    }


def training_split(data: DataSplits, n_train: int | None, n_test: int, seed: int) -> DataSplits:
    """A seeded training subset (``n_train`` images, None: all) and test subset of ``data``."""
    train = data.train.subset(min(int(n_train), len(data.train)), seed + 7) if n_train else data.train
    test = data.test.subset(min(int(n_test), len(data.test)), seed + 11)
    return DataSplits(
        data.name,
        ImageSet(train.x, train.y),
        ImageSet(test.x, test.y),
        data.classes,
        data.mean,
        data.std,
        dict(data.meta),
    )
