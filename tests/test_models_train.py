"""Training: `tinyhil train` composes its config, trains, and writes a checkpoint with a sidecar."""

import itertools
import json

import torch

from harness.config.compose import compose_config
from harness.data import load_data
from harness.experiments.train import main
from harness.models import build_model, load_checkpoint
from harness.models.train import TrainConfig, evaluate, fit, lr_factor


def test_train_command_writes_checkpoint_and_sidecar(tmp_path):
    cfg = compose_config(
        "train",
        [
            "model=tiny-cnn",
            "data=digits",
            "data.n_train=200",
            "data.n_test=100",
            "train.phases=null",
            "train.epochs=2",
            "train.log_every=0",
            "train.threads=1",
        ],
    )
    summary = main(cfg, tmp_path)
    ckpt = tmp_path / "model.pt"
    side = json.loads(ckpt.with_suffix(".json").read_text())
    assert side["model"] == "tiny-cnn" and side["data"] == "digits" and side["seed"] == 0
    assert side["float_top1"] == summary["float_top1"] and "date" in side and "command" in side
    model = load_checkpoint(build_model("tiny-cnn"), ckpt)
    data = load_data({"name": "digits", "n_train": 200, "n_test": 100})
    assert abs(evaluate(model, data.test, model.input_shape) - side["float_top1"]) < 1e-6


def test_training_learns_and_is_reproducible():
    data = load_data({"name": "digits", "n_train": 400, "n_test": 200})
    cfg = TrainConfig(epochs=8, batch_size=32, lr=0.02, log_every=0, threads=1)
    accs = []
    for _ in range(2):
        torch.manual_seed(123)  # same init
        model = build_model("tiny-cnn")
        accs.append(fit(model, data, cfg, log=lambda s: None)["test_top1"])
    assert accs[0] == accs[1]
    assert accs[0] > 0.3  # well above chance (0.1) after a few short epochs


def test_progressive_resizing_phases_run_in_order():
    data = load_data({"name": "digits", "n_train": 64, "n_test": 32})
    cfg = TrainConfig(
        phases=[{"resolution": 6, "epochs": 1}, {"resolution": None, "epochs": 1}],
        batch_size=32,
        log_every=0,
        threads=1,
    )
    hist = fit(build_model("tiny-cnn"), data, cfg, log=lambda s: None)["history"]
    assert [h["resolution"] for h in hist] == [[6, 6], [8, 8]]


def test_learning_rate_warms_up_then_decays_to_zero():
    total = 100
    f = [lr_factor(s, total, 0.1) for s in range(total)]
    assert f[0] < f[9] == 1.0 and f[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(f[9:]))
