"""The numpy integer reference equals a literal loop transcription of the ir.py semantics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.errors import ConfigError, UnsupportedLayerError
from harness.ir.model import IntModel, TensorSpec, qrange
from harness.ops.add import add
from harness.ops.avgpool import avgpool
from harness.ops.conv2d import conv2d_acc
from harness.ops.fc import fc
from harness.ops.pointwise import pointwise_acc
from harness.reference.run import run_model
from harness.synth.random_model import make_weighted_layer, random_input, random_layer_model, random_network
from tests.fixtures.numerics import scalar_mbqm


def naive_requant(acc, m, s, zp, lo, hi):
    return max(lo, min(hi, zp + scalar_mbqm(int(acc), int(m), int(s))))


def naive_conv(x, w, bias, m, s, in_zp, out_zp, stride, pad, lo, hi, depthwise=False):
    h, wd, cin = x.shape
    kh, kw = (w.shape[0], w.shape[1]) if depthwise else (w.shape[1], w.shape[2])
    cout = cin if depthwise else w.shape[0]
    oh = (h + pad[0] + pad[2] - kh) // stride + 1
    ow = (wd + pad[1] + pad[3] - kw) // stride + 1
    out = np.zeros((oh, ow, cout), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for o in range(cout):
                acc = int(bias[o])
                for i in range(kh):
                    for j in range(kw):
                        y, xx = oy * stride - pad[0] + i, ox * stride - pad[1] + j
                        if not (0 <= y < h and 0 <= xx < wd):
                            continue  # padded taps contribute nothing
                        if depthwise:
                            acc += (int(x[y, xx, o]) - in_zp) * int(w[i, j, o])
                        else:
                            acc += sum((int(x[y, xx, c]) - in_zp) * int(w[o, i, j, c]) for c in range(cin))
                out[oy, ox, o] = naive_requant(acc, m[o], s[o], out_zp, lo, hi)
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("op", ["conv2d", "depthwise", "pointwise"])
def test_conv_family_matches_loops(op, seed):
    rng = np.random.default_rng(seed)
    a, wb, o = (int(rng.choice([2, 4, 8])) for _ in range(3))
    k = 1 if op == "pointwise" else int(rng.choice([1, 3, 5]))
    stride = int(rng.choice([1, 2]))
    model = random_layer_model(
        op,
        a,
        wb,
        o,
        h=int(rng.integers(k, 8)),
        w=int(rng.integers(k, 8)),
        cin=int(rng.integers(1, 6)),
        cout=int(rng.integers(1, 6)),
        kernel=k,
        stride=stride,
        padding=["same", "valid"][seed % 2],
        act=[None, "relu", "relu6"][seed % 3],
        rng=rng,
    )
    layer = model.layers[-1]
    x = random_input(model.tensors["x"], rng)
    got = run_model(model, x)["y"]
    w = layer.weight.reshape(layer.weight.shape[0], 1, 1, -1) if op == "pointwise" else layer.weight
    want = naive_conv(
        x,
        w,
        layer.bias,
        layer.multiplier,
        layer.shift,
        model.tensors["x"].zero_point,
        model.tensors["y"].zero_point,
        layer.stride,
        layer.padding,
        layer.act_min,
        layer.act_max,
        depthwise=op == "depthwise",
    )
    assert got.dtype == np.int8
    assert (got == want).all()


def test_conv_matches_torch_float64_accumulation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(9, 11, 5))
    w = rng.integers(-127, 128, size=(6, 3, 3, 5))
    bias = rng.integers(-1000, 1000, size=6)
    acc = conv2d_acc(x, w, bias, in_zp=-3, stride=2, padding=(1, 1, 1, 1))
    xt = torch.tensor(x - (-3), dtype=torch.float64).permute(2, 0, 1)[None]
    wt = torch.tensor(w, dtype=torch.float64).permute(0, 3, 1, 2)
    ref = torch.nn.functional.conv2d(xt, wt, torch.tensor(bias, dtype=torch.float64), stride=2, padding=1)
    assert (acc == ref[0].permute(1, 2, 0).numpy().astype(np.int64)).all()


def test_fc_is_a_dot_product_per_output():
    x = np.array([[[3, -2, 7]]])
    w = np.array([[1, 2, 3], [-1, 0, 1]])
    acc = pointwise_acc(x, w, np.array([10, 0]), in_zp=1)
    assert acc.reshape(-1).tolist() == [10 + 2 - 6 + 18, -2 + 6]
    y = fc(
        x,
        w,
        np.array([10, 0]),
        np.array([1 << 30, 1 << 30]),
        np.array([1, 1]),
        in_zp=1,
        out_zp=-5,
        act_min=-128,
        act_max=127,
    )
    assert y.reshape(-1).tolist() == [24 - 5, 4 - 5]  # multiplier 0.5 * 2**1 = 1


def test_add_follows_tflite_int8_add():
    x1 = np.array([[[10, -20]]])
    x2 = np.array([[[5, 100]]])
    kw = {
        "in1_zp": 2,
        "in2_zp": -1,
        "out_zp": 3,
        "left_shift": 20,
        "in1_multiplier": 1 << 30,
        "in1_shift": 0,
        "in2_multiplier": 1 << 30,
        "in2_shift": -1,
        "out_multiplier": 1 << 30,
        "out_shift": -19,
        "act_min": -128,
        "act_max": 127,
    }
    got = add(x1, x2, **kw).reshape(-1).tolist()
    want = []
    for a, b in ((10, 5), (-20, 100)):
        s1 = scalar_mbqm((a - 2) << 20, 1 << 30, 0)
        s2 = scalar_mbqm((b + 1) << 20, 1 << 30, -1)
        want.append(max(-128, min(127, 3 + scalar_mbqm(s1 + s2, 1 << 30, -19))))
    assert got == want
    assert want == [3 + 6, 3 + 14]  # 8/2 + 6/4 = 5.5 -> 6 and -22/2 + 101/4 = 14.25 -> 14


def test_avgpool_averages_windows():
    x = np.arange(16).reshape(4, 4, 1) - 8
    m, s = 1 << 30, -1  # 0.5 * 2**-1 = 1/4
    y = avgpool(
        x, kernel=(2, 2), stride=2, multiplier=m, shift=s, in_zp=0, out_zp=0, act_min=-128, act_max=127
    )
    # window sums -22, -14, 10, 18; quarters -5.5, -3.5, 2.5, 4.5 round half away from zero
    assert y[..., 0].tolist() == [[-6, -4], [3, 5]]


def test_run_model_returns_every_tensor_in_execution_order():
    model = random_network(3)
    vals = run_model(model, random_input(model.tensors["input"], 0))
    assert list(vals) == ["input"] + [layer.output for layer in model.layers]
    for name, v in vals.items():
        lo, hi = qrange(model.tensors[name].bits)
        assert v.shape == model.tensors[name].shape and lo <= v.min() and v.max() <= hi


@pytest.mark.parametrize("seed", range(4))
def test_random_network_outputs_have_spread(seed):
    model = random_network(seed)
    vals = run_model(model, random_input(model.tensors["input"], seed))
    for layer in model.layers[:-1]:
        assert len(np.unique(vals[layer.output])) >= 2, layer.name
    assert len(np.unique(vals[model.output])) >= 3


def test_run_model_rejects_bad_input():
    model = random_layer_model("pointwise", 4, 4, 4, rng=0)
    with pytest.raises(ConfigError, match="shape"):
        run_model(model, np.zeros((2, 2, 2), dtype=np.int8))
    with pytest.raises(ConfigError, match="4-bit integers"):
        run_model(model, np.full(model.tensors["x"].shape, 9, dtype=np.int8))


def test_unknown_op_is_unsupported():
    model = random_layer_model("pointwise", 8, 8, 8, rng=0)
    model.layers[0].op = "lstm"
    with pytest.raises(UnsupportedLayerError, match="lstm"):
        run_model(model, random_input(model.tensors["x"], 0))


def _mobilenetv2(width: float = 0.35, res: int = 96, classes: int = 1000) -> IntModel:
    """MobileNetV2 topology with random 8-bit weights (calibrated on uniform noise)."""
    rng = np.random.default_rng(0)
    c = lambda v: max(8, int(v * width + 4) // 8 * 8)
    x = TensorSpec("input", (res, res, 3), 8, 1 / 128, 0)
    tensors, layers = {"input": x}, []

    def mk(op, t, **kw):
        layer, out = make_weighted_layer(
            f"l{len(layers)}", op, t, f"t{len(layers)}", w_bits=8, o_bits=8, rng=rng, **kw
        )
        layers.append(layer)
        tensors[out.name] = out
        return out

    t = mk("conv2d", x, cout=c(32), stride=2, act="relu6")
    cfg = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    for e, ch, n, s in cfg:
        for i in range(n):
            h = mk("pointwise", t, cout=t.shape[2] * e, act="relu6") if e != 1 else t
            h = mk("depthwise", h, stride=s if i == 0 else 1, act="relu6")
            t = mk("pointwise", h, cout=c(ch))
    t = mk("pointwise", t, cout=1280, act="relu6")
    return IntModel(tensors, layers, "input", t.name, name="mbv2")


def test_reference_is_fast_enough_for_mobilenetv2_035_at_96px():
    model = _mobilenetv2()
    x = random_input(model.tensors["input"], 1)
    t0 = time.perf_counter()
    vals = run_model(model, x)
    elapsed = time.perf_counter() - t0
    assert len(vals) == len(model.layers) + 1
    assert elapsed < 5.0, f"reference took {elapsed:.1f} s"
