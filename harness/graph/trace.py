"""Turn a float ``torch.nn.Module`` into the deployed layer graph (a list of :class:`LayerSpec`).

The model is traced with ``torch.fx`` and its shapes propagated with one example input. The walk fuses what
deploys as one kernel (Conv2d + BatchNorm2d + ReLU/ReLU6; an add followed by a ReLU), lets shape-only
operations (flatten, dropout, identity) pass through, and refuses everything the integer IR cannot express with
an :class:`~harness.errors.UnsupportedLayerError` naming the layer and its type.

Conv classification: ``depthwise`` when ``groups == in == out``; ``pointwise`` when the kernel is 1x1 with
``groups == 1``, stride 1 and no padding; every other ``groups == 1`` conv (including a strided 1x1 shortcut)
is a general ``conv2d``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from harness.errors import UnsupportedLayerError
from harness.graph.spec import INPUT, LayerSpec


@dataclass(frozen=True)
class TracedLayer:
    """A :class:`LayerSpec` plus the modules it came from (what folding and quantization need)."""

    spec: LayerSpec
    module: str | None = None  # qualified name of the Conv2d / Linear / pooling module
    bn: str | None = None  # qualified name of the fused BatchNorm2d, if any

    @property
    def name(self) -> str:
        return self.spec.name


_PASS_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten)
_PASS_FUNCTIONS = {torch.flatten, F.dropout, F.dropout2d}
_PASS_METHODS = {"flatten", "contiguous", "view", "reshape", "squeeze"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_RELU_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.relu6: "relu6"}
_POOL_FUNCTIONS = {F.adaptive_avg_pool2d, F.avg_pool2d}


def input_shape_of(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """The (C, H, W) input shape: given explicitly, or the model's ``input_shape`` attribute."""
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise UnsupportedLayerError(
            f"{type(model).__name__}: unknown input shape; pass input_shape=(C, H, W) or set model.input_shape")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise UnsupportedLayerError(f"input_shape must be (C, H, W), got {shape}")
    return shape  # type: ignore[return-value]


def extract_layers(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> list[LayerSpec]:
    """Fused layer specs of ``model`` in execution order, for an input of shape (C, H, W)."""
    return [t.spec for t in trace_model(model, input_shape)]


def trace_model(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> list[TracedLayer]:
    """Like :func:`extract_layers`, keeping the names of the source modules of each fused layer."""
    shape = input_shape_of(model, input_shape)
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure is a model the harness cannot take
        raise UnsupportedLayerError(
            f"{type(model).__name__} cannot be traced by torch.fx (data-dependent control flow?): {e}") from None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *shape))
    except Exception as e:  # noqa: BLE001
        raise UnsupportedLayerError(f"{type(model).__name__} fails on an input of shape {shape}: {e}") from None
    finally:
        model.train(was_training)
    return _Walker(gm).run()


