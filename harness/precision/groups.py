"""Which activation tensors share one precision, and the (a, w, o) bits every layer runs at under a
configuration.

The rules (shared by latency prediction, the Free Bits refiner, the BitOPs search and memory accounting):

* A tensor is named after the layer that writes it (the network input is :data:`~harness.graph.spec.INPUT`).
  Every tensor holds ONE precision: the producer narrows to it in its requantization (``harness.ir.model``).
* Layers without weights (``add``, ``avgpool``) do not change precision: their inputs and their output share
  one precision. Tensors joined this way form an *activation group* (e.g. the residual stream of a MobileNetV2
  stage: block input, projection outputs and add outputs). A group is one decision.
* A group's precision is the ``a_bits`` of the weighted layers that read it (a conv/linear's ``a_bits`` in a
  :class:`~harness.precision.config.PrecisionConfig` is the precision of its input tensor). All its weighted
  readers must agree; :func:`harmonize` raises disagreeing readers to their maximum. A group no weighted layer
  reads (the network output) is written at ``output_bits`` (8: logits are int8).
* Latency-table keying: a weighted layer is looked up at ``(a_bits, w_bits, o_bits)`` with ``a_bits`` its
  input group's precision, ``w_bits`` from the config and ``o_bits`` its output group's precision. A
  weightless layer is looked up at ``(g, NO_WEIGHTS, g)`` with ``g`` its group's precision (``w_bits = 0``
  means "no weights").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.graph.spec import INPUT, LayerSpec
from harness.ops import OPS
from harness.precision.config import PrecisionConfig

NO_WEIGHTS = 0  # the w_bits of add/avgpool rows in the latency table

Bits = tuple[int, int, int]  # (a_bits, w_bits, o_bits)


@dataclass(frozen=True)
class ActivationGroups:
    """The activation groups of a network (see the module docstring)."""

    layers: tuple[LayerSpec, ...]
    group_of: dict[str, int]  # tensor name -> group index
    tensors: tuple[tuple[str, ...], ...]  # per group: its tensors
    readers: tuple[tuple[str, ...], ...]  # per group: weighted layers that read it (execution order)
    producers: tuple[tuple[str, ...], ...]  # per group: weighted layers that write one of its tensors
    passthrough: tuple[tuple[str, ...], ...]  # per group: weightless layers inside it
    by_name: dict[str, LayerSpec]

    @property
    def weighted(self) -> list[str]:
        return [s.name for s in self.layers if s.has_weights]

    def input_group(self, name: str) -> int:
        """Group of the tensor a layer reads (its first input; all inputs of a weightless layer share it)."""
        return self.group_of[self.by_name[name].inputs[0]]

    def output_group(self, name: str) -> int:
        return self.group_of[name]


def activation_groups(layers: Sequence[LayerSpec]) -> ActivationGroups:
    """Check the graph and join tensors through weightless layers into activation groups."""
    by_name: dict[str, LayerSpec] = {}
    for s in layers:
        if s.op not in OPS:
            raise ConfigError(f"layer {s.name!r}: unknown op {s.op!r} (expected one of {OPS})")
        if s.name in by_name or s.name == INPUT:
            raise ConfigError(
                f"layer name {s.name!r} is used twice (or clashes with the input tensor's name)"
            )
        if not s.inputs:
            raise ConfigError(f"layer {s.name!r} has no inputs")
        for p in s.inputs:
            if p != INPUT and p not in by_name:
                raise ConfigError(f"layer {s.name!r} reads {p!r}, which no earlier layer produces")
        if s.has_weights and len(s.inputs) != 1:
            raise ConfigError(f"layer {s.name!r} ({s.op}) must read exactly one tensor, got {s.inputs}")
        by_name[s.name] = s

    # union-find over tensor names
    parent: dict[str, str] = {INPUT: INPUT, **{n: n for n in by_name}}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for s in layers:
        if not s.has_weights:
            for p in s.inputs:
                ra, rb = find(p), find(s.name)
                if ra != rb:
                    parent[rb] = ra

    order = [INPUT, *by_name]  # execution order gives stable group numbers
    roots: dict[str, int] = {}
    group_of: dict[str, int] = {}
    for t in order:
        group_of[t] = roots.setdefault(find(t), len(roots))
    n = len(roots)
    tensors: list[list[str]] = [[] for _ in range(n)]
    readers: list[list[str]] = [[] for _ in range(n)]
    producers: list[list[str]] = [[] for _ in range(n)]
    passthrough: list[list[str]] = [[] for _ in range(n)]
    for t in order:
        tensors[group_of[t]].append(t)
    for s in layers:
        if s.has_weights:
            readers[group_of[s.inputs[0]]].append(s.name)
            producers[group_of[s.name]].append(s.name)
        else:
            passthrough[group_of[s.name]].append(s.name)
    return ActivationGroups(
        tuple(layers),
        group_of,
        *(tuple(map(tuple, x)) for x in (tensors, readers, producers, passthrough)),
        by_name,
    )


def _check_covers(groups: ActivationGroups, config: PrecisionConfig) -> None:
    weighted = groups.weighted
    missing = [n for n in weighted if n not in config]
    if missing:
        raise ConfigError(
            f"precision configuration has no (a_bits, w_bits) for layer(s) {missing[:5]}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    extra = [n for n in config if n not in groups.by_name or not groups.by_name[n].has_weights]
    if extra:
        raise ConfigError(
            f"precision configuration names layer(s) {extra[:5]} that are not conv/linear layers "
            "of this network"
        )


def group_bits(groups: ActivationGroups, config: PrecisionConfig, *, output_bits: int = 8) -> list[int]:
    """Precision of every activation group; raises ConfigError when readers of one group disagree."""
    _check_covers(groups, config)
    out: list[int] = []
    for g, rs in enumerate(groups.readers):
        if not rs:
            out.append(output_bits)
            continue
        asked = {r: config[r][0] for r in rs}
        if len(set(asked.values())) > 1:
            raise ConfigError(
                f"layers {list(asked)} read one activation tensor (group of {list(groups.tensors[g])}) but "
                f"ask for different input bits {asked}; one tensor holds one precision: use "
                "harness.precision.groups.harmonize() to raise them to their maximum"
            )
        out.append(next(iter(asked.values())))
    return out


def grouped_tensor_bits(
    layers: Sequence[LayerSpec] | ActivationGroups, config: PrecisionConfig, *, output_bits: int = 8
) -> dict[str, int]:
    """Every tensor's precision under ``config``: its activation group's (what deployment and the latency table
    run; a tensor only an add or a pool reads takes the precision of the group it joins)."""
    groups = layers if isinstance(layers, ActivationGroups) else activation_groups(layers)
    gb = group_bits(groups, config, output_bits=output_bits)
    return {t: gb[g] for t, g in groups.group_of.items()}


def layer_bits(
    groups: ActivationGroups,
    config: PrecisionConfig,
    out_bits_rule: str | int = "consumer",
    *,
    output_bits: int = 8,
) -> dict[str, Bits]:
    """``(a_bits, w_bits, o_bits)`` each layer is keyed by in the latency table.

    ``out_bits_rule``: ``"consumer"`` (o_bits = precision of the output's group, what the firmware writes) or
    an int, which keys every conv/linear layer at that o_bits (a table profiled only at o=8, as in the Free
    Bits paper). Weightless layers are always keyed ``(g, 0, g)``.
    """
    if out_bits_rule != "consumer" and out_bits_rule not in (2, 4, 8):
        raise ConfigError(f"out_bits_rule must be 'consumer' or one of 2, 4, 8; got {out_bits_rule!r}")
    gb = group_bits(groups, config, output_bits=output_bits)
    res: dict[str, Bits] = {}
    for s in groups.layers:
        a = gb[groups.input_group(s.name)]
        if not s.has_weights:
            res[s.name] = (a, NO_WEIGHTS, a)
            continue
        o = gb[groups.output_group(s.name)] if out_bits_rule == "consumer" else int(out_bits_rule)
        res[s.name] = (a, config[s.name][1], o)
    return res


def harmonize(layers: Sequence[LayerSpec] | ActivationGroups, config: PrecisionConfig) -> PrecisionConfig:
    """Raise the ``a_bits`` of every reader of a shared tensor to the readers' maximum.

    Raising never lowers accuracy (the Free Bits assumption), so this is the safe way to make a configuration
    from a method that chose each layer's input bits independently consistent. Changed layers are listed in
    ``meta["harmonized"]``.
    """
    groups = layers if isinstance(layers, ActivationGroups) else activation_groups(layers)
    _check_covers(groups, config)
    new = dict(config.layers)
    changed: list[str] = []
    for rs in groups.readers:
        if len(rs) < 2:
            continue
        top = max(config[r][0] for r in rs)
        for r in rs:
            if new[r][0] != top:
                new[r] = (top, new[r][1])
                changed.append(r)
    meta = dict(config.meta)
    if changed:
        meta["harmonized"] = sorted(set(meta.get("harmonized", [])) | set(changed))
    return PrecisionConfig(new, dict(config.patches), meta)
