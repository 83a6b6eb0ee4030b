"""Export: the fake-quant network becomes an IntModel that the integer reference runs to the same answers."""

import numpy as np
import pytest
import torch

from harness.data import batches, load_data
from harness.ir.model import wrange
from harness.models import build_model, checkpoint_path, load_checkpoint
from harness.precision.config import PrecisionConfig
from harness.quant.export import dequantize_output, export_int_model, quantize_input
from harness.quant.qnet import quantizable_layers, quantize_model
from harness.reference.run import run_model


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def trained_tiny():
    return load_checkpoint(build_model("tiny-cnn"), checkpoint_path("tiny-cnn", "digits")).eval()


def _inputs(data, split, shape, n=None):
    xs = torch.cat([x for x, _ in batches(getattr(data, split), shape, 512, mean=data.mean, std=data.std)])
    return xs[:n] if n else xs


def _reference_logits(im, x):
    xi = quantize_input(x, im.tensors[im.input])
    out = np.stack([run_model(im, xi[i], validate=False)[im.output].reshape(-1) for i in range(len(xi))])
    return dequantize_output(out, im.tensors[im.output])


def test_integer_reference_agrees_with_fake_quant_at_8_bits(trained_tiny, digits):
    q = quantize_model(trained_tiny)
    cfg = PrecisionConfig.uniform(quantizable_layers(q), 8, 8)
    im = export_int_model(q, cfg, calib=_inputs(digits, "train", q.input_shape, 256))
    x = _inputs(digits, "test", q.input_shape)
    with torch.no_grad():
        fq = q.eval()(x).numpy()
    ref = _reference_logits(im, x)
    agree = (ref.argmax(1) == fq.argmax(1)).mean()
    assert agree >= 0.99
    out = im.tensors[im.output]
    assert np.abs(ref - fq).max() <= out.scale * 1.01  # at most one output step apart
    # and the quantized model still classifies: within 3 points of the float model
    with torch.no_grad():
        float_acc = (trained_tiny(x).argmax(1).numpy() == digits.test.y).mean()
    assert (ref.argmax(1) == digits.test.y).mean() >= float_acc - 0.03


def test_mixed_precision_export_is_bit_exact(trained_tiny, digits):
    q = quantize_model(trained_tiny)
    names = quantizable_layers(q)
    cfg = PrecisionConfig.uniform(names, 4, 4).with_layer("dw.conv", 2, 8).with_layer("pw.conv", 8, 2)
    im = export_int_model(q, cfg, calib=_inputs(digits, "train", q.input_shape, 128))
    assert im.tensors["stem.conv"].bits == 2 and im.layers[2].w_bits == 2
    x = _inputs(digits, "test", q.input_shape, 64)
    with torch.no_grad():
        fq = q.eval()(x).numpy()
    assert np.abs(_reference_logits(im, x) - fq).max() <= 1e-4 * max(1.0, np.abs(fq).max())


def test_exported_layers_follow_the_ir_conventions(trained_tiny, digits):
    q = quantize_model(trained_tiny)
    cfg = PrecisionConfig.uniform(quantizable_layers(q), 4, 2)
    im = export_int_model(q, cfg, calib=_inputs(digits, "train", q.input_shape, 64))
    by = {layer.name: layer for layer in im.layers}
    assert by["stem.conv"].weight.shape == (8, 3, 3, 1)  # (Cout, Kh, Kw, Cin)
    assert by["dw.conv"].weight.shape == (3, 3, 8)  # (Kh, Kw, C)
    assert by["pw.conv"].weight.shape == (16, 8) and by["classifier"].weight.shape == (10, 16)
    lo, hi = wrange(2)
    assert all(
        lo <= layer.weight.min() and layer.weight.max() <= hi
        for layer in im.layers
        if layer.weight is not None
    )
    t = im.tensors["stem.conv"]  # after ReLU: unsigned, the clamp starts at real 0
    assert t.zero_point == -(2 ** (t.bits - 1)) and by["stem.conv"].act_min == t.zero_point
    assert im.tensors[im.input].bits == 4  # the first layer's a_bits
    assert im.tensors[im.output].bits == 8  # logits
    assert by["add"].add is not None and by["add"].add.left_shift == 20
    assert by["pool"].multiplier.shape == (1,)


@pytest.mark.parametrize("name", ["mbv1-w0.25", "mcunet", "resnet8", "dscnn", "mbv2-w0.35"])
def test_every_zoo_model_exports_and_runs_in_the_reference(name):
    model = build_model(name).eval()
    if name in ("mbv1-w0.25", "mcunet", "mbv2-w0.35"):  # keep the reference run fast: a smaller input
        model.input_shape = (model.input_shape[0], 32, 32)
    q = quantize_model(model)
    x = torch.randn(4, *model.input_shape).clamp(-1, 1)
    im = export_int_model(q, PrecisionConfig.uniform(quantizable_layers(q), 8, 4), calib=x)
    with torch.no_grad():
        fq = q.eval()(x[:1]).numpy()
    ref = _reference_logits(im, x[:1])
    assert np.abs(ref - fq).max() <= 1e-4 * max(1.0, np.abs(fq).max()) + 1e-6


def test_export_without_calibration_is_refused():
    from harness.errors import ConfigError

    q = quantize_model(build_model("tiny-cnn"))
    with pytest.raises(ConfigError, match="not calibrated"):
        export_int_model(q)
