"""Firmware builds: offline PlatformIO, generated projects, reproducible images, and clear errors for a model that
does not compile or does not fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.build import MemoryEstimate, build, check_fit, generate_project
from harness.build.pio_core import TOOL_SCONS_VERSION, ensure_pio_core, pio_environment
from harness.build.sizes import linker_overflows, min_stack_bytes
from harness.errors import BuildError, ConfigError, DoesNotFitError
from tests.fixtures.boards import QEMU_BOARDS
from tests.fixtures.fixture_model import FixtureModel

REPO = Path(__file__).resolve().parent.parent


def test_offline_pio_core_has_tool_scons_and_is_idempotent(tmp_path):
    core = ensure_pio_core(tmp_path / "core")
    pkg = core / "packages" / "tool-scons"
    assert (pkg / "SCons" / "Script").is_dir() and (pkg / "scons.py").is_file()
    assert json.loads((pkg / "package.json").read_text())["version"] == TOOL_SCONS_VERSION
    assert json.loads((pkg / ".piopm").read_text())["spec"]["owner"] == "platformio"
    before = {p: p.stat().st_mtime_ns for p in pkg.iterdir()}
    ensure_pio_core(tmp_path / "core")
    assert {p: p.stat().st_mtime_ns for p in pkg.iterdir()} == before


def test_generated_project_points_at_the_local_platform(tmp_path):
    FixtureModel().write(tmp_path / "model")
    project = generate_project("qemu-mps3-an547", tmp_path / "model", tmp_path / "project")
    ini = (project / "platformio.ini").read_text()
    assert f"platform = symlink://{REPO / 'firmware' / 'platform'}" in ini
    assert "board = qemu-mps3-an547" in ini
    assert (project / "src" / "model_data.c").read_text() == (tmp_path / "model" / "model_data.c").read_text()


def test_regenerating_rewrites_only_changes_and_drops_stale_sources(tmp_path):
    FixtureModel().write(tmp_path / "a")
    (tmp_path / "a" / "extra.c").write_text("int extra;\n")
    project = generate_project("qemu-mps2-an386", tmp_path / "a", tmp_path / "project")
    stamp = (project / "src" / "model_data.c").stat().st_mtime_ns
    generate_project("qemu-mps2-an386", [tmp_path / "a" / "model_data.c"], tmp_path / "project")
    assert (project / "src" / "model_data.c").stat().st_mtime_ns == stamp
    assert not (project / "src" / "extra.c").exists()


def test_unknown_board_missing_sources_and_boards_without_firmware_are_config_errors(tmp_path):
    FixtureModel().write(tmp_path / "model")
    with pytest.raises(ConfigError, match="known boards"):
        generate_project("no-such-board", tmp_path / "model", tmp_path / "p")
    with pytest.raises(ConfigError, match="does not exist"):
        generate_project("qemu-mps2-an386", tmp_path / "nothing-here", tmp_path / "p")
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "board" / "nucleo-h743zi.yaml"))
    raw.update(name="future-board", platformio_board="future-board")  # a config without a board folder yet
    with pytest.raises(ConfigError, match="no firmware support"):
        generate_project(raw, tmp_path / "model", tmp_path / "p")


@pytest.mark.toolchain
def test_estimate_that_cannot_fit_is_rejected_before_building(tmp_path):
    with pytest.raises(DoesNotFitError) as e:
        check_fit("qemu-netduinoplus2", MemoryEstimate(arena=200_000))
    msg = str(e.value)
    assert "qemu-netduinoplus2" in msg and "arena 200000" in msg and "131072" in msg
    with pytest.raises(DoesNotFitError, match="flash"):
        check_fit("qemu-mps3-an547", MemoryEstimate(arena=1000, weights=600_000))
    check_fit("qemu-netduinoplus2", MemoryEstimate(arena=100_000, scratch=1000, weights=500_000))


@pytest.mark.toolchain
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-netduinoplus2"])
@pytest.mark.parametrize("seed,shape,width,bits", [(1, (32, 32, 3), 16, (8,)), (2, (24, 24, 3), 24, (2, 4, 8))])
def test_the_fit_estimate_is_the_linked_image_to_within_a_few_bytes(tmp_path, board, seed, shape, width, bits):
    # the estimate of the runtime and kernels comes from linking them: a model near the limit is judged right
    from harness.build.fit import linked_footprint
    from harness.build.sizes import min_stack_bytes
    from harness.codegen.artifact import layer_artifact
    from harness.config.board import load_board_config
    from harness.synth.random_model import random_network

    cfg = load_board_config(board)
    art = layer_artifact(random_network(seed, input_shape=shape, width=width, bits=bits))
    fw = linked_footprint(cfg, art.estimate.kernels)
    est_flash = art.estimate.weights + fw.flash
    est_sram = art.estimate.arena + art.estimate.scratch + fw.sram + min_stack_bytes(REPO / cfg.linker_script)
    r = build(generate_project(cfg, art.write_sources(tmp_path / "m"), tmp_path / "p"), cfg)
    assert 0 <= est_sram - r.sram_used <= 64  # the placeholder buffers keep their 16-byte alignment padding
    assert 0 <= est_flash - r.flash_used <= 1024  # never low; the model data tables are estimated, not linked


def test_linker_overflow_lines_are_parsed():
    out = "ld: region `RAM' overflowed by 73952 bytes\nld: region `FLASH' overflowed by 12 bytes\n"
    assert linker_overflows(out) == {"RAM": 73952, "FLASH": 12}
    assert min_stack_bytes(REPO / "firmware" / "boards" / "qemu-netduinoplus2" / "link.ld") == 8192


@pytest.mark.toolchain
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_fixture_builds_for_every_qemu_board_with_its_sizes(fixture_firmware, board):
    r = fixture_firmware(board)
    assert r.elf.is_file() and r.map.is_file() and r.board == board
    assert 0 < r.text < 64 * 1024
    assert r.bss >= FixtureModel().arena_size
    assert r.stack == 8192
    assert r.flash_used == r.text + r.data
    assert r.sram_used == r.data + r.bss + r.stack
    assert "th_model" in r.map.read_text()


@pytest.mark.toolchain
def test_second_build_of_the_same_content_comes_from_the_cache(tmp_path):
    FixtureModel().write(tmp_path / "model")
    first = build(
        generate_project("qemu-mps2-an386", tmp_path / "model", tmp_path / "p1"),
        "qemu-mps2-an386",
        cache_dir=tmp_path / "cache",
    )
    second = build(
        generate_project("qemu-mps2-an386", tmp_path / "model", tmp_path / "p2"),
        "qemu-mps2-an386",
        cache_dir=tmp_path / "cache",
    )
    assert not first.cached and second.cached
    assert second.elf.read_bytes() == first.elf.read_bytes()
    assert (second.text, second.bss) == (first.text, first.bss)


@pytest.mark.toolchain
def test_builds_are_reproducible_across_folders(tmp_path):
    def image(folder: str) -> bytes:
        FixtureModel().write(tmp_path / folder / "model")
        project = generate_project("qemu-netduinoplus2", tmp_path / folder / "model", tmp_path / folder / "p")
        r = build(project, "qemu-netduinoplus2", cache_dir=False)
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(r.elf), str(r.elf) + ".bin"], check=True)
        return Path(str(r.elf) + ".bin").read_bytes()

    assert image("one") == image("two")


@pytest.mark.toolchain
def test_compile_error_is_a_build_error_with_the_compiler_message(tmp_path):
    (tmp_path / "model").mkdir()
    src = FixtureModel().source().replace("int32_t v = x[i] + k;", "int32_t v = x[i] + undeclared_thing;")
    (tmp_path / "model" / "model_data.c").write_text(src)
    project = generate_project("qemu-mps2-an386", tmp_path / "model", tmp_path / "p")
    with pytest.raises(BuildError) as e:
        build(project, "qemu-mps2-an386", cache_dir=False)
    assert "model_data.c" in str(e.value) and "undeclared_thing" in str(e.value) and "error" in str(e.value)


@pytest.mark.toolchain
def test_arena_too_big_for_sram_fails_the_link_with_the_sizes(tmp_path):
    FixtureModel(arena_extra=200_000).write(tmp_path / "model")
    project = generate_project("qemu-netduinoplus2", tmp_path / "model", tmp_path / "p")
    with pytest.raises(DoesNotFitError) as e:
        build(project, "qemu-netduinoplus2", cache_dir=False)
    msg = str(e.value)
    assert "qemu-netduinoplus2" in msg and "SRAM overflowed by" in msg and "131072" in msg


@pytest.mark.toolchain
def test_weights_too_big_for_flash_fail_the_link(tmp_path):
    FixtureModel(weights_extra=600 * 1024).write(tmp_path / "model")
    project = generate_project("qemu-mps3-an547", tmp_path / "model", tmp_path / "p")
    with pytest.raises(DoesNotFitError, match="flash overflowed by"):
        build(project, "qemu-mps3-an547", cache_dir=False)


@pytest.mark.toolchain
def test_pio_run_works_directly_in_the_firmware_folder(tmp_path):
    # A private build dir: a developer's own `pio run` in firmware/ may be running at the same time.
    env = dict(pio_environment(), PLATFORMIO_BUILD_DIR=str(tmp_path))
    r = subprocess.run(
        [sys.executable, "-m", "platformio", "run", "-d", str(REPO / "firmware")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for board in QEMU_BOARDS:
        assert (tmp_path / board / "firmware.elf").is_file()


@pytest.mark.toolchain
def test_a_checkout_whose_path_has_a_space_builds_and_links_the_cached_library(tmp_path):
    # The map file, the library path and the cached archive used to reach the linker unquoted.
    import os
    import shutil

    root = tmp_path / "with space" / "tiny hil"
    for part in ("harness", "firmware", "configs"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__", ".pio"))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from harness.build import build, generate_project\n"
        "from harness.build.pio_core import repo_root\n"
        "assert ' ' in str(repo_root())\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.fixtures.fixture_model import FixtureModel\n"
        "out = Path(sys.argv[2])\n"
        "FixtureModel().write(out / 'model')\n"
        "for p in ('p one', 'p two'):\n"
        "    r = build(generate_project('qemu-mps2-an386', out / 'model', out / p), 'qemu-mps2-an386', cache_dir=False)\n"
        "    print(r.elf, r.text)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root), "TINYHIL_PIO_CORE_DIR": str(root / ".pio-core")}
    r = subprocess.run(
        [sys.executable, "-c", script, str(REPO), str(root / "out dir")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    elfs = [Path(line.rsplit(" ", 1)[0]) for line in r.stdout.splitlines()]
    assert len(elfs) == 2 and all(e.is_file() and " " in str(e) for e in elfs)
    libs = list((root / ".pio-core" / "tinyhil-libcache").glob("*/libtinyhil.a"))
    assert len(libs) == 1  # stored by the first build, linked from its spaced path by the second
    images = []
    for e in elfs:
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(e), str(e) + ".bin"], check=True)
        images.append(Path(str(e) + ".bin").read_bytes())
    assert images[0] == images[1]
