"""A cut-off or corrupt file on disk ends in one clear error that names the file and the fix, never a traceback:
a checkpoint (torch.load used to run outside the error handling), an IDX data file, a latency table (whose error
points at the intact copy beside it)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.data import sources
from harness.errors import ConfigError, TableError
from harness.models.registry import load_checkpoint
from harness.table.lut import LatencyTable
from tests.fixtures.tables import row, table_of


def _saved_checkpoint(path: Path, model: nn.Module) -> bytes:
    torch.save({k: v.detach() for k, v in model.state_dict().items()}, path)
    return path.read_bytes()


@pytest.mark.parametrize("cut", [0, 10, 0.5, -10])
def test_a_truncated_checkpoint_is_one_error_naming_the_file_and_how_to_retrain(tmp_path, cut):
    model = nn.Linear(64, 32)
    path = tmp_path / "m-d.pt"
    data = _saved_checkpoint(path, model)
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    path.write_bytes(data[:n])
    with pytest.raises(ConfigError, match="unreadable") as e:
        load_checkpoint(nn.Linear(64, 32), path)
    assert str(path) in str(e.value) and "tinyhil train" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_checkpoint_that_holds_no_state_dict_is_refused(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="holds a list, not a state dict"):
        load_checkpoint(nn.Linear(2, 2), tmp_path / "list.pt")
    path = tmp_path / "ok.pt"
    _saved_checkpoint(path, nn.Linear(2, 2))
    assert isinstance(load_checkpoint(nn.Linear(2, 2), path), nn.Linear)  # an intact one still loads


def _idx_gz(path: Path, arr: np.ndarray) -> bytes:
    raw = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw)
    return path.read_bytes()


@pytest.mark.parametrize("cut", [3, 20, -4])
def test_a_truncated_gzipped_idx_file_is_one_error_naming_the_fix(tmp_path, cut):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = _idx_gz(path, np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28))
    path.write_bytes(data[:cut])
    with pytest.raises(ConfigError, match="reinstall") as e:
        sources.read_idx(path, "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`")
    assert str(path) in str(e.value)


@pytest.mark.parametrize("raw", [b"\x00\x00", b"\x00\x00\x08\x03\x00\x00"])
def test_an_idx_file_cut_inside_its_header_is_refused(tmp_path, raw):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match="truncated"):
        sources.read_idx(path)


def test_a_truncated_parquet_table_points_at_the_intact_csv_beside_it(tmp_path):
    pq, csv = table_of([row("k1", 8, 8, 8, 100.5), row("k1", 2, 4, 2, 80.0)]).save(tmp_path / "lut")
    pq.write_bytes(pq.read_bytes()[: pq.stat().st_size // 2])
    with pytest.raises(TableError) as e:
        LatencyTable.load(tmp_path / "lut")
    msg = str(e.value)
    assert str(pq) in msg and f"CSV beside it, {csv}, is intact (2 rows)" in msg and "mv " in msg
    pq.rename(pq.with_name("lut.parquet.broken"))  # the recovery the message names
    assert len(LatencyTable.load(tmp_path / "lut")) == 2


def test_a_truncated_csv_table_is_refused_not_read_short(tmp_path):
    pq, csv = table_of([row("k1", 8, 8, 8, 100.5), row("k1", 2, 4, 2, 80.0)]).save(tmp_path / "lut")
    csv.write_bytes(csv.read_bytes()[:-7])  # the last row loses its tail: it would still parse
    pq.unlink()
    with pytest.raises(TableError, match="truncated"):
        LatencyTable.load(tmp_path / "lut")


def test_both_copies_broken_says_so(tmp_path):
    pq, csv = table_of([row("k1", 8, 8, 8, 1.0)]).save(tmp_path / "lut")
    pq.write_bytes(b"PAR1junk")
    csv.write_bytes(b"layer_key,a_bits\nk1")
    with pytest.raises(TableError, match="unreadable too: profile the model again"):
        LatencyTable.load(tmp_path / "lut")
