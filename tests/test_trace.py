"""extract_layers: the fused, deployed layer graph of a float model."""

import pytest
import torch
from torch import nn

from harness.errors import UnsupportedLayerError
from harness.graph.spec import INPUT
from harness.graph.trace import extract_layers, trace_model
from harness.models.mobilenetv2 import MobileNetV2


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = nn.functional.relu6(self.dw(y))
        y = torch.relu(y + self.pw(y))
        y = y.mean((2, 3))
        return self.fc(nn.functional.dropout(y, 0.1, self.training))


def test_conv_bn_relu_fuse_into_one_spec_and_ops_are_classified():
    specs = {s.name: s for s in extract_layers(Residual(), (3, 16, 16))}
    assert list(specs) == ["c1", "dw", "pw", "add", "pool", "fc"]
    assert specs["c1"].op == "conv2d" and specs["c1"].activation == "relu"
    assert specs["c1"].in_shape == (16, 16, 3) and specs["c1"].out_shape == (16, 16, 8)
    assert specs["dw"].op == "depthwise" and specs["dw"].stride == 2 and specs["dw"].activation == "relu6"
    assert specs["dw"].padding == (1, 1, 1, 1) and specs["dw"].out_shape == (8, 8, 8)
    assert specs["pw"].op == "pointwise" and specs["pw"].activation is None
    # the residual add reads both branches and takes over the following ReLU
    assert (
        specs["add"].op == "add" and specs["add"].inputs == ("dw", "pw") and specs["add"].activation == "relu"
    )
    assert (
        specs["pool"].op == "avgpool"
        and specs["pool"].kernel == (8, 8)
        and specs["pool"].out_shape == (1, 1, 8)
    )
    assert specs["fc"].op == "fc" and specs["fc"].inputs == ("pool",) and specs["fc"].out_shape == (1, 1, 4)
    assert specs["c1"].inputs == (INPUT,)


def test_traced_layers_name_their_batchnorm():
    traced = {t.name: t for t in trace_model(Residual(), (3, 16, 16))}
    assert traced["c1"].bn == "b1" and traced["dw"].bn is None and traced["c1"].module == "c1"


def test_mobilenetv2_graph_shape():
    specs = extract_layers(MobileNetV2(0.35, 96, 10))
    ops = [s.op for s in specs]
    assert ops[0] == "conv2d" and ops[-2:] == ["avgpool", "fc"]
    # MobileNetV2 has 10 residual blocks (repeats minus one per stage: 1+2+3+2+2 = 10)
    assert ops.count("add") == 10 and ops.count("depthwise") == 17
    # every producer referenced exists and comes earlier
    seen = {INPUT}
    for s in specs:
        assert set(s.inputs) <= seen
        seen.add(s.name)
    assert specs[-1].out_shape == (1, 1, 10)


def test_strided_1x1_conv_is_a_general_conv():
    m = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    specs = extract_layers(m, (4, 8, 8))
    assert specs[0].op == "conv2d" and specs[0].kernel == (1, 1) and specs[0].stride == 2


@pytest.mark.parametrize(
    "bad, kind",
    [
        (nn.MaxPool2d(2), "MaxPool2d"),
        (nn.Sigmoid(), "Sigmoid"),
        (nn.Conv2d(8, 8, 3, padding=1, groups=2), "groups=2"),
    ],
)
def test_unsupported_layers_are_named_with_their_type(bad, kind):
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), bad, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )
    with pytest.raises(UnsupportedLayerError, match=kind) as e:
        extract_layers(m, (3, 8, 8))
    assert "'1'" in str(e.value)  # the qualified module name inside the Sequential


def test_classifier_on_a_spatial_map_is_refused_with_advice():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    with pytest.raises(UnsupportedLayerError, match="global average pool"):
        extract_layers(m, (1, 8, 8))


def test_missing_input_shape_is_a_clear_error():
    with pytest.raises(UnsupportedLayerError, match="input_shape"):
        extract_layers(nn.Sequential(nn.Conv2d(1, 1, 1)))
