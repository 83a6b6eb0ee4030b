"""The kernels on emulated Cortex-M: one firmware runs every op at every (a_bits, w_bits) pair and every
output precision, and each layer's output CRC must equal the numpy reference's (bit-exact on target).

qemu-mps2-an386 is a Cortex-M4F, so the a8w8 layers take the SXTB16/SMLAD path; qemu-mps3-an547 (Cortex-M55)
builds the same sources for Armv8.1-M.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.synth.random_model import random_coverage_chain, random_input

pytestmark = [
    pytest.mark.qemu,
]


@pytest.mark.parametrize("board_name,seed", [("qemu-mps2-an386", 0), ("qemu-mps3-an547", 1)])
def test_every_kernel_is_bit_exact_on_the_emulated_board(tmp_path, board_name, seed):
    from harness.boards import make_board
    from harness.measure.session import measure_model

    model = random_coverage_chain(seed)
    covered = {
        (layer.op, model.a_bits(layer), layer.w_bits) for layer in model.layers if layer.weight is not None
    }
    assert len(covered) == 4 * 9
    rng = np.random.default_rng(seed)
    inputs = [random_input(model.tensors[model.input], rng) for _ in range(2)]
    m = measure_model(model, make_board(board_name), inputs, tmp_path)
    assert m.mismatched_layers == []
    assert m.bit_exact
    assert all(layer.ticks > 0 for layer in m.layers)


# Shapes that take the fast paths on the target (16-channel depthwise chunks, direct lane columns, the
# packed-field a2w2/a4w2/a2w4 core, pixel and channel tails; the 3-channel conv widens its sub-byte weights),
# every (a, w) pair and the int8 _ref loop; o_bits: every pair again at 4- and 2-bit outputs (packed in registers;
# channel counts ending in partial bytes and partial 16-channel depthwise chunks); add and average pooling at
# 8, 4 and 2 bits
FAST_SHAPES = [
    ("conv2d", 7, 7, 16, 6, 3, 1, 1, (8, 4, 2)),
    ("conv2d", 9, 9, 3, 5, 3, 2, 1, (8,)),
    ("depthwise", 5, 6, 21, 21, 3, 1, 1, (8, 4, 2)),
    ("depthwise", 8, 7, 32, 32, 3, 2, 1, (8,)),
    ("pointwise", 5, 5, 32, 7, 1, 1, 0, (8, 4, 2)),
    ("fc", 1, 1, 67, 9, 1, 1, 0, (8,)),
    ("add", 5, 3, 7, 7, 1, 1, 0, (8,)),
    ("avgpool", 4, 4, 22, 22, 2, 2, 0, (8,)),
]


@pytest.mark.parametrize("op,h,w,cin,cout,k,stride,pad,o_bits", FAST_SHAPES)
def test_fast_paths_of_every_pair_are_bit_exact_on_the_emulated_board(
    tmp_path, op, h, w, cin, cout, k, stride, pad, o_bits
):
    from harness.config.board import load_board_config
    from harness.experiments.bench_kernels import LayerShape, build_image, measure_image

    shape = LayerShape(f"t_{op}", op, h, w, cin, cout, k, stride, pad)
    img = build_image(shape, seed=3, o_bits=o_bits)
    rows = measure_image(img, load_board_config("qemu-mps2-an386"), tmp_path)
    assert len(rows) == (9 * len(o_bits) + 1 if shape.weighted else 3)
    assert [r["variant"] for r in rows if not r["bit_exact"]] == []
