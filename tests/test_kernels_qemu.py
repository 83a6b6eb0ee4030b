"""The kernels on emulated Cortex-M: one firmware runs every op at every (a_bits, w_bits) pair and every
output precision, and each layer's output CRC must equal the numpy reference's (bit-exact on target).

qemu-mps2-an386 is a Cortex-M4F, so the a8w8 layers take the SXTB16/SMLAD path; qemu-mps3-an547 (Cortex-M55)
builds the same sources for Armv8.1-M.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from harness.codegen.random_model import random_coverage_chain, random_input

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]


@pytest.mark.parametrize("board_name,seed", [("qemu-mps2-an386", 0), ("qemu-mps3-an547", 1)])
def test_every_kernel_is_bit_exact_on_the_emulated_board(tmp_path, board_name, seed):
    from harness.boards import make_board
    from harness.measure.session import run_on_board

    model = random_coverage_chain(seed)
    covered = {
        (layer.op, model.a_bits(layer), layer.w_bits) for layer in model.layers if layer.weight is not None
    }
    assert len(covered) == 4 * 9
    rng = np.random.default_rng(seed)
    inputs = [random_input(model.tensors[model.input], rng) for _ in range(2)]
    m = run_on_board(model, make_board(board_name), inputs, tmp_path)
    assert m.mismatched_layers == []
    assert m.bit_exact
    assert all(layer.ticks > 0 for layer in m.layers)
