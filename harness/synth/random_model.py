"""Random integer layers and small networks with realistic requantization, for everyone's tests.

Multipliers are chosen from the expected spread of the accumulator (inputs uniform over their range, weights
uniform over theirs) so that outputs cover roughly +-3 sigma of the output range instead of saturating; biases
cancel the mean that a non-centred input zero point induces. All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import BITS, AddParams, IntLayer, IntModel, TensorSpec, qrange, wrange
from harness.ir.requant import add_params, quantize_multiplier
from harness.reference.run import run_layer

Padding = str | tuple[int, int, int, int]


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def same_padding(h: int, w: int, kernel: tuple[int, int], stride: int) -> tuple[int, int, int, int]:
    """TensorFlow 'SAME' padding (top, left, bottom, right): the extra pixel goes bottom/right."""
    out = []
    for n, k in ((h, kernel[0]), (w, kernel[1])):
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        out.append((total // 2, total - total // 2))
    (t, b), (l, r) = out
    return t, l, b, r


def _resolve_padding(padding: Padding, h: int, w: int, kernel: tuple[int, int], stride: int):
    if isinstance(padding, str):
        if padding == "same":
            return same_padding(h, w, kernel, stride)
        if padding == "valid":
            return (0, 0, 0, 0)
        raise ConfigError(f"padding must be 'same', 'valid' or a 4-tuple, got {padding!r}")
    p = tuple(int(v) for v in padding)
    if len(p) != 4:
        raise ConfigError(f"padding must be (top, left, bottom, right), got {padding!r}")
    return p


def _clamp(act: str | None, bits: int, zp: int) -> tuple[int, int]:
    lo, hi = qrange(bits)
    if act in (None, "none"):
        return lo, hi
    if act == "relu":
        return zp, hi
    if act == "relu6":  # the output scale is set so 6.0 lands at three quarters of the positive range
        return zp, zp + max(1, (3 * (hi - zp)) // 4)
    raise ConfigError(f"act must be None, 'relu' or 'relu6', got {act!r}")


def _out_zp(act: str | None, bits: int, rng: np.random.Generator) -> int:
    lo, hi = qrange(bits)
    if act in ("relu", "relu6"):
        return lo  # unsigned activation: real 0 sits at the bottom of the range
    return int(rng.integers(lo // 2, hi // 2 + 1))


def _channel_moments(values: np.ndarray, zp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of ``values - zp``; a global estimate when there are few pixels."""
    v = values.reshape(-1, values.shape[-1]).astype(np.float64) - zp
    if v.shape[0] >= 4:
        mean, var = v.mean(axis=0), v.var(axis=0)
    else:
        mean = np.full(v.shape[1], v.mean())
        var = np.full(v.shape[1], v.var())
    return mean, np.maximum(var, 0.25)  # a floor keeps dead channels from asking for huge multipliers


def _requant_for(acc_rms: np.ndarray, o_bits: int, rng: np.random.Generator, jitter: float = 0.15):
    """Per-channel (multiplier, shift) putting an accumulator of RMS ``acc_rms`` at ~1/6 of the output range."""
    target = (1 << o_bits) / 6.0
    reals = target / np.maximum(np.asarray(acc_rms, dtype=np.float64), 1e-3)
    reals = np.minimum(reals * np.exp(rng.normal(0.0, jitter, size=reals.shape)), float(1 << 20))
    pairs = [quantize_multiplier(float(r)) for r in reals]
    mult = np.array([p[0] for p in pairs], dtype=np.int32)
    shift = np.array([p[1] for p in pairs], dtype=np.int32)
    return mult, shift, float(np.median(reals))


def _check_bits(*bits: int) -> None:
    for b in bits:
        if b not in BITS:
            raise ConfigError(f"bit-width {b!r} not in {BITS}")


