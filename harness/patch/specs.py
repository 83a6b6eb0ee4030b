"""Build LayerSpec lists by hand, without a torch model: for tests, examples and quick what-if questions.

Shapes follow from the previous tensor, kernel, stride and padding, so a hand-written chain is consistent by
construction. Padding defaults to PyTorch's symmetric ``(k - 1) // 2`` on every side.
"""

from __future__ import annotations

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.patch.windows import out_size


class SpecBuilder:
    """Appends layers to a list; each method returns the new layer's name (its output tensor)."""

    def __init__(self, h: int, w: int, c: int) -> None:
        self.layers: list[LayerSpec] = []
        self._shapes: dict[str, tuple[int, int, int]] = {INPUT: (h, w, c)}
        self.last = INPUT

    def _add_window(
        self,
        op: str,
        cout: int | None,
        k: int,
        stride: int,
        padding: tuple[int, int, int, int] | None,
        src: str | None,
        name: str | None,
        activation: str | None,
    ) -> str:
        src = self.last if src is None else src
        ih, iw, ic = self._shapes[src]
        if padding is None:
            p = (k - 1) // 2
            padding = (p, p, p, p)
        t, left, b, r = padding
        oh, ow = out_size(ih, k, stride, t, b), out_size(iw, k, stride, left, r)
        if oh < 1 or ow < 1:
            raise ConfigError(f"{op} k={k} s={stride} on {ih}x{iw} leaves no output")
        oc = ic if cout is None else cout
        name = name or f"{op}{len(self.layers)}"
        self.layers.append(
            LayerSpec(name, op, (ih, iw, ic), (oh, ow, oc), (k, k), stride, padding, (src,), activation)
        )
        self._shapes[name] = (oh, ow, oc)
        self.last = name
        return name

    def conv(
        self,
        cout: int,
        k: int = 3,
        stride: int = 1,
        padding: tuple[int, int, int, int] | None = None,
        src: str | None = None,
        name: str | None = None,
        activation: str | None = "relu6",
    ) -> str:
        """A dense convolution (``pointwise`` when k == 1)."""
        op = "pointwise" if k == 1 else "conv2d"
        return self._add_window(
            op, cout, k, stride, padding if k > 1 else (0, 0, 0, 0), src, name, activation
        )

    def dw(
        self,
        k: int = 3,
        stride: int = 1,
        padding: tuple[int, int, int, int] | None = None,
        src: str | None = None,
        name: str | None = None,
        activation: str | None = "relu6",
    ) -> str:
        """A depthwise convolution."""
        return self._add_window("depthwise", None, k, stride, padding, src, name, activation)

    def pool(self, k: int, stride: int | None = None, src: str | None = None, name: str | None = None) -> str:
        """An average pool without padding."""
        return self._add_window("avgpool", None, k, stride or k, (0, 0, 0, 0), src, name, None)

    def add(self, a: str, b: str, name: str | None = None) -> str:
        """A residual add of two tensors of equal shape."""
        if self._shapes[a] != self._shapes[b]:
            raise ConfigError(f"add of {a!r} {self._shapes[a]} and {b!r} {self._shapes[b]}: shapes differ")
        name = name or f"add{len(self.layers)}"
        shape = self._shapes[a]
        self.layers.append(LayerSpec(name, "add", shape, shape, (1, 1), 1, (0, 0, 0, 0), (a, b)))
        self._shapes[name] = shape
        self.last = name
        return name

    def inverted_residual(
        self, cout: int, expand: int = 6, k: int = 3, stride: int = 1, prefix: str | None = None
    ) -> str:
        """MobileNetV2 block: expand 1x1, depthwise kxk, project 1x1, and a skip add when shapes allow."""
        src = self.last
        cin = self._shapes[src][2]
        prefix = prefix or f"b{len(self.layers)}"
        if expand != 1:
            self.conv(cin * expand, 1, name=f"{prefix}.expand")
        self.dw(k, stride, name=f"{prefix}.dw")
        out = self.conv(cout, 1, name=f"{prefix}.project", activation=None)
        if stride == 1 and cin == cout:
            out = self.add(src, out, name=f"{prefix}.add")
        return out
