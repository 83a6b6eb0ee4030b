"""Fine-tuning QuantMCU configurations: the patch-based fake-quant network applies each patch's precisions to that
patch's window, matches the integer patch reference, and trains the shared weights with the maps kept fixed.

The trained tiny CNN on scikit-learn digits (shipped checkpoint), 3x3 patches up to the residual add.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config.compose import compose_config
from harness.errors import ConfigError
from harness.patch.int_reference import run_patched
from harness.patch.intmodel import PatchedModel, plan_model
from harness.precision.config import PrecisionConfig
from harness.quant.export import dequantize_output
from harness.quant.prepare import export, integer_inputs, prepare, quantize
from harness.quant.qnet import copy_quantnet
from harness.search.quantmcu import QuantMcuParams, quantmcu
from harness.search.quantmcu.finetune import (
    PatchQuantNet,
    fake_quant_spec,
    finetune,
    finetuned_patched,
    training_split,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    cfg = compose_config("run", ["experiment=quantmcu", "model=tiny-cnn", "data=digits"])
    p = prepare(cfg, n_eval=120, n_calib=128)
    config8 = PrecisionConfig.uniform(quantize(p).layer_names(), 8, 8)
    q = quantize(p, config8)
    model = export(q, config8)
    base = PatchedModel.uniform(model, plan_model(model, "add", 3))
    calib = integer_inputs(model, p.calib[:16])
    # phi = 2: the top row of patches holds outliers and stays 8-bit, the others go down to 2 bits
    res = quantmcu(base, calib, QuantMcuParams(phi=2.0, lam=0.0))
    return p, q, base, res


def _reference_logits(pm: PatchedModel, xs) -> np.ndarray:
    spec = pm.model.tensors[pm.model.output]
    return np.stack([dequantize_output(run_patched(pm, x).output(pm), spec) for x in xs]).reshape(len(xs), -1)


def test_the_patch_network_of_uniform_8_bit_is_the_fake_quant_network(setup):
    p, q, base, _ = setup
    net = PatchQuantNet(q, base).eval()
    q.integer_exact = False  # the patch network fake-quantizes from the float result, like this path
    try:
        with torch.no_grad():
            assert torch.allclose(net(p.eval_x), q(p.eval_x), atol=1e-5)
    finally:
        q.integer_exact = True


def test_each_patch_quantizes_its_own_window_at_its_own_precision(setup):
    p, q, _, res = setup
    outlier = res.vdpc.outlier
    assert any(outlier) and not all(outlier), "the configuration must mix 8-bit and lowered branches"
    pm = res.patched
    net = PatchQuantNet(q, pm).eval()
    xs = integer_inputs(pm.model, p.eval_x[:8])
    with torch.no_grad():
        xq = net.quantize_input(p.eval_x[:8])
        branches = [net.branch(xq, k) for k in range(pm.plan.num_patches)]
    runs = [run_patched(pm, x) for x in xs]
    lowered = 0
    for k, bufs in enumerate(branches):
        spec = {t: pm.patch_models[k].tensors[t] for t in pm.patch_bits(k)}
        for t, s in spec.items():
            v = bufs[t]  # planner names are the tensor names of an exported model
            levels = torch.unique(torch.round(v / s.scale)).numel()
            assert levels <= 2**s.bits
            lowered += s.bits < 8
            # the integer reference's buffer of this patch: equal but for requantization rounding, which
            # the float path does not mirror (one step, in up to 40 % of the values four layers deep)
            ref = np.stack([r.patches[k][t] for r in runs]).astype(np.float64)
            got = (torch.round(v / s.scale) + s.zero_point).permute(0, 2, 3, 1).numpy()
            d = np.abs(got - ref)
            assert np.mean(d) < 0.5 and np.mean(d <= 1) > 0.99 and d.max() <= 2, (k, t)
    assert lowered > 0
    # the halo two neighbours share is computed twice, each time at its own patch's precision
    a = next(k for k in range(9) if not outlier[k])
    b = next(k for k in range(9) if outlier[k])
    t = next(t for t in pm.patch_bits(a) if pm.patch_bits(a)[t] < pm.patch_bits(b)[t])
    assert pm.patch_models[a].tensors[t].scale != pm.patch_models[b].tensors[t].scale


def test_the_patch_network_follows_the_integer_patch_reference(setup):
    p, q, _, res = setup
    net = PatchQuantNet(q, res.patched).eval()
    with torch.no_grad():
        fq = net(p.eval_x).numpy()
    ref = _reference_logits(res.patched, integer_inputs(res.patched.model, p.eval_x))
    assert np.mean(fq.argmax(1) == ref.argmax(1)) >= 0.95
    assert 10 * np.log10((ref**2).sum() / ((ref - fq) ** 2).sum()) > 20.0


def test_fake_quant_spec_rounds_to_the_grid_and_passes_gradients_inside_the_range(setup):
    _, _, _, res = setup
    spec = next(s for s in res.patched.patch_models[0].tensors.values() if s.bits == 8)
    x = torch.linspace(-300 * spec.scale, 300 * spec.scale, 601, requires_grad=True)
    y = fake_quant_spec(x, spec)
    q = torch.round(y / spec.scale) + spec.zero_point
    assert torch.allclose(q, torch.round(q)) and q.min() == -128 and q.max() == 127
    y.sum().backward()
    inside = (q > -128) & (q < 127)
    assert bool((x.grad[inside] == 1).all()) and x.grad[~inside].sum() < (~inside).sum()


def test_finetuning_trains_the_shared_weights_and_keeps_the_precision_maps(setup):
    p, q, base, res = setup
    q2 = copy_quantnet(q)
    data = training_split(p.data, 256, 100, 0)
    rec = finetune(
        q2, res.patched, data, {"epochs": 1, "lr": 0.002, "batch_size": 32, "threads": 1, "log_every": 0},
        log=lambda m: None,
    )  # fmt: skip
    assert rec["steps"] == 8 and 0.0 <= rec["fakequant_top1"] <= 1.0
    name = q.layer_names()[1]
    assert not torch.equal(q.layer(name).weight, q2.layer(name).weight)  # the shared weights trained
    ft = finetuned_patched(q2, base, res.config, "stage")
    for k in range(9):  # every patch keeps its precisions and ranges
        for t, s in res.patched.patch_models[k].tensors.items():
            g = ft.patch_models[k].tensors[t]
            assert (g.bits, g.scale, g.zero_point) == (s.bits, s.scale, s.zero_point)
    # the exported integer model is the network that trained
    net = PatchQuantNet(q2, ft).eval()
    with torch.no_grad():
        fq = net(p.eval_x).numpy()
    ref = _reference_logits(ft, integer_inputs(ft.model, p.eval_x))
    assert np.mean(fq.argmax(1) == ref.argmax(1)) >= 0.95
    with torch.no_grad():  # activation ranges must not move: the maps were searched on them
        q2.act(q2.specs[0].name).hi.mul_(1.5)
    with pytest.raises(ConfigError, match="changed its range"):
        finetuned_patched(q2, base, res.config, "stage")
