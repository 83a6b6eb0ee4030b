"""Serial transport to a board and the client for the firmware's line protocol."""

from harness.transport.link import SerialLink, Transport
from harness.transport.protocol import Dut, frame, parse_line
from harness.transport.replies import InferTiming, LayerResult, MemInfo, ModelInfo, PatchStepResult

__all__ = [
    "Dut", "InferTiming", "LayerResult", "MemInfo", "ModelInfo", "PatchStepResult", "SerialLink", "Transport", "frame",
    "parse_line",
]  # fmt: skip
