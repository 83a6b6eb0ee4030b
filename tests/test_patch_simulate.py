"""Numeric proof: running the stage patch by patch with the plan's windows equals running it whole."""

import numpy as np
import pytest

from harness.patch import plan_patches, valid_splits
from harness.patch.simulate import random_weights, run_patch, run_patched, run_whole
from harness.patch.specs import SpecBuilder


def odd_strided_chain():
    """Odd, non-square input; kernels 3/5/7 at strides 1 and 2."""
    b = SpecBuilder(31, 29, 3)
    b.conv(8, 3, 2)
    b.dw(5, 1)
    b.conv(6, 1)
    b.dw(7, 2)
    b.conv(5, 1, activation=None)
    return b.layers


def residual_net():
    """A 7x7 stem and MobileNetV2 blocks with and without residual adds."""
    b = SpecBuilder(37, 37, 3)
    b.conv(8, 7, 2)
    b.inverted_residual(8, expand=2, k=3)
    b.inverted_residual(12, expand=2, k=5, stride=2)
    b.inverted_residual(12, expand=3, k=5)
    return b.layers


def tf_padding_net():
    """Asymmetric (TF 'SAME') padding, a strided 1x1 conv and an average pool."""
    b = SpecBuilder(61, 59, 4)
    b.conv(6, 3, 2, padding=(0, 0, 1, 1))
    b.dw(5, 2, padding=(1, 2, 2, 1))
    b.conv(6, 1, stride=2, padding=(0, 0, 0, 0))  # strided 1x1
    b.pool(3, 1)
    return b.layers


def wide_skip_net():
    """A skip read by a 5x5 depthwise and by an add: its per-patch window is the union of both needs."""
    b = SpecBuilder(27, 27, 4)
    x = b.conv(6, 3, 1)
    y = b.dw(5, 1, src=x)
    z = b.conv(6, 1, src=y, activation=None)
    b.add(x, z)
    b.dw(3, 2)
    return b.layers


def random_net(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.choice([21, 23, 25, 29, 30, 33], size=2))
    b = SpecBuilder(h, w, int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(3, 7))):
        k = int(rng.choice([1, 3, 5, 7]))
        s = int(rng.choice([1, 2])) if b._shapes[b.last][0] >= 12 else 1
        kind = rng.choice(["conv", "dw", "block"])
        if kind == "conv":
            b.conv(int(rng.integers(2, 7)), k, s, padding=None if k > 1 else (0, 0, 0, 0))
        elif kind == "dw":
            b.dw(max(k, 3), s)
        else:
            c = b._shapes[b.last][2]
            b.inverted_residual(
                c if s == 1 and rng.random() < 0.7 else c + 2, expand=2, k=max(k, 3), stride=s
            )
    return b.layers


NETS = {
    "odd_strided": odd_strided_chain,
    "residual": residual_net,
    "tf_padding": tf_padding_net,
    "wide_skip": wide_skip_net,
}


def check_plan_numerically(layers, split, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(layers[0].in_shape)
    weights = random_weights(layers, seed=n)
    whole = run_whole(layers, x, weights)
    plan = plan_patches(layers, split, n)
    # every per-patch buffer is exactly its window of the whole tensor
    for p in range(plan.num_patches):
        bufs = run_patch(plan, layers, x, weights, p)
        for t, buf in bufs.items():
            h0, h1, w0, w1 = plan.windows[t][p]
            np.testing.assert_allclose(
                buf, whole[t][h0:h1, w0:w1], rtol=1e-10, atol=1e-12, err_msg=f"patch {p}, tensor {t}"
            )
    out = run_patched(plan, layers, x, weights)
    assert not np.isnan(out).any(), "some output pixels were written by no patch"
    np.testing.assert_allclose(out, whole[plan.split], rtol=1e-10, atol=1e-12)
    return plan


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("net", sorted(NETS))
def test_patched_stage_equals_whole_stage_at_the_last_layer(net, n):
    layers = NETS[net]()
    check_plan_numerically(layers, len(layers) - 1, n)


@pytest.mark.parametrize("net", sorted(NETS))
def test_patched_stage_equals_whole_stage_at_every_valid_split(net):
    layers = NETS[net]()
    for s in valid_splits(layers):
        oh, ow, _ = layers[s].out_shape
        for n in (2, 3):
            if n <= min(oh, ow):
                check_plan_numerically(layers, s, n)


@pytest.mark.parametrize("seed", range(12))
def test_patched_stage_equals_whole_stage_on_random_networks(seed):
    layers = random_net(seed)
    oh, ow, _ = layers[-1].out_shape
    for n in range(2, min(5, oh, ow) + 1):
        check_plan_numerically(layers, len(layers) - 1, n)


def test_the_whole_image_as_one_patch_is_the_plain_network():
    layers = residual_net()
    plan = check_plan_numerically(layers, len(layers) - 1, 1)
    assert plan.redundant_macs == 0
    assert all(st.padding == layer.padding for st, layer in zip(plan.schedule[0], layers))


def test_mobilenetv2_stage_of_the_default_model_is_exact_per_patch():
    """The real model graph: mbv2-w0.35 at 96 px, patched up to the stride-8 stage's first block."""
    from harness.graph.trace import extract_layers
    from harness.models.mobilenetv2 import MobileNetV2

    layers = extract_layers(MobileNetV2(0.35, 96).eval(), (3, 96, 96))
    split = [x.name for x in layers].index("features.4.project.conv")
    check_plan_numerically(layers[: split + 1], split, 3)
