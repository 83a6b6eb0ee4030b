"""Serial transport to a board and the client for the firmware's line protocol."""

from harness.transport.link import SerialLink, Transport
from harness.transport.protocol import Dut, LayerResult, MemInfo, ModelInfo, frame, parse_line

__all__ = ["Dut", "LayerResult", "MemInfo", "ModelInfo", "SerialLink", "Transport", "frame", "parse_line"]
