"""`tinyhil run experiment=int8` on a small trained model: device top-1 beside host float and fake-quant."""

from __future__ import annotations

import json

import pytest
from test_cli_smoke import REPO, tinyhil


@pytest.mark.qemu
def test_int8_device_predictions_equal_the_integer_reference(tmp_path):
    p = tinyhil(
        "run",
        "experiment=int8",
        "model=tiny-cnn",
        "data=digits",
        "experiment.n_eval=24",
        "experiment.n_calib=64",
        f"hydra.run.dir={tmp_path}/run",
        f"workdir={tmp_path}/work",
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["n_eval"] == 24
    assert s["bit_exact"] is True  # every layer of every image, by CRC
    assert s["device_equals_reference"] is True
    for k in ("top1_float", "top1_fakequant", "top1_device"):
        assert 0.0 <= s[k] <= 1.0
    # a trained model: far above chance (10 classes), and int8 costs at most a couple of images here
    assert s["top1_float"] > 0.5
    assert s["top1_device"] >= s["top1_float"] - 2 / 24
    preds = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert preds[0] == "label,device,reference" and len(preds) == 25
