"""Quantization: numerics round trips, exact BN folding, declared quantizers, per-layer configuration."""

import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.models import build_model
from harness.precision.config import PrecisionConfig
from harness.quant import numerics as N
from harness.quant.bnfold import fold_conv_bn
from harness.quant.calibrate import calibrate
from harness.quant.qnet import apply_config, quantizable_layers, quantize_model
from harness.quant.quantizers import ActQuant, ActQuantPolicy, WeightQuantPolicy


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_quantization_is_symmetric_narrow_and_within_half_a_step(bits):
    w = torch.randn(6, 3, 3, 3)
    s = N.weight_scales(w, bits)
    q = N.quantize_weight(w, s, bits)
    m = 2 ** (bits - 1) - 1
    assert q.abs().max() <= m and torch.equal(q, torch.round(q))
    assert (q.flatten(1).abs().amax(1) == m).all()  # every channel uses its full range
    err = (q * s[:, None, None, None] - w).abs()
    assert (err <= s[:, None, None, None] / 2 + 1e-6).all()


def test_mse_weight_scales_never_increase_the_error():
    w = torch.randn(8, 64) * torch.linspace(0.1, 2, 64)
    for bits in (2, 4):
        e = {
            m: ((N.quantize_weight(w, s := N.weight_scales(w, bits, m), bits) * s[:, None] - w) ** 2).sum()
            for m in ("max", "mse")
        }
        assert e["mse"] <= e["max"]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_activation_grid_holds_zero_exactly_and_unsigned_zero_point_is_the_minimum(bits):
    _, zp = N.act_qparams(0.0, 3.0, bits)
    assert int(zp) == -(2 ** (bits - 1))
    s2, zp2 = N.act_qparams(-1.3, 2.1, bits)
    zero = N.quantize_act(torch.zeros(1), s2, zp2, bits)
    assert float((zero - zp2) * s2) == 0.0
    x = torch.linspace(-1.3, 2.1, 101)
    back = (N.quantize_act(x, s2, zp2, bits) - zp2) * s2
    assert (back - x).abs().max() <= float(s2) * 0.5 + 1e-6 + float(
        s2
    )  # at most one step at the clipped edge


def test_fake_quant_passes_gradients_straight_through_and_to_learned_clip():
    x = torch.linspace(-2, 2, 40, requires_grad=True)  # no sample exactly on a bound
    lo, hi = torch.tensor(-1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    N.fake_quant_act(x, lo, hi, 4).sum().backward()
    inside = (x.detach() >= -1) & (x.detach() <= 1)
    assert torch.equal(x.grad, inside.float())
    assert hi.grad == float((x.detach() > 1).sum()) and lo.grad == float((x.detach() < -1).sum())


def test_bn_folding_is_exact():
    conv, bn = nn.Conv2d(3, 5, 3, padding=1, bias=True), nn.BatchNorm2d(5)
    _randomize_bn(nn.Sequential(conv, bn))
    w, b = fold_conv_bn(conv, bn)
    x = torch.randn(2, 3, 7, 7)
    ref = bn(conv(x))
    assert torch.allclose(nn.functional.conv2d(x, w, b, padding=1), ref, atol=1e-5)


@pytest.mark.parametrize("name", ["mbv2-w0.35", "resnet8", "tiny-cnn"])
def test_quantnet_without_quantization_is_the_float_model(name):
    model = _randomize_bn(build_model(name))
    q = quantize_model(model).set_quant(False, False)
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        assert torch.allclose(q(x), model(x), atol=1e-4, rtol=1e-4)


def test_apply_config_sets_weight_and_tensor_bits():
    q = quantize_model(build_model("tiny-cnn"))
    names = quantizable_layers(q)
    assert names == ["stem.conv", "dw.conv", "pw.conv", "res.conv", "classifier"]
    cfg = PrecisionConfig.uniform(names, 8, 8).with_layer("pw.conv", 2, 4).with_layer("res.conv", 4, 8)
    apply_config(q, cfg)
    assert q.layer("pw.conv").w_bits == 4
    # dw.conv's output is read by pw.conv only (2 bits); pw.conv's by res.conv (4) and the add: widest = 4
    assert q.act("dw.conv").bits == 2 and q.act("pw.conv").bits == 4
    assert q.act("res.conv").bits == 8  # read only by the add
    assert q.act("stem.conv").unsigned and not q.act("res.conv").unsigned


def test_apply_config_rejects_unknown_and_missing_layers():
    q = quantize_model(build_model("tiny-cnn"))
    with pytest.raises(ConfigError, match="does not have"):
        apply_config(q, {"nope": (8, 8)})
    with pytest.raises(ConfigError, match="misses"):
        apply_config(q, {"stem.conv": (4, 4)})
    apply_config(q, {"stem.conv": (4, 4)}, strict=False)
    assert q.layer("stem.conv").w_bits == 4 and q.layer("dw.conv").w_bits == 8


def test_precision_config_file_round_trip(tmp_path):
    q = quantize_model(build_model("tiny-cnn"))
    cfg = PrecisionConfig.uniform(quantizable_layers(q), 4, 2).with_layer("classifier", 8, 8)
    for suffix in (".json", ".yaml"):
        back = PrecisionConfig.load(cfg.save(tmp_path / f"c{suffix}"))
        assert back.layers == cfg.layers and back.digest() == cfg.digest()
        apply_config(q, back)
        assert q.layer("classifier").w_bits == 8 and q.layer("stem.conv").w_bits == 2


def test_percentile_calibration_clips_outliers_minmax_does_not():
    x = torch.randn(10000)
    x[0] = 100.0
    mm, pc = ActQuant(8), ActQuant(8, policy=ActQuantPolicy("percentile", 99.9))
    for a in (mm, pc):
        a.start_observing()
        a(x)
        a.finish_observing()
    assert float(mm.hi) == 100.0 and float(pc.hi) < 5.0


def test_calibrated_8bit_network_is_close_to_float():
    model = _randomize_bn(build_model("tiny-cnn"))
    q = quantize_model(model, weight_policy=WeightQuantPolicy("max"))
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    calibrate(q, x)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (ref - out).abs().max() < 0.05 * ref.abs().max()


def test_short_qat_lowers_the_loss_at_2_bits():
    from harness.data import load_data
    from harness.models.registry import checkpoint_path, load_checkpoint
    from harness.quant.qat import qat_finetune

    model = load_checkpoint(build_model("tiny-cnn"), checkpoint_path("tiny-cnn", "digits")).eval()
    data = load_data({"name": "digits", "n_train": 256, "n_test": 256})
    q = quantize_model(
        model, act_policy=ActQuantPolicy(learn_clip=True), weight_policy=WeightQuantPolicy("mse")
    )
    apply_config(q, PrecisionConfig.uniform(quantizable_layers(q), 4, 2))
    res = qat_finetune(q, data, {"epochs": 2, "lr": 1e-3, "batch_size": 64, "log_every": 0, "threads": 1})
    assert res["test_top1_after"] >= res["test_top1_before"] - 0.02
    assert res["loss_history"][-1] < res["loss_history"][0]
