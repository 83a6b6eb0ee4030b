"""Read a ``.tflite`` flatbuffer into plain Python objects: tensors (shape, type, constant data, quantization)
and operators (name, inputs, outputs, options) of its one subgraph."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.tflite import schema as S
from harness.tflite.flatbuffer import Table, root


@dataclass
class Tensor:
    """One tensor of the subgraph: constant (``data``) or an activation."""

    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    data: bytes | None
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # float32, as in the file
    zero_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0

    @property
    def type_name(self) -> str:
        return S.TENSOR_TYPES.get(self.type, f"type {self.type}")

    @property
    def scale(self) -> np.float32:
        """The per-tensor scale (ConfigError for a tensor without quantization)."""
        if self.scales.size == 0:
            raise ConfigError(f"tensor {self.name!r} has no quantization parameters (a float tensor?)")
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points.size else 0


@dataclass
class Operator:
    """One operator: its builtin name, input and output tensor indices (-1: an absent optional input)."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Table | None


@dataclass
class Graph:
    """The subgraph of a ``.tflite`` file."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    description: str = ""


def _tensor(i: int, t: Table, buffers: list[Table]) -> Tensor:
    shape = tuple(int(v) for v in t.array(S.TENSOR["shape"], "<i4"))
    b = int(t.scalar(S.TENSOR["buffer"], "<I", 0))
    data = None
    if 0 < b < len(buffers):
        buf = buffers[b]
        if int(buf.scalar(S.BUFFER["offset"], "<Q", 0)) > 1:
            raise ConfigError("the .tflite file keeps its weights outside the flatbuffer (a model over 2 GB); "
                              "tinyhil reads only self-contained files")
        raw = buf.array(S.BUFFER["data"], "u1")
        data = raw.tobytes() if raw.size else None
    q = t.table(S.TENSOR["quantization"])
    scales = q.array(S.QUANTIZATION["scale"], "<f4") if q is not None else np.zeros(0, np.float32)
    zps = q.array(S.QUANTIZATION["zero_point"], "<i8") if q is not None else np.zeros(0, np.int64)
    qdim = int(q.scalar(S.QUANTIZATION["quantized_dimension"], "<i", 0)) if q is not None else 0
    if t.has(S.TENSOR["sparsity"]):
        raise ConfigError(f"tensor {i} is sparse; tinyhil reads dense tensors only")
    return Tensor(i, t.string(S.TENSOR["name"]), shape, int(t.scalar(S.TENSOR["type"], "<b", 0)), data,
                  scales, zps, qdim)


def read_graph(data: bytes) -> Graph:
    """The one subgraph of a ``.tflite`` flatbuffer (ConfigError for anything else)."""
    model = root(bytes(data), S.FILE_IDENTIFIER)
    codes = []
    for c in model.tables(S.MODEL["operator_codes"]):
        deprecated = int(c.scalar(S.OPERATOR_CODE["deprecated_builtin_code"], "<b", 0))
        builtin = int(c.scalar(S.OPERATOR_CODE["builtin_code"], "<i", 0))
        codes.append(S.operator_name(max(deprecated, builtin), c.string(S.OPERATOR_CODE["custom_code"])))
    subgraphs = model.tables(S.MODEL["subgraphs"])
    if len(subgraphs) != 1:
        raise ConfigError(f"the .tflite file has {len(subgraphs)} subgraphs; tinyhil imports one")
    sg = subgraphs[0]
    buffers = model.tables(S.MODEL["buffers"])
    tensors = [_tensor(i, t, buffers) for i, t in enumerate(sg.tables(S.SUBGRAPH["tensors"]))]
    operators = []
    for i, op in enumerate(sg.tables(S.SUBGRAPH["operators"])):
        idx = int(op.scalar(S.OPERATOR["opcode_index"], "<I", 0))
        if idx >= len(codes):
            raise ConfigError(f"corrupt .tflite: operator {i} names operator code {idx} of {len(codes)}")
        operators.append(Operator(
            i, codes[idx], op.array(S.OPERATOR["inputs"], "<i4").tolist(),
            op.array(S.OPERATOR["outputs"], "<i4").tolist(), op.table(S.OPERATOR["builtin_options"]),
        ))  # fmt: skip
    return Graph(tensors, operators, sg.array(S.SUBGRAPH["inputs"], "<i4").tolist(),
                 sg.array(S.SUBGRAPH["outputs"], "<i4").tolist(), model.string(S.MODEL["description"]))


def read_file(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no .tflite file {path} (set model.path=FILE.tflite)")
    return read_graph(path.read_bytes())
