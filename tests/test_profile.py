"""Board latency profiling: which entries a model needs, how they are packed into batch images, and (in QEMU)
that an interrupted profile resumes to the same table without duplicate rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import TableError
from harness.graph.spec import INPUT, LayerSpec
from harness.measure.profile import ProfileSettings, needed_entries, plan_profile
from harness.measure.target import measurement_target
from harness.precision.groups import activation_groups
from harness.search.freebits import refine
from harness.search.uniform import uniform_config
from harness.synth.batch import (
    ImageBudget,
    Variant,
    batch_input_shape,
    build_batch_model,
    plan_images,
)
from harness.table.lut import KEY_COLUMNS, LatencyTable

REPO = Path(__file__).resolve().parent.parent


def tiny_layers() -> list[LayerSpec]:
    """A residual network with every op kind (the zoo's tiny CNN)."""
    from harness.graph.trace import extract_layers
    from harness.models.registry import build_model

    return extract_layers(build_model("tiny-cnn"))


# ------------------------------------------------------------------------------------------ needed entries


def test_needed_entries_cover_every_reachable_bit_combination_once():
    layers = tiny_layers()
    groups = activation_groups(layers)
    entries = needed_entries(layers)
    keys = [e for e, _ in entries]
    assert len(keys) == len(set(keys))
    first = set(groups.readers[groups.group_of[INPUT]])
    for e, s in entries:
        key, a, w, o = e
        assert key == s.key()
        if not s.has_weights:
            assert w == 0 and a == o
        else:
            assert w in (2, 4, 8)
        if s.name in first:
            assert a == 8, "the image arrives as int8: its readers are profiled at a = 8 only"
        if s.has_weights and not groups.readers[groups.output_group(s.name)]:
            assert o == 8, "logits are int8: the last layer is profiled at o = 8 only"
    # every weighted layer inside the network has all 27 (a, w, o) combinations
    inner = [
        s
        for s in layers
        if s.has_weights and s.name not in first and groups.readers[groups.output_group(s.name)]
    ]
    assert inner
    for s in inner:
        assert sum(1 for e, _ in entries if e[0] == s.key()) == 27


def test_needed_entries_without_io_restrictions_equal_profile_entries():
    from harness.table.lut import profile_entries

    layers = tiny_layers()
    ours = [e for e, _ in needed_entries(layers, input_bits=None, output_bits=None)]
    assert ours == [e for e, _ in profile_entries(layers)]


# ------------------------------------------------------------------------------------------ batch images


def test_batch_model_runs_each_variant_at_its_shape_and_bits():
    layers = tiny_layers()
    variants = [Variant(e, s) for e, s in needed_entries(layers)][::5]
    bm = build_batch_model(variants, batch_input_shape(layers), seed=3)
    m = bm.model
    assert len(bm.variant_layers) == len(variants)
    assert len({m.layers[i].output for i in bm.variant_layers}) == len(variants), (
        "each variant has its own output"
    )
    for v, i in zip(variants, bm.variant_layers, strict=True):
        layer = m.layers[i]
        _key, a, w, o = v.entry
        assert layer.op == v.spec.op
        assert tuple(m.in_spec(layer).shape) == tuple(v.spec.in_shape)
        assert tuple(m.out_spec(layer).shape) == tuple(v.spec.out_shape)
        assert (m.a_bits(layer), m.o_bits(layer)) == (a, o)
        if v.spec.has_weights:
            assert layer.w_bits == w
            assert tuple(layer.kernel) == tuple(v.spec.kernel) and layer.stride == v.spec.stride
            assert tuple(layer.padding) == tuple(v.spec.padding)
        else:
            assert len(layer.inputs) == len(v.spec.inputs)


def test_a_variant_gets_the_same_layer_whichever_image_it_lands_in():
    layers = tiny_layers()
    variants = [Variant(e, s) for e, s in needed_entries(layers)]
    shape = batch_input_shape(layers)
    target = variants[40]
    alone = build_batch_model([target], shape, seed=0)
    crowd = build_batch_model(variants[30:60], shape, seed=0)
    la = alone.model.layers[alone.variant_layers[0]]
    lc = crowd.model.layers[crowd.variant_layers[10]]
    assert np.array_equal(la.weight, lc.weight)
    assert np.array_equal(la.bias, lc.bias) and np.array_equal(la.multiplier, lc.multiplier)
    other = build_batch_model([target], shape, seed=1).model.layers[0]
    assert other is not None  # another seed builds as well (and is free to differ)


def test_images_respect_the_budget_and_hold_every_variant_once():
    layers = tiny_layers()
    variants = [Variant(e, s) for e, s in needed_entries(layers)]
    shape = batch_input_shape(layers)
    budget = ImageBudget(max_layers=16, max_macs=1e9)
    images = plan_images(variants, shape, budget)
    assert len(images) > 1
    flat = [v.entry for im in images for v in im]
    assert sorted(flat) == sorted(v.entry for v in variants)
    for im in images:
        assert len(build_batch_model(im, shape).model.layers) <= budget.max_layers


# ------------------------------------------------------------------------------------------ targets


def _rows_for(target, layers) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for (key, a, w, o), _s in needed_entries(layers):
        out.append(
            {
                "layer_key": key,
                "a_bits": a,
                "w_bits": w,
                "o_bits": o,
                "count": float(rng.integers(100, 999)),
                "board": target.board,
                "timer": target.timer,
                "firmware_hash": target.firmware_hash,
                "cflags": target.cflags,
            }
        )
    return out


def test_the_target_names_board_timer_kernel_build_and_flags():
    a = measurement_target("qemu-mps2-an386")
    b = measurement_target("qemu-mps3-an547")
    c = measurement_target("qemu-mps2-an386", ["-DTH_EXTRA=1"])
    assert (a.board, a.timer) == ("qemu-mps2-an386", "qemu-icount")
    assert "-mcpu=cortex-m4" in a.cflags and "-mcpu=cortex-m55" in b.cflags
    assert a.firmware_hash != b.firmware_hash, "board support code is part of the build"
    assert a.firmware_hash != c.firmware_hash and "-DTH_EXTRA=1" in c.cflags
    assert measurement_target("qemu-mps2-an386") == a, "the target is a pure function of the sources"


def test_a_table_from_one_board_is_never_used_for_another(tmp_path):
    layers = tiny_layers()
    an386 = measurement_target("qemu-mps2-an386")
    table = LatencyTable()
    table.add(_rows_for(an386, layers))
    path = tmp_path / "lut"
    table.save(path)
    # profiling another board re-measures everything: nothing of the an386 rows counts as present
    plan = plan_profile(layers, "qemu-mps3-an547", path, ProfileSettings())
    assert plan.target.board == "qemu-mps3-an547"
    assert sum(len(im) for im in plan.images) == len(plan.needed)
    # and pricing a configuration for the other board refuses, naming both
    config = uniform_config(layers, 4, 4)
    with pytest.raises(TableError, match="qemu-mps2-an386") as exc:
        refine(layers, config, LatencyTable.load(path), board="qemu-mps3-an547", timer="qemu-icount")
    assert "qemu-mps3-an547" in str(exc.value)
    with pytest.raises(TableError, match="qemu-mps2-an386"):
        LatencyTable.load(path).for_target("qemu-mps2-an386", "dwt-cycles")


def test_layers_too_large_for_the_board_are_reported_not_built(tmp_path):
    from harness.graph.trace import extract_layers
    from harness.models.registry import build_model
    from harness.synth.batch import standalone_arena_bytes

    layers = extract_layers(build_model("mbv2-w0.35"))
    small = plan_profile(layers, "qemu-netduinoplus2", tmp_path / "nd", ProfileSettings())  # 128 KB SRAM
    big = plan_profile(layers, "qemu-mps2-an386", tmp_path / "an386", ProfileSettings())  # 4 MB SRAM
    assert big.unfit == [] and sum(len(im) for im in big.images) == len(big.needed)
    assert small.unfit, "MobileNetV2's 48x48 stages need more than 128 KB layer by layer"
    planned = {v.entry for im in small.images for v in im}
    assert planned.isdisjoint(small.unfit) and len(planned) + len(small.unfit) == len(small.needed)
    by_entry = dict(small.needed)
    for e in small.unfit:
        assert standalone_arena_bytes(Variant(e, by_entry[e])) > 64 * 1024
    assert max(standalone_arena_bytes(v) for im in small.images for v in im) < 128 * 1024


# ------------------------------------------------------------------------------------------ QEMU


def _profile_cmd(table_dir: Path, work: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "profile",
        "model=tiny-cnn",
        f"profile.table_dir={table_dir}",
        "profile.a_bits=[4,8]",
        "profile.w_bits=[4,8]",
        "profile.o_bits=[4,8]",
        "profile.max_layers=12",
        "profile.repeats=2",
        "profile.workers=1",
        f"workdir={work}",
        f"hydra.run.dir={run_dir}",
    ]


def _table(table_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(table_dir / "qemu-mps2-an386.parquet")


@pytest.mark.qemu
def test_an_interrupted_profile_resumes_to_the_same_table(tmp_path):
    from harness.experiments.profile import model_layers, settings_from
    from harness.measure.profile import profile_layers

    interrupted = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        _profile_cmd(interrupted, tmp_path / "w1", tmp_path / "r1"),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pq = interrupted / "qemu-mps2-an386.parquet"
    deadline = time.monotonic() + 120
    try:
        while not pq.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert pq.exists(), (
            f"no table after the first image: {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ''}"
        )
        os.killpg(proc.pid, signal.SIGKILL)  # mid-way: after the first image was saved
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    partial = _table(interrupted)
    resumed = subprocess.run(
        _profile_cmd(interrupted, tmp_path / "w1", tmp_path / "r2"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = _table(interrupted)

    # an uninterrupted profile of the same entries (in parallel, in this process) is the reference
    block = {
        "a_bits": [4, 8],
        "w_bits": [4, 8],
        "o_bits": [4, 8],
        "max_layers": 12,
        "repeats": 2,
        "workers": 2,
    }
    layers = model_layers("tiny-cnn")
    ref = profile_layers(
        layers,
        "qemu-mps2-an386",
        tmp_path / "ref" / "qemu-mps2-an386",
        settings_from(block, "qemu-mps2-an386"),
        workdir=tmp_path / "w2",
    )
    reference = _table(tmp_path / "ref")

    key = list(KEY_COLUMNS)
    assert len(partial) < len(final), "the kill came before the end"
    assert not final.duplicated(key).any()
    assert len(final) == len(reference) == ref.n_entries
    both = final.merge(reference, on=key, suffixes=("", "_ref"))
    assert len(both) == len(final)
    assert (both["count"] == both["count_ref"]).all(), (
        "a resumed profile measures exactly what a whole one does"
    )
    assert both["bit_exact"].all()
    # rows measured before the kill were kept, not measured again
    kept = partial.merge(final, on=key, suffixes=("", "_final"))
    assert len(kept) == len(partial) and (kept["date"] == kept["date_final"]).all()
    # a third run finds nothing left to do
    again = profile_layers(
        layers,
        "qemu-mps2-an386",
        interrupted / "qemu-mps2-an386",
        settings_from(block, "qemu-mps2-an386"),
        workdir=tmp_path / "w3",
    )
    assert again.n_new == 0 and again.n_images == 0
    assert "summary.json" in os.listdir(tmp_path / "r2")
