"""The model zoo: every config builds, traces to supported layers, and has the published shape."""

import pytest
import torch
from torch import nn

from harness.errors import ConfigError, UnsupportedLayerError
from harness.graph.trace import extract_layers
from harness.models import build_model, model_names
from harness.models.common import make_divisible
from harness.models.mobilenetv2 import MobileNetV2

ZOO = ["mbv2-w0.35", "mbv1-w0.25", "mcunet", "resnet8", "dscnn", "tiny-cnn", "user"]


def test_every_documented_model_has_a_config():
    assert set(ZOO) <= set(model_names())


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_builds_runs_and_traces(name):
    model = build_model(name).eval()
    c, h, w = model.input_shape
    with torch.no_grad():
        y = model(torch.zeros(2, c, h, w))
    specs = extract_layers(model)
    assert y.shape == (2, specs[-1].out_shape[2])
    assert specs[-1].op == "fc"


def test_overrides_replace_config_values():
    m = build_model("resnet8", num_classes=3, in_channels=1)
    assert m.classifier.out_features == 3 and m.input_shape == (1, 32, 32)


def test_channel_rounding_follows_the_original_mobilenet():
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 would lose > 10 %, so 16
    assert make_divisible(24 * 0.35) == 8
    assert make_divisible(160 * 0.35) == 56
    m = MobileNetV2(0.35, 96, 10)
    assert all(mod.out_channels % 8 == 0 for mod in m.modules() if isinstance(mod, nn.Conv2d))
    assert m.classifier.in_features == 1280  # the head keeps 1280 channels for width < 1


def test_mobilenetv2_parameter_count_matches_the_paper():
    # paper / TF-slim table: 1.0 @ 224 has 3.47 M parameters (ours: 3.50 M with BN affine terms)
    n = sum(p.numel() for p in MobileNetV2(1.0, 224, 1000).parameters())
    assert abs(n - 3.47e6) / 3.47e6 < 0.02


def test_resnet8_and_dscnn_have_mlperf_tiny_sizes():
    # MLPerf Tiny: ResNet-8 ~78 k parameters / 12.5 M MACs; DS-CNN small ~24 k parameters / 2.7 M MACs
    r8 = build_model("resnet8")
    assert abs(sum(p.numel() for p in r8.parameters()) - 78e3) < 3e3
    assert abs(sum(s.macs for s in extract_layers(r8)) - 12.5e6) < 0.3e6
    ds = build_model("dscnn")
    assert abs(sum(p.numel() for p in ds.parameters()) - 24e3) < 2e3


def test_mcunet_block_lists_must_match_the_stages():
    with pytest.raises(ConfigError, match="kernels"):
        build_model("mcunet", kernels=[3, 5])


def test_user_model_by_import_path():
    m = build_model(
        {
            "_target_": "harness.models.user.load_user_model",
            "name": "user",
            "path": "torch.nn:Conv2d",
            "input_shape": [1, 4, 4],
            "kwargs": {"in_channels": 1, "out_channels": 2, "kernel_size": 1},
        }
    )
    assert isinstance(m, nn.Conv2d) and m.input_shape == (1, 4, 4)


def test_user_model_with_an_unsupported_layer_fails_clearly():
    m = build_model(
        {
            "_target_": "harness.models.user.load_user_model",
            "path": "tests.test_models:WithMaxPool",
            "input_shape": [1, 8, 8],
        }
    )
    with pytest.raises(UnsupportedLayerError, match=r"'pool' \(MaxPool2d\)"):
        extract_layers(m)


def test_bad_import_path_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import"):
        build_model(
            {
                "_target_": "harness.models.user.load_user_model",
                "path": "no.such.module:Net",
                "input_shape": [1, 8, 8],
            }
        )


class WithMaxPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).mean((2, 3)))
