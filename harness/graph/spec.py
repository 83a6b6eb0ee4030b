"""Shape-level description of a network: what accounting, the patch planner and the latency table read.

``extract_layers`` (in ``harness.graph.trace``) turns a float ``torch.nn.Module`` into a list of
:class:`LayerSpec` in execution order. Conv+BN+ReLU are one spec (the deployed, fused graph).
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT = "input"  # producer name of the network input


@dataclass(frozen=True)
class LayerSpec:
    name: str  # qualified module name of the conv/linear (or a generated name for add/pool)
    op: str  # one of harness.codegen.ir.OPS
    in_shape: tuple[int, int, int]  # (H, W, C)
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    inputs: tuple[str, ...] = (INPUT,)  # producer layer names
    activation: str | None = None  # "relu", "relu6" or None

    @property
    def has_weights(self) -> bool:
        return self.op in ("conv2d", "depthwise", "pointwise", "fc")

    @property
    def macs(self) -> int:
        oh, ow, oc = self.out_shape
        ic = self.in_shape[2]
        kh, kw = self.kernel
        if self.op == "conv2d":
            return oh * ow * oc * kh * kw * ic
        if self.op in ("depthwise", "avgpool"):
            return oh * ow * oc * kh * kw
        if self.op in ("pointwise", "fc"):
            return oh * ow * oc * ic
        return oh * ow * oc

    @property
    def params(self) -> int:
        """Weight count (without bias)."""
        kh, kw = self.kernel
        ic, oc = self.in_shape[2], self.out_shape[2]
        if self.op == "conv2d":
            return oc * kh * kw * ic
        if self.op == "depthwise":
            return kh * kw * oc
        if self.op in ("pointwise", "fc"):
            return oc * ic
        return 0

    def key(self) -> str:
        """Latency-table key: everything about the layer's shape that can change its count."""
        ih, iw, ic = self.in_shape
        oh, ow, oc = self.out_shape
        pad = "-".join(map(str, self.padding))
        return (f"{self.op}_k{self.kernel[0]}x{self.kernel[1]}_s{self.stride}_p{pad}"
                f"_i{ih}x{iw}x{ic}_o{oh}x{ow}x{oc}")