def _calib(x: TensorSpec, values: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if values is None:
        return random_input(x, rng)
    values = np.asarray(values)
    if tuple(values.shape) != tuple(x.shape):
        raise ConfigError(f"calibration values for {x.name!r} have shape {values.shape}, expected {x.shape}")
    return values


def make_weighted_layer(
    name: str,
    op: str,
    x: TensorSpec,
    out_name: str,
    *,
    w_bits: int,
    o_bits: int,
    cout: int | None = None,
    kernel: int | tuple[int, int] = 3,
    stride: int = 1,
    padding: Padding = "same",
    act: str | None = None,
    x_values: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[IntLayer, TensorSpec]:
    """A random conv2d/depthwise/pointwise/fc layer reading tensor ``x``; returns the layer and its output spec.

    ``x_values`` (calibration values of ``x``; uniform random if None) set the bias, which centres each output
    channel, and the multipliers, which scale its spread to the output range.
    """
    rng = _rng(rng)
    _check_bits(x.bits, w_bits, o_bits)
    h, w, cin = x.shape
    if op in ("pointwise", "fc"):
        kernel, padding = (1, 1), (0, 0, 0, 0)
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    if op == "depthwise":
        cout = cin
    if cout is None:
        raise ConfigError(f"{op} needs cout")
    if op not in ("conv2d", "depthwise", "pointwise", "fc"):
        raise ConfigError(f"{name}: {op!r} is not a weighted op")
    pad = _resolve_padding(padding, h, w, k, stride)
    oh = (h + pad[0] + pad[2] - k[0]) // stride + 1
    ow = (w + pad[1] + pad[3] - k[1]) // stride + 1
    if oh < 1 or ow < 1:
        raise ConfigError(f"{name}: kernel {k} does not fit input {x.shape} with padding {pad}")
    wlo, whi = wrange(w_bits)
    shape = {
        "conv2d": (cout, k[0], k[1], cin),
        "depthwise": (k[0], k[1], cin),
        "pointwise": (cout, cin),
        "fc": (cout, cin),
    }[op]
    weight = rng.integers(wlo, whi + 1, size=shape).astype(np.int8)
    if w_bits == 2 and weight.size:  # {-1, 0, 1}: avoid an all-zero layer
        weight[rng.random(shape) < 0.2] = 1
    mean_c, var_c = _channel_moments(_calib(x, x_values, rng), x.zero_point)
    wf = weight.astype(np.float64)
    if op == "depthwise":
        acc_mean = wf.sum(axis=(0, 1)) * mean_c
        acc_var = (wf**2).sum(axis=(0, 1)) * var_c
    else:
        wr = wf.reshape(cout, -1, cin)
        acc_mean = (wr.sum(axis=1) * mean_c).sum(axis=1)
        acc_var = ((wr**2).sum(axis=1) * var_c).sum(axis=1)
    acc_std = np.sqrt(np.maximum(acc_var, 1.0))
    # ReLU layers keep about 70 % of their outputs positive; linear ones are centred
    lift = 0.5 if act in ("relu", "relu6") else 0.0
    bias = np.round(-acc_mean + acc_std * (lift + rng.normal(0.0, 0.2, size=cout))).astype(np.int32)
    mult, shift, base = _requant_for(acc_std, o_bits, rng)
    zp = _out_zp(act, o_bits, rng)
    lo, hi = _clamp(act, o_bits, zp)
    out = TensorSpec(out_name, (oh, ow, cout), o_bits, scale=x.scale / base, zero_point=zp)
    layer = IntLayer(
        name,
        op,
        [x.name],
        out_name,
        kernel=k,
        stride=stride,
        padding=pad,
        weight=weight,
        w_bits=w_bits,
        bias=bias,
        multiplier=mult,
        shift=shift,
        act_min=lo,
        act_max=hi,
        meta={"act": act or "none"},
    )
    return layer, out


def make_add_layer(
    name: str,
    a: TensorSpec,
    b: TensorSpec,
    out_name: str,
    *,
    o_bits: int,
    act: str | None = None,
    a_values: np.ndarray | None = None,
    b_values: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[IntLayer, TensorSpec]:
    """A TFLite ADD of tensors ``a`` and ``b``; the output scale/zero point fit the calibrated real sum."""
    rng = _rng(rng)
    _check_bits(o_bits)
    if a.shape != b.shape:
        raise ConfigError(f"{name}: add inputs differ in shape {a.shape} vs {b.shape}")
    ra = a.scale * (_calib(a, a_values, rng).astype(np.float64) - a.zero_point)
    rb = b.scale * (_calib(b, b_values, rng).astype(np.float64) - b.zero_point)
    s = ra + rb
    std = max(float(s.std()), 1e-3 * max(a.scale, b.scale))
    out_scale = std * 6.0 / (1 << o_bits)
    lo, hi = qrange(o_bits)
    if act in ("relu", "relu6"):
        zp = lo
    else:
        zp = (
            int(np.clip(lo - round(float(s.min()) / out_scale), lo, hi))
            if s.min() > 0
            else int(np.clip(round(-float(s.mean()) / out_scale), lo, hi))
        )
    amin, amax = _clamp(act, o_bits, zp)
    p = AddParams(*add_params(a.scale, b.scale, out_scale))
    out = TensorSpec(out_name, a.shape, o_bits, scale=out_scale, zero_point=zp)
    return IntLayer(
        name,
        "add",
        [a.name, b.name],
        out_name,
        act_min=amin,
        act_max=amax,
        add=p,
        meta={"act": act or "none"},
    ), out


def make_avgpool_layer(
    name: str,
    x: TensorSpec,
    out_name: str,
    *,
    o_bits: int,
    kernel: int | tuple[int, int] | None = None,
    stride: int | None = None,
    x_values: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[IntLayer, TensorSpec]:
    """An average pool (global when ``kernel`` is None), rescaled so the calibrated averages spread over the
    output range."""
    rng = _rng(rng)
    _check_bits(o_bits)
    h, w, c = x.shape
    k = (h, w) if kernel is None else ((kernel, kernel) if isinstance(kernel, int) else tuple(kernel))
    s = stride if stride is not None else (1 if kernel is None else k[0])
    oh, ow = (h - k[0]) // s + 1, (w - k[1]) // s + 1
    if oh < 1 or ow < 1:
        raise ConfigError(f"{name}: window {k} larger than input {x.shape}")
    xv = _calib(x, x_values, rng).astype(np.float64) - x.zero_point
    avg = np.stack(
        [
            xv[i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s]
            for i in range(k[0])
            for j in range(k[1])
        ]
    ).mean(axis=0)
    std = max(float(avg.std()), 0.5)
    gain = min(((1 << o_bits) / 6.0) / std, float(1 << 16)) * float(np.exp(rng.normal(0.0, 0.1)))
    m, sh = quantize_multiplier(gain / (k[0] * k[1]))
    lo, hi = qrange(o_bits)
    zp = int(np.clip(round(-float(avg.mean()) * gain), lo, hi))
    out = TensorSpec(out_name, (oh, ow, c), o_bits, scale=x.scale / gain, zero_point=zp)
    layer = IntLayer(
        name,
        "avgpool",
        [x.name],
        out_name,
        kernel=k,
        stride=s,
        multiplier=np.array([m], np.int32),
        shift=np.array([sh], np.int32),
        act_min=lo,
        act_max=hi,
    )
    return layer, out


def random_layer_model(
    op: str,
    a_bits: int = 8,
    w_bits: int = 8,
    o_bits: int = 8,
    *,
    h: int = 8,
    w: int = 8,
    cin: int = 8,
    cout: int = 8,
    kernel: int | tuple[int, int] = 3,
    stride: int = 1,
    padding: Padding = "same",
    act: str | None = None,
    in2_bits: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> IntModel:
    """A one-layer model ``op`` with random weights and realistic requantization.

    ``fc`` uses a ``(1, 1, cin)`` input; ``avgpool`` uses ``kernel``/``stride`` (``kernel=None``: global);
    ``add`` builds two layers: ``pre`` (a 3x3 conv of ``x`` giving tensor ``"x2"`` at ``in2_bits``, default
    ``a_bits``) then the add ``l0`` of ``x`` and ``x2``. The layer under test is always the last one.
    """
    rng = _rng(rng)
    _check_bits(a_bits, w_bits, o_bits)
    if op == "fc":
        h = w = stride = 1
    lo, hi = qrange(a_bits)
    x = TensorSpec("x", (h, w, cin), a_bits, scale=1.0, zero_point=int(rng.integers(lo, hi + 1)))
    tensors = {"x": x}
    if op in ("conv2d", "depthwise", "pointwise", "fc"):
        layer, out = make_weighted_layer(
            "l0",
            op,
            x,
            "y",
            w_bits=w_bits,
            o_bits=o_bits,
            cout=cout,
            kernel=kernel,
            stride=stride,
            padding=padding,
            act=act,
            rng=rng,
        )
    elif op == "avgpool":
        k = None if kernel is None else kernel
        layer, out = make_avgpool_layer(
            "l0", x, "y", o_bits=o_bits, kernel=k, stride=stride if k else None, rng=rng
        )
    elif op == "add":
        # the firmware loads one input, so the second operand is computed from it by a 3x3 conv that mixes
        # neighbours and channels (values nearly independent of x at the same position)
        b2 = a_bits if in2_bits is None else in2_bits
        xv = random_input(x, rng)
        pre, x2 = make_weighted_layer(
            "pre", "conv2d", x, "x2", w_bits=8, o_bits=b2, cout=cin, kernel=3, x_values=xv, rng=rng
        )
        x2.scale = float(x2.scale * np.exp(rng.normal(0, 0.5)))
        tensors["x2"] = x2
        x2v = run_layer(IntModel(tensors, [], "x", "x2"), pre, {"x": xv})
        layer, out = make_add_layer(
            "l0", x, x2, "y", o_bits=o_bits, act=act, a_values=xv, b_values=x2v, rng=rng
        )
        tensors["y"] = out
        return IntModel(tensors, [pre, layer], "x", "y", name=f"add_a{a_bits}i{b2}o{o_bits}")
    else:
        raise ConfigError(f"unknown op {op!r}")
    tensors["y"] = out
    return IntModel(tensors, [layer], "x", "y", name=f"{op}_a{a_bits}w{w_bits}o{o_bits}")


def random_input(spec: TensorSpec, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Uniform random values over a tensor's full integer range."""
    lo, hi = qrange(spec.bits)
    return _rng(rng).integers(lo, hi + 1, size=spec.shape).astype(np.int8)


def random_network(
    rng: np.random.Generator | int | None = None,
    *,
    input_shape: tuple[int, int, int] = (16, 16, 3),
    width: int = 8,
    expand: int = 3,
    classes: int = 10,
    bits: tuple[int, ...] = BITS,
    name: str = "randnet",
) -> IntModel:
    """A small MobileNetV2-like chain with random per-tensor/per-layer precisions.

    conv3x3/s2 (relu6) -> depthwise3x3 (relu) -> pointwise (linear) -> [pointwise expand (relu6) -> depthwise3x3
    (relu6) -> pointwise project] + residual add -> global avgpool -> fc. The input tensor is 8-bit.
    """
    rng = _rng(rng)
    _check_bits(*bits)
    pick = lambda: int(rng.choice(bits))
    x = TensorSpec("input", tuple(input_shape), 8, scale=1.0 / 128, zero_point=0)
    tensors = {"input": x}
    layers: list[IntLayer] = []
    values = {"input": random_input(x, rng)}

    def add(make, *args, **kw):
        ins = [a for a in args if isinstance(a, TensorSpec)]
        if len(ins) == 2:
            kw.update(a_values=values[ins[0].name], b_values=values[ins[1].name])
        else:
            kw["x_values"] = values[ins[0].name]
        layer, out = make(*args, rng=rng, **kw)
        layers.append(layer)
        tensors[out.name] = out
        values[out.name] = run_layer(IntModel(tensors, [], "input", out.name), layer, values)
        return out

    t = add(
        make_weighted_layer,
        "conv0",
        "conv2d",
        x,
        "t0",
        w_bits=pick(),
        o_bits=pick(),
        cout=width,
        kernel=3,
        stride=2,
        act="relu6",
    )
    t = add(
        make_weighted_layer, "dw1", "depthwise", t, "t1", w_bits=pick(), o_bits=pick(), kernel=3, act="relu"
    )
    skip = add(make_weighted_layer, "pw1", "pointwise", t, "t2", w_bits=pick(), o_bits=pick(), cout=width)
    t = add(
        make_weighted_layer,
        "pw2",
        "pointwise",
        skip,
        "t3",
        w_bits=pick(),
        o_bits=pick(),
        cout=width * expand,
        act="relu6",
    )
    t = add(
        make_weighted_layer, "dw2", "depthwise", t, "t4", w_bits=pick(), o_bits=pick(), kernel=3, act="relu6"
    )
    t = add(make_weighted_layer, "pw3", "pointwise", t, "t5", w_bits=pick(), o_bits=pick(), cout=width)
    t = add(make_add_layer, "add4", skip, t, "t6", o_bits=pick())
    t = add(make_avgpool_layer, "pool5", t, "t7", o_bits=pick())
    t = add(make_weighted_layer, "fc6", "fc", t, "logits", w_bits=pick(), o_bits=8, cout=classes)
    return IntModel(tensors, layers, "input", "logits", name=name)


def random_coverage_chain(
    rng: np.random.Generator | int | None = None,
    *,
    input_shape: tuple[int, int, int] = (11, 11, 5),
    ops: tuple[str, ...] = ("conv2d", "depthwise", "pointwise", "fc"),
    pairs: tuple[tuple[int, int], ...] = tuple((a, w) for a in BITS for w in BITS),
    n_adds: int = 3,
    name: str = "coverage",
) -> IntModel:
    """One model that runs every ``op`` at every ``(a_bits, w_bits)`` pair at least once (for firmware tests).

    Spatial layers (conv2d/depthwise/pointwise) come first in random order, with odd channel counts, kernels
    1/3/5, one stride-2 conv, ReLU/ReLU6/linear clamps; ``n_adds`` residual adds join a depthwise layer's input
    and output; then a global average pool and the fc layers. Each layer's output precision is the next layer's
    input precision, so every o_bits occurs too.
    """
    rng = _rng(rng)
    spatial = [(op, a, w) for op in ops if op != "fc" for a, w in pairs]
    rng.shuffle(spatial)
    fcs = [("fc", a, w) for a, w in pairs] if "fc" in ops else []
    rng.shuffle(fcs)
    steps = spatial + [("avgpool", None, None)] + fcs
    # the precision each step reads: its own a_bits; avgpool reads whatever the last spatial layer chose
    wants = [a if a is not None else int(rng.choice(BITS)) for _, a, _ in steps] + [8]
    x = TensorSpec("input", tuple(input_shape), wants[0], scale=1.0 / 8, zero_point=0)
    tensors, layers = {"input": x}, []
    values = {"input": random_input(x, rng)}
    add_after = set(
        rng.choice(
            [i for i, s in enumerate(spatial) if s[0] == "depthwise"] or [-1],
            size=min(n_adds, sum(s[0] == "depthwise" for s in spatial)),
            replace=False,
        ).tolist()
    )
    strided = next((i for i, s in enumerate(spatial) if s[0] == "conv2d"), -1)
    t = x

    def push(layer: IntLayer, out: TensorSpec) -> TensorSpec:
        layers.append(layer)
        tensors[out.name] = out
        values[out.name] = run_layer(IntModel(tensors, [], "input", out.name), layer, values)
        return out

    for i, (op, a, w) in enumerate(steps):
        o_bits = wants[i + 1]
        nm = f"l{i}_{op}" + (f"_a{a}w{w}" if a is not None else "")
        if op == "avgpool":
            t = push(*make_avgpool_layer(nm, t, f"t{i}", o_bits=o_bits, x_values=values[t.name], rng=rng))
            continue
        act = [None, "relu", "relu6"][int(rng.integers(3))]
        k = int(rng.choice([1, 3, 5])) if op in ("conv2d", "depthwise") else 1
        cout = int(rng.choice([3, 5, 6, 7, 9, 11, 13])) if op in ("conv2d", "pointwise", "fc") else None
        ins = t
        add_here = i in add_after
        layer_o = (
            ins.bits if add_here else o_bits
        )  # keep the add's operands readable; the add narrows instead
        t = push(
            *make_weighted_layer(
                nm,
                op,
                ins,
                f"t{i}",
                w_bits=w,
                o_bits=layer_o,
                cout=cout,
                kernel=k,
                stride=2 if i == strided else 1,
                act=act,
                x_values=values[ins.name],
                rng=rng,
            )
        )
        if add_here:
            t = push(
                *make_add_layer(
                    f"l{i}_add",
                    ins,
                    t,
                    f"t{i}_add",
                    o_bits=o_bits,
                    a_values=values[ins.name],
                    b_values=values[t.name],
                    rng=rng,
                )
            )
    return IntModel(tensors, layers, "input", t.name, name=name)


def random_int_model(
    specs: Sequence[LayerSpec],
    rng: np.random.Generator | int | None = None,
    *,
    bits: int = 8,
    name: str = "model",
) -> IntModel:
    """A random integer model with the geometry of ``specs`` (e.g. a traced zoo model), every tensor at ``bits``.

    Weights are uniform random with requantization fitted to the activations of one random input (see
    the layer makers above), so activations stay spread over their range through a deep network:
    the right stand-in for memory and bit-exactness checks when no trained model is at hand.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    specs = list(specs)
    first = next(s for s in specs if INPUT in s.inputs)
    x = TensorSpec("input", tuple(first.in_shape), 8, scale=1.0 / 128, zero_point=0)
    tensors: dict[str, TensorSpec] = {"input": x}
    values = {"input": random_input(x, rng)}
    layers: list[IntLayer] = []
    tname = {INPUT: "input"}
    for i, s in enumerate(specs):
        out = f"t{i}"
        ins = [tensors[tname[p]] for p in s.inputs]
        o_bits = 8 if i == len(specs) - 1 else bits
        act = s.activation
        if s.op in ("conv2d", "depthwise", "pointwise", "fc"):
            layer, spec = make_weighted_layer(
                s.name,
                s.op,
                ins[0],
                out,
                w_bits=8,
                o_bits=o_bits,
                cout=s.out_shape[2],
                kernel=s.kernel,
                stride=s.stride,
                padding=s.padding,
                act=act,
                x_values=values[ins[0].name],
                rng=rng,
            )
        elif s.op == "add":
            layer, spec = make_add_layer(
                s.name,
                ins[0],
                ins[1],
                out,
                o_bits=o_bits,
                act=act,
                a_values=values[ins[0].name],
                b_values=values[ins[1].name],
                rng=rng,
            )
        elif s.op == "avgpool":
            layer, spec = make_avgpool_layer(
                s.name,
                ins[0],
                out,
                o_bits=o_bits,
                kernel=s.kernel,
                stride=s.stride,
                x_values=values[ins[0].name],
                rng=rng,
            )
        else:
            raise ConfigError(f"layer {s.name!r}: no integer op for {s.op!r}")
        tensors[out] = spec
        layers.append(layer)
        tname[s.name] = out
        values[out] = run_layer(IntModel(tensors, [], "input", out), layer, values)
    return IntModel(tensors, layers, "input", tname[specs[-1].name], name=name)
