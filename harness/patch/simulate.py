"""Float reference for patch plans: run a stage whole and patch by patch, to prove the windows right.

Pure numpy, NHWC without batch, weight layouts as ``harness.ir.model`` (conv2d ``(Cout, Kh, Kw, Cin)``,
depthwise ``(Kh, Kw, C)``, pointwise ``(Cout, Cin)``). Padding is explicit and may be asymmetric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness.errors import UnsupportedLayerError
from harness.graph.spec import INPUT, LayerSpec
from harness.patch.plan import PatchPlan


def random_weights(layers: Sequence[LayerSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float weights for every weighted layer (fan-in scaled so activations stay O(1))."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        kh, kw = layer.kernel
        ic, oc = layer.in_shape[2], layer.out_shape[2]
        if layer.op == "conv2d":
            out[layer.name] = rng.standard_normal((oc, kh, kw, ic)) / np.sqrt(kh * kw * ic)
        elif layer.op == "depthwise":
            out[layer.name] = rng.standard_normal((kh, kw, oc)) / np.sqrt(kh * kw)
        elif layer.op in ("pointwise", "fc"):
            out[layer.name] = rng.standard_normal((oc, ic)) / np.sqrt(ic)
    return out


def _activate(x: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "relu":
        return np.maximum(x, 0.0)
    if activation == "relu6":
        return np.clip(x, 0.0, 6.0)
    return x


def apply_layer(
    layer: LayerSpec, xs: Sequence[np.ndarray], w: np.ndarray | None, padding: tuple[int, int, int, int]
) -> np.ndarray:
    """Run one layer on ``(h, w, c)`` inputs with explicit zero padding (top, left, bottom, right)."""
    if layer.op == "add":
        return _activate(xs[0] + xs[1], layer.activation)
    if layer.op == "fc":
        raise UnsupportedLayerError(f"{layer.name!r}: fc has no spatial extent to simulate per patch")
    t, left, b, r = padding
    x = np.pad(xs[0], ((t, b), (left, r), (0, 0)))
    kh, kw = layer.kernel
    s = layer.stride
    win = sliding_window_view(x, (kh, kw), axis=(0, 1))[::s, ::s]  # (oh, ow, c, kh, kw)
    if layer.op == "conv2d":
        y = np.einsum("hwcij,oijc->hwo", win, w)
    elif layer.op == "depthwise":
        y = np.einsum("hwcij,ijc->hwc", win, w)
    elif layer.op == "pointwise":
        y = np.einsum("hwcij,oc->hwo", win, w)  # kernel 1x1: i = j = 0
    elif layer.op == "avgpool":
        y = win.mean(axis=(3, 4))
    else:
        raise UnsupportedLayerError(f"{layer.name!r}: unknown op {layer.op!r}")
    return _activate(y, layer.activation)


def run_whole(
    layers: Sequence[LayerSpec], x: np.ndarray, weights: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run ``layers`` on whole tensors; returns every tensor by name (``"input"`` included)."""
    env: dict[str, np.ndarray] = {INPUT: x}
    for layer in layers:
        env[layer.name] = apply_layer(
            layer, [env[s] for s in layer.inputs], weights.get(layer.name), layer.padding
        )
    return env


def run_patch(
    plan: PatchPlan, layers: Sequence[LayerSpec], x: np.ndarray, weights: Mapping[str, np.ndarray], p: int
) -> dict[str, np.ndarray]:
    """Run patch ``p`` using only the plan's windows and paddings; returns the patch's buffers by tensor.

    Every buffer holds ``plan.windows[tensor][p]`` of that tensor; a consumer slices the part it reads from
    its producer's buffer. Only the network input is cut from the full tensor (what a patch fetches from the
    image).
    """
    by_name = {layer.name: layer for layer in layers}
    h0, h1, w0, w1 = plan.windows[INPUT][p]
    bufs: dict[str, np.ndarray] = {INPUT: x[h0:h1, w0:w1]}
    for st in plan.schedule[p]:
        xs = []
        for src, (a0, a1, b0, b1) in zip(st.inputs, st.in_windows):
            o = plan.windows[src][p]
            buf = bufs[src]
            if buf.shape[:2] != (o[1] - o[0], o[3] - o[2]):
                raise AssertionError(f"patch {p}: buffer of {src} does not match its window {o}")
            if not (o[0] <= a0 < a1 <= o[1] and o[2] <= b0 < b1 <= o[3]):
                raise AssertionError(f"patch {p}, layer {st.layer}: reads {src} outside its buffer")
            xs.append(buf[a0 - o[0] : a1 - o[0], b0 - o[2] : b1 - o[2]])
        y = apply_layer(by_name[st.layer], xs, weights.get(st.layer), st.padding)
        if y.shape[:2] != st.out_hw:
            raise AssertionError(
                f"patch {p}, layer {st.layer}: produced {y.shape[:2]}, plan says {st.out_hw}"
            )
        bufs[st.layer] = y
    return bufs


def run_patched(
    plan: PatchPlan, layers: Sequence[LayerSpec], x: np.ndarray, weights: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Run the plan's stage patch by patch and assemble the stage output (NaN where no patch wrote)."""
    out = np.full(plan.stage_out_shape, np.nan)
    for p, steps in enumerate(plan.schedule):
        last = steps[-1]
        oh0, oh1, ow0, ow1 = last.out_window
        out[oh0:oh1, ow0:ow1] = run_patch(plan, layers, x, weights, p)[last.layer]
    return out
