"""``model=user``: your own torch.nn.Module by import path, with its own constructor and input shape, through
train, run, profile and sensitivity; checkpoints filed per model; unsupported layers named."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from harness.errors import ConfigError, UnsupportedLayerError
from harness.models.registry import CHECKPOINT_DIR, checkpoint_path, model_id, train_command
from harness.quant.prepare import prepare
from tests.fixtures.cli import tinyhil

PATH = "tests.fixtures.user_net:SmallNet"
USER = ["model=user", f"model.path={PATH}", "model.input_shape=[1,8,8]"]


def _cfg(**model):
    m = {"_target_": "harness.models.user.load_user_model", "name": "user", "path": PATH,
         "input_shape": [1, 8, 8], "kwargs": {}, **model}
    return OmegaConf.create({"model": m, "data": {"name": "digits"}, "seed": 0})


def test_each_user_model_has_its_own_checkpoint_name():
    a, b = _cfg(), _cfg(kwargs={"width": 4})
    c = _cfg(input_shape=[1, 16, 16])
    ids = {model_id(x.model) for x in (a, b, c)}
    assert len(ids) == 3 and all(i.startswith("user-tests.fixtures.user_net.SmallNet-") for i in ids)
    assert model_id(a.model) == model_id(_cfg().model)  # stable
    assert checkpoint_path(model_id(b.model), "digits").name == f"{model_id(b.model)}-digits.pt"
    assert model_id({"_target_": "x.Y", "name": "mbv2-w0.35"}) == "mbv2-w0.35"


def test_prepare_feeds_the_model_its_own_input_shape_without_constructor_conventions():
    p = prepare(_cfg(), n_eval=5, n_calib=7, require_checkpoint=False)
    assert p.input_shape == (1, 8, 8)
    assert tuple(p.calib.shape) == (7, 1, 8, 8) and tuple(p.eval_x.shape) == (5, 1, 8, 8)
    assert p.model(p.eval_x).shape == (5, 10)


def test_a_missing_checkpoint_names_the_train_command_for_this_model():
    with pytest.raises(ConfigError) as e:
        prepare(_cfg(kwargs={"width": 5}), n_eval=2)
    cmd = train_command(_cfg(kwargs={"width": 5}).model, "digits")
    assert cmd in str(e.value)
    assert f"model.path={PATH}" in cmd and "'model.input_shape=[1,8,8]'" in cmd and "+model.kwargs.width=5" in cmd


def test_unsupported_layers_are_named_with_what_is_supported():
    with pytest.raises(UnsupportedLayerError) as e:
        prepare(_cfg(path="tests.fixtures.user_net:WithMaxPool"), n_eval=2)
    assert "MaxPool2d" in str(e.value) and "Conv2d" in str(e.value) and "average pooling" in str(e.value)


@pytest.mark.qemu
def test_the_suggested_train_command_trains_the_users_model_and_run_and_sensitivity_use_it(tmp_path):
    kw = "+model.kwargs.width=7"  # a model id no other test uses
    mid = model_id(_cfg(kwargs={"width": 7}).model)
    ckpt = CHECKPOINT_DIR / f"{mid}-digits.pt"
    try:
        p = tinyhil("train", *USER, kw, "data=digits", "train.epochs=3", "save_checkpoint=true",
                    f"hydra.run.dir={tmp_path}/train")
        assert p.returncode == 0, p.stderr[-3000:]
        s = json.loads((tmp_path / "train" / "summary.json").read_text())
        assert s["model"] == mid and s["checkpoint"] == f"checkpoints/{mid}-digits.pt"
        assert ckpt.is_file() and "input (1, 8, 8)" in p.stderr
        p = tinyhil("sensitivity", *USER, kw, "data=digits", "n_eval=50", "method.k=1",
                    f"hydra.run.dir={tmp_path}/sens")
        assert p.returncode == 0, p.stderr[-3000:]
        s = json.loads((tmp_path / "sens" / "summary.json").read_text())
        assert s["checkpoint"] == f"checkpoints/{mid}-digits.pt"
        assert "randomly initialised" not in p.stderr
        p = tinyhil("run", "experiment=int8", *USER, kw, "data=digits", "experiment.n_eval=4",
                    "experiment.n_calib=32", f"hydra.run.dir={tmp_path}/run", f"workdir={tmp_path}/w")
        assert p.returncode == 0, p.stderr[-3000:]
        s = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert s["bit_exact"] is True and s["device_equals_reference"] is True and s["n_eval"] == 4
        assert s["model"] == "user" and s["macs"] == 7 * 9 * 64 + 7 * 9 * 16 + 14 * 7 * 16 + 14 * 16 + 14 * 10  # width 7
    finally:
        ckpt.unlink(missing_ok=True)
        ckpt.with_suffix(".json").unlink(missing_ok=True)


@pytest.mark.qemu
def test_profile_measures_the_users_layer_shapes(tmp_path):
    p = tinyhil("profile", *USER, "profile.a_bits=[8]", "profile.w_bits=[8]", "profile.o_bits=[8]",
                f"profile.table_dir={tmp_path}/lut", f"hydra.run.dir={tmp_path}/prof", f"workdir={tmp_path}/w")
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "prof" / "summary.json").read_text())
    assert s["n_entries"] == 5 and s["model"] == "user"  # stem, depthwise, pointwise, pool, linear at a8w8o8
