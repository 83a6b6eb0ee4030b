"""Accounting: MACs against published MobileNetV2 figures and hand counts; BitOPs, packed bytes, peak SRAM."""

import math

import pytest
from torch import nn

from harness.graph.trace import extract_layers
from harness.models.mobilenetv2 import MobileNetV2
from harness.precision.config import PrecisionConfig
from harness.quant.accounting import account, account_model, layer_costs

# The MobileNetV2 paper's model table as published with the TF-slim checkpoints (mobilenet_v2 README):
# (width, resolution) -> (million MACs, million parameters), MACs truncated to whole millions in that table.
# The 144 px variant (the MCUNet comparisons) is not in it; it must fall between its 128 and 160 px neighbours.
PUBLISHED = {
    (1.0, 224): (300, 3.47),
    (0.35, 224): (59, 1.66),
    (0.35, 192): (43, 1.66),
    (0.35, 160): (30, 1.66),
    (0.35, 128): (20, 1.66),
    (0.35, 96): (11, 1.66),
}


@pytest.mark.parametrize("width, res", sorted(PUBLISHED))
def test_mobilenetv2_macs_and_params_match_the_published_table(width, res):
    a = account_model(MobileNetV2(width, res, 1000))
    macs, params = PUBLISHED[(width, res)]
    assert math.floor(a["macs"] / 1e6) == macs
    assert abs(a["params"] / 1e6 - params) < 0.01


def test_mobilenetv2_035_at_144px_lies_between_its_published_neighbours():
    macs = account_model(MobileNetV2(0.35, 144, 1000))["macs"] / 1e6
    assert PUBLISHED[(0.35, 128)][0] < macs < PUBLISHED[(0.35, 160)][0] + 1


class Small(nn.Module):
    """Hand-countable: conv 3x3 (1->4) on 6x6, depthwise 3x3 s2, pointwise 4->8, add-free, pool, fc 8->2."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.d = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False)
        self.p = nn.Conv2d(4, 8, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.pool(self.p(self.d(self.c(x)).relu())).flatten(1))


def test_hand_counted_small_network():
    specs = extract_layers(Small(), (1, 6, 6))
    cfg = {"c": (8, 8), "d": (4, 2), "p": (2, 4), "fc": (8, 8)}
    rows = {c.name: c for c in layer_costs(specs, cfg)}
    assert rows["c"].macs == 6 * 6 * 4 * 9 * 1  # 1296
    assert rows["d"].macs == 3 * 3 * 4 * 9  # 324
    assert rows["p"].macs == 3 * 3 * 8 * 4  # 288
    assert rows["fc"].macs == 8 * 2
    assert rows["d"].bitops == 324 * 4 * 2
    # weights packed with byte-aligned rows: depthwise (3, 3, 4) at 2 bits = 9 rows of 1 byte
    assert rows["d"].weight_bytes == 9 and rows["d"].bias_bytes == 16
    # pointwise (8, 4) at 4 bits: 8 rows of 2 bytes; conv (4, 3, 3, 1) at 8 bits: 36 bytes
    assert rows["p"].weight_bytes == 16 and rows["c"].weight_bytes == 36
    # activations: c writes 6x6x4 read by d at 4 bits -> 36 pixels * 2 bytes
    assert rows["c"].out_bytes == 72 and rows["c"].o_bits == 4
    # the tensor read by p is 2-bit: 9 pixels of 4 channels -> 1 byte each
    assert rows["d"].out_bytes == 9


def test_peak_sram_is_the_largest_live_set():
    specs = extract_layers(Small(), (1, 6, 6))
    a = account(specs, None)  # all 8-bit
    # input 36 B + c's output 144 B live at step c; c's 144 + d's 36 at step d
    assert a["peak_sram_bytes"] == 36 + 144 and a["peak_step"] == "c"


def test_lower_precision_lowers_bitops_bytes_and_peak():
    m = MobileNetV2(0.35, 96, 10)
    names = [s.name for s in extract_layers(m) if s.op in ("conv2d", "depthwise", "pointwise", "fc")]
    a8 = account_model(m, PrecisionConfig.uniform(names, 8, 8))
    a4 = account_model(m, PrecisionConfig.uniform(names, 4, 4))
    assert a4["macs"] == a8["macs"]
    assert a4["bitops"] * 4 == a8["bitops"]
    assert a4["weight_bytes"] < 0.51 * a8["weight_bytes"]
    assert a4["peak_sram_bytes"] < a8["peak_sram_bytes"]
