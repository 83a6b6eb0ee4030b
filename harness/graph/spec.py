"""Shape-level description of a network: what accounting, the patch planner and the latency table read.

``extract_layers`` (in ``harness.graph.trace``) turns a float ``torch.nn.Module`` into a list of
:class:`LayerSpec` in execution order. Conv+BN+ReLU are one spec (the deployed, fused graph).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import ops

INPUT = "input"  # producer name of the network input


@dataclass(frozen=True)
class LayerSpec:
    name: str  # qualified module name of the conv/linear (or a generated name for add/pool)
    op: str  # an operator kind of harness.ops.OPS
    in_shape: tuple[int, int, int]  # (H, W, C)
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    inputs: tuple[str, ...] = (INPUT,)  # producer layer names
    activation: str | None = None  # "relu", "relu6" or None

    @property
    def has_weights(self) -> bool:
        return ops.get(self.op).weighted

    @property
    def macs(self) -> int:
        return ops.get(self.op).macs(self.in_shape, self.out_shape, self.kernel)

    @property
    def params(self) -> int:
        """Weight count (without bias)."""
        return ops.get(self.op).params(self.in_shape, self.out_shape, self.kernel)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """The IR weight layout (innermost dimension = packed row); () without weights."""
        return ops.get(self.op).weight_shape(self.in_shape, self.out_shape, self.kernel)

    def key(self) -> str:
        """Latency-table key: everything about the layer's shape that can change its count."""
        ih, iw, ic = self.in_shape
        oh, ow, oc = self.out_shape
        pad = "-".join(map(str, self.padding))
        return (f"{self.op}_k{self.kernel[0]}x{self.kernel[1]}_s{self.stride}_p{pad}"
                f"_i{ih}x{iw}x{ic}_o{oh}x{ow}x{oc}")
