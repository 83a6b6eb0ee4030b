"""The core-generic part of the real boards' bring-up (boards/common/armv7m_core.c: VTOR and NVIC quiesce, the
Cortex-M7 cache enable and maintenance sequences, the DWT guard, the MPU stack guard) running on QEMU's emulated
Cortex-M7 (mps2-an500). QEMU models no caches (CLIDR reads 0) and no cycle counter, so this checks that the code
runs there without faulting or hanging, that the DWT guard reports the dead counter, and that the MPU guard
traps a write into it; the caches and the counter themselves are silicon-only."""

from __future__ import annotations

import re
import subprocess

import pytest

from harness.build.elf import ElfImage
from tests.fixtures.standalone import FIXTURE_FW, build_image, common

M7 = ["-mthumb", "-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]


@pytest.fixture(scope="module")
def run_m7(tmp_path_factory):
    elf = build_image(
        tmp_path_factory.mktemp("cm7"),
        [
            FIXTURE_FW / "cm7_core_main.c",
            *common("startup.c", "fault.c", "semihost.c", "timer.c", "armv7m_core.c"),
        ],
        M7,
        ["TH_SEMIHOSTING", "TH_QEMU", "TH_CORE_HZ=25000000u"],
        FIXTURE_FW / "mps2_real_sections.ld",
    )
    r = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an500",
            "-cpu",
            "cortex-m7",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = r.stdout + r.stderr  # semihosting console output goes to QEMU's stderr or stdout by version
    values = dict(re.findall(r"^([a-z_ ]+)=(\S.*)$", text, re.MULTILINE))
    return r.returncode, values, text, elf


@pytest.mark.toolchain
@pytest.mark.qemu
def test_core_bring_up_runs_on_the_emulated_cortex_m7(run_m7):
    _, v, _, elf = run_m7
    with ElfImage(elf) as image:
        vectors = image.symbol("th_vectors").address
    assert int(v["vtor"], 16) == vectors  # VTOR points at our table (an app above a bootloader needs this)
    assert v["caches_present"] == "0" and v["cache_state"] == "0"  # QEMU: no cache, so nothing is switched on
    assert v["invalidate"] == "ok"  # ICIALLU and the DCISW set/way loop run on a Cortex-M7 without faulting
    assert int(v["mpu_regions"]) >= 8 and v["mpu_guard"] == "10"  # th_mpu_stack_guard returned 0
    assert int(v["mpu_ctrl"], 16) == 0x5  # ENABLE | PRIVDEFENA


@pytest.mark.toolchain
@pytest.mark.qemu
def test_dwt_guard_reports_a_counter_that_does_not_count_instead_of_hanging(run_m7):
    _, v, out, _ = run_m7
    assert int(v["dwt_status"]) - 10 == -2  # TH_DWT_STUCK
    assert "e-[dwt: the cycle counter does not advance" in out


@pytest.mark.toolchain
@pytest.mark.qemu
def test_mpu_stack_guard_turns_a_write_into_the_guard_into_a_memmanage_fault(run_m7):
    rc, v, _, _ = run_m7
    assert v["before_guard_write"] == "ok"  # the word just below the guard is ordinary memory
    assert "guard_write" not in v  # the write into the guard never completed
    assert v["fault exc"] == "4"  # MemManage
    cfsr = int(v["fault cfsr"], 16)
    assert cfsr & 0x2 and cfsr & 0x80  # DACCVIOL, MMARVALID
    assert int(v["fault mmfar"], 16) == int(v["guard"], 16)  # the faulting address is the guard itself
    assert int(v["stack_bottom"], 16) == int(v["guard"], 16) + 32
    assert rc == 3  # the fault reporter's exit status
