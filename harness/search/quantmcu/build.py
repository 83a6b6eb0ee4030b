"""From searched per-branch precisions to what the code generator runs, and back.

A QuantMCU result is a :class:`~harness.precision.config.PrecisionConfig` whose ``layers`` hold every conv/linear
layer's ``(a_bits, w_bits)`` outside the patch branches (the base precision, or the shared rest branch's
decisions with ``scope="network"``) and whose ``patches`` hold, per patch index, every weighted stage layer's
``a_bits`` in that branch. ``meta["clips"]`` keeps the range chosen for every lowered tensor (``{patch: {tensor:
clip}}``, the rest under ``"rest"``) so the configuration alone rebuilds the exact models
(:func:`patched_from_config`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.errors import ConfigError
from harness.ir.model import IntModel
from harness.patch.intmodel import PatchedModel
from harness.patch.rebits import retarget, spec_at_bits
from harness.precision.config import PrecisionConfig
from harness.search.quantmcu.branches import Branches, FeatureMap
from harness.search.quantmcu.vdqs import REST


def to_config(
    br: Branches,
    bits: list[dict[int, int]],
    clips: dict[tuple[int, str, int], float],
    meta: dict | None = None,
    rest_bits: Mapping[int, int] | None = None,
) -> PrecisionConfig:
    """The precision configuration of per-branch feature-map ``bits`` (with the clips of lowered tensors)."""
    model = br.pm.model
    layers = {
        layer.name: (model.a_bits(layer), layer.w_bits) for layer in model.layers if layer.weight is not None
    }
    chosen: dict[str, dict[str, float]] = {}
    if br.rest is not None and rest_bits:
        for fm in br.rest.maps:
            b = rest_bits[fm.index]
            for r in fm.readers:
                layers[r] = (b, layers[r][1])
            for t in fm.tensors:
                if b < model.tensors[t].bits:
                    chosen.setdefault("rest", {})[t] = float(clips[(REST, t, b)])
    patches: dict[int, dict[str, int]] = {}
    for p, b in enumerate(bits):
        patches[p] = {r: br.a_bits(r, b) for r in br.weighted}
        tb = br.tensor_bits(b)
        for fm in br.maps:
            for t in fm.tensors:
                if tb[t] < model.tensors[t].bits:
                    chosen.setdefault(str(p), {})[t] = float(clips[(p, t, tb[t])])
    m = {"method": "quantmcu", **(meta or {}), "clips": chosen}
    return PrecisionConfig(layers, patches, m)


def _specs(
    model: IntModel,
    maps: Sequence[FeatureMap],
    asked: Mapping[str, int],
    clips: Mapping[str, float],
    where: str,
) -> dict:
    specs = {}
    for fm in maps:
        want = {int(asked[r]) for r in fm.readers if r in asked}
        if len(want) > 1:
            raise ConfigError(
                f"{where}: layers {list(fm.readers)} read one feature map but ask for {sorted(want)}"
            )
        if not want:
            continue
        b = want.pop()
        for t in fm.tensors:
            if b != model.tensors[t].bits:
                specs[t] = spec_at_bits(model.tensors[t], b, float(clips.get(t, 1.0)))
    return specs


def patched_from_config(br: Branches, config: PrecisionConfig) -> PatchedModel:
    """The models a configuration describes: the rest of the network at ``config.layers`` (shared rest branch)
    and every patch's stage at its ``config.patches`` ``a_bits``."""
    base = br.pm
    model = base.model
    clips = config.meta.get("clips", {}) if isinstance(config.meta, dict) else {}
    if br.rest is not None:
        asked = {r: config[r][0] for r in br.rest.weighted if r in config}
        specs = _specs(model, br.rest.maps, asked, clips.get("rest", {}), "rest of the network")
        if specs:
            model = retarget(model, specs)
    models = []
    for p in range(base.plan.num_patches):
        asked = config.patches.get(p, {})
        unknown = sorted(set(asked) - set(br.weighted))
        if unknown:
            raise ConfigError(f"patch {p}: {unknown} are not weighted layers of the patch stage")
        specs = _specs(model, br.maps, asked, clips.get(str(p), {}), f"patch {p}")
        models.append(retarget(model, specs, name=f"{model.name}@p{p}") if specs else model)
    return PatchedModel(model, base.plan, tuple(models))
