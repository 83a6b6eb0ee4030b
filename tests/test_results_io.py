"""Results contract: summary.json has flat keys and plain numbers."""

import json

import numpy as np

from harness.results.io import flatten, write_summary


def test_nested_mappings_become_flat_keys_and_numpy_numbers_plain(tmp_path):
    s = {"a": 1, "pairs": {"a2w2": np.int64(3), "deep": {"x": np.float32(0.5)}}, "list": [1, 2]}
    assert flatten(s) == {"a": 1, "pairs_a2w2": 3, "pairs_deep_x": 0.5, "list": [1, 2]}
    write_summary(tmp_path, s)
    got = json.loads((tmp_path / "summary.json").read_text())
    assert got == {"a": 1, "pairs_a2w2": 3, "pairs_deep_x": 0.5, "list": [1, 2]}
    assert isinstance(got["pairs_a2w2"], int) and isinstance(got["pairs_deep_x"], float)
