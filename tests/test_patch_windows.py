"""Receptive-field arithmetic: grains, input windows with border padding, and the RF recursion."""

import pytest

from harness.errors import ConfigError
from harness.patch.windows import input_extent, out_size, receptive_field, split_grains


@pytest.mark.parametrize("size,n", [(28, 4), (14, 4), (7, 3), (5, 5), (13, 2), (1, 1)])
def test_grains_tile_the_axis_and_differ_by_at_most_one_with_larger_first(size, n):
    grains = split_grains(size, n)
    assert len(grains) == n
    assert grains[0][0] == 0 and grains[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(grains, grains[1:]))
    lengths = [hi - lo for lo, hi in grains]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == sorted(lengths, reverse=True)
    assert sum(lengths) == size


def test_more_patches_than_pixels_is_refused():
    with pytest.raises(ConfigError, match="cannot cut"):
        split_grains(3, 4)
    with pytest.raises(ConfigError):
        split_grains(8, 0)


def test_interior_window_needs_no_padding_and_has_the_receptive_field_side():
    lo, hi, pad_lo, pad_hi = input_extent(3, 6, kernel=3, stride=2, pad_before=1, in_size=20)
    assert (pad_lo, pad_hi) == (0, 0)
    assert hi - lo == receptive_field(3, [(3, 2)])
    assert lo == 3 * 2 - 1


@pytest.mark.parametrize("k,s", [(1, 1), (3, 1), (3, 2), (5, 2), (7, 1), (7, 2)])
@pytest.mark.parametrize("size", [7, 8, 15])
def test_border_windows_are_clipped_and_padding_covers_exactly_the_clipped_part(k, s, size):
    p = (k - 1) // 2
    n_out = out_size(size, k, s, p, p)
    for lo_out, hi_out in split_grains(n_out, min(3, n_out)):
        lo, hi, pad_lo, pad_hi = input_extent(lo_out, hi_out, k, s, p, size)
        assert 0 <= lo < hi <= size
        # the padded window yields exactly the requested outputs
        assert out_size(hi - lo, k, s, pad_lo, pad_hi) == hi_out - lo_out
        assert pad_lo == (p - lo_out * s if lo_out * s < p else 0)
        assert pad_lo == 0 or lo == 0
        assert pad_hi == 0 or hi == size
        assert pad_lo <= p and pad_hi <= p  # never more than the layer's own border padding


def test_receptive_field_recursion_matches_the_paper_rule():
    # stride 1: r += k - 1; stride s: r = s (r - 1) + k, walked from the last layer back
    r = 1
    for k, s in reversed([(3, 2), (3, 1), (1, 1), (3, 2)]):
        r = r + k - 1 if s == 1 else s * (r - 1) + k
    assert receptive_field(1, [(3, 2), (3, 1), (1, 1), (3, 2)]) == r
    assert receptive_field(4, []) == 4


def test_a_window_that_reads_only_padding_is_an_error():
    with pytest.raises(ConfigError, match="only padding"):
        input_extent(0, 1, kernel=3, stride=1, pad_before=5, in_size=4)
