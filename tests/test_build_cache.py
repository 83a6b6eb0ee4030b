"""The content-addressed build cache: the key covers every input, names the bytes that were compiled, an entry is
verified on reuse, and a wrong image that slips through anyway is caught by the firmware's model hash."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from harness.boards import make_board
from harness.build import project
from harness.build.project import (
    _content_key,
    build,
    build_inputs,
    cached_sha256,
    generate_project,
    sha256_file,
)
from harness.codegen.artifact import layer_artifact
from harness.config.board import load_board_config
from harness.errors import DeviceError
from harness.measure.session import Session
from harness.synth.random_model import random_input, random_network
from tests.fixtures.fixture_model import FixtureModel

BOARD = "qemu-mps2-an386"


def test_the_key_reads_every_input_the_build_reads(tmp_path):
    FixtureModel().write(tmp_path / "model")
    p = generate_project(BOARD, tmp_path / "model", tmp_path / "p")
    names = {n for n, _ in build_inputs(p, load_board_config(BOARD))}
    # kernels in subfolders, headers, the board's linker script, the platform's build script and manifests
    assert any(n.startswith("firmware/runtime/kernels/mm/") and n.endswith(".c") for n in names)
    assert "firmware/runtime/include/th_board.h" in names
    assert f"firmware/boards/{BOARD}/link.ld" in names
    assert {"firmware/platform/builder/main.py", f"firmware/platform/boards/{BOARD}.json",
            "project/platformio.ini", "project/src/model_data.c"} <= names
    key = _content_key(p, load_board_config(BOARD))
    (p / "src" / "extra.h").write_text("/* one more header */\n")
    assert _content_key(p, load_board_config(BOARD)) != key


@pytest.mark.toolchain
def test_an_input_changed_during_the_build_is_never_filed_under_the_old_key(tmp_path, monkeypatch):
    FixtureModel(add=(3, -5)).write(tmp_path / "a")
    FixtureModel(add=(7, 1)).write(tmp_path / "b")
    p = generate_project(BOARD, tmp_path / "a", tmp_path / "p")
    key_a = _content_key(p, load_board_config(BOARD))
    real = project._compile
    calls = []

    def compile_then_someone_edits(*args, **kw):  # the real compiler; another writer changes src/ meanwhile
        sizes = real(*args, **kw)
        if not calls:
            generate_project(BOARD, tmp_path / "b", tmp_path / "p")
        calls.append(1)
        return sizes

    monkeypatch.setattr(project, "_compile", compile_then_someone_edits)
    r = build(p, BOARD, cache_dir=tmp_path / "cache")
    assert len(calls) == 2  # built again from what is there now
    assert r.key == _content_key(p, load_board_config(BOARD)) != key_a
    assert not (tmp_path / "cache" / key_a).exists()
    assert cached_sha256(tmp_path / "cache" / r.key) == sha256_file(r.elf) == r.elf_sha256


@pytest.mark.toolchain
def test_a_damaged_cache_entry_is_dropped_and_rebuilt_never_used(tmp_path):
    FixtureModel().write(tmp_path / "model")
    first = build(generate_project(BOARD, tmp_path / "model", tmp_path / "p1"), BOARD, cache_dir=tmp_path / "c")
    entry = tmp_path / "c" / first.key
    elf = bytearray((entry / "firmware.elf").read_bytes())
    elf[200] ^= 0xFF
    (entry / "firmware.elf").write_bytes(bytes(elf))
    again = build(generate_project(BOARD, tmp_path / "model", tmp_path / "p2"), BOARD, cache_dir=tmp_path / "c")
    assert not again.cached and again.elf.read_bytes() == first.elf.read_bytes()
    assert cached_sha256(entry) == sha256_file(entry / "firmware.elf") == first.elf_sha256
    third = build(generate_project(BOARD, tmp_path / "model", tmp_path / "p3"), BOARD, cache_dir=tmp_path / "c")
    assert third.cached and third.elf_sha256 == first.elf_sha256


def _model(seed: int):
    model = random_network(seed, input_shape=(8, 8, 3), width=8, classes=10, bits=(8,), name="cachetest")
    rng = np.random.default_rng(seed)
    return model, [random_input(model.tensors[model.input], rng)]


@pytest.mark.qemu
def test_another_models_image_under_this_key_is_caught_by_the_firmware_model_hash(tmp_path, monkeypatch):
    """The failure of the issue: job B's image filed under job A's key (checksum and all). The session compares
    the model hash the firmware reports with the artifact's and refuses to measure."""
    monkeypatch.setenv(project.CACHE_ENV, str(tmp_path / "cache"))
    model_a, inputs_a = _model(1)
    model_b, inputs_b = _model(2)
    board = make_board(BOARD)
    m_b = Session(board, tmp_path / "wb").run(layer_artifact(model_b), inputs_b)
    assert m_b.bit_exact
    # run A once to learn its key, then poison that entry with B's image and a matching checksum
    m_a = Session(board, tmp_path / "wa").run(layer_artifact(model_a), inputs_a)
    entry = tmp_path / "cache" / m_a.build["key"]
    shutil.copyfile(m_b.build["elf"], entry / "firmware.elf")
    meta = json.loads((entry / "meta.json").read_text())
    meta["elf_sha256"] = sha256_file(entry / "firmware.elf")
    (entry / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DeviceError, match="another model"):
        Session(board, tmp_path / "wa2").run(layer_artifact(model_a), inputs_a)
    assert m_a.firmware_hash != m_b.firmware_hash