def _hwc(node: fx.Node) -> tuple[int, int, int]:
    s = tuple(node.meta["tensor_meta"].shape)
    if len(s) == 4:
        return (int(s[2]), int(s[3]), int(s[1]))
    if len(s) == 2:
        return (1, 1, int(s[1]))
    raise UnsupportedLayerError(f"node {node.name!r}: tensors must be NCHW or (N, C), got shape {s}")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Walker:
    """One pass over the fx graph in topological order, building fused layers."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.layers: dict[str, TracedLayer] = {}
        self.producer: dict[fx.Node, str] = {}  # fx node -> name of the layer whose output it is
        self.names_used: set[str] = set()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _where(self, node: fx.Node) -> str:
        """The innermost module a functional node sits in ('' at top level)."""
        stack = node.meta.get("nn_module_stack") or {}
        return next(reversed(stack.values()))[0] if stack else ""

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.names_used:
            name, i = f"{base}_{i}", i + 1
        self.names_used.add(name)
        return name

    def _src(self, node: fx.Node, arg) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.producer:
            raise UnsupportedLayerError(f"{node.name!r}: input {arg!r} is not a traced tensor")
        return self.producer[arg]

    def _out_shape(self, name: str) -> tuple[int, int, int]:
        return self.layers[name].spec.out_shape if name != INPUT else self.input_hwc

    def _add_layer(self, node: fx.Node, layer: TracedLayer) -> None:
        self.layers[layer.name] = layer
        self.producer[node] = layer.name

    @staticmethod
    def _unsupported(node: fx.Node, what: str, why: str = "") -> UnsupportedLayerError:
        msg = f"unsupported layer {node.target if node.op == 'call_module' else node.name!r} ({what})"
        return UnsupportedLayerError(msg + (f": {why}" if why else ""))

    # -- node kinds -------------------------------------------------------------------------------------------
    def run(self) -> list[TracedLayer]:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if self.producer:
                    raise UnsupportedLayerError("models with more than one input are not supported")
                self.input_hwc = _hwc(node)
                self.producer[node] = INPUT
            elif node.op == "call_module":
                self._module(node, self.modules[node.target])
            elif node.op == "call_function":
                self._function(node)
            elif node.op == "call_method":
                self._method(node)
            elif node.op == "get_attr":
                raise self._unsupported(node, "parameter used directly in forward")
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node) or self.producer.get(out, INPUT) == INPUT:
                    raise UnsupportedLayerError("the model must return one tensor computed by a layer")
        return list(self.layers.values())

    def _module(self, node: fx.Node, mod: nn.Module) -> None:
        name = str(node.target)
        if isinstance(mod, nn.Conv2d):
            self._conv(node, name, mod)
        elif isinstance(mod, nn.BatchNorm2d):
            self._bn(node, name)
        elif isinstance(mod, (nn.ReLU, nn.ReLU6)):
            self._activation(node, "relu6" if isinstance(mod, nn.ReLU6) else "relu")
        elif isinstance(mod, nn.Linear):
            self._linear(node, name, mod)
        elif isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            self._pool(node, name, mod)
        elif isinstance(mod, _PASS_MODULES):
            self._passthrough(node)
        else:
            raise self._unsupported(node, type(mod).__name__, "tinyhil supports Conv2d (standard, depthwise, "
                                    "pointwise), BatchNorm2d, ReLU/ReLU6, Linear, average pooling and residual add")

    def _function(self, node: fx.Node) -> None:
        t = node.target
        if t in _ADD_FUNCTIONS:
            self._add(node)
        elif t in _RELU_FUNCTIONS:
            self._activation(node, _RELU_FUNCTIONS[t])
        elif t in _POOL_FUNCTIONS:
            self._pool(node, None, None)
        elif t is torch.mean:
            self._mean(node)
        elif t in _PASS_FUNCTIONS:
            self._passthrough(node)
        else:
            raise self._unsupported(node, getattr(t, "__name__", str(t)))

    def _method(self, node: fx.Node) -> None:
        t = node.target
        if t == "add" or t == "add_":
            self._add(node)
        elif t in ("relu", "relu_"):
            self._activation(node, "relu")
        elif t == "mean":
            self._mean(node)
        elif t in _PASS_METHODS:
            self._passthrough(node)
        else:
            raise self._unsupported(node, f"Tensor.{t}")

    def _conv(self, node: fx.Node, name: str, conv: nn.Conv2d) -> None:
        src = self._src(node, node.args[0])
        in_shape, out_shape = self._out_shape(src), _hwc(node)
        what = f"Conv2d(groups={conv.groups})"
        if conv.padding_mode != "zeros":
            raise self._unsupported(node, what, f"padding_mode {conv.padding_mode!r}")
        if _pair(conv.dilation) != (1, 1):
            raise self._unsupported(node, what, "dilated convolution")
        sh, sw = _pair(conv.stride)
        if sh != sw:
            raise self._unsupported(node, what, f"unequal strides {conv.stride}")
        kh, kw = _pair(conv.kernel_size)
        if isinstance(conv.padding, str):  # 'same' / 'valid'
            ph, pw = ((kh - 1) // 2, (kw - 1) // 2) if conv.padding == "same" else (0, 0)
            padding = (ph, pw, kh - 1 - ph, kw - 1 - pw) if conv.padding == "same" else (0, 0, 0, 0)
        else:
            ph, pw = _pair(conv.padding)
            padding = (ph, pw, ph, pw)
        cin, cout, g = conv.in_channels, conv.out_channels, conv.groups
        if g == 1:
            op = "pointwise" if (kh, kw) == (1, 1) and sh == 1 and padding == (0, 0, 0, 0) else "conv2d"
        elif g == cin == cout:
            op = "depthwise"
        else:
            raise self._unsupported(node, what, "grouped convolution (only groups=1 or depthwise "
                                    "groups=in=out channels)")
        spec = LayerSpec(name=self._fresh(name), op=op, in_shape=in_shape, out_shape=out_shape,
                         kernel=(kh, kw), stride=sh, padding=padding, inputs=(src,))
        self._add_layer(node, TracedLayer(spec, module=name))

    def _fusable(self, node: fx.Node, what: str) -> TracedLayer:
        """The layer that produced ``node``'s input if ``node`` may be folded into it."""
        arg = node.args[0] if node.args else node.kwargs.get("input")
        src = self._src(node, arg)
        if src == INPUT:
            raise self._unsupported(node, what, "applied to the network input; it must follow a layer")
        if len(arg.users) != 1:
            raise self._unsupported(node, what, f"the output of {src!r} is also used elsewhere, so it "
                                    "cannot be fused into that layer")
        return self.layers[src]

    def _bn(self, node: fx.Node, name: str) -> None:
        layer = self._fusable(node, "BatchNorm2d")
        if layer.spec.op not in ("conv2d", "depthwise", "pointwise") or layer.bn or layer.spec.activation:
            raise self._unsupported(node, "BatchNorm2d", f"must directly follow a Conv2d, follows {layer.name!r}")
        self.layers[layer.name] = replace(layer, bn=name)
        self.producer[node] = layer.name

    def _activation(self, node: fx.Node, kind: str) -> None:
        layer = self._fusable(node, kind.upper())
        if layer.spec.activation is not None or layer.spec.op == "avgpool":
            raise self._unsupported(node, kind, f"cannot be fused into {layer.spec.op} {layer.name!r}")
        self.layers[layer.name] = replace(layer, spec=replace(layer.spec, activation=kind))
        self.producer[node] = layer.name

    def _linear(self, node: fx.Node, name: str, lin: nn.Linear) -> None:
        src = self._src(node, node.args[0])
        in_shape = self._out_shape(src)
        if in_shape[:2] != (1, 1):
            raise self._unsupported(node, "Linear", f"input is a {in_shape[0]}x{in_shape[1]} map; put a global "
                                    "average pool before the classifier")
        spec = LayerSpec(name=self._fresh(name), op="fc", in_shape=in_shape, out_shape=(1, 1, lin.out_features),
                         inputs=(src,))
        self._add_layer(node, TracedLayer(spec, module=name))

    def _add(self, node: fx.Node) -> None:
        a, b = (list(node.args) + [node.kwargs.get("other")])[:2]
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
            raise self._unsupported(node, "add", "only the sum of two tensors is supported (no constants)")
        if node.kwargs.get("alpha", 1) != 1:
            raise self._unsupported(node, "add", "alpha != 1")
        s1, s2 = self._src(node, a), self._src(node, b)
        in_shape, out_shape = self._out_shape(s1), _hwc(node)
        if self._out_shape(s2) != in_shape or out_shape != in_shape:
            raise self._unsupported(node, "add", f"broadcasting add {in_shape} + {self._out_shape(s2)}")
        where = self._where(node)
        spec = LayerSpec(name=self._fresh(f"{where}.add" if where else "add"), op="add", in_shape=in_shape,
                         out_shape=out_shape, inputs=(s1, s2))
        self._add_layer(node, TracedLayer(spec))

    def _pool(self, node: fx.Node, name: str | None, mod: nn.Module | None) -> None:
        src = self._src(node, node.args[0])
        (ih, iw, c), (oh, ow, _) = self._out_shape(src), _hwc(node)
        adaptive = isinstance(mod, nn.AdaptiveAvgPool2d) or node.target is F.adaptive_avg_pool2d
        if adaptive:
            if ih % oh or iw % ow:
                raise self._unsupported(node, "AdaptiveAvgPool2d", f"{ih}x{iw} -> {oh}x{ow} has unequal windows")
            kernel, stride = (ih // oh, iw // ow), ih // oh
        else:
            kw_ = dict(zip(("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"), node.args[1:]))
            kw_.update(node.kwargs)
            if mod is not None:
                kw_ = {"kernel_size": mod.kernel_size, "stride": mod.stride, "padding": mod.padding,
                       "ceil_mode": mod.ceil_mode}
            kernel = _pair(kw_["kernel_size"])
            stride_v = kw_.get("stride") or kernel
            stride = _pair(stride_v)[0]
            if _pair(kw_.get("padding", 0)) != (0, 0) or kw_.get("ceil_mode"):
                raise self._unsupported(node, "AvgPool2d", "padding or ceil_mode")
            if _pair(stride_v)[0] != _pair(stride_v)[1]:
                raise self._unsupported(node, "AvgPool2d", "unequal strides")
        where = self._where(node)
        base = name or (f"{where}.pool" if where else "pool")
        spec = LayerSpec(name=self._fresh(base), op="avgpool", in_shape=(ih, iw, c), out_shape=(oh, ow, c),
                         kernel=kernel, stride=stride, inputs=(src,))
        self._add_layer(node, TracedLayer(spec, module=name))

    def _mean(self, node: fx.Node) -> None:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = {int(d) % 4 for d in ((dims,) if isinstance(dims, int) else (dims or ()))}
        if dims != {2, 3}:
            raise self._unsupported(node, "mean", "only the spatial mean over dims (2, 3) is supported")
        src = self._src(node, node.args[0])
        ih, iw, c = self._out_shape(src)
        where = self._where(node)
        spec = LayerSpec(name=self._fresh(f"{where}.pool" if where else "pool"), op="avgpool",
                         in_shape=(ih, iw, c), out_shape=(1, 1, c), kernel=(ih, iw), stride=ih, inputs=(src,))
        self._add_layer(node, TracedLayer(spec))

    def _passthrough(self, node: fx.Node) -> None:
        arg = node.args[0] if node.args else node.kwargs.get("input")
        src = self._src(node, arg)
        if node.op == "call_method" and node.target in ("view", "reshape", "squeeze"):
            h, w, _ = self._out_shape(src)
            if (h, w) != (1, 1):
                raise self._unsupported(node, f"Tensor.{node.target}", "reshaping a spatial map is not supported")
        self.producer[node] = src
