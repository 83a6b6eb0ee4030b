"""Import int8 TensorFlow Lite models (``.tflite`` flatbuffers) into tinyhil's integer model.

``import_tflite(path)`` reads the file with tinyhil's own FlatBuffers reader (:mod:`harness.tflite.flatbuffer`)
and converts CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, AVERAGE_POOL_2D and RESHAPE with TFLite's integer
arithmetic (:mod:`harness.tflite.convert`); ``layer_specs(model)`` gives the shapes a latency table is measured on.
"""

from __future__ import annotations

from harness.graph.spec import INPUT, LayerSpec
from harness.ir.model import IntModel
from harness.tflite.convert import import_graph, import_tflite, unsupported_operators
from harness.tflite.reader import Graph, read_file, read_graph
from harness.tflite.schema import SUPPORTED

__all__ = ["SUPPORTED", "Graph", "import_graph", "import_tflite", "layer_specs", "read_file", "read_graph",
           "unsupported_operators"]


def layer_specs(model: IntModel) -> list[LayerSpec]:
    """The fused layer specs of an integer model (what ``tinyhil profile`` measures), in execution order."""
    producer = {layer.output: layer.name for layer in model.layers}
    return [
        LayerSpec(
            name=layer.name, op=layer.op, in_shape=tuple(model.in_spec(layer).shape),
            out_shape=tuple(model.out_spec(layer).shape), kernel=tuple(layer.kernel), stride=int(layer.stride),
            padding=tuple(layer.padding), inputs=tuple(producer.get(t, INPUT) for t in layer.inputs),
        )
        for layer in model.layers
    ]
