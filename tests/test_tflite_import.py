"""``.tflite`` import: int8 models built offline with the tflite-micro model editor run bit-exactly in tinyhil's
integer reference, on the host C kernels and on the emulated board, and equal the TFLite Micro interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError, UnsupportedLayerError
from harness.ir.packing import pack
from harness.measure.session import measure_model
from harness.native.host_c import HostKernels, compile_kernels
from harness.ops.avgpool import DIVIDE
from harness.reference.run import run_model
from harness.tflite import import_tflite, layer_specs, read_graph
from tests.fixtures import tflite_models as T


def _inputs(model, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = model.tensors[model.input].shape
    return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n)]


def _reference(model, xs) -> list[np.ndarray]:
    return [np.asarray(run_model(model, x)[model.output]).reshape(-1).astype(np.int64) for x in xs]


@pytest.mark.parametrize("build", [T.residual_net, T.flatten_net])
def test_the_integer_reference_equals_the_tflite_micro_interpreter(build):
    data = build()
    model = import_tflite(data)
    xs = _inputs(model, 100)
    want = T.tflm_outputs(data, xs)
    got = _reference(model, xs)
    assert [np.array_equal(a, b) for a, b in zip(got, want)] == [True] * len(xs)
    # the outputs vary with the input (a model that saturates everything would prove nothing)
    assert len({tuple(o) for o in want}) >= 20


def test_the_importer_maps_every_operator_to_the_integer_model():
    m = import_tflite(T.residual_net())
    assert [(la.op, la.kernel, la.stride) for la in m.layers] == [
        ("conv2d", (3, 3), 1), ("depthwise", (3, 3), 2), ("pointwise", (1, 1), 1), ("pointwise", (1, 1), 1),
        ("add", (1, 1), 1), ("avgpool", (6, 6), 6), ("fc", (1, 1), 1),
    ]  # fmt: skip
    assert m.tensors[m.input].shape == (12, 12, 3) and m.tensors[m.input].zero_point == -5
    assert m.tensors[m.output].shape == (1, 1, 10)
    conv = m.layers[0]
    assert conv.padding == (1, 1, 1, 1) and conv.act_min == m.tensors[conv.output].zero_point
    dw = m.layers[1]
    assert dw.padding == (0, 0, 1, 1)  # TFLite SAME at stride 2 on 12 px pads after only
    assert dw.act_max < 127  # ReLU6 clamps below the int8 top at this scale
    assert m.layers[5].shift.tolist() == [DIVIDE]
    f = import_tflite(T.flatten_net())
    assert [la.w_bits for la in f.layers if la.weight is not None] == [4, 8]  # the file's int4 weights
    assert f.layers[-1].op == "conv2d" and f.layers[-1].kernel == (3, 3)  # the flattened fully connected
    assert layer_specs(f)[0].key() == "conv2d_k3x3_s2_p0-0-0-0_i9x9x2_o4x4x6"


def test_int4_weights_are_read_low_nibble_first():
    g = read_graph(T.flatten_net())
    w4 = next(t for t in g.tensors if t.type_name == "INT4")
    m = import_tflite(T.flatten_net())
    lo = np.frombuffer(w4.data, np.uint8)[0] & 0xF
    assert int(m.layers[0].weight.reshape(-1)[0]) == (lo - 16 if lo > 7 else lo)


@pytest.mark.hostcc
def test_the_host_c_kernels_run_the_division_average_pool_like_tflite(tmp_path):
    kernels = HostKernels(compile_kernels(tmp_path, extra_flags=("-Werror",)))
    model = import_tflite(T.flatten_net())
    rng = np.random.default_rng(3)
    pool = model.layers[1]
    for x in _inputs(model, 20, seed=7):
        vals = run_model(model, x)
        got = kernels.run_layer(model, pool, vals, rng=rng)
        assert np.array_equal(got.values, vals[pool.output])
        assert got.raw == pack(vals[pool.output], 8)


def test_unsupported_operators_are_one_error_naming_them():
    with pytest.raises(UnsupportedLayerError) as e:
        import_tflite(T.unsupported_net())
    msg = str(e.value)
    assert "LOGISTIC, TANH" in msg and "supported: CONV_2D, DEPTHWISE_CONV_2D" in msg


def test_a_file_that_is_not_tflite_is_refused(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00NOPE" + bytes(32))
    with pytest.raises(ConfigError, match="not a TFL3 flatbuffer"):
        import_tflite(bad)
    with pytest.raises(ConfigError, match="no .tflite file"):
        import_tflite(tmp_path / "missing.tflite")


@pytest.mark.qemu
def test_an_imported_model_runs_bit_exact_on_the_board_and_equals_tflite_micro(tmp_path, test_board):
    data = T.residual_net()
    model = import_tflite(data, name="residual")
    xs = _inputs(model, 4, seed=11)
    m = measure_model(model, test_board, xs, tmp_path)  # raises unless every layer's CRC matches
    assert m.bit_exact is True
    want = T.tflm_outputs(data, xs)
    assert [np.array_equal(o.astype(np.int64), w) for o, w in zip(m.outputs, want)] == [True] * len(xs)
    assert all(layer.count > 0 for layer in m.layers)
